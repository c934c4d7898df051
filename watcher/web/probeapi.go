package web

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// ProbeFunc probes domain for the service now, the way the daemon's
// sweeps do, and returns the result without recording it.
type ProbeFunc func(ctx context.Context, domain string, svc xmppaddr.Service, directTLS bool) probe.Result

// probeModule is what a /probe module asks for.
type probeModule struct {
	service   xmppaddr.Service
	directTLS bool
}

// probeModules are the modules /probe answers: the names the XMPP
// blackbox exporter uses, which `prosodyctl check connectivity` asks for
// (c2s_normal_auth, s2s_normal), and xmppcert's own for each service and
// transport.
var probeModules = map[string]probeModule{
	"c2s_normal_auth": {xmppaddr.ServiceClient, false},
	"s2s_normal":      {xmppaddr.ServiceServer, false},
	"xmpp-client":     {xmppaddr.ServiceClient, false},
	"xmpp-server":     {xmppaddr.ServiceServer, false},
	"xmpps-client":    {xmppaddr.ServiceClient, true},
	"xmpps-server":    {xmppaddr.ServiceServer, true},
}

// Bounds of the /probe API: probes running at once, requests waiting for
// one of them (within their scrape timeout), and each client's rate (a
// burst, then one probe per interval: 300 a minute, enough for a
// Prometheus scraping a hundred XMPP targets at once and a few hundred a
// minute from one address, not for using the daemon to hammer a third
// party).
const (
	probeConcurrency = 8
	probeQueue       = 64
	probeBurst       = 100
	probeEvery       = 200 * time.Millisecond
	// probeMaxTimeout caps the time a scrape may grant a probe.
	probeMaxTimeout = 60 * time.Second
	// probeClients bounds the per-client limiters kept; past it the
	// idle ones are dropped.
	probeClients = 4096
)

// probeLimits bound the /probe API: a slot per running probe and a rate
// limiter per client address.
type probeLimits struct {
	slots   chan struct{}
	waiting atomic.Int32 // requests waiting for a slot
	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

func newProbeLimits() *probeLimits {
	return &probeLimits{slots: make(chan struct{}, probeConcurrency), clients: map[string]*rate.Limiter{}}
}

// allow reports whether the client at remoteAddr may start a probe at
// now.
func (l *probeLimits) allow(remoteAddr string, now time.Time) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.clients[host]
	if !ok {
		if len(l.clients) >= probeClients {
			for k, v := range l.clients {
				if v.TokensAt(now) >= probeBurst {
					delete(l.clients, k) // full again: nothing to remember
				}
			}
		}
		if len(l.clients) >= probeClients {
			return false
		}
		lim = rate.NewLimiter(rate.Every(probeEvery), probeBurst)
		l.clients[host] = lim
	}
	return lim.AllowN(now, 1)
}

// handleProbe answers GET /probe?module=M&target=xmpp:DOMAIN as the
// Prometheus blackbox exporter answers its own /probe: a probe of the
// target now, in the Prometheus exposition format, with probe_success,
// probe_duration_seconds and the TLS and certificate series of the
// endpoint a peer would use (the first in SRV order that completed TLS,
// else the first).
func (s *Server) handleProbe(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	m, ok := probeModules[q.Get("module")]
	if !ok {
		http.Error(w, "unknown module: use one of c2s_normal_auth, s2s_normal, xmpp-client, xmpp-server, xmpps-client, xmpps-server", http.StatusBadRequest)
		return
	}
	domain, err := xmppaddr.CanonicalDomain(strings.TrimPrefix(q.Get("target"), "xmpp:"))
	if err != nil {
		http.Error(w, "target must be xmpp:DOMAIN: "+err.Error(), http.StatusBadRequest)
		return
	}
	res, ok := s.probeNow(w, r, domain, m)
	if !ok {
		return
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(probeCollector{res})
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}}).ServeHTTP(w, r)
}

// handleCheck answers POST /api/v1/check/{service} with a JSON body
// {"target": DOMAIN} as observe.jabber.network's API does, with
// {"success": true|false}: service is xmpp-client, xmpp-server,
// xmpps-client or xmpps-server. Like POST /api/sweep it wants a JSON
// content type (or a bearer token), which a cross-site form cannot send.
func (s *Server) handleCheck(w http.ResponseWriter, r *http.Request) {
	if !s.formlessPOST(w, r, "send the check") {
		return
	}
	m, ok := probeModules[r.PathValue("service")]
	if !ok || !strings.HasPrefix(r.PathValue("service"), "xmpp") {
		jsonError(w, http.StatusNotFound, "unknown check: use xmpp-client, xmpp-server, xmpps-client or xmpps-server")
		return
	}
	var body struct {
		Target string `json:"target"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxCheckBody)).Decode(&body); err != nil {
		jsonError(w, http.StatusBadRequest, `the body must be {"target": "DOMAIN"}`)
		return
	}
	domain, err := xmppaddr.CanonicalDomain(body.Target)
	if err != nil {
		jsonError(w, http.StatusBadRequest, "target: "+err.Error())
		return
	}
	res, ok := s.probeNow(w, r, domain, m)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"success": res.OK})
}

// maxCheckBody bounds the body of a check request.
const maxCheckBody = 4 << 10

// probeNow runs ProbeNow for the request within the client's rate and
// the concurrency bound, waiting for a running probe to end when all are
// busy (the scrape's time covers the wait and the probe); when the rate
// refuses, probeQueue requests wait already or the wait outlasts the
// scrape, it answers the request (429 or 503, with Retry-After) and
// returns false.
func (s *Server) probeNow(w http.ResponseWriter, r *http.Request, domain string, m probeModule) (probe.Result, bool) {
	if !s.probes.allow(r.RemoteAddr, s.now()) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many probes from this client: try again later", http.StatusTooManyRequests)
		return probe.Result{}, false
	}
	ctx, cancel := context.WithTimeout(r.Context(), scrapeTimeout(r))
	defer cancel()
	if !s.probes.acquire(ctx) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many probes running: try again later", http.StatusServiceUnavailable)
		return probe.Result{}, false
	}
	defer func() { <-s.probes.slots }()
	return s.opts.ProbeNow(ctx, domain, m.service, m.directTLS), true
}

// acquire takes a probe slot, waiting for one while ctx lasts unless
// probeQueue requests wait already; it reports whether it got one.
func (l *probeLimits) acquire(ctx context.Context) bool {
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	defer l.waiting.Add(-1)
	if l.waiting.Add(1) > probeQueue {
		return false
	}
	select {
	case l.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// scrapeTimeout is the time Prometheus grants the scrape (its
// X-Prometheus-Scrape-Timeout-Seconds header) less half a second to
// answer in, capped at probeMaxTimeout, which is also the default.
func scrapeTimeout(r *http.Request) time.Duration {
	secs, err := strconv.ParseFloat(r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"), 64)
	if err != nil || secs <= 1 {
		return probeMaxTimeout
	}
	return min(time.Duration((secs-0.5)*float64(time.Second)), probeMaxTimeout)
}

var (
	descProbeSuccess  = prometheus.NewDesc("probe_success", "Whether the probe succeeded: every endpoint reached, TLS established and the certificate valid for the domain.", nil, nil)
	descProbeDuration = prometheus.NewDesc("probe_duration_seconds", "How long the probe took, in seconds.", nil, nil)
	descProbeTLS      = prometheus.NewDesc("probe_tls_version_info", "The TLS version negotiated, as the version label.", []string{"version"}, nil)
	descProbeCipher   = prometheus.NewDesc("probe_tls_cipher_info", "The cipher suite negotiated, as the cipher label.", []string{"cipher"}, nil)
	descProbeExpiry   = prometheus.NewDesc("probe_ssl_earliest_cert_expiry", "Earliest notAfter of the presented chain, in Unix seconds.", nil, nil)
	descProbeChain    = prometheus.NewDesc("probe_ssl_last_chain_info", "The presented leaf certificate, by its SHA-256 fingerprint.", []string{"fingerprint_sha256"}, nil)
	descProbeDialback = prometheus.NewDesc("xmppcert_dialback_offered", "Whether the s2s endpoint offers Server Dialback after TLS.", nil, nil)
)

// probeCollector exposes one on-demand probe's result.
type probeCollector struct{ res probe.Result }

// Describe sends every series' description.
func (c probeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProbeSuccess, descProbeDuration, descProbeTLS, descProbeCipher, descProbeExpiry, descProbeChain, descProbeDialback} {
		ch <- d
	}
}

// Collect sends the result's series.
func (c probeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	gauge(descProbeSuccess, b2f(c.res.OK))
	gauge(descProbeDuration, c.res.DurationMS/1000)
	ep := usedEndpoint(c.res.Endpoints)
	if ep == nil || ep.TLS == nil {
		return
	}
	gauge(descProbeTLS, 1, ep.TLS.Version)
	gauge(descProbeCipher, 1, ep.TLS.Cipher)
	if len(ep.TLS.Chain) > 0 {
		earliest := ep.TLS.Chain[0].NotAfter
		for _, cert := range ep.TLS.Chain[1:] {
			if cert.NotAfter.Before(earliest) {
				earliest = cert.NotAfter
			}
		}
		gauge(descProbeExpiry, float64(earliest.Unix()))
		gauge(descProbeChain, 1, ep.TLS.Chain[0].SHA256)
	}
	if ep.Dialback != nil {
		gauge(descProbeDialback, b2f(ep.Dialback.AfterTLS))
	}
}

// usedEndpoint is the endpoint a peer would use: the first that
// completed TLS, else the first; nil when there is none.
func usedEndpoint(eps []probe.Endpoint) *probe.Endpoint {
	for i := range eps {
		if eps[i].TLS != nil {
			return &eps[i]
		}
	}
	if len(eps) > 0 {
		return &eps[0]
	}
	return nil
}
