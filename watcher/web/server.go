package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/probe"
)

// Store is the part of *history.Store the server reads: endpoint keys,
// each endpoint's current entry and its history, newest first.
type Store interface {
	// Endpoints lists the keys (watcher.EndpointKey.String()) of every
	// recorded endpoint.
	Endpoints() ([]string, error)
	// Latest returns the endpoint's current entry, nil when unknown.
	Latest(key string) (*history.Entry, error)
	// History returns up to limit entries, newest first.
	History(key string, limit int) ([]history.Entry, error)
}

// Options configure New. Only Store is required.
type Options struct {
	// Store is the history the watcher records into (a *history.Store).
	Store Store
	// Context returns what the operator expects of an endpoint (our own
	// current and next keys, certificates we issued, pinned keys) so that
	// our own renewals are told from surprises. Its Now and
	// LastReachable are ignored; the server sets them. Nil means an empty
	// Context: every new key then counts as unexpected.
	Context func(watcher.EndpointKey) changes.Context
	// Probe returns the endpoint's latest probe result (for the manifesto
	// grade and the DANE and POSH verdicts), or nil when the daemon has
	// none (after a restart, before the first sweep). May be nil.
	Probe func(key string) *probe.Endpoint
	// Acks records acknowledgements; nil means a new MemoryAcks.
	Acks Acks
	// Health says whether the daemon is doing its work: an error turns
	// /healthz into 503 with the error's text, which anyone may read (so
	// it holds no path or secret). Nil means always healthy.
	Health func() error
	// POSHRoot returns the web root whose .well-known/posh/SERVICE.json
	// documents are served to requests for host (the Host header, lower
	// case, without port), or "" for none. Nil serves no POSH documents
	// (404).
	POSHRoot func(host string) string
	// Token, when set, is required of every request except /healthz,
	// /crl and POSH documents (as a Bearer token or the Basic password); when
	// empty only loopback clients are answered. Never logged or shown.
	Token string
	// AllowedHosts are further Host header names (without port) that a
	// token-less server answers besides localhost and loopback IPs: a
	// defence against DNS rebinding. Not used when Token is set.
	AllowedHosts []string
	// Registry is where the server registers its metrics collector and
	// what /metrics serves; nil means a new registry with only the
	// server's metrics.
	Registry *prometheus.Registry
	// Logger receives refusals and acknowledgements; nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock (expiry, days left); nil means time.Now.
	Now func() time.Time
	// Lineages returns the certificates the daemon keeps, for the
	// dashboard's certificates table; nil shows none.
	Lineages func() []Lineage
	// CRL, when set, serves the embedded CA's certificate revocation list
	// at /crl, to anyone (like /healthz and POSH: it is public data).
	CRL http.Handler
	// HistoryLimit bounds the entries an endpoint page shows and the API
	// returns; zero means 200.
	HistoryLimit int
	// Sweep, when set, probes every watched endpoint now and returns
	// what it did (the daemon's SweepResult), for POST /api/sweep; its
	// result is answered as JSON. Nil means no such route (404).
	Sweep func(ctx context.Context) (any, error)
	// ProbeNow, when set, serves GET /probe: a probe of any XMPP domain
	// now, answered in the Prometheus exposition format as the blackbox
	// exporter answers, and POST /api/v1/check/{service} as
	// observe.jabber.network answers (probeapi.go). Nil means no such
	// routes (404).
	ProbeNow ProbeFunc
	// Cluster, on a cluster node, makes the dashboard and /metrics show
	// every live member's endpoints, asked of each member with Token;
	// nil shows this node's only.
	Cluster *Cluster
}

// Server is the daemon's HTTP handler. It is safe for concurrent use.
type Server struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	mux     *http.ServeMux
	reg     *prometheus.Registry
	tokenH  [32]byte
	csrfKey []byte
	cop     *http.CrossOriginProtection
	pages   map[string]*template.Template
	allowed map[string]bool
	probes  *probeLimits
	// scrapeMu is held while /metrics gathers; nodeScope, under it, has
	// the scrape leave out the other members' endpoints.
	scrapeMu  sync.Mutex
	nodeScope bool
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

// New returns a Server for opts. It registers the metrics collector in
// opts.Registry and fails when that registry already has one with the
// same metric names.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("web: Options.Store is required")
	}
	s := &Server{opts: opts, log: opts.Logger, now: opts.Now, reg: opts.Registry, cop: http.NewCrossOriginProtection()}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.opts.Acks == nil {
		s.opts.Acks = NewMemoryAcks()
	}
	if s.opts.HistoryLimit <= 0 {
		s.opts.HistoryLimit = 200
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	if opts.Token != "" {
		s.tokenH = sha256.Sum256([]byte(opts.Token))
	}
	s.csrfKey = make([]byte, 32)
	if _, err := rand.Read(s.csrfKey); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	s.allowed = map[string]bool{}
	for _, h := range opts.AllowedHosts {
		s.allowed[strings.ToLower(strings.TrimSuffix(h, "."))] = true
	}
	var err error
	if s.pages, err = parseTemplates(); err != nil {
		return nil, err
	}
	if err := s.reg.Register(newCollector(s)); err != nil {
		return nil, fmt.Errorf("web: registering metrics: %w", err)
	}

	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.opts.Health != nil {
			if err := s.opts.Health(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, "unhealthy: "+err.Error()+"\n")
				return
			}
		}
		io.WriteString(w, "ok\n")
	})
	m.HandleFunc("GET /.well-known/posh/{name}", s.handlePOSH)
	if opts.CRL != nil {
		m.Handle("GET /crl", opts.CRL)
	}
	m.Handle("GET /metrics", s.metricsHandler())
	m.HandleFunc("GET /{$}", s.handleDashboard)
	m.HandleFunc("GET /endpoint/{id}", s.handleEndpointPage)
	m.HandleFunc("GET /lineages", s.handleLineages)
	m.HandleFunc("GET /api/endpoints", s.handleAPIList)
	m.HandleFunc("GET /api/endpoints/{id}", s.handleAPIEndpoint)
	m.HandleFunc("POST /api/endpoints/{id}/ack", s.handleAck)
	m.HandleFunc("POST /api/ack", s.handleAckAll)
	if opts.Sweep != nil {
		m.HandleFunc("POST /api/sweep", s.handleSweep)
	}
	if opts.ProbeNow != nil {
		s.probes = newProbeLimits()
		m.HandleFunc("GET /probe", s.handleProbe)
		m.HandleFunc("POST /api/v1/check/{service}", s.handleCheck)
	}
	m.HandleFunc("GET /static/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(styleCSS)
	})
	s.mux = m
	return s, nil
}

// ServeHTTP sets the security headers, applies the access policy (see
// the package documentation) and routes the request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if !public(r.URL.Path) {
		if status, reason := s.authorize(r); status != 0 {
			s.refuse(w, r, status, reason)
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

// public reports whether path is served without the access policy.
func public(path string) bool {
	return path == "/healthz" || path == "/crl" || strings.HasPrefix(path, "/.well-known/posh/")
}

// authorize applies the access policy; status 0 means allowed.
func (s *Server) authorize(r *http.Request) (status int, reason string) {
	if s.opts.Token != "" {
		if s.tokenOK(r) {
			return 0, ""
		}
		if r.Header.Get("Authorization") == "" {
			return http.StatusUnauthorized, "no token"
		}
		return http.StatusUnauthorized, "wrong token"
	}
	if !loopbackClient(r.RemoteAddr) {
		return http.StatusForbidden, "non-loopback client and no token configured"
	}
	if !s.hostAllowed(r.Host) {
		return http.StatusForbidden, "Host header is not a loopback name (DNS rebinding?)"
	}
	return 0, ""
}

// tokenOK reports whether r carries the token, as a Bearer token or as
// the Basic password.
func (s *Server) tokenOK(r *http.Request) bool {
	cand, ok := bearer(r)
	if !ok {
		_, cand, ok = r.BasicAuth()
	}
	if !ok {
		return false
	}
	h := sha256.Sum256([]byte(cand))
	return subtle.ConstantTimeCompare(h[:], s.tokenH[:]) == 1
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	a := r.Header.Get("Authorization")
	const p = "bearer "
	if len(a) <= len(p) || !strings.EqualFold(a[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(a[len(p):]), true
}

// loopbackClient reports whether the connection came from a loopback
// address.
func loopbackClient(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// hostAllowed reports whether a token-less server answers a request for
// hostport: localhost, *.localhost, a loopback IP or an AllowedHosts
// name.
func (s *Server) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || s.allowed[host] {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// refuse answers a refused request and logs why, without any header.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, reason string) {
	s.log.Warn("web: request refused", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "status", status, "reason", reason)
	if status == http.StatusUnauthorized {
		w.Header().Add("WWW-Authenticate", `Bearer realm="xmppcert"`)
		w.Header().Add("WWW-Authenticate", `Basic realm="xmppcert", charset="UTF-8"`)
	}
	msg := reason
	switch {
	case status == http.StatusUnauthorized:
		msg = "this server needs its token: send Authorization: Bearer TOKEN (or the token as the Basic password)"
	case reason == "non-loopback client and no token configured":
		msg = "this server answers loopback clients only: configure a token to reach it from elsewhere"
	}
	http.Error(w, http.StatusText(status)+": "+msg, status)
}

// csrfToken is the acknowledge form's token for endpoint id: an HMAC
// under the per-server key, so that the key itself never leaves.
func (s *Server) csrfToken(id string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	io.WriteString(m, "ack\x00"+id)
	return hex.EncodeToString(m.Sum(nil))
}

// find returns the key of the endpoint with the given ID, or "".
func (s *Server) find(id string) (string, error) {
	if len(id) != 24 {
		return "", nil
	}
	keys, err := s.opts.Store.Endpoints()
	if err != nil {
		return "", err
	}
	for _, k := range keys {
		if ID(k) == id {
			return k, nil
		}
	}
	return "", nil
}

// context returns Options.Context for the endpoint of key.
func (s *Server) context(e watcher.EndpointKey) changes.Context {
	if s.opts.Context == nil {
		return changes.Context{}
	}
	return s.opts.Context(e)
}

// maxWindow bounds how many entries the status of one endpoint
// classifies when many changes are unacknowledged.
const maxWindow = 50

// status builds the EndpointStatus of key, and with detail its history.
// It returns nil for an endpoint that has no entry.
func (s *Server) status(key string, detail bool) (*EndpointDetail, error) {
	latest, err := s.opts.Store.Latest(key)
	if err != nil || latest == nil {
		return nil, err
	}
	acked, err := s.opts.Acks.Acked(key)
	if err != nil {
		return nil, err
	}
	var entries []history.Entry
	if detail {
		entries, err = s.opts.Store.History(key, s.opts.HistoryLimit)
	} else {
		n := 1
		if latest.Seq > acked {
			n = int(min(latest.Seq-acked, maxWindow)) + 1
		}
		entries = []history.Entry{*latest}
		if n > 1 {
			entries, err = s.opts.Store.History(key, n)
			// A change across an outage is judged against the last
			// reachable entry, which may be older than the window.
			if err == nil && len(entries) > 1 && hasUnreachable(entries[1:]) {
				entries, err = s.opts.Store.History(key, s.opts.HistoryLimit)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return nil, nil
	}
	now := s.now()
	ctx := s.context(latest.Endpoint)
	items := classify(entries, ctx, acked)
	cur := entries[0]
	cctx := ctx
	cctx.Now, cctx.LastReachable = now, nil
	d := &EndpointDetail{EndpointStatus: EndpointStatus{
		ID: ID(key), Key: key, Endpoint: cur.Endpoint, Latest: cur, AckedSeq: acked,
		Unacknowledged: unacknowledged(items, acked),
		Conditions:     changes.Classify(&cur.Observation, cur.Observation, cctx),
		Encryption:     encryption(cur.Observation),
		CertDaysLeft:   daysLeft(leafOf(cur.Observation).NotAfter, now),
		NeverReachable: neverReachable(entries),
		OurCertificate: cur.OurCertificate(),
	}}
	if d.Conditions == nil {
		d.Conditions = []changes.Change{}
	}
	var pe *probe.Endpoint
	if s.opts.Probe != nil {
		pe = s.opts.Probe(key)
	}
	d.AuthenticatedBy = authenticatedBy(cur.Observation, pe)
	if pe != nil {
		d.PinsKnown = true
		g := pe.Grade
		d.Grade = &g
		secs := pe.Timings.Total / 1000
		d.ProbeSeconds = &secs
	}
	if detail {
		d.History = items
	}
	return d, nil
}

// neverReachable reports whether es (newest first) holds the endpoint's
// whole history, its first entry included, and no entry reached it.
func neverReachable(es []history.Entry) bool {
	return len(es) > 0 && es[len(es)-1].Seq == 1 && !slices.ContainsFunc(es, func(e history.Entry) bool { return e.Reachable })
}

func hasUnreachable(es []history.Entry) bool {
	for _, e := range es {
		if !e.Reachable {
			return true
		}
	}
	return false
}

// Statuses returns the status of every endpoint, in key order: what GET
// /api/endpoints answers, for a caller that reads the history itself.
func (s *Server) Statuses() ([]EndpointStatus, error) {
	keys, err := s.opts.Store.Endpoints()
	if err != nil {
		return nil, err
	}
	out := make([]EndpointStatus, 0, len(keys))
	for _, k := range keys {
		d, err := s.status(k, false)
		if err != nil {
			return nil, err
		}
		if d != nil {
			out = append(out, d.EndpointStatus)
		}
	}
	return out, nil
}

// HistoryStatuses reads the history file at path read-only, waiting at
// most timeout for a daemon's lock on it, and returns what GET
// /api/endpoints would answer from it: for a command that no daemon
// answered. A missing file is an fs.ErrNotExist, a lock held past
// timeout a history.ErrLocked.
func HistoryStatuses(path string, timeout time.Duration) ([]EndpointStatus, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	st, err := history.Open(path, history.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	srv, err := New(Options{Store: st, Acks: st, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	return srv.Statuses()
}

// serverError logs err and answers 500 without its text: errors may
// name files and peer data that the client need not see.
func (s *Server) serverError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("web: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	http.Error(w, "internal error: see the daemon's log", http.StatusInternalServerError)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// handleAPIList is GET /api/endpoints.
func (s *Server) handleAPIList(w http.ResponseWriter, r *http.Request) {
	st, err := s.Statuses()
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"endpoints": st})
}

// handleAPIEndpoint is GET /api/endpoints/{id}.
func (s *Server) handleAPIEndpoint(w http.ResponseWriter, r *http.Request) {
	d, ok := s.lookup(w, r, true, false)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// lookup finds the endpoint of the request's {id} and answers 404 (as
// JSON or HTML) when there is none.
func (s *Server) lookup(w http.ResponseWriter, r *http.Request, detail, html bool) (*EndpointDetail, bool) {
	key, err := s.find(r.PathValue("id"))
	var d *EndpointDetail
	if err == nil && key != "" {
		d, err = s.status(key, detail)
	}
	if err != nil {
		s.serverError(w, r, err)
		return nil, false
	}
	if d == nil {
		if html {
			http.Error(w, "no such endpoint: see the list at /", http.StatusNotFound)
		} else {
			jsonError(w, http.StatusNotFound, "no such endpoint: GET /api/endpoints lists them")
		}
		return nil, false
	}
	return d, true
}

// handleAck is POST /api/endpoints/{id}/ack. The body is JSON
// {"seq": N} or a form with seq and csrf; seq is the newest entry the
// operator has seen (0 or absent in JSON: the current entry). A form
// post is answered with a redirect to the endpoint page, JSON with
// {"id", "key", "acked_seq"}.
func (s *Server) handleAck(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.cop.Check(r); err != nil {
		s.refuse(w, r, http.StatusForbidden, "cross-origin request")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	_, hasBearer := bearer(r)
	var seq uint64
	form := false
	switch ct {
	case "application/json":
		var body struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			jsonError(w, http.StatusBadRequest, "body is not JSON {\"seq\": N}: "+err.Error())
			return
		}
		seq = body.Seq
	case "application/x-www-form-urlencoded", "multipart/form-data":
		form = true
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		if !hasBearer && !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.csrfToken(id))) {
			s.refuse(w, r, http.StatusForbidden, "missing or wrong CSRF form token")
			return
		}
		var err error
		if seq, err = strconv.ParseUint(r.PostFormValue("seq"), 10, 64); err != nil {
			http.Error(w, "the form lacks the entry to acknowledge (seq)", http.StatusBadRequest)
			return
		}
	default:
		if !hasBearer {
			s.refuse(w, r, http.StatusForbidden, "acknowledge with a JSON body or the page's form")
			return
		}
	}
	d, ok := s.lookup(w, r, false, form)
	if !ok {
		return
	}
	switch {
	case seq == 0:
		seq = d.Latest.Seq
	case seq > d.Latest.Seq:
		msg := fmt.Sprintf("entry %d does not exist yet: the newest is %d", seq, d.Latest.Seq)
		if form {
			http.Error(w, msg, http.StatusConflict)
		} else {
			jsonError(w, http.StatusConflict, msg)
		}
		return
	}
	if err := s.opts.Acks.Ack(d.Key, seq); err != nil {
		s.serverError(w, r, err)
		return
	}
	s.log.Info("web: changes acknowledged", "endpoint", d.Key, "seq", seq, "remote", r.RemoteAddr)
	if form {
		http.Redirect(w, r, "/endpoint/"+d.ID, http.StatusSeeOther)
		return
	}
	acked, _ := s.opts.Acks.Acked(d.Key)
	writeJSON(w, http.StatusOK, map[string]any{"id": d.ID, "key": d.Key, "acked_seq": acked})
}

// AckAllResult is the answer to POST /api/ack: the endpoints
// acknowledged, and those left with changes above the severity.
type AckAllResult struct {
	Acknowledged []string `json:"acknowledged"`
	Left         []string `json:"left"`
}

// handleAckAll is POST /api/ack: it acknowledges every endpoint whose
// unacknowledged changes are all of at most the given severity (JSON
// {"severity": "info"}, or the dashboard's form with its CSRF token), up
// to its latest entry, and leaves the others, so that expected renewals
// need no acknowledgement one endpoint at a time while a warning or a
// critical change waits to be read.
func (s *Server) handleAckAll(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	form := ct == "application/x-www-form-urlencoded"
	var sev changes.Severity
	if form {
		if err := s.cop.Check(r); err != nil {
			s.refuse(w, r, http.StatusForbidden, "cross-origin request")
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		if _, hasBearer := bearer(r); !hasBearer && !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.csrfToken(ackAllID))) {
			s.refuse(w, r, http.StatusForbidden, "missing or wrong CSRF form token")
			return
		}
		sev = changes.Severity(r.PostFormValue("severity"))
	} else {
		if !s.formlessPOST(w, r, "acknowledge") {
			return
		}
		var body struct {
			Severity changes.Severity `json:"severity"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			jsonError(w, http.StatusBadRequest, "body is not JSON {\"severity\": \"info\"}: "+err.Error())
			return
		}
		sev = body.Severity
	}
	if sev.Rank() == 0 {
		jsonError(w, http.StatusBadRequest, fmt.Sprintf("severity %q: give info, warning or critical", sev))
		return
	}
	st, err := s.Statuses()
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	res := AckAllResult{Acknowledged: []string{}, Left: []string{}}
	for _, e := range st {
		if len(e.Unacknowledged) == 0 {
			continue
		}
		if slices.ContainsFunc(e.Unacknowledged, func(c ChangeAt) bool { return c.Severity.Rank() > sev.Rank() }) {
			res.Left = append(res.Left, e.ID)
			continue
		}
		if err := s.opts.Acks.Ack(e.Key, e.Latest.Seq); err != nil {
			s.serverError(w, r, err)
			return
		}
		res.Acknowledged = append(res.Acknowledged, e.ID)
	}
	s.log.Info("web: changes acknowledged", "severity", string(sev), "endpoints", len(res.Acknowledged), "left", len(res.Left), "remote", r.RemoteAddr)
	if form {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// ackAllID is what the dashboard's acknowledge-all form's CSRF token is
// made for; no endpoint ID has its length.
const ackAllID = "all"

// handleSweep is POST /api/sweep: one sweep at once, answered with
// Options.Sweep's result. Like an acknowledgement it passes the
// cross-origin check and needs a JSON content type or a Bearer header, so
// that a form on another site cannot start probes; the body is ignored.
// The sweep runs to its end even when the client goes away: probes cut
// short would be recorded as unreachable endpoints.
func (s *Server) handleSweep(w http.ResponseWriter, r *http.Request) {
	if !s.formlessPOST(w, r, "start a sweep") {
		return
	}
	s.log.Info("web: sweep requested", "remote", r.RemoteAddr)
	res, err := s.opts.Sweep(context.WithoutCancel(r.Context()))
	if err != nil {
		s.log.Error("web: requested sweep failed", "err", err)
		jsonError(w, http.StatusInternalServerError, "the sweep failed: see the daemon's log")
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// formlessPOST applies the rules for a POST that has no form (see the
// package documentation, "Security"): Go's cross-origin protection, then
// a JSON content type or a bearer token. It answers a refusal itself,
// saying to do what with a JSON content type, and returns false.
func (s *Server) formlessPOST(w http.ResponseWriter, r *http.Request, what string) bool {
	if err := s.cop.Check(r); err != nil {
		s.refuse(w, r, http.StatusForbidden, "cross-origin request")
		return false
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if _, hasBearer := bearer(r); ct != "application/json" && !hasBearer {
		s.refuse(w, r, http.StatusForbidden, what+" with Content-Type: application/json")
		return false
	}
	return true
}

// slogPrinter adapts a slog.Logger to promhttp's ErrorLog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Error("web: metrics", "err", fmt.Sprint(v...)) }

// metricsHandler serves /metrics: on a cluster node every member's
// endpoints, or with ?scope=node this node's own only (README, "Cluster
// mode": a cluster watching tens of thousands of endpoints is scraped
// node by node). Scrapes take turns.
func (s *Server) metricsHandler() http.Handler {
	h := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{s.log}})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scope := r.URL.Query().Get("scope")
		if scope != "" && scope != "node" && scope != "cluster" {
			http.Error(w, "scope is node or cluster", http.StatusBadRequest)
			return
		}
		s.scrapeMu.Lock()
		defer s.scrapeMu.Unlock()
		s.nodeScope = scope == "node"
		h.ServeHTTP(w, r)
	})
}
