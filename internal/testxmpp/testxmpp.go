// Package testxmpp runs real XMPP servers on loopback for tests, and
// the TLS scanner operators compare against: Prosody (Debian's prosody
// 0.12), ejabberd (Debian's ejabberd 23.01) and testssl.sh (Debian's
// testssl.sh, /usr/bin/testssl). Interoperability tests of the prober
// and of the TLS scanner run against the servers operators run, and
// check our findings against what an independent tool reports, not
// against a fake that agrees with our own reading of the RFCs.
//
// Every server gets its own configuration, certificates and state in a
// temporary directory, listens on free ports of 127.0.0.1 only, is
// polled until it answers a stream header (no fixed sleeps), is stopped
// when the test ends, and has its log printed when the test failed.
// Ports are chosen before the server binds them, so a start that lost a
// port to another process is retried with fresh ports. When the test
// runs as root the servers run as their Debian system users (prosody,
// ejabberd), which is how operators run them and what they insist on.
//
// A missing program skips the test with the Debian package to install,
// except in CI (CI set), where it fails: ./test.sh installs the packages
// there (internal/testtool.Require).
//
// Startup costs (measured on a Debian 12 development VM): Prosody is
// ready 60-200 ms after exec and stops in about 30 ms; ejabberd is ready
// in 1.4-2.2 s (Erlang VM boot, then a fresh Mnesia spool) and stops in
// about a second. testssl.sh is the slow one: -p takes 5 s against a
// loopback Prosody STARTTLS port, -p -E -P -f 11-14 s, a default run
// about 35 s (longer when scans run in parallel).
//
// The package also has a small XMPP stream client (OpenStream) that the
// harness polls readiness with and that tests use to check what a
// server offers; it is deliberately simple and trusts its peer, unlike
// the prober. StartTLSProxy turns a STARTTLS port into a direct TLS one
// for tools that cannot speak a stream's STARTTLS.
//
// What the servers do, as the tests here pin down: Prosody takes
// c2s_require_encryption per VirtualHost; it offers dialback on s2s
// before and after TLS and does not negotiate ALPN on its direct TLS
// ports. ejabberd offers dialback with <errors/>, after TLS only when
// s2s_use_starttls is required, and SASL EXTERNAL on every s2s stream
// after TLS, certificate or not.
//
// The package is only for tests; nothing else imports it.
package testxmpp

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Loopback is the address every server of this package listens on.
const Loopback = "127.0.0.1"

// WriteCertKey writes chain (leaf first) and key as PEM files
// dir/name.crt and dir/name.key (key 0600, PKCS #8) and returns their
// paths: the CertFile and KeyFile of a VirtualHost or EjabberdHost made
// from internal/testpki certificates.
func WriteCertKey(t testing.TB, dir, name string, chain []*x509.Certificate, key crypto.Signer) (certFile, keyFile string) {
	t.Helper()
	var certPEM bytes.Buffer
	for _, c := range chain {
		pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testxmpp.WriteCertKey: %v", err)
	}
	certFile = filepath.Join(dir, name+".crt")
	keyFile = filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, certPEM.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 at the time
// of the call. Another process may take one before the server binds it;
// the Start functions retry with fresh ports then.
func freePorts(n int) ([]int, error) {
	// Hold every listener until all are chosen, so they differ.
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", net.JoinHostPort(Loopback, "0"))
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func addr(port int) string { return net.JoinHostPort(Loopback, strconv.Itoa(port)) }

// serviceUser is the system user a server runs as when the test runs
// as root, or nil (run as the current user).
type serviceUser struct {
	name     string
	uid, gid int
	home     string
}

// lookupServiceUser returns the Debian system user name when the test
// runs as root, nil otherwise.
func lookupServiceUser(t testing.TB, name, debianPackage string) *serviceUser {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("running as root, the server must run as the %s user, which Debian package %s creates: %v", name, debianPackage, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &serviceUser{name: name, uid: uid, gid: gid, home: u.HomeDir}
}

func (u *serviceUser) credential() *syscall.Credential {
	if u == nil {
		return nil
	}
	return &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}
}

// chown gives paths to the service user (no-op when nil).
func (u *serviceUser) chown(t testing.TB, paths ...string) {
	t.Helper()
	if u == nil {
		return
	}
	for _, p := range paths {
		if err := os.Chown(p, u.uid, u.gid); err != nil {
			t.Fatal(err)
		}
	}
}

// serverDir makes a temporary directory that a server running as its
// own user can reach (Go's t.TempDir is 0700 under a 0700 parent),
// removed when the test ends. It lives under $TMPDIR (normally /tmp),
// and fails with advice when a directory above it is closed to other
// users.
func serverDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return dir
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			t.Fatalf("%s (mode %v) is closed to other users, so a server running as its own user cannot reach %s; set TMPDIR to a directory such as /tmp", d, st.Mode().Perm(), dir)
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// copyFile copies src to dst with mode perm, for certificates and keys
// that the test may have written readable by root alone.
func copyFile(t testing.TB, src, dst string, perm os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		t.Fatal(err)
	}
}

// process is a started server.
type process struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	// group: signal the whole process group (ejabberdctl is a shell
	// script whose Erlang VM is a grandchild).
	group bool
	// repeat, if not zero, repeats the request to stop at this
	// interval until the process exits.
	repeat time.Duration
	// term, if set, replaces SIGTERM to the process (or group) as the
	// polite request to stop.
	term     func()
	stopOnce sync.Once
}

func startProcess(cmd *exec.Cmd, group bool) (*process, error) {
	if group {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Setpgid = true
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{}), group: group}
	go func() { p.waitErr = cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (p *process) signal(sig syscall.Signal) {
	if p.group {
		syscall.Kill(-p.cmd.Process.Pid, sig)
	} else {
		p.cmd.Process.Signal(sig)
	}
}

// Bounds on a server's start and stop, far above what they take on the
// 2-core machine under load (ejabberd's Erlang VM once took 30 s to start
// beside two busy loops and the rest of the test suite), so that only a
// server that hangs reaches them.
const (
	startTimeout = 2 * time.Minute
	stopTimeout  = time.Minute
)

// stop asks the process to stop (SIGTERM, or term), every repeat if
// set, and waits up to grace for the exit, then kills it (SIGKILL to
// the process or group). It reports whether the process had to be
// killed.
func (p *process) stop(grace time.Duration) (killed bool) {
	p.stopOnce.Do(func() {
		deadline := time.After(grace)
		for {
			if p.term != nil {
				p.term()
			} else {
				p.signal(syscall.SIGTERM)
			}
			var again <-chan time.Time
			if p.repeat > 0 {
				again = time.After(p.repeat)
			}
			select {
			case <-p.exited:
				return
			case <-deadline:
				killed = true
				p.signal(syscall.SIGKILL)
				<-p.exited
				return
			case <-again:
			}
		}
	})
	return killed
}

// running reports whether the process has not exited.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// errExited is what waitReady returns when the server exited.
type errExited struct {
	name string
	err  error // Wait's error
	last error // the last readiness error
}

func (e *errExited) Error() string {
	return fmt.Sprintf("%s exited (%v) before it was ready; last check: %v", e.name, e.err, e.last)
}

// errPortTaken is what a readiness check returns when the server
// could not bind a port: it is started again on others.
var errPortTaken = errors.New("a port is taken")

// waitReady polls ready every 25 ms until it succeeds, fails with
// errPortTaken, the process exits, or timeout passes.
func (p *process) waitReady(name string, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := ready()
		if err == nil || errors.Is(err, errPortTaken) {
			return err
		}
		if !p.running() {
			return &errExited{name: name, err: p.waitErr, last: err}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %v", name, timeout, err)
		}
		select {
		case <-p.exited:
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// tail returns at most the last n bytes of s, cut at a line start.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := bytes.IndexByte([]byte(s), '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}

func sysProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}

func dialer(timeout time.Duration) *net.Dialer { return &net.Dialer{Timeout: timeout} }
