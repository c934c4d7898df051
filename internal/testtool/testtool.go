// Package testtool finds the real programs that interoperability tests
// run (knotd, unbound, prosody, certbot, openssl, hash-slinger's tlsa,
// ldns-dane). A missing program skips the test with the Debian package
// to install, except in CI (CI set), where it fails: the test command
// installs the packages there, and a silent skip would hide that it did
// not. It also holds small helpers every package's tests share (a
// concurrent-safe log buffer, the one-line error check). The package is
// only for tests.
package testtool

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// swapEnv carries a Swapper's orders to the re-executed test binary.
const swapEnv = "XMPPCERT_TEST_SWAP"

type swapOrders struct {
	Dir, Target string
	Names       []string
}

// Nobody is the uid and gid a Swapper runs as: another user than root.
const Nobody = 65534

// Swapper is another user's process that replaces names in a directory
// with symbolic links, round after round, as fast as it can (see
// StartSwapper).
type Swapper struct {
	cmd   *exec.Cmd
	in    io.Closer
	swaps atomic.Int64
	done  chan struct{}
	out   LockedBuffer
	once  sync.Once
}

// Swaps is how many swaps it has made so far.
func (s *Swapper) Swaps() int { return int(s.swaps.Load()) }

// Stop ends it and returns how many swaps it made.
func (s *Swapper) Stop(t testing.TB) int {
	s.once.Do(func() {
		s.in.Close()
		<-s.done
		if err := s.cmd.Wait(); err != nil {
			t.Errorf("swapper: %v\n%s", err, s.out.String())
		}
	})
	return s.Swaps()
}

// StartSwapper starts, as user Nobody, a process that replaces each of
// names in dir (which that user must be able to write) with a symbolic
// link to target, round after round, as fast as it can: a directory or
// file there is first renamed away. It plays the other user of a
// directory root writes into. The process is the test binary itself,
// run with -test.run=^helper$: the package must have a test named helper
// that calls SwapHelper. It needs root; the caller skips otherwise.
func StartSwapper(t testing.TB, helper, dir, target string, names []string) *Swapper {
	t.Helper()
	// The test binary lives in a directory only root may enter: run a
	// copy from one Nobody can reach.
	binDir := SharedDir(t)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "helper.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	orders, err := json.Marshal(swapOrders{Dir: dir, Target: target, Names: names})
	if err != nil {
		t.Fatal(err)
	}
	s := &Swapper{cmd: exec.Command(bin, "-test.run=^"+helper+"$", "-test.count=1"), done: make(chan struct{})}
	s.cmd.Dir = binDir
	s.cmd.Env = append(os.Environ(), swapEnv+"="+string(orders))
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: Nobody, Gid: Nobody}}
	s.cmd.Stderr = &s.out
	if s.in, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.out.Write(append(sc.Bytes(), '\n'))
			if n, ok := strings.CutPrefix(sc.Text(), "swaps "); ok {
				if v, err := strconv.ParseInt(n, 10, 64); err == nil {
					s.swaps.Store(v)
				}
			}
		}
	}()
	t.Cleanup(func() { s.Stop(t) })
	return s
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

// SwapHelper is the body of the helper test StartSwapper runs; outside a
// Swapper it skips.
func SwapHelper(t *testing.T) {
	raw := os.Getenv(swapEnv)
	if raw == "" {
		t.Skip("the swapper of a symbolic link race test; it runs only as that")
	}
	var o swapOrders
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		done.Store(true)
	}()
	swaps := 0
	for round := 0; !done.Load(); round++ {
		for _, name := range o.Names {
			path := filepath.Join(o.Dir, name)
			os.Rename(path, fmt.Sprintf("%s.moved-%d", path, round))
			link := path + ".link"
			os.Remove(link)
			if os.Symlink(o.Target, link) == nil && os.Rename(link, path) == nil {
				swaps++
				if swaps%100 == 0 {
					fmt.Printf("swaps %d\n", swaps)
				}
			}
		}
	}
	fmt.Printf("swaps %d\n", swaps)
}
