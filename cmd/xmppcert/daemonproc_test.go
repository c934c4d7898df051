package main

// Helpers shared by the daemon tests: the built `xmppcert daemon` run as
// a process, a webhook receiver for its alerts, and small HTTP, file and
// polling helpers.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
)

// daemonOptions says how startDaemonProc runs the daemon.
type daemonOptions struct {
	// listen, when set, is passed as --listen after the arguments, and
	// startDaemonProc waits until /healthz answers there.
	listen string
	// umask0 runs the daemon with umask 0 (see umask0).
	umask0 bool
}

// daemonProc is the built `xmppcert daemon` running in the background.
// Its stdout and stderr go to logs, printed when the test fails; it is
// killed when the test ends unless it already stopped.
type daemonProc struct {
	cmd  *exec.Cmd
	url  string // http://HOST:PORT of --listen, loopback for an unspecified host; "" without
	logs testtool.LockedBuffer
	done chan struct{} // closed when the process has exited
}

// startDaemonProc runs bin with args (and --listen o.listen) and, with a
// listen address, waits until it serves /healthz.
func startDaemonProc(t *testing.T, bin string, o daemonOptions, args ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{done: make(chan struct{})}
	if o.listen != "" {
		args = append(args, "--listen", o.listen)
		host, port, err := net.SplitHostPort(o.listen)
		if err != nil {
			t.Fatal(err)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		d.url = "http://" + net.JoinHostPort(host, port)
	}
	if o.umask0 {
		d.cmd = umask0(bin, args...)
	} else {
		d.cmd = exec.Command(bin, args...)
	}
	d.cmd.Stdout, d.cmd.Stderr = &d.logs, &d.logs
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		if !d.exited() {
			d.cmd.Process.Kill()
			<-d.done
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs.String())
		}
	})
	if d.url != "" {
		d.wait(t, "the daemon's /healthz", func() bool {
			resp, err := direct.Get(d.url + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	return d
}

// umask0 runs bin with umask 0, so that a file whose mode comes from the
// umask rather than from the code shows up as world-writable.
func umask0(bin string, args ...string) *exec.Cmd {
	return exec.Command("/bin/sh", append([]string{"-c", `umask 000; exec "$0" "$@"`, bin}, args...)...)
}

// exited reports whether the process has exited.
func (d *daemonProc) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// wait polls cond for up to 20 seconds and fails the test if the daemon
// exits first.
func (d *daemonProc) wait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
		if d.exited() {
			t.Fatalf("the daemon exited (%v) while waiting for %s", d.cmd.ProcessState, what)
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// waitLog waits for the daemon's log to match re and returns the
// submatches of the first match.
func (d *daemonProc) waitLog(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	var m []string
	d.wait(t, "the daemon's log to match "+re.String(), func() bool {
		m = re.FindStringSubmatch(d.logs.String())
		return m != nil
	})
	return m
}

// sweepResult is the JSON of POST /api/sweep (daemon.SweepResult).
type sweepResult struct {
	Targets, Observations, Changed, Alerts int
	Failed                                 []string
}

// sweep has the daemon probe every endpoint now (POST /api/sweep) and
// returns what the sweep did.
func (d *daemonProc) sweep(t *testing.T) sweepResult {
	t.Helper()
	code, body := fetch(t, "POST", d.url+"/api/sweep", "", "{}")
	var res sweepResult
	if code != http.StatusOK || json.Unmarshal([]byte(body), &res) != nil {
		t.Fatalf("POST /api/sweep: %d %s", code, body)
	}
	return res
}

// reload sends SIGHUP and waits for the n-th log record containing what.
func (d *daemonProc) reload(t *testing.T, what string, n int) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.wait(t, fmt.Sprintf("%q #%d in the log", what, n), func() bool { return strings.Count(d.logs.String(), what) >= n })
}

// stop sends SIGTERM and wants the daemon to log its clean stop and exit
// 0 within 30 seconds.
func (d *daemonProc) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not exit within 30s of SIGTERM")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 || !strings.Contains(d.logs.String(), "daemon stopped") {
		t.Errorf("the daemon exited %d after SIGTERM, want 0 and a clean stop in the log", code)
	}
}

// kill sends SIGKILL and fails the test unless the signal ended the
// daemon.
func (d *daemonProc) kill(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.done
	if ws := d.cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the daemon ended with %v, not by the kill", d.cmd.ProcessState)
	}
}

// webhookReceiver is a webhook endpoint for the daemon's alerts. With a
// secret it checks each delivery's X-Xmppcert-Signature HMAC (a bad one
// fails the test and is refused); every delivery must be an alert event.
// It keeps each delivery's body and headers, and the events once per
// alert ID (a retried delivery has the ID of the first).
type webhookReceiver struct {
	*httptest.Server
	secret     []byte
	mu         sync.Mutex
	deliveries []string      // body and headers of every delivery
	events     []alert.Event // in order of arrival, one per ID
	ids        map[string]bool
	taken      int // events handed to expect so far
}

// newWebhookReceiver starts a receiver, closed when the test ends; a nil
// secret does not check signatures.
func newWebhookReceiver(t *testing.T, secret []byte) *webhookReceiver {
	t.Helper()
	a := &webhookReceiver{secret: secret, ids: map[string]bool{}}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		a.deliveries = append(a.deliveries, string(body)+"\n"+fmt.Sprint(r.Header))
		a.mu.Unlock()
		if got := r.Header.Get(alert.SignatureHeader); a.secret != nil && got != alert.Sign(a.secret, body) {
			t.Errorf("webhook delivery with a bad %s %q: not signed with the configured key", alert.SignatureHeader, got)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev alert.Event
		if err := json.Unmarshal(body, &ev); err != nil || ev.Schema != alert.Schema {
			t.Errorf("webhook body is not an %s event (%v): %s", alert.Schema, err, body)
			http.Error(w, "bad event", http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		if !a.ids[ev.ID] {
			a.ids[ev.ID] = true
			a.events = append(a.events, ev)
		}
		a.mu.Unlock()
	}))
	t.Cleanup(a.Close)
	return a
}

// count is how many alerts of kind arrived.
func (a *webhookReceiver) count(kind changes.Kind) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, ev := range a.events {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// waitKind waits until n alerts of kind have arrived.
func (a *webhookReceiver) waitKind(t *testing.T, kind changes.Kind, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d %s alert(s)", n, kind), func() bool { return a.count(kind) >= n })
}

// of returns the alerts of kind that arrived, in order.
func (a *webhookReceiver) of(kind changes.Kind) []alert.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []alert.Event
	for _, ev := range a.events {
		if ev.Kind == kind {
			out = append(out, ev)
		}
	}
	return out
}

// all returns the body and headers of every delivery so far.
func (a *webhookReceiver) all() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.deliveries...)
}

// waitFor polls cond for up to 15 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// freeAddr returns a loopback address nothing listens on (briefly).
func freeAddr(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t))
}

// writeFile writes data to path with mode or fails the test.
func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
}

// direct is a client that never goes through a proxy from the
// environment: the test talks to this machine's own addresses.
var direct = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 30 * time.Second}

// fetch sends a request (a body as JSON) with an optional Authorization
// header and returns the status and body.
func fetch(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := direct.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// httpGet returns the body of GET url, failing the test unless it is
// 200 OK.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	code, body := fetch(t, "GET", url, "", "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	return body
}
