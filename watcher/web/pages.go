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
)

// funcs are the template helpers. None returns template.HTML: everything
// shown is escaped.
var funcs = template.FuncMap{
	"time":     fmtTime,
	"short":    shortHex,
	"colonhex": colonHex,
	"days":     fmtDays,
	"join":     strings.Join,
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
	for _, p := range []string{"dashboard.html", "endpoint.html"} {
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
	Endpoints []EndpointStatus
	Unacked   int // endpoints with unacknowledged changes
	// InfoOnly counts the endpoints whose unacknowledged changes are
	// all info; CSRF is the token of the form that acknowledges them.
	InfoOnly    int
	CSRF        string
	Conditioned int // endpoints with conditions
	Lineages    []Lineage
}

// Lineage is one certificate the daemon keeps, as the dashboard's
// certificates table shows it: its names, version, expiry, when it
// renews, what each deploy target holds and what the endpoints served at
// the last check, with the problems among them.
type Lineage struct {
	Name     string
	Names    []string
	Version  int
	NotAfter time.Time
	RenewAt  time.Time
	// Rule is the renewal rule: "ari" (the CA's window) or "lifetime".
	Rule   string
	Deploy []string
	Served []string
	// Problems are what needs the operator: a failed or behind target,
	// an endpoint not serving the version, a lineage due or unreadable.
	Problems []string
}

// handleDashboard is GET /.
func (s *Server) handleDashboard(w http.ResponseWriter, r *http.Request) {
	st, err := s.Statuses()
	if err != nil {
		s.serverError(w, r, err)
		return
	}
	// The most urgent first; key order otherwise.
	slices.SortStableFunc(st, func(a, b EndpointStatus) int {
		return cmp.Compare(urgency(b), urgency(a))
	})
	d := dashboardData{Title: "xmppcert: watched endpoints", Now: fmtTime(s.now()), Endpoints: st, CSRF: s.csrfToken(ackAllID)}
	if s.opts.Lineages != nil {
		d.Lineages = s.opts.Lineages()
	}
	for _, e := range st {
		if len(e.Unacknowledged) > 0 {
			d.Unacked++
			if !slices.ContainsFunc(e.Unacknowledged, func(c ChangeAt) bool { return c.Severity != changes.Info }) {
				d.InfoOnly++
			}
		}
		if len(e.Conditions) > 0 {
			d.Conditioned++
		}
	}
	s.render(w, r, "dashboard.html", d)
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
