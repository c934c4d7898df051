package web

import (
	"bytes"
	"cmp"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/probe"
)

// funcs are the template helpers. None returns template.HTML: everything
// shown is escaped.
var funcs = template.FuncMap{
	"time":     fmtTime,
	"short":    shortHex,
	"colonhex": colonHex,
	"shortfp":  shortFingerprint,
	"days":     fmtDays,
	"join":     strings.Join,
	// worst is the n most severe changes, newest first among equals: a
	// compact row shows them and links to the rest.
	"worst": func(n int, cs []ChangeAt) []ChangeAt {
		s := slices.Clone(cs)
		slices.SortStableFunc(s, func(a, b ChangeAt) int { return cmp.Compare(b.Severity.Rank(), a.Severity.Rank()) })
		return s[:min(n, len(s))]
	},
	"sevclass": func(s changes.Severity) string {
		if s == "" {
			return "ok"
		}
		return string(s)
	},
}

// parseTemplates parses each page with the shared layout.
func parseTemplates() (map[string]*template.Template, error) {
	pages := map[string]*template.Template{}
	for _, p := range []string{"dashboard.html", "endpoint.html", "lineages.html"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p)
		if err != nil {
			return nil, err
		}
		pages[p] = t
	}
	return pages, nil
}

// render executes a page into a buffer first, so that a failing template
// becomes a 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, page string, data any) {
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, page, data); err != nil {
		s.serverError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// dashboardData is what dashboard.html shows.
type dashboardData struct {
	Title     string
	Now       string
	Summary   summary
	Endpoints []nodeStatus
	Unacked   int // endpoints with unacknowledged changes
	// InfoOnly counts this node's endpoints whose unacknowledged changes
	// are all info; CSRF is the token of the form that acknowledges them.
	InfoOnly    int
	CSRF        string
	Conditioned int // endpoints with conditions
	// Node is this node's name and Cluster the members and who did not
	// answer; empty without a cluster.
	Node    string
	Cluster clusterView
}

// summary is the dashboard's strip of counts, what an operator reads
// first.
type summary struct {
	Endpoints     int
	Encrypted     int // reachable: TLS was established
	Authenticated int // by the certificate, DANE or POSH
	Warnings      int // with a warning or critical change or condition, or never reached
	Passing       int // graded pass against the manifesto
	Lineages      int
	LineagesDue   int // due for renewal or with a problem
}

// Lineage is one certificate the daemon keeps, as the certificates page
// shows it: its names, version, expiry, when it renews, what each
// deploy target holds and what the endpoints served at the last check,
// with the problems among them.
type Lineage struct {
	Name     string
	Names    []string
	Version  int
	NotAfter time.Time
	RenewAt  time.Time
	// Rule is the renewal rule: "revoked" (the current version was
	// revoked), "ari" (the CA's window) or "lifetime".
	Rule   string
	Deploy []string
	Served []string
	// Problems are what needs the operator: a failed or behind target,
	// an endpoint not serving the version, a lineage due or unreadable.
	Problems []string
}

// lineagesData is what lineages.html shows.
type lineagesData struct {
	Title    string
	Now      string
	Lineages []Lineage
}

// handleDashboard is GET /.
func (s *Server) handleDashboard(w http.ResponseWriter, r *http.Request) {
	v, err := s.view(r.Context(), true)
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	st := v.Endpoints
	// The most urgent first; key order otherwise.
	slices.SortStableFunc(st, func(a, b nodeStatus) int {
		return cmp.Compare(urgency(b.EndpointStatus), urgency(a.EndpointStatus))
	})
	now := s.now()
	d := dashboardData{Title: "xmppcert: watched endpoints", Now: fmtTime(now), Endpoints: st, CSRF: s.csrfToken(ackAllID), Cluster: v}
	if s.opts.Cluster != nil {
		d.Node = s.opts.Cluster.Node
	}
	d.Summary.Endpoints = len(st)
	for _, e := range st {
		if len(e.Unacknowledged) > 0 {
			d.Unacked++
			// The form acknowledges this node's endpoints only.
			if e.URL == "" && !slices.ContainsFunc(e.Unacknowledged, func(c ChangeAt) bool { return c.Severity != changes.Info }) {
				d.InfoOnly++
			}
		}
		if len(e.Conditions) > 0 {
			d.Conditioned++
		}
		if e.Latest.Reachable {
			d.Summary.Encrypted++
		}
		if len(e.AuthenticatedBy) > 0 {
			d.Summary.Authenticated++
		}
		if e.NeverReachable || e.Severity().Rank() >= changes.Warning.Rank() {
			d.Summary.Warnings++
		}
		if e.Grade != nil && e.Grade.Verdict == probe.StatusPass {
			d.Summary.Passing++
		}
	}
	for _, l := range s.lineages() {
		d.Summary.Lineages++
		if len(l.Problems) > 0 || !l.RenewAt.After(now) {
			d.Summary.LineagesDue++
		}
	}
	s.render(w, r, "dashboard.html", d)
}

// handleLineages is GET /lineages.
func (s *Server) handleLineages(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, "lineages.html", lineagesData{Title: "xmppcert: certificates", Now: fmtTime(s.now()), Lineages: s.lineages()})
}

// lineages are Options.Lineages' (none without it).
func (s *Server) lineages() []Lineage {
	if s.opts.Lineages == nil {
		return nil
	}
	return s.opts.Lineages()
}

// urgency orders the dashboard: unacknowledged changes by severity
// first, then conditions and endpoints never reached, then unreachable
// endpoints.
func urgency(e EndpointStatus) int {
	u := 0
	for _, c := range e.Unacknowledged {
		u = max(u, 10+c.Severity.Rank())
	}
	for _, c := range e.Conditions {
		u = max(u, 5+c.Severity.Rank())
	}
	if e.NeverReachable {
		u = max(u, 5+changes.Warning.Rank())
	}
	if u == 0 && !e.Latest.Reachable {
		u = 1
	}
	return u
}

// endpointData is what endpoint.html shows.
type endpointData struct {
	Title string
	Now   string
	*EndpointDetail
	CSRF string
}

// handleEndpointPage is GET /endpoint/{id}.
func (s *Server) handleEndpointPage(w http.ResponseWriter, r *http.Request) {
	d, ok := s.lookup(w, r, true, true)
	if !ok {
		return
	}
	s.render(w, r, "endpoint.html", endpointData{Title: "xmppcert: " + d.Key, Now: fmtTime(s.now()), EndpointDetail: d, CSRF: s.csrfToken(d.ID)})
}
