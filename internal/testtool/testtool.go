// Package testtool finds the real programs that interoperability tests
// run (knotd, unbound, prosody, certbot, openssl, hash-slinger's tlsa,
// ldns-dane). A missing program skips the test with the Debian package
// to install, except in CI (CI set), where it fails: the test command
// installs the packages there, and a silent skip would hide that it did
// not. It also holds what every package's tests share: a concurrent-safe
// log buffer, the one-line error check, the seed and soak knobs of the
// randomised tests, the load average for a failed performance gate,
// another user's process for symbolic link races (Swapper), and the
// fixture programs tests run in processes of their own (BuildProgram).
// The package is only for tests.
package testtool

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Require returns the path of a program the test needs, also found in
// the sbin directories that a non-root PATH lacks, or skips (outside CI)
// or fails (in CI) the test, naming the Debian package that provides it.
// With -short it skips: real servers and tools are the full tier's.
func Require(t testing.TB, name, debianPackage string) string {
	t.Helper()
	SkipShort(t, "it runs "+name)
	if path, ok := Find(name); ok {
		return path
	}
	msg, fail := missing(name, debianPackage)
	if fail {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Find looks name up in PATH and in the sbin directories that a non-root
// PATH lacks.
func Find(name string) (string, bool) {
	if path, err := exec.LookPath(name); err == nil {
		return path, true
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		path := filepath.Join(dir, name)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return path, true
		}
	}
	return "", false
}

// missing is what a test says when a program is not found: the Debian
// package to install, and whether to fail (in CI, whose test command
// installs it) rather than skip.
func missing(name, debianPackage string) (msg string, fail bool) {
	if os.Getenv("CI") != "" {
		return fmt.Sprintf("%s not found in CI: the test command must install Debian package %s", name, debianPackage), true
	}
	return fmt.Sprintf("%s not found: install Debian package %s (./test.sh does so when run as root)", name, debianPackage), false
}

// LockedBuffer is a bytes.Buffer that a child process's stdout and
// stderr (or several goroutines) may write concurrently: the log of a
// server under test, printed when the test fails.
type LockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// OneLineError fails the test unless err is a one-line error containing
// every one of wants: the shape xmppcert gives every error a user reads.
func OneLineError(t testing.TB, err error, wants ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", wants)
	}
	for _, w := range wants {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}

// Lines returns the lines of the file at path (a hook's log, say), none
// when it does not exist yet.
func Lines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// SkipShort skips the test with -short, the contributor's fast tier,
// saying why it belongs to the full tier (./test.sh): it runs a real
// server or tool, builds and runs the binary, kills processes, or works
// at scale.
func SkipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("left out with -short: %s; ./test.sh runs it", why)
	}
}

// SeedEnv names the environment variable that fixes the seed of the
// tests that kill processes at random moments, to repeat a failed run.
const SeedEnv = "XMPPCERT_TEST_SEED"

// Seed returns the seed of a randomised test: the value of SeedEnv when
// set, otherwise one drawn from the clock. It logs the seed and how to
// repeat the run, so that a failure can be reproduced.
func Seed(t testing.TB) uint64 {
	t.Helper()
	if v := os.Getenv(SeedEnv); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: give a decimal number", SeedEnv, v)
		}
		t.Logf("seed %d (from %s)", seed, SeedEnv)
		return seed
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (%s=%d repeats this run)", seed, SeedEnv, seed)
	return seed
}

// LoadAverage is /proc/loadavg's first three figures, for the message of
// a failed performance gate: a figure missed under load says so.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load average unknown"
	}
	return "load average (1, 5, 15 min) " + strings.Join(f[:3], " ")
}

// SoakEnv names the environment variable that multiplies the rounds of
// the kill and fault tests, for a soak-length run (XMPPCERT_SOAK=20
// ./test.sh); unset, they run their ordinary length.
const SoakEnv = "XMPPCERT_SOAK"

// Rounds is n, times SoakEnv when it is set to a positive number.
func Rounds(t testing.TB, n int) int {
	t.Helper()
	v := os.Getenv(SoakEnv)
	if v == "" {
		return n
	}
	k, err := strconv.Atoi(v)
	if err != nil || k < 1 {
		t.Fatalf("%s=%q: give a whole number of 1 or more", SoakEnv, v)
	}
	t.Logf("soak: %d rounds (%s=%d)", n*k, SoakEnv, k)
	return n * k
}

// SharedDir returns a new directory, removed at the end of the test,
// that every user can reach (0755 under the system's temporary
// directory; t.TempDir is inside one only its owner may enter).
func SharedDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// PeakRSS is the VmHWM (peak resident set size) of /proc/PID/status, in
// bytes; pid "self" is this process.
func PeakRSS(t testing.TB, pid string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmHWM in /proc/%s/status", pid)
	return 0
}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server that must be told its port before it starts.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
