package daemon

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// TestSweepServed: each sweep compares what our own host's endpoints
// present with its lineage. The current version raises nothing; a
// certificate whose key belongs to no lineage is served-foreign, a
// critical alert at the webhook for each endpoint; an older version of
// the lineage is nothing while its successor has just gone out, and
// served-stale (a warning) once the grace has passed.
func TestSweepServed(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	engine := lifecycle.OnDisk(state)
	versions := []*acme.Lineage{issueLocal(t, engine), issueLocal(t, engine)}
	foreignLeaf, foreignKey := testpki.NewRoot("Elsewhere Root", nil).Leaf(nil)
	var present atomic.Pointer[tls.Certificate]
	present.Store(versions[1].TLSCertificate())
	srv := xmpptlstest.Start(t, xmpptlstest.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return present.Load(), nil }})

	dns := testdns.StartFake(t)
	for _, svc := range []string{"client", "server"} {
		dns.Add(t, fmt.Sprintf("_xmpp-%s._tcp.%s. 60 IN SRV 0 0 52%d xmpp.%[2]s.", svc, domain, map[string]int{"client": 22, "server": 69}[svc]))
	}
	dns.Add(t, fmt.Sprintf("xmpp.%s. 60 IN A 127.0.0.1", domain))

	hook := startAlertHook(t)
	cfg, err := config.Parse(filepath.Join(dir, "xmppcert.toml"), []byte(fmt.Sprintf(`state_dir = %q
[[host]]
domain = %q
[watch]
timeout = "2s"
[[alert.webhook]]
url = %q
`, state, domain, hook.URL)))
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	var logs testtool.LockedBuffer
	d, err := New(cfg, Deps{
		Engine:   engine,
		Resolver: dns.Addr,
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, srv.Addr)
		},
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
		Now:       func() time.Time { return *now.Load() },
		NoSignals: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	// served sweeps once and counts the served-* alerts by kind.
	served := func(step string) map[changes.Kind]int {
		t.Helper()
		counts := map[changes.Kind]int{}
		for _, ev := range hook.sweep(t, d, step, &logs) {
			switch ev.Kind {
			case changes.ServedForeign, changes.ServedStale, changes.ServedMismatch:
				if ev.Kind == changes.ServedForeign && ev.Severity != changes.Critical || ev.Kind != changes.ServedForeign && ev.Severity != changes.Warning {
					t.Errorf("%s: %s alert with severity %s", step, ev.Kind, ev.Severity)
				}
				counts[ev.Kind]++
			}
		}
		return counts
	}
	if c := served("current version"); len(c) != 0 {
		t.Errorf("the current version served: alerts %v; want none", c)
	}
	present.Store(&tls.Certificate{Certificate: [][]byte{foreignLeaf.Raw}, PrivateKey: foreignKey})
	if c := served("foreign key"); c[changes.ServedForeign] != 2 || len(c) != 1 {
		t.Errorf("a foreign key served on c2s and s2s: alerts %v; want 2 served-foreign", c)
	}
	present.Store(versions[0].TLSCertificate())
	if c := served("old version, just replaced"); len(c) != 0 {
		t.Errorf("version 1 served right after version 2 went out: alerts %v; want none yet", c)
	}
	later := start.Add(servedStaleGrace + time.Minute)
	now.Store(&later)
	if c := served("old version, after the grace"); c[changes.ServedStale] != 2 || len(c) != 1 {
		t.Errorf("version 1 served past the grace: alerts %v; want 2 served-stale", c)
	}
}

// issueLocal issues a new version of the embedded CA's lineage for
// domain (the first, or a renewal with a new key) and returns it.
func issueLocal(t *testing.T, engine *lifecycle.Engine) *acme.Lineage {
	t.Helper()
	req, err := acme.NewRequest(domain, 0, nil, acme.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	req.CA = "local"
	if _, err := engine.Issue(context.Background(), req, lifecycle.IssueOptions{}, lifecycle.ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	l, err := engine.Store.Load(domain)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// alertHook is a webhook sink that keeps the alerts it receives.
type alertHook struct {
	URL string
	mu  sync.Mutex
	got []alert.Event
}

func startAlertHook(t *testing.T) *alertHook {
	h := &alertHook{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev alert.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err == nil {
			h.mu.Lock()
			h.got = append(h.got, ev)
			h.mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/hook"
	return h
}

// sweep sweeps d once and returns the alerts of that sweep, once the
// hook has received every alert the sweep dispatched (a barrier, not a
// wait and hope).
func (h *alertHook) sweep(t *testing.T, d *Daemon, step string, logs *testtool.LockedBuffer) []alert.Event {
	t.Helper()
	res, err := d.SweepOnce(context.Background())
	if err != nil {
		t.Fatalf("%s: %v\n%s", step, err, logs.String())
	}
	return h.await(t, step, res.Alerts)
}

// await waits until the hook has received n alerts (a barrier, not a
// wait and hope) and returns what it received since the last call.
func (h *alertHook) await(t *testing.T, step string, n int) []alert.Event {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h.mu.Lock()
		got := len(h.got)
		h.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the webhook got %d of %d alerts in 20 s", step, got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	got := h.got
	h.got = nil
	return got
}
