package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/xmppsim"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/web"
)

// The daemon's faults, in-process (README, "The daemon"): a webhook
// receiver that is down and then slow, peers that hang, a full disk. The
// kill -9 fault needs a process to kill: cmd/xmppcert/daemon_kill_test.go.

// sweepRecord is one sweep as the daemon logged it.
type sweepRecord struct {
	at      time.Time     // when the record was logged (the sweep's end)
	took    time.Duration // "sweep done": the sweep's duration
	changed int           // "sweep done": observations that changed
	err     string        // "sweep failed": the error
}

// sweeps collects the daemon's "sweep done" and "sweep failed" records,
// so that a test running the daemon's own loop (serve) sees when each
// sweep ended, how long it took and whether it failed, without a hook
// in the daemon.
type sweeps struct {
	mu   sync.Mutex
	list []sweepRecord
}

// sweepHandler is the slog.Handler that feeds sweeps and passes every
// record on to next (a text log printed when a test fails).
type sweepHandler struct {
	next slog.Handler
	s    *sweeps
}

func (h sweepHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h sweepHandler) Handle(ctx context.Context, r slog.Record) error {
	failed := strings.HasPrefix(r.Message, "sweep failed")
	if r.Message == "sweep done" || failed {
		rec := sweepRecord{at: time.Now()}
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "took":
				rec.took, _ = time.ParseDuration(a.Value.String())
			case "changed":
				rec.changed = int(a.Value.Int64())
			case "error":
				rec.err = a.Value.String()
			}
			return true
		})
		if failed && rec.err == "" {
			rec.err = "(no error attribute)"
		}
		h.s.mu.Lock()
		h.s.list = append(h.s.list, rec)
		h.s.mu.Unlock()
	}
	return h.next.Handle(ctx, r)
}

func (h sweepHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return sweepHandler{next: h.next.WithAttrs(as), s: h.s}
}

func (h sweepHandler) WithGroup(name string) slog.Handler {
	return sweepHandler{next: h.next.WithGroup(name), s: h.s}
}

// all returns the records so far.
func (s *sweeps) all() []sweepRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sweepRecord(nil), s.list...)
}

// since returns the records logged after t.
func (s *sweeps) since(t time.Time) []sweepRecord {
	var out []sweepRecord
	for _, r := range s.all() {
		if r.at.After(t) {
			out = append(out, r)
		}
	}
	return out
}

// waitFor polls cond over the records logged after t for up to limit and
// fails the test, printing the daemon's log, when it never holds.
func (s *sweeps) waitFor(t *testing.T, logs *testtool.LockedBuffer, what string, after time.Time, limit time.Duration, cond func([]sweepRecord) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if cond(s.since(after)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s; daemon log:\n%s", limit, what, logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// doneSweeps counts the successful sweeps among rs, and those with
// changes.
func doneSweeps(rs []sweepRecord) (done, changed int) {
	for _, r := range rs {
		if r.err == "" {
			done++
			if r.changed > 0 {
				changed++
			}
		}
	}
	return done, changed
}

// checkSchedule fails the test unless every sweep in rs succeeded within
// maxTook and followed the one before after no more than the interval
// plus maxTook plus slack: proof that nothing (a sink, a hung peer)
// held the loop up.
func checkSchedule(t *testing.T, rs []sweepRecord, interval, maxTook time.Duration) {
	t.Helper()
	const slack = 500 * time.Millisecond
	for i, r := range rs {
		if r.err != "" {
			t.Errorf("sweep %d failed: %s", i, r.err)
			continue
		}
		if r.took > maxTook {
			t.Errorf("sweep %d took %v; want at most %v", i, r.took, maxTook)
		}
		if i > 0 {
			if gap := r.at.Sub(rs[i-1].at); gap > interval+maxTook+slack {
				t.Errorf("sweep %d ended %v after the one before; the interval is %v: the schedule slipped", i, gap.Round(time.Millisecond), interval)
			}
		}
	}
}

// simConfig writes and loads a configuration that watches the first n
// domains of sim over c2s STARTTLS, with the given [watch] settings
// (TOML lines), state in state, and extra TOML appended (more peers).
func simConfig(t *testing.T, state string, sim *xmppsim.Sim, n int, watch, extra string) *config.Config {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "state_dir = %q\n[watch]\n%s\nown_hosts = false\n", state, watch)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "[[watch.peer]]\ndomain = %q\nservice = \"xmpp-client\"\nconnect = %q\n", sim.Domain(i), sim.Addr())
	}
	b.WriteString(extra)
	file := filepath.Join(t.TempDir(), "xmppcert.toml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newSim starts a simulator for the test.
func newSim(t *testing.T) *xmppsim.Sim {
	t.Helper()
	sim, err := xmppsim.New(xmppsim.Config{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sim.Close() })
	return sim
}

// faultDaemon builds a daemon over cfg that trusts the simulator's CA and
// logs into logs and s.
func faultDaemon(t *testing.T, cfg *config.Config, sim *xmppsim.Sim, logs *testtool.LockedBuffer, s *sweeps) *Daemon {
	t.Helper()
	d, err := New(cfg, Deps{
		Roots:         sim.Roots(),
		Logger:        slog.New(sweepHandler{next: slog.NewTextHandler(logs, nil), s: s}),
		NoSignals:     true,
		ShutdownGrace: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// serveDaemon runs the daemon's loop (Run on a listener of its own) and
// returns the base URL of its HTTP server and a function that stops it,
// failing the test unless Run returns nil within 15 seconds.
func serveDaemon(t *testing.T, d *Daemon) (base string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.serve(ctx, ln) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Run did not return within 15 s of cancel")
			}
		})
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// getOK fetches base+path and fails the test unless the answer is 200;
// it returns the body.
func getOK(t *testing.T, base, path string) []byte {
	t.Helper()
	return getStatus(t, base, path, http.StatusOK)
}

// getStatus is GET base+path answered with status code. The client's
// timeout only ends a hang: whether the daemon answered while a sweep was
// in flight is for the caller to check against the sweeps' record.
func getStatus(t *testing.T, base, path string, code int) []byte {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != code {
		t.Fatalf("GET %s: %s %q, %v; want %d", path, resp.Status, body, err, code)
	}
	return body
}

// wantUnhealthy: /healthz says 503 and that the history cannot be
// written, and /metrics counts failed sweeps.
func wantUnhealthy(t *testing.T, base string) {
	t.Helper()
	if b := getStatus(t, base, "/healthz", http.StatusServiceUnavailable); !strings.Contains(string(b), "the history cannot be written") {
		t.Errorf("/healthz on a full disk: %q", b)
	}
	if m := getOK(t, base, "/metrics"); !regexp.MustCompile(`(?m)^xmppcert_sweeps_failed_total [1-9]`).Match(m) {
		t.Errorf("/metrics on a full disk counts no failed sweep:\n%s", m)
	}
}

// apiEndpoints is GET /api/endpoints through the daemon's HTTP server,
// by domain.
func apiEndpoints(t *testing.T, base string) map[string]web.EndpointStatus {
	t.Helper()
	var body struct {
		Endpoints []web.EndpointStatus `json:"endpoints"`
	}
	if err := json.Unmarshal(getOK(t, base, "/api/endpoints"), &body); err != nil {
		t.Fatal(err)
	}
	out := map[string]web.EndpointStatus{}
	for _, e := range body.Endpoints {
		out[e.Endpoint.Domain] = e
	}
	return out
}

// hookMode is what flakyHook does with a request.
type hookMode int32

const (
	hookAccept hookMode = iota // 204 at once
	hookFail                   // 500 at once
	hookSlow                   // 204 after flakyHook.slow
)

// flakyHook is a webhook receiver the test switches off (nothing listens
// on its port: connections are refused), to failing (500), to slow and
// back to accepting. It keeps only the alerts it accepted with a 2xx, so
// that an alert it holds was delivered, and counts each by ID.
type flakyHook struct {
	addr     string
	slow     time.Duration
	mode     atomic.Int32
	requests atomic.Int64

	mu       sync.Mutex
	srv      *http.Server
	accepted []alert.Event
	byID     map[string]int
}

// newFlakyHook reserves a loopback port for the receiver and leaves it
// off.
func newFlakyHook(t *testing.T, slow time.Duration) *flakyHook {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &flakyHook{addr: ln.Addr().String(), slow: slow, byID: map[string]int{}}
	ln.Close()
	t.Cleanup(h.off)
	return h
}

func (h *flakyHook) url() string { return "http://" + h.addr + "/hook" }

// on listens on the receiver's port again.
func (h *flakyHook) on(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		return
	}
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		t.Fatalf("listening on the webhook's port again: %v", err)
	}
	h.srv = &http.Server{Handler: http.HandlerFunc(h.serveHTTP)}
	go h.srv.Serve(ln)
}

// off closes the listener and every connection.
func (h *flakyHook) off() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv != nil {
		h.srv.Close()
		h.srv = nil
	}
}

func (h *flakyHook) serveHTTP(w http.ResponseWriter, r *http.Request) {
	h.requests.Add(1)
	var ev alert.Event
	if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch hookMode(h.mode.Load()) {
	case hookFail:
		http.Error(w, "receiver failing", http.StatusInternalServerError)
		return
	case hookSlow:
		select {
		case <-time.After(h.slow):
		case <-r.Context().Done():
			return
		}
	}
	h.mu.Lock()
	h.accepted = append(h.accepted, ev)
	h.byID[ev.ID]++
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// events returns the alerts accepted so far.
func (h *flakyHook) events() []alert.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]alert.Event(nil), h.accepted...)
}

// TestFaultWebhookDownThenSlow: the webhook receiver refuses connections,
// then answers 500, then answers only after three seconds, while the
// daemon's loop runs with a one-second interval and the endpoints'
// keys change. Every sweep ends quickly and on schedule throughout (the
// sink never holds the loop), and once the receiver accepts again it
// has got exactly the alerts the changes called for (five first-seen,
// three key-changed), each once.
func TestFaultWebhookDownThenSlow(t *testing.T) {
	sim := newSim(t)
	hook := newFlakyHook(t, 3*time.Second)
	const n = 5
	cfg := simConfig(t, filepath.Join(t.TempDir(), "state"), sim, n, "interval = \"1s\"\njitter = 0\ntimeout = \"1s\"", "")
	var logs testtool.LockedBuffer
	var sw sweeps
	d := faultDaemon(t, cfg, sim, &logs, &sw)
	// [[alert.webhook]] offers timeout and max_attempts only, and its
	// default backoff starts at one second and doubles: the sink goes in
	// with alert.WebhookOptions instead, retrying every 50-200 ms so that
	// recovery shows within the test's seconds.
	sink, err := alert.NewWebhookSink(alert.WebhookOptions{
		URL: hook.url(), Timeout: 5 * time.Second, MaxAttempts: 1000,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: d.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	old := d.disp
	d.disp = alert.NewDispatcher(alert.DispatcherOptions{Logger: d.log}, sink)
	d.mu.Unlock()
	if err := closeDispatcher(old, time.Second); err != nil {
		t.Fatal(err)
	}
	_, stop := serveDaemon(t, d)
	begin := time.Now()

	// rekey changes domain i's key and waits for a sweep that saw it.
	rekey := func(i int) {
		t.Helper()
		at := time.Now()
		if err := sim.Rekey(sim.Domain(i)); err != nil {
			t.Fatal(err)
		}
		sw.waitFor(t, &logs, fmt.Sprintf("a sweep recording %s's new key", sim.Domain(i)), at, 10*time.Second, func(rs []sweepRecord) bool {
			_, changed := doneSweeps(rs)
			return changed > 0
		})
	}
	sweepsAfter := func(what string, at time.Time, k int) {
		t.Helper()
		sw.waitFor(t, &logs, fmt.Sprintf("%d sweeps %s", k, what), at, time.Duration(k+5)*time.Second, func(rs []sweepRecord) bool {
			done, _ := doneSweeps(rs)
			return done >= k
		})
	}

	// Down: connections refused.
	sweepsAfter("with the receiver down", begin, 1)
	rekey(1)
	sweepsAfter("with the receiver down", time.Now(), 2)
	if got := hook.events(); len(got) != 0 {
		t.Fatalf("a receiver that is down accepted %d alerts", len(got))
	}

	// Failing: 500 to everything.
	hook.mode.Store(int32(hookFail))
	hook.on(t)
	failing := time.Now()
	rekey(2)
	for hook.requests.Load() < 5 && time.Since(failing) < 10*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if r := hook.requests.Load(); r < 5 {
		t.Fatalf("only %d delivery attempts while the receiver answered 500", r)
	}
	sweepsAfter("with the receiver failing", failing, 2)
	if got := hook.events(); len(got) != 0 {
		t.Fatalf("%d alerts accepted while the receiver failed", len(got))
	}

	// Slow: three seconds per answer.
	hook.mode.Store(int32(hookSlow))
	slow := time.Now()
	rekey(3)
	sweepsAfter("with the receiver slow", slow, 4)
	for len(hook.events()) == 0 && time.Since(slow) < 10*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if len(hook.events()) == 0 {
		t.Fatal("a slow receiver got no alert")
	}
	slowEnd := time.Now()
	slowSweeps := sw.since(slow)

	// Recovered: everything queued arrives.
	hook.mode.Store(int32(hookAccept))
	want := map[string]bool{}
	for i := 1; i <= n; i++ {
		want[string(changes.FirstSeen)+" "+sim.Domain(i)] = true
	}
	for i := 1; i <= 3; i++ {
		want[string(changes.KeyChanged)+" "+sim.Domain(i)] = true
	}
	deadline := time.Now().Add(15 * time.Second)
	for len(hook.events()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// One more sweep, then stop: the daemon's shutdown flushes the alert
	// queue, so that whatever it still meant to send has arrived (and is
	// counted below) once stop returns.
	sweepsAfter("after recovery", time.Now(), 1)
	stop()
	if strings.Contains(logs.String(), "alerts not delivered before shutdown") {
		t.Fatalf("the shutdown did not flush the alert queue:\n%s", logs.String())
	}

	got := hook.events()
	seen := map[string]int{}
	for _, ev := range got {
		seen[string(ev.Kind)+" "+ev.Endpoint.Domain]++
	}
	for k := range want {
		if seen[k] != 1 {
			t.Errorf("alert %q delivered %d times; want once", k, seen[k])
		}
	}
	for k, c := range seen {
		if !want[k] {
			t.Errorf("unexpected alert %q delivered %d times", k, c)
		}
	}
	for id, c := range hook.byID {
		if c != 1 {
			t.Errorf("alert id %s accepted %d times", id, c)
		}
	}
	all := sw.all()
	checkSchedule(t, all, time.Second, time.Second)
	done, changed := doneSweeps(all)
	t.Logf("%d sweeps (%d with changes) in %v, %d of them while the receiver took %v per answer; %d delivery attempts for %d alerts",
		done, changed, time.Since(begin).Round(time.Millisecond), len(slowSweeps), hook.slow, hook.requests.Load(), len(got))
	if len(slowSweeps) < int(slowEnd.Sub(slow)/(2*time.Second)) {
		t.Errorf("only %d sweeps in the %v the receiver was slow", len(slowSweeps), slowEnd.Sub(slow).Round(time.Millisecond))
	}
	if t.Failed() {
		t.Logf("daemon log:\n%s", logs.String())
	}
}

// hangingPeer listens on loopback and never lets an XMPP stream
// start: each connection it accepts is held open, read and discarded,
// and, with trickle > 0, written one byte of a stream header padded with
// whitespace every trickle, forever. Each accept is announced on the
// returned channel.
func hangingPeer(t *testing.T, trickle time.Duration) (addr string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 16)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		close(quit)
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	header := "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='slow.example' id='1' version='1.0'>"
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case ch <- struct{}{}:
			default:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if trickle <= 0 {
					io.Copy(io.Discard, c)
					return
				}
				go io.Copy(io.Discard, c)
				tick := time.NewTicker(trickle)
				defer tick.Stop()
				for i := 0; ; i++ {
					b := byte(' ')
					if i < len(header) {
						b = header[i]
					}
					if _, err := c.Write([]byte{b}); err != nil {
						return
					}
					select {
					case <-tick.C:
					case <-quit:
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), ch
}

// TestFaultHangingPeer: one peer accepts TCP and never says a word,
// another sends one byte every 400 ms, beside three simulated servers
// that answer. While the first sweep waits on the hung peers, /healthz,
// the dashboard, /metrics and the JSON API answer at once; each sweep
// ends within watch.timeout (2 s) plus a little, on schedule; the
// answering servers are observed reachable with TLS in the same sweeps
// and the hung ones recorded as unreachable.
func TestFaultHangingPeer(t *testing.T) {
	sim := newSim(t)
	silent, silentAccepted := hangingPeer(t, 0)
	trickle, trickleAccepted := hangingPeer(t, 400*time.Millisecond)
	const n = 3
	const timeout = 2 * time.Second
	const interval = 3 * time.Second
	peers := fmt.Sprintf("[[watch.peer]]\ndomain = \"silent.example\"\nservice = \"xmpp-client\"\nconnect = %q\n"+
		"[[watch.peer]]\ndomain = \"trickle.example\"\nservice = \"xmpp-client\"\nconnect = %q\n", silent, trickle)
	cfg := simConfig(t, filepath.Join(t.TempDir(), "state"), sim, n, fmt.Sprintf("interval = %q\njitter = 0\ntimeout = %q", interval, timeout), peers)
	var logs testtool.LockedBuffer
	var sw sweeps
	d := faultDaemon(t, cfg, sim, &logs, &sw)
	base, stop := serveDaemon(t, d)

	for _, ch := range []<-chan struct{}{silentAccepted, trickleAccepted} {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("the first sweep never connected to a hung peer; daemon log:\n%s", logs.String())
		}
	}
	for _, path := range []string{"/healthz", "/", "/metrics", "/api/endpoints"} {
		getOK(t, base, path)
	}
	if rs := sw.all(); len(rs) != 0 {
		t.Fatalf("the first sweep ended before the HTTP checks (%+v): they did not run while it was in flight", rs)
	}

	sw.waitFor(t, &logs, "two sweeps", time.Time{}, 2*(interval+timeout)+5*time.Second, func(rs []sweepRecord) bool {
		done, _ := doneSweeps(rs)
		return done >= 2
	})
	eps := apiEndpoints(t, base)
	stop()
	rs := sw.all()
	checkSchedule(t, rs, interval, timeout+time.Second)
	for _, r := range rs {
		if r.took < timeout-100*time.Millisecond {
			t.Errorf("a sweep took %v: it did not wait for the hung peers up to watch.timeout %v", r.took, timeout)
		}
	}
	if len(eps) != n+2 {
		t.Fatalf("the API lists %d endpoints; want %d", len(eps), n+2)
	}
	for i := 1; i <= n; i++ {
		e := eps[sim.Domain(i)]
		if !e.Latest.Reachable || e.Latest.TLSVersion == "" || !e.Latest.LastSeen.After(e.Latest.FirstSeen) {
			t.Errorf("%s: %+v; want reachable with TLS, seen by both sweeps", sim.Domain(i), e.Latest)
		}
	}
	for _, dom := range []string{"silent.example", "trickle.example"} {
		e := eps[dom]
		if e.Latest.Reachable || e.Latest.Failure == "" {
			t.Errorf("%s: %+v; want recorded unreachable with a failure", dom, e.Latest)
		}
	}
	t.Logf("sweeps took %v and %v with two hung peers and watch.timeout %v", rs[0].took, rs[1].took, timeout)
}

// requireTmpfs mounts a tmpfs of size bytes on dir until the test ends.
// It needs root; without root, or where mounting is refused, it skips the
// test, except in CI (CI set), where it fails: a skip there would hide
// that the disk-full fault went untested.
func requireTmpfs(t *testing.T, dir string, size int) {
	t.Helper()
	skip := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf(format+" (CI is set: run the tests as root with CAP_SYS_ADMIN)", args...)
		}
		t.Skipf(format, args...)
	}
	if os.Geteuid() != 0 {
		skip("the disk-full test mounts a small tmpfs, which needs root; run as root to cover it")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		skip("mounting a tmpfs on %s: %v; the disk-full test did not run", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
}

// fill writes a file in dir until the filesystem is full and returns its
// path and size.
func fill(t *testing.T, dir string) (string, int64) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	var size int64
	for {
		n, err := f.Write(chunk)
		size += int64(n)
		if errors.Is(err, syscall.ENOSPC) {
			return path, size
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// spki is the hex SHA-256 of the SubjectPublicKeyInfo of domain's
// certificate at the simulator, as history records it.
func spki(t *testing.T, sim *xmppsim.Sim, domain string) string {
	t.Helper()
	c, err := sim.Certificate(domain)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// TestFaultDiskFull puts the state directory on a 1 MiB tmpfs, records a
// first sweep, fills the filesystem and changes every endpoint's key.
// With no room, and then with room for part of a commit, each sweep
// fails with ENOSPC (SweepOnce returns it, the loop logs it and goes on
// sweeping), the daemon keeps answering HTTP, and the history keeps the
// first sweep only, consistent. A daemon restarted on the full disk
// starts and serves. Once space is freed the next sweep records every
// change; the file passes the history's check, reopens cleanly, and
// holds exactly two entries per endpoint, the second with the new key.
func TestFaultDiskFull(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	requireTmpfs(t, state, 1<<20)
	sim := newSim(t)
	const n = 40
	cfg := simConfig(t, state, sim, n, "interval = \"1s\"\njitter = 0\ntimeout = \"1s\"\nconcurrency = 16", "")
	var logs testtool.LockedBuffer
	var sw sweeps
	d := faultDaemon(t, cfg, sim, &logs, &sw)
	base, stop := serveDaemon(t, d)
	sw.waitFor(t, &logs, "the first sweep", time.Time{}, 15*time.Second, func(rs []sweepRecord) bool {
		done, _ := doneSweeps(rs)
		return done >= 1
	})
	if rs := sw.all(); rs[0].err != "" || rs[0].changed != n {
		t.Fatalf("first sweep: %+v", rs[0])
	}

	// Fill right after a sweep, so that the next one sees every new key.
	sw.waitFor(t, &logs, "a second sweep", time.Now(), 10*time.Second, func(rs []sweepRecord) bool { return len(rs) > 0 })
	filler, size := fill(t, state)
	full := time.Now()
	for i := 1; i <= n; i++ {
		if err := sim.Rekey(sim.Domain(i)); err != nil {
			t.Fatal(err)
		}
	}
	// No room at all, then room for two pages: part of a commit fits.
	for _, pages := range []int64{0, 2} {
		if err := os.Truncate(filler, size-pages*4096); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		sw.waitFor(t, &logs, fmt.Sprintf("two sweeps failing with %d pages free", pages), at, 15*time.Second, func(rs []sweepRecord) bool {
			failed := 0
			for _, r := range rs {
				if r.err != "" {
					failed++
				}
			}
			return failed >= 2
		})
		if _, err := d.SweepOnce(context.Background()); !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("SweepOnce with %d pages free returned %v; want ENOSPC", pages, err)
		}
		for _, r := range sw.since(full) {
			if r.err == "" && r.changed > 0 {
				t.Fatalf("a sweep recorded %d changes on a full disk", r.changed)
			}
			if r.err != "" && !strings.Contains(r.err, "no space left on device") {
				t.Errorf("sweep failed with %q; want ENOSPC", r.err)
			}
		}
		// Still serving, saying it is unhealthy, and the history still
		// holds the first sweep only.
		wantUnhealthy(t, base)
		eps := apiEndpoints(t, base)
		if len(eps) != n {
			t.Errorf("the API lists %d endpoints on a full disk; want %d", len(eps), n)
		}
		for dom, e := range eps {
			if e.Latest.Seq != 1 {
				t.Errorf("%s: current entry %d on a full disk; want the first", dom, e.Latest.Seq)
			}
		}
		if err := d.Store().Check(); err != nil {
			t.Errorf("history on a full disk: %v", err)
		}
	}

	// A daemon restarted on the full disk (by systemd, after a crash)
	// starts, serves and keeps trying.
	stop()
	if err := os.Truncate(filler, size); err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	d = faultDaemon(t, cfg, sim, &logs, &sw)
	base, stop = serveDaemon(t, d)
	sw.waitFor(t, &logs, "a sweep failing after the restart", restart, 15*time.Second, func(rs []sweepRecord) bool {
		return len(rs) > 0 && rs[0].err != ""
	})
	wantUnhealthy(t, base)
	if eps := apiEndpoints(t, base); len(eps) != n {
		t.Errorf("the API of the restarted daemon lists %d endpoints on a full disk; want %d", len(eps), n)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	sw.waitFor(t, &logs, "a sweep recording the changes once there is space", freed, 15*time.Second, func(rs []sweepRecord) bool {
		for _, r := range rs {
			if r.err == "" && r.changed == n {
				return true
			}
		}
		return false
	})
	getOK(t, base, "/healthz")
	stop()

	s, err := history.Open(filepath.Join(state, HistoryFile), history.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("reopening the history: %v", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	keys, err := s.Endpoints()
	if err != nil || len(keys) != n {
		t.Fatalf("history holds %d endpoints (%v); want %d", len(keys), err, n)
	}
	for _, k := range keys {
		h, err := s.History(k, 0)
		if err != nil {
			t.Fatal(err)
		}
		dom, _, _ := strings.Cut(k, " ")
		if len(h) != 2 || len(h[0].Chain) == 0 || h[0].Chain[0].SPKISHA256 != spki(t, sim, dom) {
			t.Errorf("%s: %d entries, newest %+v; want two, the newest with the new key", k, len(h), h[0])
		}
	}
	failed, example := 0, ""
	for _, r := range sw.all() {
		if r.err != "" {
			failed++
			example = r.err
		}
	}
	t.Logf("%d sweeps failed on the full disk, e.g. %q; the first after freeing space recorded %d changes", failed, example, n)
}
