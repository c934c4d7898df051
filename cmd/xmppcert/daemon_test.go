package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/daemon"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// peerLeaf is a certificate for peer.example with a fresh key, valid
// from testpki's epoch; change edits it further.
func peerLeaf(ca *testpki.CA, change ...func(*x509.Certificate)) *tls.Certificate {
	c, k := ca.Leaf(func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS("peer.example")))
		for _, f := range change {
			f(c)
		}
	})
	return &tls.Certificate{Certificate: [][]byte{c.Raw, ca.Cert.Raw}, PrivateKey: k, Leaf: c}
}

// inProcessDaemon is `xmppcert daemon` running in the test's process.
type inProcessDaemon struct {
	listen         string
	stdout, stderr testtool.LockedBuffer
	done           chan int
	code           int
	stopped        bool
}

// startDaemon starts `xmppcert --state-dir STATE --config CFG daemon` on a
// free loopback address; it is stopped when the test ends, if not before.
func startDaemon(t *testing.T, state, cfgFile string) *inProcessDaemon {
	t.Helper()
	d := &inProcessDaemon{listen: freeAddr(t), done: make(chan int, 1)}
	go func() {
		d.done <- run([]string{"xmppcert", "--state-dir", state, "--config", cfgFile, "daemon", "--listen", d.listen},
			strings.NewReader(""), &d.stdout, &d.stderr)
	}()
	t.Cleanup(func() { d.stop(t) })
	return d
}

// stop sends SIGTERM and returns the daemon's exit code.
func (d *inProcessDaemon) stop(t *testing.T) int {
	if d.stopped {
		return d.code
	}
	d.stopped = true
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case d.code = <-d.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the daemon did not stop after SIGTERM")
	}
	return d.code
}

// TestDaemonCommand runs `xmppcert daemon` in-process against a fake XMPP
// server and a webhook receiver: the first sweep alerts first-seen, the
// renewal seam runs over the state directory's lineage, `status` shows the
// endpoint from the daemon's API, a new key at the server arrives as a
// key-changed alert, a SIGHUP with a broken file keeps the daemon running,
// SIGTERM stops it with exit 0, and `status` then reads the history.
func TestDaemonCommand(t *testing.T) {
	state := t.TempDir()
	agedLineage(t, state, localRequest(t, "example.org", xmppaddr.RoleHost), 0)

	ca := testpki.NewRoot("Peer Root", nil)
	var cert atomic.Pointer[tls.Certificate]
	cert.Store(peerLeaf(ca))
	xmpp := xmpptlstest.Start(t, xmpptlstest.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return cert.Load(), nil
	}})

	hook := newWebhookReceiver(t, nil)

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "xmppcert.toml")
	good := fmt.Sprintf(`[[host]]
domain = "example.org"
[watch]
interval = "1s"
jitter = 0
timeout = "1s"
own_hosts = false
[[watch.peer]]
domain = "peer.example"
service = "xmpp-client"
connect = %q
[[alert.webhook]]
url = %q
`, xmpp.Addr, hook.URL+"/hook")
	writeFile(t, cfgFile, []byte(good), 0o600)
	d := startDaemon(t, state, cfgFile)
	listen, stderr := d.listen, &d.stderr

	hook.waitKind(t, changes.FirstSeen, 1)
	waitFor(t, "the renewal summary", func() bool { return strings.Contains(stderr.String(), "renew run finished") })
	if s := stderr.String(); !strings.Contains(s, "not-due=1") {
		t.Errorf("renewal summary does not count the lineage as not due:\n%s", s)
	}

	code, out, errOut := runCLI(t, nil, "--state-dir", state, "--config", cfgFile, "status", "--json", "--listen", listen)
	if code != 0 {
		t.Fatalf("status exit %d: %s", code, errOut)
	}
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if !strings.HasPrefix(rep.Source, "daemon ") || len(rep.Endpoints) != 1 || len(rep.Lineages) != 1 || rep.Lineages[0].Name != "example.org" {
		t.Errorf("status from the daemon: %+v", rep)
	}

	cert.Store(peerLeaf(ca))
	hook.waitKind(t, changes.KeyChanged, 1)
	code, out, _ = runCLI(t, nil, "--state-dir", state, "--config", cfgFile, "status", "--listen", listen)
	if code != 0 || !strings.Contains(out, "key-changed") || !strings.Contains(out, "peer.example") {
		t.Errorf("status table (exit %d) lacks the endpoint or its key change:\n%s", code, out)
	}

	// A broken file on SIGHUP: refused with file:line, the daemon goes on.
	writeFile(t, cfgFile, []byte(good+"[watch]\n"), 0o600)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	waitFor(t, "the refusal in the log", func() bool { return strings.Contains(stderr.String(), "configuration refused") })
	if !strings.Contains(stderr.String(), cfgFile+":") {
		t.Errorf("refusal without file:line:\n%s", stderr.String())
	}
	if code, _ := fetch(t, "GET", "http://"+listen+"/healthz", "", ""); code != http.StatusOK {
		t.Fatalf("the daemon stopped serving after a refused reload: /healthz %d", code)
	}

	if code := d.stop(t); code != 0 {
		t.Fatalf("daemon exit %d after SIGTERM:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "daemon stopped") {
		t.Errorf("no clean stop in the log:\n%s", stderr.String())
	}

	// No daemon now: status reads the history itself and says so.
	code, out, errOut = runCLI(t, nil, "--state-dir", state, "status", "--json", "--listen", listen)
	if code != 0 {
		t.Fatalf("status without a daemon: exit %d: %s", code, errOut)
	}
	rep = statusReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rep.Source, "history ") || len(rep.Endpoints) != 1 {
		t.Fatalf("status from the history: %+v", rep)
	}
	var unacked []string
	for _, c := range rep.Endpoints[0].Unacknowledged {
		unacked = append(unacked, string(c.Kind))
	}
	if !strings.Contains(strings.Join(unacked, " "), "key-changed") {
		t.Errorf("unacknowledged changes from the history: %v", unacked)
	}
}

// TestDaemonBadUsage: an invalid configuration exits 2 with each problem
// on its own line, naming file and line; --listen off loopback without a
// token exits 2; a taken address exits 1 naming the flag and the key
// that choose another; status with nothing to show exits 0.
func TestDaemonBadUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	writeFile(t, bad, []byte("[watch]\nconcurrency = 0\njitter = 2.0\n"), 0o600)
	code, out, errOut := runCLI(t, nil, "--state-dir", dir, "--config", bad, "daemon")
	if code != 2 || out != "" {
		t.Fatalf("invalid configuration: exit %d, stdout %q", code, out)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if len(lines) < 2 {
		t.Errorf("want one line per problem, got:\n%s", errOut)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "xmppcert: "+bad+":") {
			t.Errorf("line without xmppcert: FILE:LINE: %q", l)
		}
	}

	good := filepath.Join(dir, "good.toml")
	writeFile(t, good, []byte("[[watch.peer]]\ndomain = \"peer.example\"\n"), 0o600)
	code, _, errOut = runCLI(t, nil, "--state-dir", dir, "--config", good, "daemon", "--listen", "0.0.0.0:8787")
	if code != 2 || !strings.Contains(errOut, "token") {
		t.Errorf("--listen off loopback without a token: exit %d: %s", code, errOut)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	code, _, errOut = runCLI(t, nil, "--state-dir", dir, "--config", good, "daemon", "--listen", taken.Addr().String())
	if code != 1 || !strings.Contains(errOut, "address already in use; choose another address with --listen or http.listen") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("--listen on a taken address: exit %d: %s", code, errOut)
	}

	code, out, errOut = runCLI(t, nil, "--state-dir", filepath.Join(dir, "empty"), "status", "--listen", freeAddr(t))
	if code != 0 || !strings.Contains(out, "no history yet") || !strings.Contains(out, "no lineages") {
		t.Errorf("status with nothing: exit %d\n%s%s", code, out, errOut)
	}
}

// TestStatusUnreadable: state that cannot be read is an error (exit 1,
// one line naming the file), never an empty success: a lineage directory
// that is not one, and a history held by a daemon that does not answer
// where status asked.
func TestStatusUnreadable(t *testing.T) {
	state := t.TempDir()
	writeFile(t, filepath.Join(state, "live"), []byte("not a directory\n"), 0o600)
	code, out, errOut := runCLI(t, nil, "--state-dir", state, "status", "--listen", freeAddr(t))
	if code != exitFailed || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "listing the lineages in "+filepath.Join(state, "live")) {
		t.Errorf("status over an unreadable lineage directory: exit %d\n%s%s", code, out, errOut)
	}

	state = t.TempDir()
	path := filepath.Join(state, daemon.HistoryFile)
	held, err := history.Open(path, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	code, out, errOut = runCLI(t, nil, "--state-dir", state, "status", "--json", "--listen", freeAddr(t))
	if code != exitFailed || out != "" || !strings.Contains(errOut, path+" is held by a daemon that did not answer at ") || !strings.Contains(errOut, "--listen") {
		t.Errorf("status over a history another process holds: exit %d\n%s%s", code, out, errOut)
	}
}
