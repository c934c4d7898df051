package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	certA = "aaaa000000000000000000000000000000000000000000000000000000000001"
	certB = "bbbb000000000000000000000000000000000000000000000000000000000002"
	certC = "cccc000000000000000000000000000000000000000000000000000000000003"
	keyA  = "ca11000000000000000000000000000000000000000000000000000000000001"
	keyB  = "ca22000000000000000000000000000000000000000000000000000000000002"
	inter = "1111000000000000000000000000000000000000000000000000000000000001"

	hostile = `<script>alert("x")</script>`
)

// healthy is a good s2s observation of domain whose leaf is cert with
// key spki, expiring 60 days after t0.
func healthy(domain string, svc xmppaddr.Service, addr, cert, spki string, at time.Time) watcher.Observation {
	return watcher.Observation{
		Endpoint:  watcher.EndpointKey{Domain: domain, Service: svc, Host: "xmpp." + domain, Port: 5269, Address: addr},
		At:        at,
		Reachable: true,
		Chain: []watcher.CertSummary{
			{SHA256: cert, SPKISHA256: spki, Subject: "CN=" + domain, Issuer: "CN=R10,O=Let's Encrypt", NotAfter: t0.Add(60 * 24 * time.Hour)},
			{SHA256: inter, SPKISHA256: "i1", Subject: "CN=R10,O=Let's Encrypt", Issuer: "CN=ISRG Root X1", NotAfter: t0.Add(400 * 24 * time.Hour)},
		},
		Valid:            true,
		Matched:          []string{"DNS-ID " + domain},
		TLSVersion:       "TLS 1.3",
		Cipher:           "TLS_AES_128_GCM_SHA256",
		Group:            "X25519",
		ForwardSecret:    true,
		StartTLSRequired: true,
		Dialback:         svc == xmppaddr.ServiceServer,
	}
}

// fixture is a history with three endpoints: example.org (s2s) whose key
// changed unexpectedly, example.net (c2s) presenting a hostile subject,
// and down.example, unreachable.
type fixture struct {
	store                   *history.Store
	keyOrg, keyNet, keyDown string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	st, err := history.Open(filepath.Join(t.TempDir(), "history.db"), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	org1 := healthy("example.org", xmppaddr.ServiceServer, "192.0.2.10:5269", certA, keyA, t0)
	org2 := healthy("example.org", xmppaddr.ServiceServer, "192.0.2.10:5269", certB, keyB, t0.Add(time.Hour))
	net1 := healthy("example.net", xmppaddr.ServiceClient, "192.0.2.20:5222", certC, keyA, t0)
	net1.Chain[0].Subject = "CN=" + hostile
	net1.Matched = []string{"DNS-ID " + hostile}
	net1.StartTLSRequired = false
	down := watcher.Observation{
		Endpoint: watcher.EndpointKey{Domain: "down.example", Service: xmppaddr.ServiceServer, Host: "down.example", Port: 5269, Address: "192.0.2.30:5269"},
		At:       t0, Failure: "connect-refused",
	}
	for _, o := range []watcher.Observation{org1, org2, net1, down} {
		if _, _, err := st.Record(o); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{store: st, keyOrg: org1.Endpoint.String(), keyNet: net1.Endpoint.String(), keyDown: down.Endpoint.String()}
}

func newServer(t testing.TB, f *fixture, mod func(*Options)) (*Server, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	opts := Options{
		Store:  f.store,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Now:    func() time.Time { return t0.Add(2 * time.Hour) },
		Probe: func(key string) *probe.Endpoint {
			if key != f.keyOrg {
				return nil
			}
			return &probe.Endpoint{Grade: probe.Grade{Verdict: probe.StatusPass, Summary: "meets the manifesto"}, Timings: probe.Timings{Total: 1250}}
		},
	}
	if mod != nil {
		mod(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

// req sends a request from remote (default a loopback client) to s and
// returns the response.
func req(t testing.TB, s http.Handler, method, target string, body io.Reader, hdr map[string]string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(method, target, body)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Host = "127.0.0.1:8080"
	for k, v := range hdr {
		switch k {
		case "RemoteAddr":
			r.RemoteAddr = v
		case "Host":
			r.Host = v
		default:
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w.Result()
}

func bodyOf(t testing.TB, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHealthz(t *testing.T) {
	var unhealthy error
	s, _ := newServer(t, newFixture(t), func(o *Options) {
		o.Token = "tok"
		o.Health = func() error { return unhealthy }
	})
	for _, remote := range []string{"127.0.0.1:1", "198.51.100.7:1"} {
		r := req(t, s, "GET", "/healthz", nil, map[string]string{"RemoteAddr": remote})
		if b := bodyOf(t, r); r.StatusCode != 200 || b != "ok\n" {
			t.Errorf("%s: /healthz = %d %q", remote, r.StatusCode, b)
		}
	}
	unhealthy = errors.New("the history cannot be written")
	r := req(t, s, "GET", "/healthz", nil, map[string]string{"RemoteAddr": "198.51.100.7:1"})
	if b := bodyOf(t, r); r.StatusCode != 503 || b != "unhealthy: the history cannot be written\n" {
		t.Errorf("unhealthy: /healthz = %d %q", r.StatusCode, b)
	}
}

func TestLoopbackOnlyWithoutToken(t *testing.T) {
	s, logs := newServer(t, newFixture(t), nil)
	for _, tc := range []struct {
		remote, host string
		want         int
	}{
		{"127.0.0.1:5000", "127.0.0.1:8080", 200},
		{"[::1]:5000", "[::1]:8080", 200},
		{"127.0.0.1:5000", "localhost:8080", 200},
		{"[::ffff:127.0.0.1]:5000", "127.0.0.1", 200},
		{"192.0.2.99:5000", "127.0.0.1:8080", 403},
		{"[2001:db8::1]:5000", "127.0.0.1:8080", 403},
		{"10.0.0.1:5000", "localhost", 403},
		// DNS rebinding: a loopback connection for someone else's name.
		{"127.0.0.1:5000", "attacker.example:8080", 403},
	} {
		for _, path := range []string{"/", "/api/endpoints", "/metrics", "/endpoint/" + ID(newFixtureKeyOrg)} {
			r := req(t, s, "GET", path, nil, map[string]string{"RemoteAddr": tc.remote, "Host": tc.host})
			if r.StatusCode != tc.want && !(tc.want == 200 && r.StatusCode == 404) {
				t.Errorf("%s from %s for Host %s: %d, want %d", path, tc.remote, tc.host, r.StatusCode, tc.want)
			}
		}
	}
	// A bearer token does not open a server that has none.
	r := req(t, s, "GET", "/", nil, map[string]string{"RemoteAddr": "192.0.2.99:1", "Authorization": "Bearer anything"})
	if r.StatusCode != 403 {
		t.Errorf("remote with a token on a token-less server: %d", r.StatusCode)
	}
	if !strings.Contains(logs.String(), "request refused") {
		t.Errorf("refusals not logged: %s", logs)
	}
	if strings.Contains(logs.String(), "anything") {
		t.Errorf("the presented credential was logged: %s", logs)
	}
}

// newFixtureKeyOrg is example.org's key in every fixture.
var newFixtureKeyOrg = watcher.EndpointKey{Domain: "example.org", Service: xmppaddr.ServiceServer, Host: "xmpp.example.org", Port: 5269, Address: "192.0.2.10:5269"}.String()

func TestToken(t *testing.T) {
	const token = "s3cret-Token-Value-4711"
	s, logs := newServer(t, newFixture(t), func(o *Options) { o.Token = token })
	paths := []string{"/", "/api/endpoints", "/api/endpoints/" + ID(newFixtureKeyOrg), "/endpoint/" + ID(newFixtureKeyOrg), "/metrics", "/static/style.css"}
	for _, remote := range []string{"198.51.100.7:1234", "127.0.0.1:1234"} {
		for _, p := range paths {
			for _, tc := range []struct {
				name string
				hdr  map[string]string
				want int
			}{
				{"none", nil, 401},
				{"wrong bearer", map[string]string{"Authorization": "Bearer nope"}, 401},
				{"prefix of the token", map[string]string{"Authorization": "Bearer " + token[:5]}, 401},
				{"bearer", map[string]string{"Authorization": "Bearer " + token}, 200},
				{"bearer, lower case scheme", map[string]string{"Authorization": "bearer " + token}, 200},
				{"basic password", map[string]string{"Authorization": "Basic " + basic("admin", token)}, 200},
				{"basic wrong", map[string]string{"Authorization": "Basic " + basic(token, "x")}, 401},
			} {
				tc.hdr = withRemote(tc.hdr, remote)
				r := req(t, s, "GET", p, nil, tc.hdr)
				b := bodyOf(t, r)
				if r.StatusCode != tc.want {
					t.Errorf("%s %s from %s: %d, want %d", tc.name, p, remote, r.StatusCode, tc.want)
				}
				if r.StatusCode == 401 && len(r.Header.Values("WWW-Authenticate")) == 0 {
					t.Errorf("401 without a challenge")
				}
				if strings.Contains(b, token) {
					t.Errorf("%s %s: the token appears in the response", tc.name, p)
				}
			}
		}
	}
	if strings.Contains(logs.String(), token) || strings.Contains(logs.String(), "nope") {
		t.Errorf("a credential was logged:\n%s", logs)
	}
}

func basic(user, pass string) string {
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth(user, pass)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

func withRemote(h map[string]string, remote string) map[string]string {
	out := map[string]string{"RemoteAddr": remote}
	for k, v := range h {
		out[k] = v
	}
	return out
}

func TestSecurityHeaders(t *testing.T) {
	s, _ := newServer(t, newFixture(t), nil)
	for _, p := range []string{"/", "/api/endpoints", "/endpoint/" + ID(newFixtureKeyOrg), "/metrics", "/nonexistent"} {
		r := req(t, s, "GET", p, nil, nil)
		h := r.Header
		if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: security headers missing: %v", p, h)
		}
		if h.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q", p, h.Get("Cache-Control"))
		}
	}
	r := req(t, s, "GET", "/api/endpoints", nil, nil)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("API content type %q", ct)
	}
}

func TestDashboard(t *testing.T) {
	f := newFixture(t)
	s, _ := newServer(t, f, nil)
	r := req(t, s, "GET", "/", nil, nil)
	b := bodyOf(t, r)
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("dashboard: %d %s", r.StatusCode, r.Header.Get("Content-Type"))
	}
	if strings.Contains(b, "<script") || strings.Contains(b, `alert("x")`) {
		t.Errorf("hostile subject not escaped:\n%s", b)
	}
	if !strings.Contains(b, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Errorf("hostile subject not shown escaped")
	}
	for _, want := range []string{
		"Unacknowledged changes on 1 endpoint",
		"unexpected key change: ca11000000000000… -&gt; ca22000000000000…",
		"example.org", "example.net", "down.example", "unreachable", "connect-refused",
		"STARTTLS (required)", "STARTTLS (optional)",
		"certificate, dialback", // example.org authenticated by
		"DANE/POSH: not checked",
		"TLS 1.3", "TLS_AES_128_GCM_SHA256",
		"CN=example.org", // the leaf's subject; the issuer is on the endpoint page
		"BB:BB:00:00…",   // the short fingerprint
		"59.9 days left",
		`<span class="grade grade-pass" title="meets the manifesto">pass</span>`,
		// The summary strip: 3 endpoints, 2 reached (and authenticated), 2
		// with warnings (a key change, one never reached), 1 graded pass.
		`<span class="n">3</span> endpoints`, `<span class="n">2</span> encrypted`, `<span class="n">2</span> authenticated`,
		`<span class="n">2</span> with warnings`, `<span class="n">1</span> manifesto pass`,
		`href="/endpoint/` + ID(f.keyOrg) + `"`,
	} {
		if !strings.Contains(b, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	if n := strings.Count(b, "<tr class=\"row-"); n != 3 {
		t.Errorf("%d rows, want 3", n)
	}
	if strings.Contains(b, "<script") || regexp.MustCompile(`(?i)<script|javascript:`).MatchString(b) {
		t.Errorf("page has script")
	}
}

// TestLineagesPage: the certificates page says by which rule each
// lineage renews, a revoked one's included, and lists its problems.
func TestLineagesPage(t *testing.T) {
	f := newFixture(t)
	s, _ := newServer(t, f, func(o *Options) {
		o.Lineages = func() []Lineage {
			return []Lineage{
				{Name: "ari.example", Version: 2, NotAfter: t0.Add(60 * 24 * time.Hour), RenewAt: t0.Add(30 * 24 * time.Hour), Rule: "ari"},
				{Name: "lifetime.example", Version: 1, NotAfter: t0.Add(60 * 24 * time.Hour), RenewAt: t0.Add(30 * 24 * time.Hour), Rule: "lifetime"},
				{Name: "revoked.example", Version: 3, NotAfter: t0.Add(60 * 24 * time.Hour), RenewAt: t0, Rule: "revoked",
					Problems: []string{"version 3 was revoked (keyCompromise) at 2026-01-01 00:00 UTC and is still current"}},
			}
		}
	})
	b := bodyOf(t, req(t, s, "GET", "/lineages", nil, nil))
	for name, want := range map[string]string{
		"ari.example":      "the CA's renewal window",
		"lifetime.example": "a third of the lifetime left",
		"revoked.example":  "the current version was revoked",
	} {
		i := strings.Index(b, `data-lineage="`+name+`"`)
		row, _, _ := strings.Cut(b[max(i, 0):], "</tr>")
		if i < 0 || !strings.Contains(row, want) {
			t.Errorf("%s's row lacks %q:\n%s", name, want, row)
		}
	}
	if !strings.Contains(b, "version 3 was revoked (keyCompromise)") {
		t.Errorf("the revoked lineage's problem is not shown:\n%s", b)
	}
}

func TestEndpointPage(t *testing.T) {
	f := newFixture(t)
	s, _ := newServer(t, f, nil)
	r := req(t, s, "GET", "/endpoint/"+ID(f.keyOrg), nil, nil)
	b := bodyOf(t, r)
	if r.StatusCode != 200 {
		t.Fatalf("%d", r.StatusCode)
	}
	for _, want := range []string{
		"Unacknowledged changes", "Acknowledge changes up to entry 2",
		`name="csrf" value="` + s.csrfToken(ID(f.keyOrg)) + `"`,
		`id="entry-2"`, `id="entry-1"`,
		"first seen: certificate aaaa000000000000…",
		"certificate SHA-256", certA, certB, "key (SPKI SHA-256)",
		"Manifesto grade",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Index(b, `id="entry-2"`) > strings.Index(b, `id="entry-1"`) {
		t.Errorf("history is not newest first")
	}
	for _, p := range []string{"/endpoint/" + strings.Repeat("0", 24), "/endpoint/nope", "/api/endpoints/" + strings.Repeat("0", 24)} {
		if r := req(t, s, "GET", p, nil, nil); r.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, r.StatusCode)
		}
	}
	// The hostile endpoint's page escapes too.
	b = bodyOf(t, req(t, s, "GET", "/endpoint/"+ID(f.keyNet), nil, nil))
	if strings.Contains(b, "<script") {
		t.Errorf("hostile subject not escaped on the endpoint page")
	}
}

func TestAPI(t *testing.T) {
	f := newFixture(t)
	s, _ := newServer(t, f, nil)
	r := req(t, s, "GET", "/api/endpoints", nil, nil)
	raw := bodyOf(t, r)
	if strings.Contains(raw, "<script") {
		t.Errorf("JSON carries a raw <script>")
	}
	var list struct{ Endpoints []EndpointStatus }
	if err := json.Unmarshal([]byte(raw), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Endpoints) != 3 {
		t.Fatalf("%d endpoints", len(list.Endpoints))
	}
	byKey := map[string]EndpointStatus{}
	for _, e := range list.Endpoints {
		byKey[e.Key] = e
		if e.ID != ID(e.Key) {
			t.Errorf("id %s for %s", e.ID, e.Key)
		}
	}
	org := byKey[f.keyOrg]
	if len(org.Unacknowledged) != 1 || org.Unacknowledged[0].Kind != changes.KeyChanged || org.Unacknowledged[0].Seq != 2 || org.Grade == nil {
		t.Errorf("example.org: %+v", org)
	}
	if n := byKey[f.keyNet]; len(n.Unacknowledged) != 0 || n.Latest.Seq != 1 {
		t.Errorf("example.net: first observation counted as a change: %+v", n.Unacknowledged)
	}
	if d := byKey[f.keyDown]; d.Encryption != "no" || len(d.AuthenticatedBy) != 0 {
		t.Errorf("down.example: %+v", d)
	}

	var det EndpointDetail
	if err := json.Unmarshal([]byte(bodyOf(t, req(t, s, "GET", "/api/endpoints/"+ID(f.keyOrg), nil, nil))), &det); err != nil {
		t.Fatal(err)
	}
	if len(det.History) != 2 || det.History[0].Seq != 2 || len(det.History[0].Diff) == 0 || det.History[1].Changes[0].Kind != changes.FirstSeen {
		t.Errorf("detail: %+v", det.History)
	}
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	s, _ := newServer(t, f, nil)
	b := bodyOf(t, req(t, s, "GET", "/metrics", nil, nil))
	org := `domain="example.org",host="xmpp.example.org",port="5269",service="xmpp-server",transport="starttls"`
	org = `address="192.0.2.10:5269",` + org
	notAfter := t0.Add(60 * 24 * time.Hour).Unix()
	for _, want := range []string{
		"probe_success{" + org + "} 1",
		"probe_ssl_earliest_cert_expiry{" + org + "} " + sci(notAfter),
		`probe_tls_version_info{` + org + `,version="TLS 1.3"} 1`,
		"xmppcert_dialback_offered{" + org + "} 1",
		`probe_tls_cipher_info{` + strings.Replace(org, `,domain=`, `,cipher="TLS_AES_128_GCM_SHA256",domain=`, 1) + `} 1`,
		"xmppcert_certificate_remaining_seconds{" + org + "} " + sci(int64(60*24*time.Hour/time.Second-2*3600)),
		"xmppcert_starttls_required{" + org + "} 1",
		"xmppcert_forward_secret{" + org + "} 1",
		`xmppcert_changes_unacknowledged{` + strings.Replace(org, `,transport=`, `,severity="warning",transport=`, 1) + `} 1`,
		`xmppcert_changes_unacknowledged{` + strings.Replace(org, `,transport=`, `,severity="critical",transport=`, 1) + `} 0`,
		`probe_success{address="192.0.2.30:5269",domain="down.example"`,
		`xmppcert_starttls_required{address="192.0.2.20:5222",domain="example.net",host="xmpp.example.net",port="5269",service="xmpp-client",transport="starttls"} 0`,
		"# HELP xmppcert_last_seen_timestamp_seconds",
		`xmppcert_manifesto_grade_info{` + strings.Replace(org, `,host=`, `,grade="pass",host=`, 1) + `} 1`,
		"probe_duration_seconds{" + org + "} 1.25",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The leaf presented last, for the usual certificate-change alert
	// (changes(probe_ssl_last_chain_info{...}) or a fingerprint join).
	chain := `probe_ssl_last_chain_info\{address="192.0.2.10:5269",domain="example.org",fingerprint_sha256="` + certB +
		`",host="xmpp.example.org",port="5269",service="xmpp-server",transport="starttls"\} 1`
	if !regexp.MustCompile(chain).MatchString(b) || strings.Contains(b, `fingerprint_sha256="`+certA+`"`) {
		t.Errorf("metrics lack the last leaf %s (or still show %s)", certB, certA)
	}
	if !regexp.MustCompile(`probe_success\{address="192.0.2.30:5269"[^}]*\} 0`).MatchString(b) {
		t.Errorf("unreachable endpoint not probe_success 0")
	}
	if strings.Contains(b, `xmppcert_manifesto_grade_info{address="192.0.2.20`) {
		t.Errorf("a grade for an endpoint whose probe result is not known")
	}
	if strings.Contains(b, `xmppcert_dialback_offered{address="192.0.2.20`) {
		t.Errorf("dialback reported for c2s")
	}
	if strings.Contains(b, "<script") {
		t.Errorf("raw peer data in metrics")
	}
}

// sci is how the Prometheus text format writes a float.
func sci(v int64) string { return strconv.FormatFloat(float64(v), 'g', -1, 64) }

func TestAckFlow(t *testing.T) {
	f := newFixture(t)
	s, logs := newServer(t, f, nil)
	id := ID(f.keyOrg)
	ack := "/api/endpoints/" + id + "/ack"
	form := func(v url.Values, hdr map[string]string) *http.Response {
		h := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
		for k, x := range hdr {
			h[k] = x
		}
		return req(t, s, "POST", ack, strings.NewReader(v.Encode()), h)
	}
	good := url.Values{"seq": {"2"}, "csrf": {s.csrfToken(id)}}

	for _, tc := range []struct {
		name string
		resp *http.Response
		want int
	}{
		{"no CSRF token", form(url.Values{"seq": {"2"}}, nil), 403},
		{"another endpoint's CSRF token", form(url.Values{"seq": {"2"}, "csrf": {s.csrfToken(ID(f.keyNet))}}, nil), 403},
		{"cross-site", form(good, map[string]string{"Sec-Fetch-Site": "cross-site"}), 403},
		{"foreign Origin", form(good, map[string]string{"Origin": "https://attacker.example"}), 403},
		{"text/plain", req(t, s, "POST", ack, strings.NewReader("seq=2"), map[string]string{"Content-Type": "text/plain"}), 403},
		{"remote client", form(good, map[string]string{"RemoteAddr": "192.0.2.1:9"}), 403},
		{"GET", req(t, s, "GET", ack, nil, nil), 405},
		{"future entry", req(t, s, "POST", ack, strings.NewReader(`{"seq": 3}`), map[string]string{"Content-Type": "application/json"}), 409},
		{"unknown endpoint", req(t, s, "POST", "/api/endpoints/"+strings.Repeat("ab", 12)+"/ack", strings.NewReader(`{}`), map[string]string{"Content-Type": "application/json"}), 404},
	} {
		if tc.resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, tc.resp.StatusCode, tc.want)
		}
	}
	if st := status(t, s, f.keyOrg); len(st.Unacknowledged) != 1 {
		t.Fatalf("refused acks acknowledged: %+v", st.Unacknowledged)
	}

	// The page's form, same origin: acknowledged, back to the page.
	r := form(good, map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"})
	if r.StatusCode != 303 || r.Header.Get("Location") != "/endpoint/"+id {
		t.Fatalf("form ack: %d %s", r.StatusCode, r.Header.Get("Location"))
	}
	if st := status(t, s, f.keyOrg); len(st.Unacknowledged) != 0 || st.AckedSeq != 2 {
		t.Errorf("after ack: %+v", st)
	}
	if b := bodyOf(t, req(t, s, "GET", "/", nil, nil)); strings.Contains(b, "Unacknowledged change") {
		t.Errorf("dashboard still warns after the ack")
	}
	if b := bodyOf(t, req(t, s, "GET", "/metrics", nil, nil)); strings.Contains(b, `address="192.0.2.10:5269",domain="example.org",host="xmpp.example.org",port="5269",service="xmpp-server",severity="warning",transport="starttls"} 1`) ||
		!strings.Contains(b, `xmppcert_changes_unacknowledged{address="192.0.2.10:5269",domain="example.org",host="xmpp.example.org",port="5269",service="xmpp-server",severity="warning",transport="starttls"} 0`) {
		t.Errorf("metrics after ack:\n%s", b)
	}
	if !strings.Contains(logs.String(), "changes acknowledged") {
		t.Errorf("ack not logged")
	}

	// A later change is not covered by the earlier acknowledgement.
	o := healthy("example.org", xmppaddr.ServiceServer, "192.0.2.10:5269", certB, keyB, t0.Add(3*time.Hour))
	o.StartTLSRequired = false
	if _, _, err := f.store.Record(o); err != nil {
		t.Fatal(err)
	}
	st := status(t, s, f.keyOrg)
	if len(st.Unacknowledged) != 1 || st.Unacknowledged[0].Kind != changes.StartTLSNotRequired || st.Unacknowledged[0].Seq != 3 {
		t.Fatalf("after a later change: %+v", st.Unacknowledged)
	}
	// JSON with a bearer-less loopback client and seq 0: up to the newest.
	r = req(t, s, "POST", ack, strings.NewReader(`{}`), map[string]string{"Content-Type": "application/json"})
	var res struct {
		AckedSeq uint64 `json:"acked_seq"`
	}
	json.Unmarshal([]byte(bodyOf(t, r)), &res)
	if r.StatusCode != 200 || res.AckedSeq != 3 {
		t.Errorf("JSON ack: %d %+v", r.StatusCode, res)
	}
	// Acknowledging an older entry does not bring changes back.
	req(t, s, "POST", ack, strings.NewReader(`{"seq": 1}`), map[string]string{"Content-Type": "application/json"})
	if st := status(t, s, f.keyOrg); st.AckedSeq != 3 {
		t.Errorf("ack moved back to %d", st.AckedSeq)
	}
}

func TestAckWithToken(t *testing.T) {
	f := newFixture(t)
	const token = "tkn-0123456789"
	s, _ := newServer(t, f, func(o *Options) { o.Token = token })
	ack := "/api/endpoints/" + ID(f.keyOrg) + "/ack"
	remote := "203.0.113.5:777"
	if r := req(t, s, "POST", ack, strings.NewReader(`{"seq":2}`), map[string]string{"RemoteAddr": remote, "Content-Type": "application/json"}); r.StatusCode != 401 {
		t.Errorf("without token: %d", r.StatusCode)
	}
	// A bearer client needs no CSRF token, whatever the body.
	r := req(t, s, "POST", ack, strings.NewReader("seq=2"), map[string]string{"RemoteAddr": remote, "Authorization": "Bearer " + token, "Content-Type": "application/x-www-form-urlencoded"})
	if r.StatusCode != 303 {
		t.Errorf("bearer form ack: %d %s", r.StatusCode, bodyOf(t, r))
	}
	// A browser logged in with Basic still needs the form token.
	r = req(t, s, "POST", ack, strings.NewReader("seq=2"), map[string]string{"RemoteAddr": remote, "Authorization": "Basic " + basic("x", token), "Content-Type": "application/x-www-form-urlencoded"})
	if r.StatusCode != 403 {
		t.Errorf("basic form ack without CSRF token: %d", r.StatusCode)
	}
}

// TestChangeAcrossOutage: a key that changed while the endpoint was down
// is still reported, against the last reachable observation.
func TestChangeAcrossOutage(t *testing.T) {
	f := newFixture(t)
	s, _ := newServer(t, f, nil)
	req(t, s, "POST", "/api/endpoints/"+ID(f.keyOrg)+"/ack", strings.NewReader(`{}`), map[string]string{"Content-Type": "application/json"})
	down := healthy("example.org", xmppaddr.ServiceServer, "192.0.2.10:5269", "", "", t0.Add(3*time.Hour))
	down = watcher.Observation{Endpoint: down.Endpoint, At: down.At, Failure: "timeout"}
	up := healthy("example.org", xmppaddr.ServiceServer, "192.0.2.10:5269", certA, keyA, t0.Add(4*time.Hour))
	up.Chain[0].Issuer = "CN=Other CA"
	for _, o := range []watcher.Observation{down, up} {
		if _, _, err := f.store.Record(o); err != nil {
			t.Fatal(err)
		}
	}
	kinds := map[changes.Kind]bool{}
	for _, c := range status(t, s, f.keyOrg).Unacknowledged {
		kinds[c.Kind] = true
	}
	for _, k := range []changes.Kind{changes.Unreachable, changes.Recovered, changes.KeyChanged, changes.IssuerChanged} {
		if !kinds[k] {
			t.Errorf("missing %s in %v", k, kinds)
		}
	}
}

// TestOwnRenewal: with the daemon's Context, our own pre-announced key is
// an info change, not a warning.
func TestOwnRenewal(t *testing.T) {
	f := newFixture(t)
	s, _ := newServer(t, f, func(o *Options) {
		o.Context = func(watcher.EndpointKey) changes.Context { return changes.Context{NextSPKI: []string{keyB}} }
	})
	st := status(t, s, f.keyOrg)
	if len(st.Unacknowledged) != 1 || st.Unacknowledged[0].Kind != changes.RenewalNextKey || st.Unacknowledged[0].Severity != changes.Info {
		t.Errorf("%+v", st.Unacknowledged)
	}
}

func TestConditions(t *testing.T) {
	f := newFixture(t)
	s, _ := newServer(t, f, func(o *Options) { o.Now = func() time.Time { return t0.Add(55 * 24 * time.Hour) } })
	st := status(t, s, f.keyOrg)
	if len(st.Conditions) != 1 || st.Conditions[0].Kind != changes.Expiry7d {
		t.Errorf("conditions: %+v", st.Conditions)
	}
	if b := bodyOf(t, req(t, s, "GET", "/", nil, nil)); !strings.Contains(b, "expires within 7 days") {
		t.Errorf("dashboard does not show the expiry")
	}
}

func TestPOSH(t *testing.T) {
	dir := t.TempDir()
	// Two hosts with web roots of their own; other hosts have none.
	roots := map[string]string{"example.org": filepath.Join(dir, "org"), "conference.example.org": filepath.Join(dir, "org"), "example.net": filepath.Join(dir, "net")}
	for _, r := range roots {
		os.MkdirAll(filepath.Join(r, ".well-known", "posh", "sub.json"), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "org", ".well-known", "posh", "xmpp-server.json"), []byte(`{"fingerprints":[{"sha-256":"org"}],"expires":3600}`), 0o644)
	os.WriteFile(filepath.Join(dir, "net", ".well-known", "posh", "xmpp-server.json"), []byte(`{"fingerprints":[{"sha-256":"net"}],"expires":3600}`), 0o644)
	os.WriteFile(filepath.Join(dir, "secret.json"), []byte(`SECRET`), 0o600)
	os.Symlink(filepath.Join(dir, "secret.json"), filepath.Join(dir, "org", ".well-known", "posh", "xmpp-client.json"))

	s, _ := newServer(t, newFixture(t), func(o *Options) { o.POSHRoot = func(h string) string { return roots[h] }; o.Token = "tok" })
	get := func(path, host string) (int, string) {
		r := req(t, s, "GET", path, nil, map[string]string{"RemoteAddr": "198.51.100.1:4", "Host": host})
		return r.StatusCode, bodyOf(t, r)
	}
	for host, want := range map[string]string{"Example.org:443": `"org"`, "conference.example.org": `"org"`, "example.net.": `"net"`} {
		if c, b := get("/.well-known/posh/xmpp-server.json", host); c != 200 || !strings.Contains(b, want) {
			t.Errorf("%s: %d %s", host, c, b)
		}
	}
	r := req(t, s, "GET", "/.well-known/posh/xmpp-server.json", nil, map[string]string{"Host": "example.org"})
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q", ct)
	}
	for _, p := range []string{
		"/.well-known/posh/xmpp-client.json", // symlink out of the directory
		"/.well-known/posh/..%2fsecret.json",
		"/.well-known/posh/..%2f..%2fsecret.json",
		"/.well-known/posh/%2e%2e/secret.json",
		"/.well-known/posh/../secret.json",
		"/.well-known/posh/",
		"/.well-known/posh/sub.json", // a directory
		"/.well-known/posh/example.org",
		"/.well-known/posh/nothere.json",
		"/.well-known/posh/Xmpp-Server.json",
	} {
		if c, b := get(p, "example.org"); c == 200 || strings.Contains(b, "SECRET") || strings.Contains(b, "fingerprints") {
			t.Errorf("%s: %d %q", p, c, b)
		}
	}
	// A host without a web root, and hosts that try to climb out.
	for _, host := range []string{"other.example", "127.0.0.1", "..:80", "../secret"} {
		if c, b := get("/.well-known/posh/xmpp-server.json", host); c != 404 || strings.Contains(b, "fingerprints") {
			t.Errorf("Host %q: %d %s", host, c, b)
		}
	}
	// Without POSHRoot nothing is served.
	s2, _ := newServer(t, newFixture(t), nil)
	if r := req(t, s2, "GET", "/.well-known/posh/xmpp-server.json", nil, map[string]string{"Host": "example.org"}); r.StatusCode != 404 {
		t.Errorf("no POSHRoot: %d", r.StatusCode)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a store succeeded")
	}
	f := newFixture(t)
	s, _ := newServer(t, f, nil)
	if _, err := New(Options{Store: f.store, Registry: s.reg}); err == nil {
		t.Error("two servers registered in one registry")
	}
}

func status(t testing.TB, s *Server, key string) EndpointStatus {
	t.Helper()
	var st EndpointStatus
	r := req(t, s, "GET", "/api/endpoints/"+ID(key), nil, nil)
	if err := json.Unmarshal([]byte(bodyOf(t, r)), &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestAckAll: POST /api/ack acknowledges the endpoints whose
// unacknowledged changes are all of at most the given severity and
// leaves the others; the dashboard offers it as a form for the info
// changes, with its own CSRF token; refusals as for one endpoint.
func TestAckAll(t *testing.T) {
	f := newFixture(t)
	s, _ := newServer(t, f, nil)
	// example.net renews with its key: an info change.
	net2 := healthy("example.net", xmppaddr.ServiceClient, "192.0.2.20:5222", certA, keyA, t0.Add(time.Hour))
	net2.Chain[0].Subject = "CN=" + hostile
	net2.Matched = []string{"DNS-ID " + hostile}
	net2.StartTLSRequired = false
	if _, _, err := f.store.Record(net2); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, f.keyNet); len(st.Unacknowledged) != 1 || st.Unacknowledged[0].Severity != changes.Info {
		t.Fatalf("example.net: %+v; want one info change", st.Unacknowledged)
	}
	if st := status(t, s, f.keyOrg); len(st.Unacknowledged) != 1 || st.Unacknowledged[0].Severity != changes.Warning {
		t.Fatalf("example.org: %+v; want one warning", st.Unacknowledged)
	}
	dash := bodyOf(t, req(t, s, "GET", "/", nil, nil))
	if !strings.Contains(dash, `action="/api/ack"`) || !strings.Contains(dash, `name="csrf" value="`+s.csrfToken(ackAllID)+`"`) ||
		!strings.Contains(dash, "Acknowledge the info changes of 1 endpoint</button>") {
		t.Errorf("the dashboard lacks the acknowledge-info form:\n%s", dash)
	}
	formHeaders := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for _, tc := range []struct {
		name string
		resp *http.Response
		want int
	}{
		{"form without CSRF token", req(t, s, "POST", "/api/ack", strings.NewReader("severity=info"), formHeaders), 403},
		{"form with an endpoint's token", req(t, s, "POST", "/api/ack", strings.NewReader("severity=info&csrf="+s.csrfToken(ID(f.keyNet))), formHeaders), 403},
		{"text/plain", req(t, s, "POST", "/api/ack", strings.NewReader(`{"severity":"info"}`), map[string]string{"Content-Type": "text/plain"}), 403},
		{"unknown severity", req(t, s, "POST", "/api/ack", strings.NewReader(`{"severity":"minor"}`), map[string]string{"Content-Type": "application/json"}), 400},
	} {
		if tc.resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, tc.resp.StatusCode, tc.want)
		}
	}
	if st := status(t, s, f.keyNet); len(st.Unacknowledged) != 1 {
		t.Fatalf("a refused request acknowledged: %+v", st.Unacknowledged)
	}

	r := req(t, s, "POST", "/api/ack", strings.NewReader(`{"severity": "info"}`), map[string]string{"Content-Type": "application/json"})
	var res AckAllResult
	if err := json.Unmarshal([]byte(bodyOf(t, r)), &res); err != nil || r.StatusCode != 200 ||
		!slices.Equal(res.Acknowledged, []string{ID(f.keyNet)}) || !slices.Equal(res.Left, []string{ID(f.keyOrg)}) {
		t.Fatalf("info: %d %+v %v; want example.net acknowledged, example.org left", r.StatusCode, res, err)
	}
	if len(status(t, s, f.keyNet).Unacknowledged) != 0 || len(status(t, s, f.keyOrg).Unacknowledged) != 1 {
		t.Errorf("after acknowledging the info changes: example.net %+v, example.org %+v", status(t, s, f.keyNet).Unacknowledged, status(t, s, f.keyOrg).Unacknowledged)
	}
	r = req(t, s, "POST", "/api/ack", strings.NewReader("severity=warning&csrf="+s.csrfToken(ackAllID)), formHeaders)
	if r.StatusCode != 303 || r.Header.Get("Location") != "/" || len(status(t, s, f.keyOrg).Unacknowledged) != 0 {
		t.Errorf("the form with warning: %d %s, example.org %+v", r.StatusCode, r.Header.Get("Location"), status(t, s, f.keyOrg).Unacknowledged)
	}
}

// TestNeverReachable: an endpoint no probe has reached is flagged, on
// the dashboard as a warning (not "none"), and the flag goes once a
// probe reaches it; one that was reached and went down is not flagged.
func TestNeverReachable(t *testing.T) {
	f := newFixture(t)
	s, _ := newServer(t, f, nil)
	if !status(t, s, f.keyDown).NeverReachable || status(t, s, f.keyOrg).NeverReachable || status(t, s, f.keyNet).NeverReachable {
		t.Fatalf("never reachable: down %v, org %v, net %v; want down only", status(t, s, f.keyDown).NeverReachable,
			status(t, s, f.keyOrg).NeverReachable, status(t, s, f.keyNet).NeverReachable)
	}
	if b := bodyOf(t, req(t, s, "GET", "/", nil, nil)); !strings.Contains(b, "⚠ never reachable: connect-refused") {
		t.Errorf("the dashboard does not flag down.example:\n%s", b)
	}
	up := healthy("down.example", xmppaddr.ServiceServer, "192.0.2.30:5269", certA, keyA, t0.Add(time.Hour))
	up.Endpoint = status(t, s, f.keyDown).Endpoint
	down := watcher.Observation{Endpoint: up.Endpoint, At: t0.Add(2 * time.Hour), Failure: "connect-refused"}
	for _, o := range []watcher.Observation{up, down} {
		if _, _, err := f.store.Record(o); err != nil {
			t.Fatal(err)
		}
	}
	if st := status(t, s, f.keyDown); st.NeverReachable || st.Latest.Reachable {
		t.Errorf("reached once, then down: never reachable %v, reachable %v; want neither", st.NeverReachable, st.Latest.Reachable)
	}
}
