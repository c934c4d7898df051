package daemon

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmppcert/xmppcert/acme/lifecycle"
)

// Per-lineage series, read from the lineages' records at scrape time
// (lifecycle.Engine.Status), beside the endpoint series of watcher/web.
var (
	descLineageVersion = prometheus.NewDesc("xmppcert_lineage_version", "The lineage's current version.", []string{"lineage"}, nil)
	descLineageExpiry  = prometheus.NewDesc("xmppcert_lineage_expiry_timestamp_seconds", "When the lineage's current certificate expires, in Unix seconds.", []string{"lineage"}, nil)
	descLineageRenewAt = prometheus.NewDesc("xmppcert_lineage_next_renewal_timestamp_seconds",
		"When the lineage is due for renewal, in Unix seconds, by rule: ari (the CA's renewal window) or lifetime (a third of it left).", []string{"lineage", "rule"}, nil)
	descLineageRenewed = prometheus.NewDesc("xmppcert_lineage_last_renewal_success",
		"Whether the lineage's last issuance or renewal by this daemon succeeded (absent until it made one).", []string{"lineage"}, nil)
	descLineageDeployed = prometheus.NewDesc("xmppcert_lineage_deploy_ok",
		"Whether the deploy target holds the lineage's current version, with its server reloaded.", []string{"lineage", "target"}, nil)
	descLineageServed = prometheus.NewDesc("xmppcert_lineage_served_info",
		"What the lineage's endpoint presented at the last check, as the status label: served, stale, mismatch, foreign or unreachable.", []string{"lineage", "endpoint", "status"}, nil)
	descLineageProblems = prometheus.NewDesc("xmppcert_lineage_problems",
		"What needs the operator in the lineage (lifecycle.LineageStatus.Problems), by severity: critical or warning.", []string{"lineage", "severity"}, nil)
	descLineageError = prometheus.NewDesc("xmppcert_lineage_read_error", "Reading the lineages failed during the scrape.", nil, nil)
)

// lineageMetrics collects the per-lineage series. It keeps only the last
// renewal result of each lineage, from the engine's events; the rest is
// the store's, with nothing to keep in step.
type lineageMetrics struct {
	d *Daemon

	mu      sync.Mutex
	renewed map[string]bool // last issuance or renewal result, by lineage
}

// event records a renewal result.
func (m *lineageMetrics) event(ev lifecycle.Event) {
	var ok bool
	switch ev.Name {
	case lifecycle.EventIssued, lifecycle.EventRenewed, lifecycle.EventStaged:
		ok = true
	case lifecycle.EventRenewFailed:
	default:
		return
	}
	m.mu.Lock()
	m.renewed[ev.Lineage] = ok
	m.mu.Unlock()
}

// Describe sends every series' description.
func (m *lineageMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLineageVersion, descLineageExpiry, descLineageRenewAt, descLineageRenewed,
		descLineageDeployed, descLineageServed, descLineageProblems, descLineageError} {
		ch <- d
	}
}

// Collect sends the series of every lineage. Lineages that cannot be
// listed fail the scrape, so that they show as an error rather than as
// lineages that vanished; one that cannot be read counts as a critical
// problem.
func (m *lineageMetrics) Collect(ch chan<- prometheus.Metric) {
	e := m.d.engineFor(m.d.Config())
	names, err := e.Store.Names()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descLineageError, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	m.mu.Lock()
	renewed := make(map[string]bool, len(m.renewed))
	for k, v := range m.renewed {
		renewed[k] = v
	}
	m.mu.Unlock()
	now := m.d.deps.Now()
	for st, err := range e.Statuses(context.Background(), names) {
		name := st.Name
		if err != nil {
			gauge(descLineageProblems, 1, name, "critical")
			gauge(descLineageProblems, 0, name, "warning")
			continue
		}
		gauge(descLineageVersion, float64(st.Version), name)
		gauge(descLineageExpiry, float64(st.NotAfter.Unix()), name)
		gauge(descLineageRenewAt, float64(st.RenewAt.Unix()), name, st.Rule)
		if ok, known := renewed[name]; known {
			gauge(descLineageRenewed, b2f(ok), name)
		}
		for _, t := range st.Targets {
			gauge(descLineageDeployed, b2f(t.Holds), name, t.Target)
		}
		for _, s := range st.Served {
			gauge(descLineageServed, 1, name, s.Endpoint, s.Status)
		}
		var critical, warning float64
		for _, p := range st.Problems(now) {
			if p.Critical {
				critical++
			} else {
				warning++
			}
		}
		gauge(descLineageProblems, critical, name, "critical")
		gauge(descLineageProblems, warning, name, "warning")
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
