package web

import (
	"context"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// labels are every endpoint metric's labels: one host:port has several
// addresses, and each is an endpoint of its own. A cluster node's add
// node, the member that watches the endpoint.
var labels = []string{"domain", "service", "host", "port", "address", "transport"}

// endpointDescs are the endpoint metrics' descriptions, with or without
// the node label.
type endpointDescs struct {
	success, duration, earliest, tlsVersion, cipher, chain, dialback, remaining, startTLS, forwardSecret, unacked, lastSeen, grade *prometheus.Desc
}

func newEndpointDescs(base []string) *endpointDescs {
	desc := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string{}, base...), extra...), nil)
	}
	return &endpointDescs{
		success:       desc("probe_success", "Whether the latest probe of the endpoint succeeded: TLS established and nothing failed."),
		duration:      desc("probe_duration_seconds", "How long the latest probe of the endpoint took, in seconds (since the daemon started)."),
		earliest:      desc("probe_ssl_earliest_cert_expiry", "Earliest notAfter of the chain the endpoint presented, in Unix seconds."),
		tlsVersion:    desc("probe_tls_version_info", "The TLS version the endpoint negotiated, as the version label.", "version"),
		cipher:        desc("probe_tls_cipher_info", "The cipher suite the endpoint negotiated, as the cipher label.", "cipher"),
		chain:         desc("probe_ssl_last_chain_info", "The leaf certificate the endpoint presented last, by its SHA-256 fingerprint (a change of fingerprint is a certificate change).", "fingerprint_sha256"),
		dialback:      desc("xmppcert_dialback_offered", "Whether the s2s endpoint offers Server Dialback after TLS."),
		remaining:     desc("xmppcert_certificate_remaining_seconds", "Seconds until the endpoint's leaf certificate expires (negative when expired)."),
		startTLS:      desc("xmppcert_starttls_required", "Whether the endpoint refuses plaintext streams (STARTTLS required or direct TLS)."),
		forwardSecret: desc("xmppcert_forward_secret", "Whether the negotiated cipher suite is forward secret."),
		unacked:       desc("xmppcert_changes_unacknowledged", "Changes of the endpoint that no operator has acknowledged yet, by severity.", "severity"),
		lastSeen:      desc("xmppcert_last_seen_timestamp_seconds", "When the endpoint was last probed, in Unix seconds."),
		grade:         desc("xmppcert_manifesto_grade_info", "The endpoint's grade against the 2014 XMPP manifesto at its latest probe (pass, fail or unknown), as the grade label.", "grade"),
	}
}

func (d *endpointDescs) all() []*prometheus.Desc {
	return []*prometheus.Desc{d.success, d.duration, d.earliest, d.tlsVersion, d.cipher, d.chain, d.dialback, d.remaining, d.startTLS, d.forwardSecret, d.unacked, d.lastSeen, d.grade}
}

var (
	descScrapeError = prometheus.NewDesc("xmppcert_history_read_error", "Reading the history failed during the scrape.", nil, nil)
	descMemberUp    = prometheus.NewDesc("xmppcert_cluster_member_up", "Whether the cluster member answered this scrape's request for its endpoints (this node's own is always 1).", []string{"node"}, nil)
)

// collector reads the history at scrape time (and, on a cluster node,
// asks the other members for theirs): the metrics are always the
// store's, with nothing to keep in step.
type collector struct {
	s *Server
	d *endpointDescs
}

func newCollector(s *Server) *collector {
	if s.opts.Cluster != nil {
		return &collector{s: s, d: newEndpointDescs(append(append([]string{}, labels...), "node"))}
	}
	return &collector{s: s, d: newEndpointDescs(labels)}
}

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range append(c.d.all(), descScrapeError) {
		ch <- d
	}
	if c.s.opts.Cluster != nil {
		ch <- descMemberUp
	}
}

// Collect sends the metrics of every endpoint's latest observation, and
// on a cluster node those of every other live member's endpoints, with
// whether each member answered. A store that cannot be read fails the
// scrape, so that it shows as an error rather than as endpoints that
// vanished.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	v, err := c.s.view(context.Background(), !c.s.nodeScope) // under scrapeMu
	if err != nil {
		c.s.log.Error("web: metrics: reading history", "err", err)
		ch <- prometheus.NewInvalidMetric(descScrapeError, err)
		return
	}
	for _, m := range v.Members {
		ch <- prometheus.MustNewConstMetric(descMemberUp, prometheus.GaugeValue, b2f(m.Up), m.Node)
	}
	// Should two endpoints of a member's answer (escaped) come out with
	// the same labels, one is exported: a duplicate series would fail
	// the whole scrape.
	seen := map[string]bool{}
	for _, e := range v.Endpoints {
		k := e.Endpoint
		transport := "starttls"
		if k.DirectTLS {
			transport = "direct-tls"
		}
		lv := []string{k.Domain, string(k.Service), k.Host, strconv.Itoa(int(k.Port)), k.Address, transport}
		if c.s.opts.Cluster != nil {
			lv = append(lv, e.Node)
		}
		id := strings.Join(lv[:len(labels)], "\x00")
		if seen[id] {
			continue
		}
		seen[id] = true
		c.endpoint(ch, e.EndpointStatus, lv)
	}
}

// endpoint sends the metrics of e, labelled lv.
func (c *collector) endpoint(ch chan<- prometheus.Metric, e EndpointStatus, lv []string) {
	d, k, o := c.d, e.Endpoint, e.Latest.Observation
	gauge := func(desc *prometheus.Desc, v float64, lv ...string) {
		m, err := prometheus.NewConstMetric(desc, prometheus.GaugeValue, v, lv...)
		if err != nil {
			c.s.log.Debug("web: metrics: series left out", "err", err)
			return
		}
		ch <- m
	}
	with := func(extra ...string) []string { return append(append([]string{}, lv...), extra...) }
	gauge(d.success, b2f(o.Reachable && o.Failure == ""), lv...)
	gauge(d.lastSeen, float64(e.Latest.LastSeen.UnixNano())/1e9, lv...)
	if t := earliestExpiry(o); !t.IsZero() {
		gauge(d.earliest, float64(t.Unix()), lv...)
	}
	if leaf := e.Leaf(); !leaf.NotAfter.IsZero() {
		gauge(d.remaining, leaf.NotAfter.Sub(c.s.now()).Seconds(), lv...)
	}
	if o.Reachable {
		if o.TLSVersion != "" {
			gauge(d.tlsVersion, 1, with(o.TLSVersion)...)
		}
		if o.Cipher != "" {
			gauge(d.cipher, 1, with(o.Cipher)...)
		}
		// The fingerprint only: subjects and issuers are a peer's text,
		// which the dashboard shows escaped and metrics do not carry.
		if len(o.Chain) > 0 {
			gauge(d.chain, 1, with(o.Chain[0].SHA256)...)
		}
		gauge(d.startTLS, b2f(o.StartTLSRequired), lv...)
		gauge(d.forwardSecret, b2f(o.ForwardSecret), lv...)
		if k.Service == xmppaddr.ServiceServer {
			gauge(d.dialback, b2f(o.Dialback), lv...)
		}
	}
	if e.Grade != nil {
		gauge(d.grade, 1, with(string(e.Grade.Verdict))...)
	}
	if e.ProbeSeconds != nil {
		gauge(d.duration, *e.ProbeSeconds, lv...)
	}
	n := map[changes.Severity]int{}
	for _, ch := range e.Unacknowledged {
		n[ch.Severity]++
	}
	for _, sev := range []changes.Severity{changes.Info, changes.Warning, changes.Critical} {
		gauge(d.unacked, float64(n[sev]), with(string(sev))...)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
