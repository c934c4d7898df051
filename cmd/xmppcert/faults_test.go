package main

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/safedir"
	"github.com/xmppcert/xmppcert/internal/testfs"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestFaults runs the built command as operators do, as a separate
// process, and hurts it: kill -9 at random points of many issuances, a
// second issuance while one runs, a full disk. Whatever happens, the live
// certificate and key on disk belong together and no file is half
// written.
func TestFaults(t *testing.T) {
	bin := buildXmppcert(t)
	t.Run("kill-9", func(t *testing.T) { testKill(t, bin) })
	t.Run("concurrent", func(t *testing.T) { testConcurrent(t, bin) })
	t.Run("file-size-limit", func(t *testing.T) { testFileSizeLimit(t, bin) })
	t.Run("full-tmpfs", func(t *testing.T) { testFullTmpfs(t, bin) })
}

// built is the xmppcert binary the tests of this package run as whole
// processes, built once per package run into a directory TestMain
// removes.
var built struct {
	once      sync.Once
	dir, path string
	err       error
}

// buildXmppcert returns the path of the xmppcert binary, building it on
// first use, without the race detector even under -race: its start-up
// costs a second per process, and these tests start hundreds. With
// -short it skips: whole processes are the full tier's.
func buildXmppcert(t testing.TB) string {
	t.Helper()
	testtool.SkipShort(t, "it builds and runs the xmppcert binary")
	built.once.Do(func() {
		start := time.Now()
		if built.dir, built.err = os.MkdirTemp("", "xmppcert-test-"); built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "xmppcert")
		if out, err := exec.Command("go", "build", "-o", built.path, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		t.Logf("built %s in %v", built.path, time.Since(start).Round(time.Millisecond))
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.path
}

// result is how a run of the command ended.
type result struct {
	code   int // -1 when killed by a signal
	stdout string
	stderr string
}

func runBin(t *testing.T, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", name, err)
	}
	return result{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

// mustIssue issues example.org's lineage and fails the test unless it
// exits 0.
func mustIssue(t *testing.T, bin, state string) {
	t.Helper()
	r := runBin(t, bin, "--state-dir", state, "issue", "example.org", "--component", "conference.example.org", "-q")
	if r.code != 0 {
		t.Fatalf("issue: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// oneLine reports whether stderr is a single xmppcert: line.
func oneLine(stderr string) bool {
	return strings.HasPrefix(stderr, "xmppcert: ") && strings.Count(stderr, "\n") == 1 && strings.HasSuffix(stderr, "\n")
}

// lineageState is what checkLineage found.
type lineageState struct {
	live      int      // the version live/NAME points at; 0 when there is none
	versions  []int    // complete versions in the archive, ascending
	leftovers []string // temporaries an interrupted issuance left
}

var versionName = regexp.MustCompile(`^[0-9]{6}$`)

// checkLineage checks everything a reader of the state directory relies
// on for lineage name: live/NAME, if present, is a link to an archive
// version whose certificate and key parse and belong together; every
// archive version is complete and consistent; nothing else is in the
// state directory but temporaries of an interrupted write, which it
// returns. verified caches versions already checked (they never change).
func checkLineage(t *testing.T, state, name string, verified map[string]bool) lineageState {
	t.Helper()
	var st lineageState
	isTemp := func(dir, entry string) bool {
		switch dir {
		case "live":
			return entry == "."+name+".tmp"
		case "archive/" + name:
			return strings.HasPrefix(entry, ".tmp-")
		case "":
			return strings.HasPrefix(entry, safedir.ProbePrefix)
		}
		return false
	}
	expected := map[string][]string{
		"":                {"archive", "ca", "deploy", "live", "locks"},
		"archive":         {name},
		"deploy":          {name + ".json"},
		"ca":              {"ca.db", "intermediate.crt", "intermediate.key", "root.crt", "root.key"},
		"locks":           {name + ".lock"},
		"live":            {name},
		"archive/" + name: nil, // versions, checked below
	}
	for dir, want := range expected {
		ents, err := os.ReadDir(filepath.Join(state, dir))
		if errors.Is(err, fs.ErrNotExist) && dir != "" && dir != "ca" {
			continue // not created yet
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			switch {
			case isTemp(dir, e.Name()):
				st.leftovers = append(st.leftovers, filepath.Join(dir, e.Name()))
			case dir == "archive/"+name && versionName.MatchString(e.Name()) && e.IsDir():
				v, _ := strconv.Atoi(e.Name())
				st.versions = append(st.versions, v)
			case !slices.Contains(want, e.Name()):
				t.Fatalf("unexpected %s in %s", e.Name(), filepath.Join(state, dir))
			}
		}
	}
	for _, v := range st.versions {
		dir := filepath.Join(state, "archive", name, fmt.Sprintf("%06d", v))
		if !verified[dir] {
			checkVersion(t, dir)
			verified[dir] = true
		}
	}
	live := filepath.Join(state, "live", name)
	target, err := os.Readlink(live)
	if errors.Is(err, fs.ErrNotExist) {
		return st
	}
	if err != nil {
		t.Fatalf("live/%s is not a link: %v", name, err)
	}
	m := regexp.MustCompile(`^\.\./archive/` + regexp.QuoteMeta(name) + `/([0-9]{6})$`).FindStringSubmatch(target)
	if m == nil {
		t.Fatalf("live/%s points at %q", name, target)
	}
	st.live, _ = strconv.Atoi(m[1])
	if !slices.Contains(st.versions, st.live) {
		t.Fatalf("live/%s points at version %d, which is not in the archive", name, st.live)
	}
	// Read through the link, as a server does.
	checkPair(t, filepath.Join(live, "cert.pem"), filepath.Join(live, "fullchain.pem"), filepath.Join(live, "privkey.pem"))
	return st
}

// checkVersion checks one archive version: exactly the six files, with
// private modes, each parsing, the key belonging to the certificate,
// fullchain.pem being cert.pem and chain.pem, the leaf signed by the
// chain.
func checkVersion(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"cert.pem", "chain.pem", "fullchain.pem", "next-privkey.pem", "privkey.pem", "request.json"}; !slices.Equal(names, want) {
		t.Fatalf("%s holds %q; want %q", dir, names, want)
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("%s: mode %v; want 0700", dir, st.Mode().Perm())
	}
	for _, key := range []string{"privkey.pem", "next-privkey.pem"} {
		if st, err := os.Stat(filepath.Join(dir, key)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s/%s: mode %v; want 0600", dir, key, st.Mode().Perm())
		}
	}
	leaf := checkPair(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem"))
	cert, _ := os.ReadFile(filepath.Join(dir, "cert.pem"))
	chain, _ := os.ReadFile(filepath.Join(dir, "chain.pem"))
	full, _ := os.ReadFile(filepath.Join(dir, "fullchain.pem"))
	if !bytes.Equal(full, append(cert, chain...)) {
		t.Fatalf("%s: fullchain.pem is not cert.pem followed by chain.pem", dir)
	}
	inter := parseCerts(t, filepath.Join(dir, "chain.pem"))
	if len(inter) != 1 || leaf.CheckSignatureFrom(inter[0]) != nil {
		t.Fatalf("%s: chain.pem does not hold the leaf's issuer", dir)
	}
	next, err := acme.ReadKey(filepath.Join(dir, "next-privkey.pem"))
	if err != nil || acme.SPKIDigest(next.Public()) == acme.SPKIDigest(leaf.PublicKey) {
		t.Fatalf("%s/next-privkey.pem: %v; want a key other than the certificate's", dir, err)
	}
	var req acme.Request
	b, _ := os.ReadFile(filepath.Join(dir, "request.json"))
	if err := json.Unmarshal(b, &req); err != nil || len(req.Names) != 2 {
		t.Fatalf("%s/request.json: %v: %q", dir, err, b)
	}
}

// checkPair checks that cert.pem and fullchain.pem start with the same
// certificate and that privkey.pem is its key; it returns the leaf.
func checkPair(t *testing.T, certFile, fullchainFile, keyFile string) *x509.Certificate {
	t.Helper()
	certs := parseCerts(t, certFile)
	full := parseCerts(t, fullchainFile)
	if len(certs) != 1 || len(full) < 2 || !certs[0].Equal(full[0]) {
		t.Fatalf("%s and %s do not start with the same leaf", certFile, fullchainFile)
	}
	key, err := acme.ReadKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(certs[0].PublicKey) {
		t.Fatalf("%s does not belong to %s", keyFile, certFile)
	}
	return certs[0]
}

func parseCerts(t *testing.T, path string) []*x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 || len(bytes.TrimSpace(b)) != 0 {
		t.Fatalf("%s: not whole PEM certificates", path)
	}
	return out
}

// testKill kills `issue` with SIGKILL at a random moment between process
// start and exit, 200 times into one lineage, starting with no lineage.
// The kill window follows how long a run takes now: the median of the
// last full runs observed (timed issuances and runs that exited before
// their kill), so that a machine whose load changes during the test still
// sees most kills land. The first ten kills come before a run's typical
// end, so that several land before the lineage exists; after that every
// other delay falls in the second half of a run, where the lineage is
// written. After each kill the state must be consistent (temporaries
// allowed). Half the kills, and none of the first ten (so that leftovers
// pile up), are followed by an issuance that is not killed. Every run that
// exits must exit 0, and then a new version is current and no temporaries
// are left.
func testKill(t *testing.T, bin string) {
	start := time.Now()
	state := filepath.Join(t.TempDir(), "state")
	// The CA exists beforehand: killing its creation is not this test's
	// subject (the lineage is).
	if r := runBin(t, bin, "--state-dir", state, "ca", "init", "-q"); r.code != 0 {
		t.Fatalf("ca init: exit %d: %s", r.code, r.stderr)
	}
	// recent holds the durations of the last full runs; the first five are
	// measured on another lineage so that example.org starts from nothing.
	var recent []time.Duration
	observe := func(d time.Duration) {
		recent = append(recent, d)
		if len(recent) > 9 {
			recent = recent[1:]
		}
	}
	typical := func() time.Duration {
		s := slices.Clone(recent)
		slices.Sort(s)
		return s[len(s)/2]
	}
	for range 5 {
		s := time.Now()
		if r := runBin(t, bin, "--state-dir", state, "issue", "measure.example.org", "-q"); r.code != 0 {
			t.Fatalf("issue: exit %d: %s", r.code, r.stderr)
		}
		observe(time.Since(s))
	}
	for _, d := range []string{"archive/measure.example.org", "live/measure.example.org", "locks/measure.example.org.lock"} {
		if err := os.RemoveAll(filepath.Join(state, d)); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(testtool.Seed(t), 0))
	t.Logf("an issuance takes %v (median of 5) at first", typical().Round(time.Millisecond))

	runs := testtool.Rounds(t, 200)
	verified := map[string]bool{}
	var killed, finished, leftTemps, leftOrphan, beforeFirst, clean int
	prev := 0 // the live version after the last run that exited
	args := []string{"--state-dir", state, "issue", "example.org", "--component", "conference.example.org", "-q"}
	// exited checks the state after a run that exited 0.
	exited := func(i int, what string) {
		t.Helper()
		st := checkLineage(t, state, "example.org", verified)
		if len(st.leftovers) > 0 {
			t.Fatalf("run %d: %s left %q", i, what, st.leftovers)
		}
		if st.live <= prev || st.live != st.versions[len(st.versions)-1] {
			t.Fatalf("run %d: after %s live is version %d (was %d; archive %v)", i, what, st.live, prev, st.versions)
		}
		prev = st.live
	}
	for i := range runs {
		median := typical()
		lo, hi := time.Duration(0), median*5/4
		switch {
		case i < 10:
			hi = median // mostly before the first version is live
		case i%2 == 1:
			lo = median / 2
		}
		delay := lo + time.Duration(rng.Int64N(int64(hi-lo)))
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		began := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		timer := time.NewTimer(delay)
		select {
		case <-done:
			observe(time.Since(began))
		case <-timer.C:
			cmd.Process.Kill()
			<-done
		}
		timer.Stop()
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled() && ws.Signal() == syscall.SIGKILL:
			killed++
			st := checkLineage(t, state, "example.org", verified)
			if st.live == 0 {
				if prev > 0 {
					t.Fatalf("run %d (killed after %v): live/example.org is gone", i, delay)
				}
				beforeFirst++
			}
			if st.live < prev {
				t.Fatalf("run %d (killed after %v): live went back from version %d to %d", i, delay, prev, st.live)
			}
			if len(st.leftovers) > 0 {
				leftTemps++
			}
			if len(st.versions) > 0 && st.versions[len(st.versions)-1] > st.live {
				leftOrphan++
			}
			prev = st.live
		case ws.Exited() && ws.ExitStatus() == 0:
			finished++
			exited(i, "an issuance that finished before the kill")
		default:
			t.Fatalf("run %d (kill after %v): %v: %s", i, delay, cmd.ProcessState, stderr.String())
		}
		if i >= 10 && rng.IntN(2) == 0 {
			s := time.Now()
			mustIssue(t, bin, state)
			observe(time.Since(s))
			clean++
			exited(i, "the next issuance")
		}
	}
	t.Logf("%d runs: %d killed mid-run (%d before the lineage existed, %d leaving temporaries, %d leaving a complete version that never went live), %d finished first; %d issuances not killed; an issuance took %v at the end; %v in all",
		runs, killed, beforeFirst, leftTemps, leftOrphan, finished, clean, typical().Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if killed < runs/4 {
		t.Errorf("only %d of %d kills landed before the process exited; the window is too short", killed, runs)
	}
	if leftTemps == 0 {
		t.Errorf("no kill landed while the lineage was being written; the window misses it")
	}
	// The last word: one more issuance clears whatever the last kill left.
	mustIssue(t, bin, state)
	exited(runs, "the final issuance")
}

// testConcurrent holds one issuance in its deploy hook (the lineage lock
// is held until the hook ends) and starts a second one for the same
// lineage: the second exits 1 at once with one line naming the lineage
// and the holder, and exactly one new version appears.
func testConcurrent(t *testing.T, bin string) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	mustIssue(t, bin, state)
	marker := filepath.Join(dir, "deploying")
	first := exec.Command(bin, "--state-dir", state, "issue", "example.org", "--component", "conference.example.org", "-q",
		"--hook", "touch '"+marker+"' && sleep 2")
	var firstErr bytes.Buffer
	first.Stderr = &firstErr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- first.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the first issuance ended before its hook ran: %v: %s", err, firstErr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the first issuance's hook did not start within 30 s")
		}
	}

	second := runBin(t, bin, "--state-dir", state, "issue", "example.org", "--component", "conference.example.org")
	select {
	case <-done:
		t.Fatal("the second issuance waited for the first")
	default:
	}
	want := fmt.Sprintf("xmppcert: lineage example.org is being issued by another xmppcert process (pid %d); nothing was done here, run again once it finishes\n", first.Process.Pid)
	if second.code != 1 || second.stderr != want || second.stdout != "" {
		t.Errorf("second issuance: exit %d, stdout %q, stderr %q; want exit 1 and\n%s", second.code, second.stdout, second.stderr, want)
	}
	if err := <-done; err != nil {
		t.Fatalf("first issuance: %v: %s", err, firstErr.String())
	}
	st := checkLineage(t, state, "example.org", map[string]bool{})
	if !slices.Equal(st.versions, []int{1, 2}) || st.live != 2 {
		t.Errorf("after two concurrent issuances: versions %v, live %d; want exactly one new version, 2", st.versions, st.live)
	}
	// The lock went with the first process.
	mustIssue(t, bin, state)
}

// diff names the entries that differ between two snapshots.
func diff(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// testFileSizeLimit runs issue under a file size limit below the CA
// database's size, so that a write fails with EFBIG as on a full disk:
// one line, exit 1, the lineage untouched; without the limit the next
// issuance works.
func testFileSizeLimit(t *testing.T, bin string) {
	state := filepath.Join(t.TempDir(), "state")
	mustIssue(t, bin, state)
	before := testfs.Snapshot(t, filepath.Join(state, "live"))
	archive := testfs.Snapshot(t, filepath.Join(state, "archive"))
	// 16 blocks: 8 KiB in dash, 16 KiB in bash; the database is 32 KiB.
	r := runBin(t, "/bin/sh", "-c", `ulimit -f 16 && exec "$0" "$@"`, bin, "--state-dir", state, "issue", "example.org", "--component", "conference.example.org")
	if r.code != 1 || !oneLine(r.stderr) || !strings.Contains(r.stderr, "file too large") || r.stdout != "" {
		t.Errorf("issue under a file size limit: exit %d, stdout %q, stderr %q; want exit 1 and one line saying the file is too large", r.code, r.stdout, r.stderr)
	}
	t.Logf("error: %s", strings.TrimSpace(r.stderr))
	if d := diff(before, testfs.Snapshot(t, filepath.Join(state, "live"))); d != nil {
		t.Errorf("live changed: %q", d)
	}
	if d := diff(archive, testfs.Snapshot(t, filepath.Join(state, "archive"))); d != nil {
		t.Errorf("archive changed: %q", d)
	}
	if st := checkLineage(t, state, "example.org", map[string]bool{}); st.live != 1 || len(st.leftovers) > 0 {
		t.Errorf("after the failure: live version %d, leftovers %q; want version 1 and none", st.live, st.leftovers)
	}
	mustIssue(t, bin, state)
}

// mountTmpfs mounts a tmpfs of size bytes on dir until the test ends. It
// skips the test where mounting is not permitted (no CAP_SYS_ADMIN, even
// for root in some containers); the file-size-limit variant covers a full
// disk everywhere.
func mountTmpfs(t *testing.T, dir string, size int) {
	t.Helper()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		t.Skipf("mounting a tmpfs needs root (CAP_SYS_ADMIN): %v; this variant did not run", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
}

// testFullTmpfs puts the lineage archive on a small tmpfs and fills it,
// leaving no room at all and then room for two of the five files: the
// issuance fails with one line, exit 1, and the lineage is untouched; once
// there is room, the next issuance works.
func testFullTmpfs(t *testing.T, bin string) {
	state := filepath.Join(t.TempDir(), "state")
	archive := filepath.Join(state, "archive")
	if err := os.MkdirAll(archive, 0o700); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, archive, 256<<10)
	mustIssue(t, bin, state)
	filler := filepath.Join(archive, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	var written int64
	for chunk := make([]byte, 4096); ; {
		n, err := f.Write(chunk)
		written += int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	for _, pages := range []int64{0, 2} {
		if err := os.Truncate(filler, written-pages*4096); err != nil {
			t.Fatal(err)
		}
		live := testfs.Snapshot(t, filepath.Join(state, "live"))
		arch := testfs.Snapshot(t, archive)
		r := runBin(t, bin, "--state-dir", state, "issue", "example.org", "--component", "conference.example.org")
		if r.code != 1 || !oneLine(r.stderr) || r.stdout != "" ||
			!strings.Contains(r.stderr, "no space left on device; the previous version, if any, is still current") {
			t.Errorf("issue with %d free pages: exit %d, stdout %q, stderr %q; want exit 1 and one line", pages, r.code, r.stdout, r.stderr)
		}
		t.Logf("%d free pages: %s", pages, strings.TrimSpace(r.stderr))
		if d := append(diff(live, testfs.Snapshot(t, filepath.Join(state, "live"))), diff(arch, testfs.Snapshot(t, archive))...); d != nil {
			t.Errorf("a failed issuance changed the lineage: %q", d)
		}
		if err := os.Remove(filepath.Join(archive, "filler")); err != nil {
			t.Fatal(err)
		}
		if st := checkLineage(t, state, "example.org", map[string]bool{}); st.live != 1 || len(st.leftovers) > 0 || !slices.Equal(st.versions, []int{1}) {
			t.Errorf("after the failure: live version %d, versions %v, leftovers %q; want version 1 only", st.live, st.versions, st.leftovers)
		}
		if pages == 0 {
			// Fill again for the next round.
			if err := os.WriteFile(filler, make([]byte, written), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustIssue(t, bin, state)
}

// TestIssueBadInput runs issue with every kind of bad input against a
// fresh state directory path and against a state directory holding a
// lineage: exit 2, one line on stderr naming the problem, nothing on
// stdout, the fresh directory not created and the existing one
// unchanged. Unwritable state directories get the same treatment.
func TestIssueBadInput(t *testing.T) {
	base := t.TempDir()
	existing := filepath.Join(base, "existing")
	if code, out, errs := runCLI(t, nil, "--state-dir", existing, "issue", "example.org", "-q"); code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, []byte("not a directory\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	label64 := strings.Repeat("a", 64)
	bad := []struct {
		args   []string
		stderr string // a regular expression for the whole line
	}{
		{[]string{"a..example"}, `issue: invalid domain "a\.\.example": empty label`},
		{[]string{label64 + ".example.org"}, `issue: invalid domain "` + label64 + `\.example\.org": label "` + label64 + `" longer than 63 characters`},
		{[]string{"_x.example.org"}, `issue: invalid domain "_x\.example\.org": idna: disallowed rune U\+005F`},
		{[]string{"⒈.example.org"}, `issue: invalid domain "⒈\.example\.org": idna: disallowed rune U\+2488`},
		{[]string{"b\xfccher.example"}, `issue: invalid domain "b\\xfccher\.example": .*`}, // Latin-1, not UTF-8
		{[]string{"example.org", "--component", "1א.example.org"}, `issue: invalid domain "1א\.example\.org": idna: invalid label .*`},
		{[]string{"192.0.2.1"}, `issue: "192\.0\.2\.1" is an IP address; XMPP certificates name domains`},
		{[]string{"[2001:db8::1]"}, `issue: "\[2001:db8::1\]" is an IP address; XMPP certificates name domains`},
		{[]string{"*.example.org"}, `issue: "\*\.example\.org" is a wildcard; name each host and component instead`},
		{[]string{"example.org", "--component", "*.example.org"}, `issue: "\*\.example\.org" is a wildcard; .*`},
		{[]string{"example.org", "--component", "example.org"}, `issue: example\.org is named twice`},
		{[]string{"example.org", "--key-type", "dsa"}, `--key-type: unknown key type "dsa"; use ecdsa-p256, rsa2048 or rsa3072`},
		{[]string{"example.org", "--deploy", "nginx"}, `--deploy: unknown deploy target "nginx"; use prosody\[:CERTDIR\] or ejabberd\[:FILE\]`},
		{[]string{"example.org", "--hook", " "}, `--hook is empty; give a shell command`},
		{[]string{"example.org", "--days", "0"}, `--days 0 is out of range: 1 to 397`},
		{[]string{"example.org", "--days", "398"}, `--days 398 is out of range: 1 to 397`},
		{[]string{"example.org", "--days", "many"}, `xmppcert issue: invalid value "many" for flag -days: .*`},
		{[]string{"example.org", "example.net"}, `issue needs exactly one DOMAIN, the XMPP host; components go in --component`},
		{nil, `issue needs exactly one DOMAIN, the XMPP host; components go in --component`},
		{[]string{"example.org", "--ca", "https://acme.example/directory"}, `no way to prove control of the names is configured: give --http-listen, --webroot, --tls-alpn-listen, --dns-rfc2136-server or --dns-hook`},
		{[]string{"example.org", "--no-such-flag"}, `xmppcert issue: flag provided but not defined: -no-such-flag; see 'xmppcert issue --help'`},
	}
	check := func(t *testing.T, args []string, want string) {
		t.Helper()
		code, stdout, stderr := runCLI(t, nil, args...)
		if code != exitUsage || stdout != "" || !oneLine(stderr) {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and one line", code, stdout, stderr)
		}
		if !regexp.MustCompile(`^xmppcert: ` + want + "\n$").MatchString(stderr) {
			t.Errorf("stderr %q does not match %q", stderr, want)
		}
	}
	for _, c := range bad {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			fresh := filepath.Join(t.TempDir(), "fresh")
			check(t, append([]string{"--state-dir", fresh, "issue"}, c.args...), c.stderr)
			if _, err := os.Lstat(fresh); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the state directory was created: %v", err)
			}
			before := testfs.Snapshot(t, existing)
			check(t, append([]string{"--state-dir", existing, "issue"}, c.args...), c.stderr)
			if d := diff(before, testfs.Snapshot(t, existing)); d != nil {
				t.Errorf("the state directory changed: %q", d)
			}
		})
	}
	// Root may write any directory: these are places even root cannot.
	notWritable := `state directory %s(: .*| is not writable .*)`
	for _, dir := range []string{filepath.Join(file, "state"), "/proc", "/proc/xmppcert-test"} {
		t.Run("state-dir "+dir, func(t *testing.T) {
			check(t, []string{"--state-dir", dir, "issue", "example.org"}, fmt.Sprintf(notWritable, regexp.QuoteMeta(dir)))
		})
	}
	t.Run("state-dir read-only mount", func(t *testing.T) {
		ro := filepath.Join(base, "ro")
		if err := os.Mkdir(ro, 0o700); err != nil {
			t.Fatal(err)
		}
		mountTmpfs(t, ro, 64<<10)
		if err := syscall.Mount("", ro, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			t.Fatalf("remounting %s read-only: %v", ro, err)
		}
		for _, dir := range []string{ro, filepath.Join(ro, "state")} {
			check(t, []string{"--state-dir", dir, "issue", "example.org"}, fmt.Sprintf(notWritable, regexp.QuoteMeta(dir)))
		}
		if d := diff(map[string]string{"": "drwx------"}, testfs.Snapshot(t, ro)); d != nil {
			t.Errorf("the read-only directory changed: %q", d)
		}
	})
}
