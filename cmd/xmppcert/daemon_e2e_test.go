package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testxmpp"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/web"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// e2eHost is the XMPP domain of the end-to-end test; its SRV records
// point at xmpp.e2eHost.
const e2eHost = "example.org"

// wantAlert is one alert the webhook must receive: what changed, how
// bad, and on which of the two endpoints (c2s or s2s).
type wantAlert struct {
	Kind     changes.Kind
	Severity changes.Severity
	Service  xmppaddr.Service
}

func (w wantAlert) String() string { return fmt.Sprintf("%s/%s/%s", w.Service, w.Kind, w.Severity) }

// on is the same alert on both endpoints.
func on(kind changes.Kind, sev changes.Severity) []wantAlert {
	return []wantAlert{{kind, sev, xmppaddr.ServiceClient}, {kind, sev, xmppaddr.ServiceServer}}
}

// TestDaemonE2E runs the built `xmppcert daemon` against a real Prosody
// on loopback, as an operator would: the lineage is issued by the
// embedded CA and deployed with `issue --deploy prosody:DIR`, the daemon
// watches the host's c2s and s2s endpoints (own_hosts, found through SRV
// records of a DNS server the test runs) and sends signed alerts to a
// webhook receiver here. Each step changes what Prosody serves, reloads
// it, and asks the daemon to probe at once (POST /api/sweep, the interval
// being an hour); the receiver must then get exactly the alerts of the
// step, by kind, severity and endpoint:
//
//	start                      first-seen (info) on both
//	renew --force              renewal-next-key (info) on both: our own rotation
//	same key, new certificate  renewal-same-key (info) on both
//	new key, same CA           key-changed (critical: the lineage's key was replaced) and
//	                           served-foreign (critical: a key of no lineage) on both
//	other CA (trust_roots)     renewal-same-key (info), issuer-changed (warning) and
//	                           served-foreign (critical, for the new certificate) on both
//	s2s_require_encryption off starttls-not-required (warning) on s2s
//
// The dashboard then shows both endpoints with the unacknowledged-change
// warning, authenticated by their certificate, and each endpoint page the
// changes in its history; SIGTERM stops the daemon with exit 0.
func TestDaemonE2E(t *testing.T) {
	dir := serverTempDir(t)
	state := filepath.Join(dir, "state")
	certs := filepath.Join(dir, "certs")
	p := testxmpp.NewProsody(t, testxmpp.ProsodyOptions{
		VirtualHosts:         []testxmpp.VirtualHost{{Domain: e2eHost, C2SRequireEncryption: true}},
		CertificatesDir:      certs,
		S2SRequireEncryption: true,
		// The admin shell reloads mod_tls, which reads
		// s2s_require_encryption when it loads.
		Modules: []string{"admin_shell"},
	})
	bin := buildXmppcert(t)
	start := time.Now()
	// Prosody does not run yet: the deploy writes the files and says it
	// was not reloaded (exit 1); renewals later reload it through its
	// configuration.
	if r := runBin(t, bin, "--state-dir", state, "issue", e2eHost, "--deploy", "prosody:"+certs, "--prosody-config", p.Config, "-q"); r.code != 1 || !strings.Contains(r.stderr, "not reloaded: ") {
		t.Fatalf("issue: exit %d; want 1, not reloaded\n%s%s", r.code, r.stdout, r.stderr)
	}
	p.Start(t)
	srv := prosodyCerts{t: t, p: p, dir: certs}
	srv.await(leafOf(t, live(state, e2eHost, "cert.pem")))
	// Once Prosody runs, the deploy that was not reloaded is done again:
	// otherwise the daemon's first renewal run would, holding the
	// lineage while the step below renews it.
	if r := runBin(t, bin, "--state-dir", state, "deploy"); r.code != 0 || !strings.Contains(r.stdout, ": reloaded") {
		t.Fatalf("deploy once Prosody runs: exit %d; want 0, reloaded\n%s%s", r.code, r.stdout, r.stderr)
	}

	dns := testdns.StartFake(t)
	dns.Add(t,
		fmt.Sprintf("_xmpp-client._tcp.%s. 60 IN SRV 0 0 %d xmpp.%[1]s.", e2eHost, p.C2SPort),
		fmt.Sprintf("_xmpp-server._tcp.%s. 60 IN SRV 0 0 %d xmpp.%[1]s.", e2eHost, p.S2SPort),
		fmt.Sprintf("xmpp.%s. 60 IN A 127.0.0.1", e2eHost))

	// Another CA, trusted through watch.trust_roots.
	otherRoot := testpki.NewRoot("Other Test Root", nil)
	otherCA := otherRoot.Intermediate("Other Test Intermediate", nil)
	writeFile(t, filepath.Join(dir, "other-root.pem"), testpki.PEM(otherRoot.Cert), 0o644)

	const secret = "e2e-webhook-hmac-secret-0123456789"
	writeFile(t, filepath.Join(dir, "webhook.secret"), []byte(secret+"\n"), 0o600)
	hook := newWebhookReceiver(t, []byte(secret))

	cfgFile := filepath.Join(dir, "xmppcert.toml")
	writeFile(t, cfgFile, []byte(fmt.Sprintf(`[[host]]
domain = %q

[watch]
interval = "1h"
timeout = "10s"
resolver = %q
trust_roots = ["other-root.pem"]

[[alert.webhook]]
url = %q
hmac_secret_file = "webhook.secret"
`, e2eHost, dns.Addr, hook.URL+"/xmppcert")), 0o600)

	listen := freeAddr(t)
	d := startDaemonProc(t, bin, daemonOptions{listen: listen}, "--state-dir", state, "--config", cfgFile, "daemon")

	// The daemon sweeps once at start.
	first := d.waitLog(t, regexp.MustCompile(`msg="sweep done" targets=2 full_scans=\d+ observations=2 changed=2 alerts=(\d+) failed=0`))
	hook.expect(t, "start", atoi(t, first[1]), on(changes.FirstSeen, changes.Info))
	authenticated(t, endpointList(t, listen), "the embedded CA")

	steps := []struct {
		name   string
		change func(t *testing.T)
		want   []wantAlert
	}{
		{"renew --force (the lineage's announced next key)", func(t *testing.T) {
			if r := runBin(t, bin, "--state-dir", state, "renew", "--force", "--lineage", e2eHost); r.code != 0 || !strings.Contains(r.stdout, e2eHost+": renewed version 2") {
				t.Fatalf("renew: exit %d; want version 2\n%s%s", r.code, r.stdout, r.stderr)
			}
			srv.reload(leafOf(t, live(state, e2eHost, "cert.pem")))
		}, on(changes.RenewalNextKey, changes.Info)},
		{"same key, a certificate the lineage did not issue", func(t *testing.T) {
			key, err := acme.ReadKey(live(state, e2eHost, "privkey.pem"))
			if err != nil {
				t.Fatal(err)
			}
			srv.swap(newPastIssuer(t, state, time.Now().Add(-time.Hour), 90*day), key)
		}, on(changes.RenewalSameKey, changes.Info)},
		{"new key, same CA", func(t *testing.T) {
			srv.swap(newPastIssuer(t, state, time.Now().Add(-time.Hour), 90*day), newKey(t))
		}, append(on(changes.KeyChanged, changes.Critical), on(changes.ServedForeign, changes.Critical)...)},
		{"same key, another CA", func(t *testing.T) {
			srv.swap(&pastIssuer{inter: otherCA.Cert, key: otherCA.Key, notBefore: time.Now().Add(-time.Hour), lifetime: 90 * day}, srv.key)
		}, append(append(on(changes.RenewalSameKey, changes.Info), on(changes.IssuerChanged, changes.Warning)...), on(changes.ServedForeign, changes.Critical)...)},
		{"s2s_require_encryption off", func(t *testing.T) {
			srv.requireS2SEncryption(false)
		}, []wantAlert{{changes.StartTLSNotRequired, changes.Warning, xmppaddr.ServiceServer}}},
	}
	for _, s := range steps {
		s.change(t)
		res := d.sweep(t)
		if res.Targets != 2 || res.Observations != 2 || len(res.Failed) != 0 {
			t.Fatalf("%s: the sweep probed %d targets, observed %d endpoints, failed %q; want 2, 2, none\n%s", s.name, res.Targets, res.Observations, res.Failed, d.logs.String())
		}
		hook.expect(t, s.name, res.Alerts, s.want)
	}

	checkDashboard(t, listen)

	d.stop(t)
	hook.expectNoMore(t)
	t.Logf("end to end in %v", time.Since(start).Round(time.Millisecond))
}

// checkDashboard asserts what an operator sees after the steps: both
// endpoints authenticated by their certificate (the embedded CA's and
// then the trust_roots CA's), the warning banner, each row carrying the
// unacknowledged-change warning with its most severe surprise, and each
// endpoint page every change in its history.
func checkDashboard(t *testing.T, listen string) {
	t.Helper()
	eps := endpointList(t, listen)
	authenticated(t, eps, "watch.trust_roots")
	page := httpGet(t, "http://"+listen+"/")
	if !strings.Contains(page, "⚠ Unacknowledged changes on 2 endpoints") {
		t.Errorf("the dashboard has no warning banner for both endpoints:\n%s", page)
	}
	rows := regexp.MustCompile(`(?s)<tr class="row-([a-z]+)" data-id="([0-9a-f]+)">(.*?)</tr>`).FindAllStringSubmatch(page, -1)
	if len(rows) != 2 {
		t.Fatalf("the dashboard shows %d endpoint rows, want 2:\n%s", len(rows), page)
	}
	for _, ep := range eps {
		changed := []string{"unexpected key change", "issuer changed"}
		if ep.Endpoint.Service == xmppaddr.ServiceServer {
			changed = append(changed, "STARTTLS no longer required")
		}
		i := slices.IndexFunc(rows, func(r []string) bool { return r[2] == ep.ID })
		if i < 0 {
			t.Errorf("no dashboard row for %s", ep.Key)
			continue
		}
		if rows[i][1] != "critical" {
			t.Errorf("the row of %s is marked %q, want critical (an unexpected key change)", ep.Key, rows[i][1])
		}
		// The row shows the most severe changes and links to all of them.
		for _, w := range []string{"unexpected key change", "unacknowledged changes", "Review and acknowledge all"} {
			if !strings.Contains(rows[i][3], w) {
				t.Errorf("the dashboard row of %s does not show %q:\n%s", ep.Key, w, rows[i][3])
			}
		}
		detail := httpGet(t, "http://"+listen+"/endpoint/"+ep.ID)
		for _, w := range append(changed, `id="unacknowledged"`, "⚠ Unacknowledged changes", "not acknowledged", "certificate renewed with the pre-announced next key", "first seen") {
			if !strings.Contains(detail, w) {
				t.Errorf("the page of %s does not show %q", ep.Key, w)
			}
		}
	}
}

// endpointList is GET /api/endpoints; there must be the two endpoints.
func endpointList(t *testing.T, listen string) []web.EndpointStatus {
	t.Helper()
	var list struct {
		Endpoints []web.EndpointStatus `json:"endpoints"`
	}
	if err := json.Unmarshal([]byte(httpGet(t, "http://"+listen+"/api/endpoints")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Endpoints) != 2 {
		t.Fatalf("the API lists %d endpoints, want 2: %+v", len(list.Endpoints), list.Endpoints)
	}
	return list.Endpoints
}

// authenticated fails unless every endpoint is authenticated by its
// certificate, which only the trust anchor named by what makes valid.
func authenticated(t *testing.T, eps []web.EndpointStatus, what string) {
	t.Helper()
	for _, ep := range eps {
		if !ep.Latest.Valid || !slices.Contains(ep.AuthenticatedBy, "certificate") {
			t.Errorf("%s: valid %v, authenticated by %q; want its certificate, trusted through %s", ep.Key, ep.Latest.Valid, ep.AuthenticatedBy, what)
		}
	}
}

// prosodyCerts swaps the certificate Prosody finds in its certificates
// directory and reloads it.
type prosodyCerts struct {
	t   *testing.T
	p   *testxmpp.Prosody
	dir string
	key crypto.Signer // the key of the last swap
}

// swap installs a certificate for the host from iss with key, as an
// operator copying files by hand would, and reloads Prosody.
func (s *prosodyCerts) swap(iss acme.Issuer, key crypto.Signer) {
	t := s.t
	t.Helper()
	req, err := acme.NewRequest(e2eHost, xmppaddr.RoleHost, nil, acme.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := iss.Issue(context.Background(), req, key)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// Written in place: the files keep the owner and mode the deploy
	// gave them (the key readable by the prosody user alone).
	writeFile(t, filepath.Join(s.dir, e2eHost+".crt"), testpki.PEM(issued.Chain...), 0o644)
	writeFile(t, filepath.Join(s.dir, e2eHost+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	s.key = key
	s.reload(issued.Leaf())
}

// reload has Prosody read its configuration and certificates again
// (through the admin shell, which waits for it) and waits until both
// endpoints present leaf.
func (s *prosodyCerts) reload(leaf *x509.Certificate) {
	s.t.Helper()
	s.shell("config", "reload")
	s.await(leaf)
}

// requireS2SEncryption rewrites s2s_require_encryption and reloads the
// configuration and mod_tls, which reads it when it loads.
func (s *prosodyCerts) requireS2SEncryption(on bool) {
	t := s.t
	t.Helper()
	cfg, err := os.ReadFile(s.p.Config)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^s2s_require_encryption = (true|false)$`)
	if !re.Match(cfg) {
		t.Fatalf("no s2s_require_encryption line in %s", s.p.Config)
	}
	writeFile(t, s.p.Config, re.ReplaceAll(cfg, []byte(fmt.Sprintf("s2s_require_encryption = %t", on))), 0o644)
	s.shell("config", "reload")
	s.shell("module", "reload", "tls")
	st, err := testxmpp.OpenStream(context.Background(), s.p.S2SAddr, testxmpp.StreamOptions{Server: true, To: e2eHost, From: "remote.example", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if st.Features.StartTLSRequired != on {
		t.Fatalf("after the reload s2s STARTTLS required is %v, want %v: %s\n%s", st.Features.StartTLSRequired, on, st.Features.Raw, s.p.Log())
	}
}

// shell runs a command in Prosody's admin shell.
func (s *prosodyCerts) shell(args ...string) {
	s.t.Helper()
	out, err := s.p.Prosodyctl(append([]string{"shell"}, args...)...)
	if err != nil || !strings.Contains(out, "OK") {
		s.t.Fatalf("prosodyctl shell %s: %v\n%s\n%s", strings.Join(args, " "), err, out, s.p.Log())
	}
}

// await waits until the c2s and s2s ports present leaf after STARTTLS.
func (s *prosodyCerts) await(leaf *x509.Certificate) {
	t := s.t
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c2s := startTLSLeaf(t, s.p.C2SAddr, e2eHost, false)
		s2s := startTLSLeaf(t, s.p.S2SAddr, e2eHost, true)
		if c2s.Equal(leaf) && s2s.Equal(leaf) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prosody does not present the new certificate (serial %s) after the reload: c2s %s, s2s %s\n%s", leaf.SerialNumber, c2s.SerialNumber, s2s.SerialNumber, s.p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// expect waits (for up to 20 s) until n more alerts have arrived and
// fails unless they are exactly want, in any order.
func (a *webhookReceiver) expect(t *testing.T, step string, n int, want []wantAlert) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got []alert.Event
	for {
		a.mu.Lock()
		if len(a.events)-a.taken >= n {
			got = slices.Clone(a.events[a.taken : a.taken+n])
			a.taken += n
		}
		a.mu.Unlock()
		if got != nil || n == 0 {
			break
		}
		if time.Now().After(deadline) {
			a.mu.Lock()
			arrived := slices.Clone(a.events[a.taken:])
			a.mu.Unlock()
			t.Fatalf("%s: %d of %d alerts arrived within 20s: %v", step, len(arrived), n, arrived)
		}
		time.Sleep(20 * time.Millisecond)
	}
	count := func(list []wantAlert) map[string]int {
		m := map[string]int{}
		for _, w := range list {
			m[w.String()]++
		}
		return m
	}
	have := make([]wantAlert, len(got))
	for i, ev := range got {
		have[i] = wantAlert{ev.Kind, ev.Severity, ev.Endpoint.Service}
		if ev.Endpoint.Domain != e2eHost || ev.Endpoint.Host != "xmpp."+e2eHost || ev.EndpointKey != ev.Endpoint.String() || ev.Resent {
			t.Errorf("%s: alert %s on endpoint %q (%+v), resent %v; want a first alert on xmpp.%s", step, have[i], ev.EndpointKey, ev.Endpoint, ev.Resent, e2eHost)
		}
	}
	if g, w := count(have), count(want); !maps.Equal(g, w) {
		var texts []string
		for _, ev := range got {
			texts = append(texts, fmt.Sprintf("%s %s %s: %s", ev.Endpoint.Service, ev.Kind, ev.Severity, ev.Text))
		}
		t.Errorf("%s: alerts\n\t%s\nwant %v", step, strings.Join(texts, "\n\t"), want)
	} else {
		t.Logf("%s: %v", step, have)
	}
}

// expectNoMore fails when alerts arrived that no step expected.
func (a *webhookReceiver) expectNoMore(t *testing.T) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if extra := a.events[a.taken:]; len(extra) > 0 {
		t.Errorf("alerts no step expected: %+v", extra)
	}
}

// leafOf returns the first certificate of a PEM file.
func leafOf(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	certs, err := certfile.Read(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

// newKey returns a fresh ECDSA P-256 key.
func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// atoi parses a decimal number or fails the test.
func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
