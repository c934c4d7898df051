package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/web"
)

const domain = "example.org"

// leaf makes a certificate for domain signed by ca, with a fresh key.
func leaf(ca *testpki.CA) *tls.Certificate {
	c, k := ca.Leaf(func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS(domain)))
	})
	return &tls.Certificate{Certificate: [][]byte{c.Raw, ca.Cert.Raw}, PrivateKey: k, Leaf: c}
}

// fixture is a fake XMPP server whose certificate can be swapped, and a
// webhook receiver.
type fixture struct {
	ca     *testpki.CA
	cert   atomic.Pointer[tls.Certificate]
	server *xmpptlstest.Server
	hook   *httptest.Server
	dir    string
	cfg    string // configuration file

	mu     sync.Mutex
	events []alert.Event
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{ca: testpki.NewRoot("Test Root", nil), dir: t.TempDir()}
	f.cert.Store(leaf(f.ca))
	f.server = xmpptlstest.Start(t, xmpptlstest.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return f.cert.Load(), nil
	}})
	f.hook = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev alert.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.events = append(f.events, ev)
		f.mu.Unlock()
	}))
	t.Cleanup(f.hook.Close)
	f.cfg = filepath.Join(f.dir, "xmppcert.toml")
	f.writeConfig(t, "1s")
	return f
}

func (f *fixture) config(interval string) string {
	return fmt.Sprintf(`state_dir = %q
[watch]
interval = %q
jitter = 0
timeout = "1s"
own_hosts = false
[[watch.peer]]
domain = %q
service = "xmpp-client"
connect = %q
[[alert.webhook]]
url = %q
max_attempts = 2
[http]
listen = "127.0.0.1:0"
`, filepath.Join(f.dir, "state"), interval, domain, f.server.Addr, f.hook.URL+"/hook")
}

func (f *fixture) writeConfig(t *testing.T, interval string) {
	t.Helper()
	if err := os.WriteFile(f.cfg, []byte(f.config(interval)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitKind waits for an alert of kind at the webhook.
func (f *fixture) waitKind(t *testing.T, kind changes.Kind) alert.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		for _, ev := range f.events {
			if ev.Kind == kind {
				f.mu.Unlock()
				return ev
			}
		}
		f.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	t.Fatalf("no %s alert at the webhook; got %+v", kind, f.events)
	return alert.Event{}
}

func (f *fixture) newDaemon(t *testing.T, logs *testtool.LockedBuffer, noSignals bool) *Daemon {
	t.Helper()
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d, err := New(cfg, Deps{
		Roots:         f.ca.Pool(),
		Now:           func() time.Time { return testpki.At.Add(time.Since(start)) },
		Logger:        slog.New(slog.NewTextHandler(logs, nil)),
		NoSignals:     noSignals,
		ShutdownGrace: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// endpoints is GET /api/endpoints on h.
func endpoints(t *testing.T, h http.Handler) []web.EndpointStatus {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/endpoints")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/endpoints: %s", resp.Status)
	}
	var body struct {
		Endpoints []web.EndpointStatus `json:"endpoints"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Endpoints
}

// TestSweepKeyChange: the first sweep records the endpoint as first seen,
// an unchanged sweep records nothing new, a new key at the server is a
// key-changed alert at the webhook, and the API shows it unacknowledged.
func TestSweepKeyChange(t *testing.T) {
	f := newFixture(t)
	var logs testtool.LockedBuffer
	d := f.newDaemon(t, &logs, true)
	defer d.Close(context.Background())
	ctx := context.Background()

	res, err := d.SweepOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Observations != 1 || res.Changed != 1 {
		t.Fatalf("first sweep: %+v", res)
	}
	f.waitKind(t, changes.FirstSeen)

	res, err = d.SweepOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed != 0 {
		t.Fatalf("unchanged sweep: %+v", res)
	}

	f.cert.Store(leaf(f.ca))
	res, err = d.SweepOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed != 1 {
		t.Fatalf("sweep after the key change: %+v", res)
	}
	ev := f.waitKind(t, changes.KeyChanged)
	if ev.Severity == changes.Info || ev.Endpoint.Domain != domain {
		t.Errorf("key-changed alert: %+v", ev)
	}

	eps := endpoints(t, d.Handler())
	if len(eps) != 1 {
		t.Fatalf("API lists %d endpoints, want 1", len(eps))
	}
	var kinds []string
	for _, c := range eps[0].Unacknowledged {
		kinds = append(kinds, string(c.Kind))
	}
	if !strings.Contains(strings.Join(kinds, " "), string(changes.KeyChanged)) {
		t.Errorf("unacknowledged changes %v lack %s", kinds, changes.KeyChanged)
	}
	if eps[0].Latest.TLSVersion == "" {
		t.Errorf("latest observation has no TLS version: %+v", eps[0].Latest)
	}
}

// TestRunReloadShutdown: Run sweeps at once, survives a SIGHUP with a
// broken configuration (logging file:line), takes a good one, and shuts
// down cleanly when its context is cancelled, leaving the history
// readable.
func TestRunReloadShutdown(t *testing.T) {
	f := newFixture(t)
	var logs testtool.LockedBuffer
	d := f.newDaemon(t, &logs, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.serve(ctx, ln) }()
	f.waitKind(t, changes.FirstSeen)

	// A broken configuration, by signal: refused, logged with its line.
	if err := os.WriteFile(f.cfg, []byte(f.config("1s")+"[watch]\nbogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "configuration refused") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "configuration refused") || !strings.Contains(logs.String(), f.cfg+":") {
		t.Fatalf("no refusal with file:line in the log:\n%s", logs.String())
	}
	if got := d.Config().Watch.Interval; got != time.Second {
		t.Errorf("interval after a refused reload = %s, want the old 1s", got)
	}
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatalf("daemon stopped serving after a bad reload: %v", err)
	}
	resp.Body.Close()

	// A good one, directly, whose webhook secret file others can read:
	// taken, with a warning naming the file and the key.
	secret := filepath.Join(f.dir, "exposed.secret")
	if err := os.WriteFile(secret, []byte("s3cr3t\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(f.config("2s"), "max_attempts = 2\n", "max_attempts = 2\nhmac_secret_file = \"exposed.secret\"\n", 1)
	if err := os.WriteFile(f.cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := d.Config().Watch.Interval; got != 2*time.Second {
		t.Errorf("interval after reload = %s, want 2s", got)
	}
	if want := "alert.webhook.hmac_secret_file: webhook HMAC secret file " + secret + " is readable by group or others (mode 0644): chmod 600 it"; !strings.Contains(logs.String(), want) {
		t.Errorf("no warning %q in the log:\n%s", want, logs.String())
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	st, err := history.Open(filepath.Join(f.dir, "state", HistoryFile), history.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("history not released: %v", err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Errorf("history check: %v", err)
	}
	if eps, _ := st.Endpoints(); len(eps) != 1 {
		t.Errorf("history has %d endpoints, want 1", len(eps))
	}
}

// TestNewNeedsStateDir: a configuration without a state directory is
// refused before anything is opened.
func TestNewNeedsStateDir(t *testing.T) {
	if _, err := New(&config.Config{}, Deps{}); err == nil {
		t.Fatal("New accepted a configuration without a state directory")
	}
}

// TestRunRefusesNonLoopbackBind: whatever passed the configuration's
// check (a *.localhost name may resolve anywhere), Run refuses to serve
// without a token on an address that is not loopback.
func TestRunRefusesNonLoopbackBind(t *testing.T) {
	f := newFixture(t)
	var logs testtool.LockedBuffer
	d := f.newDaemon(t, &logs, true)
	d.Config().HTTP.Listen = "0.0.0.0:0"
	err := d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("Run on 0.0.0.0 without a token: %v", err)
	}
}

// TestRenewalMetrics: a failing renewal run is counted in /metrics, a
// good one sets the last-success time, and a sweep sets its own.
func TestRenewalMetrics(t *testing.T) {
	f := newFixture(t)
	var logs testtool.LockedBuffer
	cfg, err := config.Load(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// A lineage whose live link leads nowhere fails the first run; once
	// the link is gone, runs succeed.
	state := t.TempDir()
	broken := filepath.Join(state, "live", "broken.example")
	if err := os.MkdirAll(filepath.Dir(broken), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../archive/broken.example/000001", broken); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, Deps{
		Roots:         f.ca.Pool(),
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
		NoSignals:     true,
		RenewInterval: 100 * time.Millisecond,
		Engine:        lifecycle.OnDisk(state),
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.serve(ctx, ln) }()
	defer func() {
		cancel()
		<-done
	}()
	metrics := func() []byte {
		resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return body
	}
	failedOnce := regexp.MustCompile(`(?m)^xmppcert_renewal_runs_failed_total 1$`)
	for deadline := time.Now().Add(10 * time.Second); !failedOnce.Match(metrics()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no failed renewal run counted:\n%s\nlog:\n%s", metrics(), logs.String())
		}
	}
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^xmppcert_renewal_runs_failed_total 1$`),
		regexp.MustCompile(`(?m)^xmppcert_renewal_last_success_timestamp_seconds [1-9]`),
		regexp.MustCompile(`(?m)^xmppcert_sweep_last_success_timestamp_seconds [1-9]`),
		regexp.MustCompile(`(?m)^xmppcert_sweeps_failed_total 0$`),
		regexp.MustCompile(`(?m)^xmppcert_sweep_duration_seconds [0-9]`),
		// The process's own, as every Go exporter has them.
		regexp.MustCompile(`(?m)^go_goroutines [1-9]`),
		regexp.MustCompile(`(?m)^process_resident_memory_bytes [1-9]`),
		regexp.MustCompile(`(?m)^go_build_info\{`),
	}
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		body = metrics()
		missing := false
		for _, re := range want {
			missing = missing || !re.Match(body)
		}
		if !missing {
			return
		}
	}
	t.Errorf("/metrics after a failed and a good renewal run and a sweep lacks one of %q:\n%s", want, body)
}

// TestLifecycleEventsMetrics: what the lifecycle engine does in a
// renewal run is counted in /metrics by event: the first run issues the
// configured host and runs its hook, a forced run renews and runs it
// again, and a failing hook is counted as a failed deploy.
func TestLifecycleEventsMetrics(t *testing.T) {
	dir := t.TempDir()
	fail := filepath.Join(dir, "fail")
	cfg, err := config.Parse(filepath.Join(dir, "xmppcert.toml"), []byte(fmt.Sprintf(`state_dir = %q
[[host]]
domain = "example.org"
hooks = ["test ! -e %s"]
[watch]
own_hosts = false
`, filepath.Join(dir, "state"), fail)))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var logs testtool.LockedBuffer
	d, err := New(cfg, Deps{Engine: lifecycle.OnDisk(cfg.StateDir), Registry: reg,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	// count reads the counter of one event as /metrics exposes it.
	count := func(event string) float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != "xmppcert_lifecycle_events_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				if len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == event {
					return m.GetCounter().GetValue()
				}
			}
		}
		return 0
	}
	if err := d.renew(context.Background()); err != nil {
		t.Fatalf("first run: %v\n%s", err, logs.String())
	}
	if count(lifecycle.EventIssued) != 1 || count(lifecycle.EventDeployed) != 1 {
		t.Errorf("after the first run: issued %v, deployed %v; want 1 each", count(lifecycle.EventIssued), count(lifecycle.EventDeployed))
	}
	hook := "hook test ! -e " + fail
	lineage := map[string]float64{"version": 1, "last_renewal_success": 1, "deploy_ok " + hook: 1, "problems critical": 0, "problems warning": 0}
	if got := lineageGauges(t, reg, "example.org"); !maps.Equal(got, lineage) {
		t.Errorf("lineage series after the first run: %v; want %v", got, lineage)
	}
	if err := os.WriteFile(fail, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	hosts, err := DesiredHosts(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.deps.Engine.Reconcile(context.Background(), hosts, true, d.log); err == nil {
		t.Fatalf("forced run with a failing hook succeeded")
	}
	if count(lifecycle.EventRenewed) != 1 || count(lifecycle.EventDeployFailed) != 1 || count(lifecycle.EventRenewFailed) != 1 {
		t.Errorf("after the forced run: renewed %v, deploy failed %v, renew failed %v; want 1 each",
			count(lifecycle.EventRenewed), count(lifecycle.EventDeployFailed), count(lifecycle.EventRenewFailed))
	}
	if !strings.Contains(logs.String(), "deploy failed") {
		t.Errorf("the failed deploy is not logged:\n%s", logs.String())
	}
	// Warnings: the deploy did not finish, and the hook failed.
	lineage = map[string]float64{"version": 2, "last_renewal_success": 0, "deploy_ok " + hook: 0, "problems critical": 0, "problems warning": 2}
	if got := lineageGauges(t, reg, "example.org"); !maps.Equal(got, lineage) {
		t.Errorf("lineage series after the failed deploy: %v; want %v", got, lineage)
	}
}

// lineageGauges reads the xmppcert_lineage_* gauges of one lineage from
// reg, named without the prefix and with their other label values, the
// timestamps left out.
func lineageGauges(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		series, ok := strings.CutPrefix(f.GetName(), "xmppcert_lineage_")
		if !ok || strings.HasSuffix(series, "_timestamp_seconds") {
			continue
		}
		for _, m := range f.GetMetric() {
			key, mine := series, false
			for _, l := range m.GetLabel() {
				if l.GetName() == "lineage" {
					mine = l.GetValue() == name
				} else {
					key += " " + l.GetValue()
				}
			}
			if mine {
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestDaemonReissuesChangedHost: a [[host]] whose components change in
// the configuration is issued anew at the next renewal run after a
// reload, with the difference logged; an unchanged host is left alone.
func TestDaemonReissuesChangedHost(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "xmppcert.toml")
	write := func(components string) {
		t.Helper()
		cfg := fmt.Sprintf("state_dir = %q\n[[host]]\ndomain = \"example.org\"\ncomponents = [%s]\n[watch]\nown_hosts = false\n", filepath.Join(dir, "state"), components)
		if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`"muc.example.org"`)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	var logs testtool.LockedBuffer
	d, err := New(cfg, Deps{Engine: lifecycle.OnDisk(cfg.StateDir),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	store := acme.DiskStore{Dir: cfg.StateDir}
	names := func() []string {
		t.Helper()
		l, err := store.Load("example.org")
		if err != nil {
			t.Fatal(err)
		}
		return append(l.Request.Domains(), fmt.Sprint(l.Version))
	}
	for run := 1; run <= 2; run++ {
		if err := d.renew(context.Background()); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, logs.String())
		}
	}
	if got := names(); !slices.Equal(got, []string{"example.org", "muc.example.org", "1"}) {
		t.Fatalf("after two runs: %q; want version 1 with muc.example.org", got)
	}
	write(`"muc.example.org", "upload.example.org"`)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := d.renew(context.Background()); err != nil {
		t.Fatalf("run after the change: %v\n%s", err, logs.String())
	}
	if got := names(); !slices.Equal(got, []string{"example.org", "muc.example.org", "upload.example.org", "2"}) {
		t.Errorf("after the change: %q; want version 2 with upload.example.org", got)
	}
	if !regexp.MustCompile(`msg="re-issued: the host's names or CA changed" lineage=example.org version=2 changes="\+ upload.example.org \(component\)"`).MatchString(logs.String()) {
		t.Errorf("the re-issue is not logged with the difference:\n%s", logs.String())
	}
}
