package web

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// labels are every endpoint metric's labels: one host:port has several
// addresses, and each is an endpoint of its own.
var labels = []string{"domain", "service", "host", "port", "address", "transport"}

func desc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string{}, labels...), extra...), nil)
}

var (
	descSuccess       = desc("probe_success", "Whether the latest probe of the endpoint succeeded: TLS established and nothing failed.")
	descDuration      = desc("probe_duration_seconds", "How long the latest probe of the endpoint took, in seconds (since the daemon started).")
	descEarliest      = desc("probe_ssl_earliest_cert_expiry", "Earliest notAfter of the chain the endpoint presented, in Unix seconds.")
	descTLSVersion    = desc("probe_tls_version_info", "The TLS version the endpoint negotiated, as the version label.", "version")
	descCipher        = desc("probe_tls_cipher_info", "The cipher suite the endpoint negotiated, as the cipher label.", "cipher")
	descChain         = desc("probe_ssl_last_chain_info", "The leaf certificate the endpoint presented last, by its SHA-256 fingerprint (a change of fingerprint is a certificate change).", "fingerprint_sha256")
	descDialback      = desc("xmppcert_dialback_offered", "Whether the s2s endpoint offers Server Dialback after TLS.")
	descRemaining     = desc("xmppcert_certificate_remaining_seconds", "Seconds until the endpoint's leaf certificate expires (negative when expired).")
	descStartTLS      = desc("xmppcert_starttls_required", "Whether the endpoint refuses plaintext streams (STARTTLS required or direct TLS).")
	descForwardSecret = desc("xmppcert_forward_secret", "Whether the negotiated cipher suite is forward secret.")
	descUnacked       = desc("xmppcert_changes_unacknowledged", "Changes of the endpoint that no operator has acknowledged yet, by severity.", "severity")
	descLastSeen      = desc("xmppcert_last_seen_timestamp_seconds", "When the endpoint was last probed, in Unix seconds.")
	descGrade         = desc("xmppcert_manifesto_grade_info", "The endpoint's grade against the 2014 XMPP manifesto at its latest probe (pass, fail or unknown), as the grade label.", "grade")
	descScrapeError   = prometheus.NewDesc("xmppcert_history_read_error", "Reading the history failed during the scrape.", nil, nil)
)

// collector reads the history at scrape time: the metrics are always the
// store's, with nothing to keep in step.
type collector struct{ s *Server }

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSuccess, descDuration, descEarliest, descTLSVersion, descCipher, descChain, descDialback, descRemaining, descStartTLS, descForwardSecret, descUnacked, descLastSeen, descGrade, descScrapeError} {
		ch <- d
	}
}

// Collect sends the metrics of every endpoint's latest observation. A
// store that cannot be read fails the scrape, so that it shows as an
// error rather than as endpoints that vanished.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.s.Statuses()
	if err != nil {
		c.s.log.Error("web: metrics: reading history", "err", err)
		ch <- prometheus.NewInvalidMetric(descScrapeError, err)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, lv ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, lv...)
	}
	for _, e := range st {
		k, o := e.Endpoint, e.Latest.Observation
		transport := "starttls"
		if k.DirectTLS {
			transport = "direct-tls"
		}
		lv := []string{k.Domain, string(k.Service), k.Host, strconv.Itoa(int(k.Port)), k.Address, transport}
		with := func(extra ...string) []string { return append(append([]string{}, lv...), extra...) }

		gauge(descSuccess, b2f(o.Reachable && o.Failure == ""), lv...)
		gauge(descLastSeen, float64(e.Latest.LastSeen.UnixNano())/1e9, lv...)
		if t := earliestExpiry(o); !t.IsZero() {
			gauge(descEarliest, float64(t.Unix()), lv...)
		}
		if leaf := e.Leaf(); !leaf.NotAfter.IsZero() {
			gauge(descRemaining, leaf.NotAfter.Sub(c.s.now()).Seconds(), lv...)
		}
		if o.Reachable {
			if o.TLSVersion != "" {
				gauge(descTLSVersion, 1, with(o.TLSVersion)...)
			}
			if o.Cipher != "" {
				gauge(descCipher, 1, with(o.Cipher)...)
			}
			// The fingerprint only: subjects and issuers are a peer's text,
			// which the dashboard shows escaped and metrics do not carry.
			if len(o.Chain) > 0 {
				gauge(descChain, 1, with(o.Chain[0].SHA256)...)
			}
			gauge(descStartTLS, b2f(o.StartTLSRequired), lv...)
			gauge(descForwardSecret, b2f(o.ForwardSecret), lv...)
			if k.Service == xmppaddr.ServiceServer {
				gauge(descDialback, b2f(o.Dialback), lv...)
			}
		}
		if e.Grade != nil {
			gauge(descGrade, 1, with(string(e.Grade.Verdict))...)
		}
		if e.ProbeSeconds != nil {
			gauge(descDuration, *e.ProbeSeconds, lv...)
		}
		n := map[changes.Severity]int{}
		for _, ch := range e.Unacknowledged {
			n[ch.Severity]++
		}
		for _, sev := range []changes.Severity{changes.Info, changes.Warning, changes.Critical} {
			gauge(descUnacked, float64(n[sev]), with(string(sev))...)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
