package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
)

var testEP = watcher.EndpointKey{Domain: "example.org", Service: "xmpp-server", Host: "xmpp.example.org", Port: 5269, Address: "192.0.2.1:5269"}

func testAlert(kind changes.Kind, sev changes.Severity, cond string) Alert {
	return Alert{
		Endpoint: testEP,
		At:       time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Change: changes.Change{
			Kind: kind, Severity: sev, Text: string(kind) + " " + cond, Old: "old-" + cond, New: "new-" + cond,
			Key: testEP.String() + "|" + string(kind) + "|" + cond,
		},
	}
}

// recorder is a Sink that keeps what it gets.
type recorder struct {
	mu sync.Mutex
	a  []Alert
}

func (r *recorder) Name() string                { return "recorder" }
func (r *recorder) Close(context.Context) error { return nil }
func (r *recorder) Send(a Alert) {
	r.mu.Lock()
	r.a = append(r.a, a)
	r.mu.Unlock()
}
func (r *recorder) got() []Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.a)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// receiver is an httptest webhook receiver.
type receiver struct {
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
	status  int // answered while > 0; 0 means 200
	refused int // requests answered with status
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	st := rc.status
	if st == 0 {
		rc.bodies = append(rc.bodies, b)
		rc.headers = append(rc.headers, r.Header.Clone())
	} else {
		rc.refused++
	}
	rc.mu.Unlock()
	if st != 0 {
		w.WriteHeader(st)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.bodies)
}

func fastWebhook(url string) WebhookOptions {
	return WebhookOptions{URL: url, MinBackoff: 5 * time.Millisecond, MaxBackoff: 40 * time.Millisecond, MaxAttempts: 100, Timeout: 2 * time.Second}
}

func TestWebhookJSONAndSignature(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	secret := []byte("s3cr3t-hmac-key")
	o := fastWebhook(srv.URL + "/hook")
	o.Secret = secret
	sink, err := NewWebhookSink(o)
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert(changes.KeyChanged, changes.Warning, "abc")
	sink.Send(a)
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rc.count() != 1 {
		t.Fatalf("receiver got %d requests", rc.count())
	}
	body, h := rc.bodies[0], rc.headers[0]
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); h.Get("X-Xmppcert-Signature") != want {
		t.Errorf("signature %q, want %q", h.Get("X-Xmppcert-Signature"), want)
	}
	if h.Get("Content-Type") != "application/json" || h.Get("X-Xmppcert-Event") != "key-changed" || h.Get("X-Xmppcert-Delivery") != a.ID() {
		t.Errorf("headers %v", h)
	}
	// The documented schema, read generically as a receiver would.
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"schema", "id", "at", "endpoint", "endpoint_key", "kind", "severity", "text", "old", "new", "key", "resent"} {
		if _, ok := got[k]; !ok {
			t.Errorf("body lacks %q: %s", k, body)
		}
	}
	ep, _ := got["endpoint"].(map[string]any)
	if got["schema"] != "xmppcert.alert.v1" || got["kind"] != "key-changed" || got["severity"] != "warning" ||
		got["old"] != "old-abc" || got["new"] != "new-abc" || got["at"] != "2026-03-01T12:00:00Z" ||
		ep["domain"] != "example.org" || ep["port"] != float64(5269) || got["endpoint_key"] != testEP.String() {
		t.Errorf("body %s", body)
	}
	if bytes.Contains(body, secret) {
		t.Error("secret in body")
	}
}

func TestWebhookNoSecretNoSignature(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	w, err := NewWebhook(fastWebhook(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Deliver(context.Background(), testAlert(changes.Unreachable, changes.Warning, "")); err != nil {
		t.Fatal(err)
	}
	if rc.headers[0].Get(SignatureHeader) != "" {
		t.Error("signature without a secret")
	}
}

func TestWebhookRetriesUntilReceiverRecovers(t *testing.T) {
	// Down twice over: first nothing listens (connection refused) for a
	// moment, then the receiver answers 503 until the sink has retried,
	// then it accepts.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	rc := &receiver{status: http.StatusServiceUnavailable}
	sink, err := NewWebhookSink(fastWebhook("http://" + addr + "/hook"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		sink.Send(testAlert(changes.KeyChanged, changes.Warning, strconv.Itoa(i)))
	}
	time.Sleep(100 * time.Millisecond)
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: rc}}
	srv.Start()
	defer srv.Close()
	waitFor(t, 5*time.Second, "a retry after a 503", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return rc.refused >= 2
	})
	rc.mu.Lock()
	rc.status = 0
	rc.mu.Unlock()
	waitFor(t, 5*time.Second, "delivery after recovery", func() bool { return rc.count() == 3 })
	for i, b := range rc.bodies {
		var ev Event
		json.Unmarshal(b, &ev)
		if ev.New != "new-"+strconv.Itoa(i) {
			t.Errorf("delivery %d is %q: out of order", i, ev.New)
		}
	}
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := sink.Stats(); st.Delivered != 3 || st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestWebhookGivesUpAfterBudget(t *testing.T) {
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer srv.Close()
	o := fastWebhook(srv.URL)
	o.MaxAttempts = 4
	w, _ := NewWebhook(o)
	err := w.Deliver(context.Background(), testAlert(changes.KeyChanged, changes.Warning, "x"))
	if err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("err %v", err)
	}
	if n != 4 {
		t.Errorf("%d attempts, want 4", n)
	}
	// A 4xx other than 408/425/429 is permanent: one attempt.
	n = 0
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		mu.Unlock()
		w.WriteHeader(http.StatusNotFound)
	})
	if err := w.Deliver(context.Background(), testAlert(changes.KeyChanged, changes.Warning, "y")); err == nil || n != 1 {
		t.Errorf("404: err %v after %d attempts", err, n)
	}
}

func TestBackoffCapped(t *testing.T) {
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 30: 8 * time.Second} {
		for range 20 {
			if d := backoff(attempt, time.Second, 8*time.Second); d < want/2 || d > want {
				t.Errorf("attempt %d: backoff %v, want in [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}

func TestSlowReceiverDoesNotBlockDispatch(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer srv.Close()
	defer close(release)
	o := fastWebhook(srv.URL)
	o.Timeout = time.Minute
	o.Queue.Size = 10
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	sink, err := NewWebhookSink(o)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDispatcher(DispatcherOptions{}, sink)
	d.Dispatch(testAlert(changes.KeyChanged, changes.Warning, "first"))
	<-arrived // the receiver now holds the first request
	start := time.Now()
	for i := range 500 {
		if !d.Dispatch(testAlert(changes.KeyChanged, changes.Warning, strconv.Itoa(i))) {
			t.Fatal("distinct keys suppressed")
		}
	}
	// The receiver holds each request for a minute: ten seconds for
	// all 500 leaves room for -race on a loaded machine and none for
	// one dispatch that waits on the receiver.
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("500 dispatches to a stuck receiver took %v", el)
	}
	st := sink.Stats()
	if st.Dropped != 490 || st.Pending != 10 {
		t.Errorf("stats %+v: want 490 dropped, 10 pending", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := d.Close(ctx); err == nil || !strings.Contains(err.Error(), "undelivered") {
		t.Errorf("Close with a stuck receiver: %v", err)
	}
}

// TestQueueOverflowPolicies checks which alerts survive a full queue.
func TestQueueOverflowPolicies(t *testing.T) {
	for _, newest := range []bool{false, true} {
		t.Run(fmt.Sprintf("DropNewest=%v", newest), func(t *testing.T) {
			gate := make(chan struct{})
			var mu sync.Mutex
			var got []string
			started := make(chan struct{}, 1)
			deliver := func(ctx context.Context, a Alert) error {
				select {
				case started <- struct{}{}:
				default:
				}
				<-gate
				mu.Lock()
				got = append(got, a.Change.New)
				mu.Unlock()
				return nil
			}
			q := NewQueue("test", deliver, QueueOptions{Size: 3, DropNewest: newest}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			q.Send(testAlert(changes.KeyChanged, changes.Warning, "0"))
			<-started // "0" is in flight
			for i := 1; i <= 5; i++ {
				q.Send(testAlert(changes.KeyChanged, changes.Warning, strconv.Itoa(i)))
			}
			if st := q.Stats(); st.Dropped != 2 || st.Pending != 3 {
				t.Errorf("stats %+v", st)
			}
			close(gate)
			if err := q.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			want := []string{"new-0", "new-3", "new-4", "new-5"}
			if newest {
				want = []string{"new-0", "new-1", "new-2", "new-3"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("delivered %v, want %v", got, want)
			}
			q.Send(testAlert(changes.KeyChanged, changes.Warning, "late"))
			if st := q.Stats(); st.Dropped != 3 || st.Delivered != 4 {
				t.Errorf("after close: %+v", st)
			}
		})
	}
}

func TestDispatcherDedup(t *testing.T) {
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rec := &recorder{}
	d := NewDispatcher(DispatcherOptions{ResendInterval: time.Hour, Now: func() time.Time { return clock }}, rec)
	a := testAlert(changes.Expiry7d, changes.Warning, "leaf")
	if !d.Dispatch(a) {
		t.Fatal("first not sent")
	}
	clock = clock.Add(59 * time.Minute)
	if d.Dispatch(a) {
		t.Error("repeat within the interval sent")
	}
	if d.Dispatch(testAlert(changes.Expiry1d, changes.Critical, "leaf")) != true {
		t.Error("a different key (next threshold) suppressed")
	}
	clock = clock.Add(2 * time.Minute)
	if !d.Dispatch(a) {
		t.Error("not re-sent after the interval")
	}
	got := rec.got()
	if len(got) != 3 || got[0].Resent || got[1].Resent || !got[2].Resent {
		t.Fatalf("sent %+v", got)
	}
	if got[0].ID() == got[2].ID() {
		t.Error("a re-send has the first send's ID")
	}
	if d.Suppressed() != 1 {
		t.Errorf("suppressed %d", d.Suppressed())
	}
	// Resolve: the next occurrence goes out at once, as new.
	d.Resolve(a.Change.Key)
	if !d.Dispatch(a) || rec.got()[3].Resent {
		t.Error("not sent (as new) after Resolve")
	}
}

func TestDispatcherNegativeIntervalNeverResends(t *testing.T) {
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	d := NewDispatcher(DispatcherOptions{ResendInterval: -1, Now: func() time.Time { return clock }}, &recorder{})
	a := testAlert(changes.Expiry30d, changes.Warning, "leaf")
	d.Dispatch(a)
	clock = clock.Add(1000 * time.Hour)
	if d.Dispatch(a) {
		t.Error("re-sent with a negative interval")
	}
}

func TestDispatcherReportClearsConditions(t *testing.T) {
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rec := &recorder{}
	d := NewDispatcher(DispatcherOptions{ResendInterval: time.Hour, Now: func() time.Time { return clock }}, rec)
	exp := testAlert(changes.Expiry30d, changes.Warning, "leaf").Change
	other := watcher.EndpointKey{Domain: "other.example", Service: "xmpp-client", Host: "h", Port: 5222, Address: "a"}
	otherExp := changes.Change{Kind: changes.Expiry30d, Severity: changes.Warning, Text: "x", Key: other.String() + "|expiry-30d|leaf"}
	at := clock
	if n := d.Report(testEP, at, []changes.Change{exp}); n != 1 {
		t.Fatalf("first report sent %d", n)
	}
	d.Report(other, at, []changes.Change{otherExp})
	clock = clock.Add(time.Minute)
	if n := d.Report(testEP, at, []changes.Change{exp}); n != 0 {
		t.Errorf("persisting condition re-sent within the interval")
	}
	// The certificate was renewed: the condition is no longer reported,
	// so it clears; if it comes back it is sent at once.
	d.Report(testEP, at, nil)
	if n := d.Report(testEP, at, []changes.Change{exp}); n != 1 {
		t.Errorf("recurring condition not sent after clearing")
	}
	// Clearing one endpoint leaves the other's keys alone.
	if n := d.Report(other, at, []changes.Change{otherExp}); n != 0 {
		t.Errorf("other endpoint's key was cleared")
	}
	if len(rec.got()) != 3 {
		t.Errorf("sent %d alerts, want 3", len(rec.got()))
	}
}

func TestDispatcherPrunesForgottenKeys(t *testing.T) {
	clock := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	d := NewDispatcher(DispatcherOptions{ResendInterval: time.Hour, Now: func() time.Time { return clock }}, &recorder{})
	for i := range 100 {
		d.Dispatch(testAlert(changes.KeyChanged, changes.Warning, strconv.Itoa(i)))
	}
	clock = clock.Add(2 * time.Hour)
	d.Dispatch(testAlert(changes.KeyChanged, changes.Warning, "new"))
	d.mu.Lock()
	n := len(d.sent)
	d.mu.Unlock()
	if n != 1 {
		t.Errorf("%d keys remembered, want 1", n)
	}
}

func TestMinSeverity(t *testing.T) {
	rec := &recorder{}
	d := NewDispatcher(DispatcherOptions{}, MinSeverity(rec, changes.Critical))
	d.Dispatch(testAlert(changes.KeyChanged, changes.Warning, "w"))
	d.Dispatch(testAlert(changes.Expired, changes.Critical, "c"))
	if got := rec.got(); len(got) != 1 || got[0].Change.Kind != changes.Expired {
		t.Errorf("got %+v", got)
	}
}

func TestLogSink(t *testing.T) {
	var buf bytes.Buffer
	d := NewDispatcher(DispatcherOptions{}, NewLog(slog.New(slog.NewJSONHandler(&buf, nil))))
	d.Dispatch(testAlert(changes.Recovered, changes.Info, "i"))
	d.Dispatch(testAlert(changes.KeyChanged, changes.Warning, "w"))
	d.Dispatch(testAlert(changes.Expired, changes.Critical, "c"))
	var levels []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		levels = append(levels, m["level"].(string))
		if m["msg"] != "alert" || m["endpoint"] != testEP.String() || m["key"] == "" || m["text"] == "" {
			t.Errorf("record %s", line)
		}
	}
	if !slices.Equal(levels, []string{"INFO", "WARN", "ERROR"}) {
		t.Errorf("levels %v", levels)
	}
}

func TestExecHookEnvAndStdin(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	t.Setenv("XMPPCERT_ALERT_KIND", "stale-from-parent")
	script := `env | grep '^XMPPCERT_ALERT_' | sort > "$1/env"; cat > "$1/stdin"`
	sink, err := NewExecSink(ExecOptions{Command: []string{"/bin/sh", "-c", script, "hook", dir}, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	a := testAlert(changes.IssuerChanged, changes.Warning, "ca")
	sink.Send(a)
	if err := sink.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := sink.Stats(); st.Delivered != 1 {
		t.Fatalf("stats %+v", st)
	}
	envb, _ := os.ReadFile(filepath.Join(dir, "env"))
	env := string(envb)
	for _, want := range []string{
		"XMPPCERT_ALERT_KIND=issuer-changed\n", "XMPPCERT_ALERT_SEVERITY=warning\n", "XMPPCERT_ALERT_DOMAIN=example.org\n",
		"XMPPCERT_ALERT_PORT=5269\n", "XMPPCERT_ALERT_OLD=old-ca\n", "XMPPCERT_ALERT_NEW=new-ca\n",
		"XMPPCERT_ALERT_KEY=" + a.Change.Key + "\n", "XMPPCERT_ALERT_ID=" + a.ID() + "\n", "XMPPCERT_ALERT_SCHEMA=xmppcert.alert.v1\n",
		"XMPPCERT_ALERT_ENDPOINT=" + testEP.String() + "\n", "XMPPCERT_ALERT_TEXT=issuer-changed ca\n",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %q:\n%s", want, env)
		}
	}
	if strings.Contains(env, "stale-from-parent") {
		t.Error("the parent's XMPPCERT_ALERT_ variable leaked through")
	}
	var ev Event
	stdin, _ := os.ReadFile(filepath.Join(dir, "stdin"))
	if err := json.Unmarshal(stdin, &ev); err != nil {
		t.Fatalf("stdin %q: %v", stdin, err)
	}
	if ev != a.Event() {
		t.Errorf("stdin event %+v, want %+v", ev, a.Event())
	}
}

func TestExecHookTimeoutKillsProcessGroup(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	dir := t.TempDir()
	// The hook starts a grandchild and waits: killing only the shell
	// would leave the sleep running.
	script := `sleep 60 & echo $! > "$1/pid"; wait`
	e, err := NewExec(ExecOptions{Command: []string{"/bin/sh", "-c", script, "hook", dir}, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = e.Deliver(context.Background(), testAlert(changes.Expired, changes.Critical, "x"))
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
	pidb, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(pidb))
	waitFor(t, 5*time.Second, "the grandchild to die", func() bool {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return true // gone
		}
		// "PID (comm) STATE ...": a zombie is dead, only not yet reaped.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
	})
}

func TestExecHookFailureIsReported(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	e, _ := NewExec(ExecOptions{Command: []string{"/bin/sh", "-c", "echo broken >&2; exit 3"}})
	err := e.Deliver(context.Background(), testAlert(changes.Expired, changes.Critical, "x"))
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "broken") {
		t.Errorf("err %v", err)
	}
	if _, err := NewExec(ExecOptions{}); err == nil {
		t.Error("empty command accepted")
	}
}

func TestSecretNeverLogged(t *testing.T) {
	const secret = "hmac-TOP-SECRET-value"
	const token = "tok-IN-URL-9f8e7d"
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	o := fastWebhook(srv.URL + "/hooks/" + token + "?token=" + token)
	o.Secret = Secret(secret)
	o.MaxAttempts = 2
	o.Logger = logger
	sink, err := NewWebhookSink(o)
	if err != nil {
		t.Fatal(err)
	}
	// Down receiver: connection refused errors carry the URL in net/http.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	o2 := o
	o2.URL = "http://" + addr + "/hooks/" + token
	down, _ := NewWebhookSink(o2)
	d := NewDispatcher(DispatcherOptions{Logger: logger}, NewLog(logger), sink, down)
	d.Dispatch(testAlert(changes.KeyChanged, changes.Warning, "a"))
	d.Dispatch(testAlert(changes.KeyChanged, changes.Warning, "a")) // suppressed, debug log
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if sink.Stats().Failed != 1 || down.Stats().Failed != 1 {
		t.Fatalf("stats %+v %+v", sink.Stats(), down.Stats())
	}
	// Configuration logged or printed by mistake.
	logger.Info("config", "webhook", o, "secret", o.Secret)
	_, cfgErr := NewWebhook(WebhookOptions{URL: "ftp://x/" + token, Secret: Secret(secret)})
	printed := fmt.Sprintf("%v %+v %#v %s %x %q %v", o, o, o, o.Secret, o.Secret, o.Secret, cfgErr)
	j, _ := json.Marshal(o)
	// The secret never shows, whatever prints it; the URL's token stays
	// out of what the package itself logs and returns (a caller that
	// fmt-prints the options prints the URL it configured).
	for _, leak := range []string{secret, hex.EncodeToString([]byte(secret))} {
		if all := logs.String() + printed + string(j); strings.Contains(all, leak) {
			t.Errorf("%q leaked:\n%s", leak, all)
		}
	}
	if all := logs.String() + fmt.Sprint(cfgErr) + sink.Name() + down.Name(); strings.Contains(all, token) {
		t.Errorf("URL token leaked:\n%s", all)
	}
	if !strings.Contains(logs.String(), "alert not delivered") || !strings.Contains(logs.String(), "[redacted]") {
		t.Errorf("expected the failures and a redacted secret in the logs:\n%s", logs.String())
	}
}

// TestWebhookRedirectNotFollowed: a receiver that answers 307 or 302
// does not get the body and its signature re-sent elsewhere; the
// delivery fails at once, naming where it was sent (scheme and host).
func TestWebhookRedirectNotFollowed(t *testing.T) {
	other := &receiver{}
	elsewhere := httptest.NewServer(other)
	defer elsewhere.Close()
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusFound, http.StatusPermanentRedirect} {
		var hits atomic.Int32
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			http.Redirect(w, r, elsewhere.URL+"/hook?token=secret", status)
		}))
		o := fastWebhook(redirector.URL + "/hook")
		o.Secret = []byte("s3cr3t-hmac-key")
		w, err := NewWebhook(o)
		if err != nil {
			t.Fatal(err)
		}
		err = w.Deliver(t.Context(), testAlert(changes.KeyChanged, changes.Warning, "x"))
		redirector.Close()
		var re *RedirectError
		if !errors.As(err, &re) || re.Status != status || re.To != elsewhere.URL || strings.Contains(err.Error(), "secret") {
			t.Errorf("%d: %v; want a RedirectError to %s without the Location's query", status, err, elsewhere.URL)
		}
		if n := hits.Load(); n != 1 {
			t.Errorf("%d: the receiver was asked %d times; a redirect is not retried", status, n)
		}
	}
	if n := other.count(); n != 0 || other.refused != 0 {
		t.Errorf("the redirect target got %d requests", n+other.refused)
	}
}
