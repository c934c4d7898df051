package daemon

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"sync/atomic"
	"testing"

	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// TestVantageMismatch probes our own host through two real SOCKS5
// proxies (microsocks): "here2" leaves from 127.0.0.1 like the direct
// probe, "elsewhere" from 127.0.0.2, and the server presents a foreign
// key to connections from 127.0.0.2 while intercepted. Intercepted: one
// vantage-mismatch (critical) per endpoint, naming elsewhere, and no
// served-foreign (this host sees our own certificate). Not intercepted,
// or shown the lineage's next version there before here: nothing. The
// elsewhere proxy gone: vantage-failed (warning).
func TestVantageMismatch(t *testing.T) {
	here := testtool.SOCKS5(t, "")
	elsewhere := testtool.SOCKS5(t, "127.0.0.2")

	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	engine := lifecycle.OnDisk(state)
	ours := issueLocal(t, engine).TLSCertificate()
	foreignLeaf, foreignKey := testpki.NewRoot("Interceptor Root", nil).Leaf(nil)
	foreign := &tls.Certificate{Certificate: [][]byte{foreignLeaf.Raw}, PrivateKey: foreignKey}
	// toElsewhere is what connections from 127.0.0.2 are shown.
	var toElsewhere atomic.Pointer[tls.Certificate]
	srv := xmpptlstest.Start(t, xmpptlstest.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if a, ok := hello.Conn.RemoteAddr().(*net.TCPAddr); ok && a.IP.Equal(net.ParseIP("127.0.0.2")) {
			return toElsewhere.Load(), nil
		}
		return ours, nil
	}})
	_, port, _ := net.SplitHostPort(srv.Addr)

	dns := testdns.StartFake(t)
	for _, svc := range []string{"client", "server"} {
		dns.Add(t, fmt.Sprintf("_xmpp-%s._tcp.%s. 60 IN SRV 0 0 %s xmpp.%[2]s.", svc, domain, port))
	}
	dns.Add(t, fmt.Sprintf("xmpp.%s. 60 IN A 127.0.0.1", domain))
	hook := startAlertHook(t)
	cfg, err := config.Parse(filepath.Join(dir, "xmppcert.toml"), []byte(fmt.Sprintf(`state_dir = %q
[[host]]
domain = %q
[watch]
timeout = "5s"
[[watch.vantage]]
name = "here2"
proxy = %q
[[watch.vantage]]
name = "elsewhere"
proxy = %q
[[alert.webhook]]
url = %q
`, state, domain, here.URL, elsewhere.URL, hook.URL)))
	if err != nil {
		t.Fatal(err)
	}
	var logs testtool.LockedBuffer
	d, err := New(cfg, Deps{Engine: engine, Resolver: dns.Addr, Logger: slog.New(slog.NewTextHandler(&logs, nil)), NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())

	// vantage sweeps once and returns the vantage-* alerts and any
	// served-foreign, checking their severities.
	vantage := func(step string) map[changes.Kind][]string {
		t.Helper()
		got := map[changes.Kind][]string{}
		for _, ev := range hook.sweep(t, d, step, &logs) {
			want := map[changes.Kind]changes.Severity{changes.VantageMismatch: changes.Critical, changes.VantageFailed: changes.Warning, changes.ServedForeign: changes.Critical}
			if sev, ok := want[ev.Kind]; ok {
				if ev.Severity != sev {
					t.Errorf("%s: %s alert with severity %s; want %s", step, ev.Kind, ev.Severity, sev)
				}
				got[ev.Kind] = append(got[ev.Kind], ev.Text)
			}
		}
		return got
	}

	toElsewhere.Store(foreign)
	got := vantage("intercepted from 127.0.0.2")
	if len(got[changes.VantageMismatch]) != 2 || len(got) != 1 {
		t.Fatalf("intercepted on the elsewhere path: alerts %q; want 2 vantage-mismatch (c2s and s2s)\n%s", got, logs.String())
	}
	for _, text := range got[changes.VantageMismatch] {
		if !mismatchText.MatchString(text) {
			t.Errorf("vantage-mismatch text %q; want it to name vantage elsewhere and both keys", text)
		}
	}
	toElsewhere.Store(ours)
	if got := vantage("not intercepted"); len(got) != 0 {
		t.Errorf("the same key on every path: alerts %q; want none", got)
	}
	// A new version with a new key, which the elsewhere path meets first
	// (a deploy seen at two moments): both keys are ours, no alert.
	toElsewhere.Store(issueLocal(t, engine).TLSCertificate())
	if got := vantage("rollover met first elsewhere"); len(got) != 0 {
		t.Errorf("the lineage's new key elsewhere, its old one here: alerts %q; want none", got)
	}

	// The elsewhere proxy stops answering: its probes fail, and that is
	// said rather than taken for agreement.
	elsewhere.Stop()
	got = vantage("elsewhere proxy gone")
	if len(got[changes.VantageFailed]) != 2 || len(got) != 1 {
		t.Errorf("the elsewhere proxy gone: alerts %q; want 2 vantage-failed", got)
	}
}

// mismatchText is a vantage-mismatch alert's text for the elsewhere
// vantage: both keys named.
var mismatchText = regexp.MustCompile(`^through vantage elsewhere this endpoint presents another key \(.*, SPKI SHA-256 [0-9a-f]{64}\) than here \(.*, SPKI SHA-256 [0-9a-f]{64}\)`)
