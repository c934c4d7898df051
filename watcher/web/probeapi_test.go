package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// probed is a ProbeNow that records what it was asked and answers a
// successful probe of one endpoint over TLS 1.3.
type probed struct {
	mu    sync.Mutex
	calls []string
}

func (p *probed) probe(_ context.Context, domain string, svc xmppaddr.Service, directTLS bool) probe.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	call := domain + " " + string(svc)
	if directTLS {
		call += " direct-tls"
	}
	p.calls = append(p.calls, call)
	return probe.Result{Domain: domain, Service: svc, OK: true, DurationMS: 1250, Endpoints: []probe.Endpoint{{
		OK: true, TLS: &probe.TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", Chain: []probe.Certificate{
			{SHA256: "ab12", NotAfter: t0.Add(90 * 24 * time.Hour)},
			{SHA256: "cd34", NotAfter: t0.Add(30 * 24 * time.Hour)},
		}},
		Dialback: &probe.Dialback{Offered: true, AfterTLS: true},
	}}}
}

// TestProbeAPI: /probe answers the blackbox exporter's modules (and
// xmppcert's own) with a probe of the target in the exposition format
// Prometheus and prosodyctl read, refuses unknown modules and targets
// that are not XMPP domains, and keeps the access rules of the API.
func TestProbeAPI(t *testing.T) {
	f := newFixture(t)
	p := &probed{}
	s, _ := newServer(t, f, func(o *Options) { o.ProbeNow = p.probe })
	r := req(t, s, "GET", "/probe?module=s2s_normal&target=xmpp:Example.ORG", nil, nil)
	body := bodyOf(t, r)
	if r.StatusCode != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("status %d, %s:\n%s", r.StatusCode, r.Header.Get("Content-Type"), body)
	}
	for _, want := range []string{
		"\nprobe_success 1\n",
		"\nprobe_duration_seconds 1.25\n",
		`probe_tls_version_info{version="TLS 1.3"} 1`,
		`probe_tls_cipher_info{cipher="TLS_AES_128_GCM_SHA256"} 1`,
		`probe_ssl_last_chain_info{fingerprint_sha256="ab12"} 1`,
		"\nprobe_ssl_earliest_cert_expiry " + sci(t0.Add(30*24*time.Hour).Unix()) + "\n",
		"\nxmppcert_dialback_offered 1\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("no %q in:\n%s", want, body)
		}
	}
	req(t, s, "GET", "/probe?module=xmpps-client&target=example.org", nil, nil).Body.Close()
	if got := strings.Join(p.calls, ", "); got != "example.org xmpp-server, example.org xmpp-client direct-tls" {
		t.Errorf("probed %s", got)
	}
	for _, bad := range []string{"/probe?module=http_2xx&target=xmpp:example.org", "/probe?module=c2s_normal_auth&target=xmpp:exa%20mple.org", "/probe?module=c2s_normal_auth"} {
		if r := req(t, s, "GET", bad, nil, nil); r.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, r.StatusCode)
		}
	}
	if r := req(t, s, "GET", "/probe?module=s2s_normal&target=xmpp:example.org", nil, withRemote(nil, "192.0.2.7:5000")); r.StatusCode != http.StatusForbidden {
		t.Errorf("non-loopback client without a token: status %d, want 403", r.StatusCode)
	}
	if len(p.calls) != 2 {
		t.Errorf("refused requests were probed: %v", p.calls)
	}
}

// TestProbeAPILimits: a client past its burst gets 429 with Retry-After
// (the server's clock stands still, so nothing refills) while another
// client is still served, and probes beyond the concurrency bound get
// 503 instead of piling up.
func TestProbeAPILimits(t *testing.T) {
	f := newFixture(t)
	p := &probed{}
	now := t0
	s, _ := newServer(t, f, func(o *Options) {
		o.ProbeNow = p.probe
		o.Now = func() time.Time { return now }
	})
	const url = "/probe?module=c2s_normal_auth&target=xmpp:example.org"
	for i := range probeBurst {
		if r := req(t, s, "GET", url, nil, nil); r.StatusCode != http.StatusOK {
			t.Fatalf("request %d of the burst: status %d", i+1, r.StatusCode)
		}
	}
	r := req(t, s, "GET", url, nil, nil)
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Errorf("past the burst: status %d, Retry-After %q; want 429 with Retry-After", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if r := req(t, s, "GET", url, nil, map[string]string{"RemoteAddr": "127.0.0.2:40000"}); r.StatusCode != http.StatusOK {
		t.Errorf("another client: status %d, want 200", r.StatusCode)
	}
	now = now.Add(probeEvery)
	if r := req(t, s, "GET", url, nil, nil); r.StatusCode != http.StatusOK {
		t.Errorf("one interval later: status %d, want 200", r.StatusCode)
	}
	if r := req(t, s, "GET", url, nil, nil); r.StatusCode != http.StatusTooManyRequests {
		t.Errorf("twice in that interval: status %d, want 429", r.StatusCode)
	}

	// Past the concurrency bound requests wait for a running probe, up
	// to probeQueue of them and within their scrape's time.
	release := make(chan struct{})
	started := make(chan struct{}, probeConcurrency+probeQueue)
	s, _ = newServer(t, f, func(o *Options) {
		o.ProbeNow = func(ctx context.Context, domain string, svc xmppaddr.Service, directTLS bool) probe.Result {
			started <- struct{}{}
			<-release
			return probe.Result{}
		}
	})
	statuses := make(chan int, probeConcurrency+probeQueue)
	var wg sync.WaitGroup
	for i := range probeConcurrency + probeQueue {
		wg.Go(func() {
			remote := fmt.Sprintf("127.0.1.%d:40000", i+1)
			r := req(t, s, "GET", url, nil, map[string]string{"RemoteAddr": remote})
			r.Body.Close()
			statuses <- r.StatusCode
		})
	}
	for range probeConcurrency {
		<-started
	}
	for s.probes.waiting.Load() < probeQueue {
		time.Sleep(time.Millisecond)
	}
	begin := time.Now()
	if r := req(t, s, "GET", url, nil, map[string]string{"RemoteAddr": "127.0.2.1:40000"}); r.StatusCode != http.StatusServiceUnavailable || time.Since(begin) > time.Second {
		t.Errorf("with %d probes running and %d waiting: status %d after %v, want 503 at once", probeConcurrency, probeQueue, r.StatusCode, time.Since(begin))
	}
	close(release)
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != http.StatusOK {
			t.Errorf("a request that waited for a probe: status %d, want 200", st)
		}
	}

	// A wait that outlasts the scrape's time is a 503 too.
	for len(started) > 0 {
		<-started // the waiters' probes
	}
	release = make(chan struct{})
	defer close(release)
	for i := range probeConcurrency {
		go req(t, s, "GET", url, nil, map[string]string{"RemoteAddr": fmt.Sprintf("127.0.3.%d:40000", i+1)})
	}
	for range probeConcurrency {
		<-started
	}
	begin = time.Now()
	r = req(t, s, "GET", url, nil, map[string]string{"RemoteAddr": "127.0.4.1:40000", "X-Prometheus-Scrape-Timeout-Seconds": "1.6"})
	if waited := time.Since(begin); r.StatusCode != http.StatusServiceUnavailable || waited < time.Second {
		t.Errorf("waiting past a 1.6 s scrape: status %d after %v, want 503 after about 1.1 s", r.StatusCode, waited)
	}
}

// TestScrapeTimeout: the probe gets what Prometheus grants the scrape,
// less half a second, never more than the cap.
func TestScrapeTimeout(t *testing.T) {
	for hdr, want := range map[string]time.Duration{"": probeMaxTimeout, "10": 9500 * time.Millisecond, "600": probeMaxTimeout, "junk": probeMaxTimeout, "0.5": probeMaxTimeout} {
		r, _ := http.NewRequest("GET", "/probe", nil)
		if hdr != "" {
			r.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", hdr)
		}
		if got := scrapeTimeout(r); got != want {
			t.Errorf("header %q: %v, want %v", hdr, got, want)
		}
	}
}

// TestCheckAPI: POST /api/v1/check/{service} with {"target": DOMAIN}
// answers {"success": ...} as observe.jabber.network does, wants JSON,
// and refuses unknown services and targets that are not domains.
func TestCheckAPI(t *testing.T) {
	f := newFixture(t)
	p := &probed{}
	s, _ := newServer(t, f, func(o *Options) { o.ProbeNow = p.probe })
	jsonCT := map[string]string{"Content-Type": "application/json"}
	r := req(t, s, "POST", "/api/v1/check/xmpp-server", strings.NewReader(`{"target": "example.org"}`), jsonCT)
	var got map[string]any
	if body := bodyOf(t, r); r.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil || len(got) != 1 || got["success"] != true {
		t.Errorf("status %d: %s", r.StatusCode, body)
	}
	for _, tc := range []struct {
		path, body string
		hdr        map[string]string
		want       int
	}{
		{"/api/v1/check/xmpp-server", `{"target": "example.org"}`, nil, http.StatusForbidden},
		{"/api/v1/check/s2s_normal", `{"target": "example.org"}`, jsonCT, http.StatusNotFound},
		{"/api/v1/check/xmpp-client", `{"target": "exa mple.org"}`, jsonCT, http.StatusBadRequest},
		{"/api/v1/check/xmpp-client", `target=example.org`, jsonCT, http.StatusBadRequest},
	} {
		if r := req(t, s, "POST", tc.path, strings.NewReader(tc.body), tc.hdr); r.StatusCode != tc.want {
			t.Errorf("%s %s: status %d, want %d", tc.path, tc.body, r.StatusCode, tc.want)
		}
	}
	if got := strings.Join(p.calls, ", "); got != "example.org xmpp-server" {
		t.Errorf("probed %s", got)
	}
}

// TestProbeAPILint: what /probe answers passes Prometheus' own
// promtool, as a blackbox multi-target scrape reads it.
func TestProbeAPILint(t *testing.T) {
	promtool := testtool.Require(t, "promtool", "prometheus")
	f := newFixture(t)
	p := &probed{}
	s, _ := newServer(t, f, func(o *Options) { o.ProbeNow = p.probe })
	for _, module := range []string{"s2s_normal", "c2s_normal_auth"} {
		body := bodyOf(t, req(t, s, "GET", "/probe?module="+module+"&target=xmpp:example.org", nil, nil))
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("%s: promtool check metrics: %v\n%s\n%s", module, err, out, body)
		}
	}
}
