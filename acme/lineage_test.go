package acme_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testfs"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// testIssuer signs with a throwaway CA, quickly, for lineage tests. With
// otherKey set it returns a certificate for a key other than the one it
// was given, as a broken CA would.
type testIssuer struct {
	ca       *x509.Certificate
	caKey    crypto.Signer
	otherKey bool
}

func newTestIssuer(t testing.TB) *testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lineage test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{ca: ca, caKey: key}
}

func (i *testIssuer) Name() string { return "lineage test CA" }

func (i *testIssuer) Issue(_ context.Context, req acme.Request, key crypto.Signer) (*acme.Issued, error) {
	pub := key.Public()
	if i.otherKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		pub = k.Public()
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: req.Host()}, DNSNames: req.Domains(),
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, i.ca, pub, i.caKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &acme.Issued{Chain: []*x509.Certificate{leaf, i.ca}, Key: key, Issuer: i.Name()}, nil
}

func request(t testing.TB, host string, key acme.KeyType, reuse bool) acme.Request {
	t.Helper()
	req, err := acme.NewRequest(host, xmppaddr.RoleHost, []string{"conference." + host}, key)
	if err != nil {
		t.Fatal(err)
	}
	req.ReuseKey = reuse
	req.CA = "local"
	return req
}

// obtain takes the lineage's lock, as the issue command does, and
// obtains.
func obtain(t testing.TB, s acme.Store, iss acme.Issuer, req acme.Request) (*acme.Obtained, error) {
	t.Helper()
	unlock, err := s.Lock(req.Host())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	return acme.Obtain(context.Background(), s, iss, req)
}

func mustObtain(t testing.TB, s acme.Store, iss acme.Issuer, req acme.Request) *acme.Obtained {
	t.Helper()
	got, err := obtain(t, s, iss, req)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func perm(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestObtainLayout checks the certbot layout, the modes (keys 0600,
// directories 0700) and that Load reads back what Obtain wrote.
func TestObtainLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s := acme.DiskStore{Dir: dir}
	got := mustObtain(t, s, newTestIssuer(t), request(t, "example.org", acme.KeyECDSAP256, false))
	if got.Version != 1 || got.KeyReused || got.Issuer != "lineage test CA" {
		t.Errorf("Obtained version %d, reused %v, issuer %q; want 1, false, the issuer's name", got.Version, got.KeyReused, got.Issuer)
	}
	live := filepath.Join(dir, "live", "example.org")
	if got.Path != live || got.File(acme.KeyFile) != filepath.Join(live, "privkey.pem") {
		t.Errorf("Path %s, key file %s; want %s and its privkey.pem", got.Path, got.File(acme.KeyFile), live)
	}
	if target, err := os.Readlink(live); err != nil || target != "../archive/example.org/000001" {
		t.Fatalf("live link: %q, %v; want ../archive/example.org/000001", target, err)
	}
	for _, d := range []string{dir, "locks", "live", "archive", "archive/example.org", "archive/example.org/000001"} {
		if d != dir {
			d = filepath.Join(dir, d)
		}
		if p := perm(t, d); p != 0o700 {
			t.Errorf("%s: mode %v; want 0700", d, p)
		}
	}
	version := filepath.Join(dir, "archive", "example.org", "000001")
	for name, want := range map[string]fs.FileMode{"privkey.pem": 0o600, "cert.pem": 0o644, "chain.pem": 0o644, "fullchain.pem": 0o644, "request.json": 0o644} {
		// Umask may take bits away from 0644, never add them to 0600.
		if p := perm(t, filepath.Join(version, name)); p&^want != 0 || (want == 0o600 && p != want) {
			t.Errorf("%s: mode %v; want %v", name, p, want)
		}
	}
	if p := perm(t, filepath.Join(dir, "locks", "example.org.lock")); p != 0o600 {
		t.Errorf("lock file mode %v; want 0600", p)
	}
	cert, _ := os.ReadFile(filepath.Join(live, "cert.pem"))
	chain, _ := os.ReadFile(filepath.Join(live, "chain.pem"))
	full, _ := os.ReadFile(filepath.Join(live, "fullchain.pem"))
	if len(cert) == 0 || len(chain) == 0 || !bytes.Equal(full, append(cert, chain...)) {
		t.Errorf("fullchain.pem is not cert.pem followed by chain.pem")
	}
	l, err := s.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}
	if l.Version != 1 || !l.Chain[0].Equal(got.Chain[0]) || len(l.Chain) != 2 || !l.Key.Public().(*ecdsa.PublicKey).Equal(got.Key.Public()) {
		t.Errorf("Load returned version %d, %d certificates; want what Obtain wrote", l.Version, len(l.Chain))
	}
	if !slices.Equal(l.Request.Domains(), []string{"example.org", "conference.example.org"}) || l.Request.CA != "local" {
		t.Errorf("Load request %+v; want the stored request", l.Request)
	}
	if names, err := s.Names(); err != nil || !slices.Equal(names, []string{"example.org"}) {
		t.Errorf("Names: %q, %v", names, err)
	}
}

// TestObtainNewVersion checks that a second issuance becomes version 2,
// switches live and leaves version 1 as it was.
func TestObtainNewVersion(t *testing.T) {
	dir := t.TempDir()
	s := acme.DiskStore{Dir: dir}
	iss := newTestIssuer(t)
	first := mustObtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, false))
	v1 := filepath.Join(dir, "archive", "example.org", "000001")
	before := testfs.Snapshot(t, v1)
	second := mustObtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, false))
	if second.Version != 2 {
		t.Fatalf("second version %d; want 2", second.Version)
	}
	if target, _ := os.Readlink(filepath.Join(dir, "live", "example.org")); target != "../archive/example.org/000002" {
		t.Errorf("live link %q after the second issuance", target)
	}
	if after := testfs.Snapshot(t, v1); !mapsEqual(before, after) {
		t.Errorf("version 1 changed")
	}
	if first.Key.Public().(*ecdsa.PublicKey).Equal(second.Key.Public()) {
		t.Errorf("a new issuance without ReuseKey kept the key")
	}
	l, err := s.Load("example.org")
	if err != nil || l.Version != 2 || !l.Chain[0].Equal(second.Chain[0]) {
		t.Fatalf("Load after the second issuance: %v", err)
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestLoadMissing checks that a lineage that does not exist is
// ErrNoLineage, in an empty state directory and beside another lineage.
func TestLoadMissing(t *testing.T) {
	s := acme.DiskStore{Dir: t.TempDir()}
	if _, err := s.Load("example.org"); !errors.Is(err, acme.ErrNoLineage) {
		t.Errorf("Load in an empty state directory: %v; want ErrNoLineage", err)
	}
	mustObtain(t, s, newTestIssuer(t), request(t, "example.net", acme.KeyECDSAP256, false))
	_, err := s.Load("example.org")
	if !errors.Is(err, acme.ErrNoLineage) || !strings.Contains(err.Error(), "example.org") {
		t.Errorf("Load of a missing lineage: %v; want ErrNoLineage naming it", err)
	}
}

// TestLoadMismatchedKey checks that Load refuses a version whose key does
// not belong to its certificate.
func TestLoadMismatchedKey(t *testing.T) {
	dir := t.TempDir()
	s := acme.DiskStore{Dir: dir}
	iss := newTestIssuer(t)
	mustObtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, false))
	mustObtain(t, s, iss, request(t, "example.net", acme.KeyECDSAP256, false))
	other, _ := os.ReadFile(filepath.Join(dir, "live", "example.net", "privkey.pem"))
	if err := os.WriteFile(filepath.Join(dir, "archive", "example.org", "000001", "privkey.pem"), other, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load("example.org"); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("Load of a lineage with another's key: %v; want an error", err)
	}
}

// TestReuseKey checks --reuse-key: the key is kept when its type is the
// requested one, replaced when the type changed, made when there is no
// lineage yet, and an unreadable current key stops the issuance instead
// of silently replacing the key.
func TestReuseKey(t *testing.T) {
	dir := t.TempDir()
	s := acme.DiskStore{Dir: dir}
	iss := newTestIssuer(t)
	first := mustObtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, true))
	if first.KeyReused {
		t.Errorf("first issuance reports a reused key")
	}
	second := mustObtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, true))
	if !second.KeyReused || !first.Key.Public().(*ecdsa.PublicKey).Equal(second.Key.Public()) {
		t.Errorf("ReuseKey: reused %v, same key %v; want the same key", second.KeyReused, first.Key.Public().(*ecdsa.PublicKey).Equal(second.Key.Public()))
	}
	if !second.Chain[0].PublicKey.(*ecdsa.PublicKey).Equal(first.Key.Public()) {
		t.Errorf("the new certificate does not carry the reused key")
	}
	third := mustObtain(t, s, iss, request(t, "example.org", acme.KeyRSA2048, true))
	if third.KeyReused {
		t.Errorf("ReuseKey with a changed key type reports a reused key")
	}
	if k, ok := third.Key.(*rsa.PrivateKey); !ok || k.N.BitLen() != 2048 {
		t.Errorf("changed key type: got %T; want an RSA 2048 key", third.Key)
	}
	if err := os.WriteFile(filepath.Join(dir, "archive", "example.org", "000003", "privkey.pem"), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := testfs.Snapshot(t, dir)
	_, err := obtain(t, s, iss, request(t, "example.org", acme.KeyRSA2048, true))
	if err == nil || !strings.Contains(err.Error(), "reusing the key of lineage example.org") {
		t.Fatalf("ReuseKey with an unreadable key: %v; want an error", err)
	}
	if after := testfs.Snapshot(t, dir); !mapsEqual(before, after) {
		t.Errorf("a refused reuse changed the state directory")
	}
}

// TestObtainRefusesWrongKey checks that a certificate for another key is
// never written.
func TestObtainRefusesWrongKey(t *testing.T) {
	dir := t.TempDir()
	s := acme.DiskStore{Dir: dir}
	iss := newTestIssuer(t)
	mustObtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, false))
	before := testfs.Snapshot(t, filepath.Join(dir, "archive"))
	iss.otherKey = true
	_, err := obtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, false))
	if err == nil || !strings.Contains(err.Error(), "does not carry the requested key") {
		t.Fatalf("Obtain with a certificate for another key: %v", err)
	}
	if after := testfs.Snapshot(t, filepath.Join(dir, "archive")); !mapsEqual(before, after) {
		t.Errorf("the archive changed")
	}
}

// TestWriteFailureKeepsCurrent makes writing the new version fail (a file
// size limit, as a full disk would) and then the switch of live fail, and
// checks that the previous version stays current, the error says so, and
// nothing of the new version is left behind.
func TestWriteFailureKeepsCurrent(t *testing.T) {
	dir := t.TempDir()
	s := acme.DiskStore{Dir: dir}
	iss := newTestIssuer(t)
	mustObtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, false))

	// fullchain.pem is over 1000 bytes: its write fails with EFBIG (Go
	// ignores SIGXFSZ).
	before := testfs.Snapshot(t, dir)
	cmd := exec.Command(os.Args[0], "-test.run=^TestFileSizeHelperProcess$")
	cmd.Env = append(os.Environ(), fsizeHelperEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "file too large; the previous version, if any, is still current") {
		t.Fatalf("write beyond the file size limit: %v\n%s", err, out)
	}
	if after := testfs.Snapshot(t, dir); !mapsEqual(before, after) {
		t.Errorf("a failed write changed the state directory:\nbefore %q\nafter  %q", keys(before), keys(after))
	}

	// live/example.org a real directory (as if copied by hand): the
	// switch fails and the new version is not left in the archive.
	second := t.TempDir()
	s2 := acme.DiskStore{Dir: second}
	if err := os.MkdirAll(filepath.Join(second, "live", "example.org", "keep"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err = obtain(t, s2, iss, request(t, "example.org", acme.KeyECDSAP256, false))
	if err == nil || !strings.Contains(err.Error(), "the previous version, if any, is still current") {
		t.Fatalf("switching a live directory that is not a link: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(second, "archive", "example.org"))
	if len(entries) != 0 {
		t.Errorf("archive after a failed switch: %v; want it empty", entries)
	}
	if _, err := os.Stat(filepath.Join(second, "live", "example.org", "keep")); err != nil {
		t.Errorf("the directory in the way was touched: %v", err)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestWriteSweepsLeftovers plants what a killed issuance leaves (a
// temporary version directory with a partial file, a temporary link next
// to live) and checks that the next issuance removes them.
func TestWriteSweepsLeftovers(t *testing.T) {
	dir := t.TempDir()
	s := acme.DiskStore{Dir: dir}
	iss := newTestIssuer(t)
	mustObtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, false))
	arch := filepath.Join(dir, "archive", "example.org")
	live := filepath.Join(dir, "live")
	mustMkdir(t, filepath.Join(arch, ".tmp-123"))
	mustWrite(t, filepath.Join(arch, ".tmp-123", "cert.pem"), "half")
	if err := os.Symlink("../archive/example.org/000001", filepath.Join(live, ".example.org.tmp")); err != nil {
		t.Fatal(err)
	}
	if names, _ := s.Names(); !slices.Equal(names, []string{"example.org"}) {
		t.Errorf("Names %q; temporaries must not be listed", names)
	}
	got := mustObtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, false))
	if got.Version != 2 {
		t.Errorf("version %d after a leftover; want 2", got.Version)
	}
	for _, gone := range []string{filepath.Join(arch, ".tmp-123"), filepath.Join(live, ".example.org.tmp")} {
		if _, err := os.Lstat(gone); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind: %v", gone, err)
		}
	}
	if got := names(t, live); !slices.Equal(got, []string{"example.org"}) {
		t.Errorf("live holds %q", got)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLockSameProcess checks that the lock refuses a second holder even
// within one process (flock locks an open file description, not a
// process), names the lineage and the holder's pid, and is free again
// after unlock. Lineages lock independently.
func TestLockSameProcess(t *testing.T) {
	s := acme.DiskStore{Dir: t.TempDir()}
	unlock, err := s.Lock("example.org")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Lock("example.org")
	var le *acme.LockedError
	if !errors.As(err, &le) || le.Name != "example.org" || le.PID != os.Getpid() {
		t.Fatalf("second Lock: %v; want *LockedError for example.org with pid %d", err, os.Getpid())
	}
	for _, want := range []string{"lineage example.org is being issued by another xmppcert process", "(pid " + strconv.Itoa(os.Getpid()) + ")"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	other, err := s.Lock("example.net")
	if err != nil {
		t.Fatalf("another lineage's lock: %v", err)
	}
	other()
	unlock()
	again, err := s.Lock("example.org")
	if err != nil {
		t.Fatalf("Lock after unlock: %v", err)
	}
	again()
}

// fsizeHelperEnv makes the test binary obtain a new version of
// example.org in the state directory it names under a file size limit
// of 1000 bytes, and print the error, for TestWriteFailureKeepsCurrent.
// The limit is set in a child process: in the test process it would also
// stop go test's own record of the files a test opens (testlog.txt),
// which then fails the package.
const fsizeHelperEnv = "XMPPCERT_TEST_FSIZE_HELPER"

func TestFileSizeHelperProcess(t *testing.T) {
	dir := os.Getenv(fsizeHelperEnv)
	if dir == "" {
		return
	}
	iss := newTestIssuer(t)
	req := request(t, "example.org", acme.KeyECDSAP256, false)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 1000, Max: lim.Max}); err != nil {
		t.Fatal(err)
	}
	_, err := acme.Obtain(context.Background(), acme.DiskStore{Dir: dir}, iss, req)
	fmt.Println(err)
	os.Exit(0)
}

// lockHelperEnv makes the test binary a lock holder for
// TestLockOtherProcess: it takes the lock, says "locked", and releases it
// when its standard input closes.
const lockHelperEnv = "XMPPCERT_TEST_LOCK_HELPER"

func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		return
	}
	unlock, err := acme.DiskStore{Dir: dir}.Lock("example.org")
	if err != nil {
		os.Stdout.WriteString("error " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("locked\n")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	unlock()
	os.Exit(0)
}

// startHolder starts a process that holds example.org's lock.
func startHolder(t *testing.T, dir string) (*exec.Cmd, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		t.Fatalf("lock holder: %q, %v", line, err)
	}
	return cmd, func() { stdin.Close() }
}

// TestLockOtherProcess checks that a lock held by another process is
// refused with that process's pid, and free once the holder unlocks or
// is killed (no stale lock after kill -9).
func TestLockOtherProcess(t *testing.T) {
	dir := t.TempDir()
	s := acme.DiskStore{Dir: dir}
	for _, ending := range []string{"unlock", "kill -9"} {
		holder, release := startHolder(t, dir)
		_, err := s.Lock("example.org")
		var le *acme.LockedError
		if !errors.As(err, &le) || le.PID != holder.Process.Pid {
			t.Fatalf("Lock while pid %d holds it: %v; want *LockedError with that pid", holder.Process.Pid, err)
		}
		if ending == "unlock" {
			release()
			if err := holder.Wait(); err != nil {
				t.Fatalf("lock holder: %v", err)
			}
		} else {
			holder.Process.Kill()
			holder.Wait()
		}
		unlock, err := s.Lock("example.org")
		if err != nil {
			t.Fatalf("Lock after the holder's %s: %v", ending, err)
		}
		unlock()
	}
}

// TestLayout: safedir.Check is told the version directories of a
// lineage's archive, and nothing else.
func TestLayout(t *testing.T) {
	if got, want := acme.Layout("archive/example.org", 3), []string{"000001", "000002", "000003"}; !slices.Equal(got, want) {
		t.Errorf("archive/example.org with 3 subdirectories: %q; want %q", got, want)
	}
	for _, rel := range []string{".", "archive", "live/example.org", "archive/example.org/000001", "archive/"} {
		if got := acme.Layout(rel, 2); got != nil {
			t.Errorf("%s: %q; want nil (read the directory)", rel, got)
		}
	}
}
