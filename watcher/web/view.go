package web

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// ID is the identifier of the endpoint whose key
// (watcher.EndpointKey.String()) is key in URLs and the API: the first
// 12 bytes of its SHA-256, in hex.
func ID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:12])
}

// EndpointStatus is what the dashboard and GET /api/endpoints show of
// one endpoint: its latest observation and what an operator has not
// acknowledged yet.
type EndpointStatus struct {
	// ID names the endpoint in URLs (see ID); Key is
	// watcher.EndpointKey.String().
	ID  string `json:"id"`
	Key string `json:"key"`
	// Endpoint is the endpoint's key as fields.
	Endpoint watcher.EndpointKey `json:"endpoint"`
	// Latest is the current history entry.
	Latest history.Entry `json:"latest"`
	// AckedSeq is the newest acknowledged entry (0 for none).
	AckedSeq uint64 `json:"acked_seq"`
	// Unacknowledged are the changes recorded after AckedSeq, newest
	// first.
	Unacknowledged []ChangeAt `json:"unacknowledged"`
	// Conditions hold now (expiry approaching or past); they go away by
	// renewing, not by acknowledging.
	Conditions []changes.Change `json:"conditions"`
	// Encryption says how the stream is encrypted: "direct TLS",
	// "STARTTLS (required)", "STARTTLS (optional)" or "no" when no TLS
	// session was established.
	Encryption string `json:"encryption"`
	// AuthenticatedBy lists what authenticates the server: "certificate"
	// (RFC 6125 identity valid), "DANE", "POSH", "dialback" (the
	// manifesto's s2s fallback); empty when nothing does.
	AuthenticatedBy []string `json:"authenticated_by"`
	// PinsKnown is false when no probe result with DANE and POSH
	// verdicts was available (Options.Probe), so their absence from
	// AuthenticatedBy means "not checked".
	PinsKnown bool `json:"pins_known"`
	// Grade is the manifesto grade of the latest probe, when known.
	Grade *probe.Grade `json:"grade,omitempty"`
	// CertDaysLeft is the days until the leaf certificate expires
	// (negative when expired); null without a certificate.
	CertDaysLeft *float64 `json:"cert_days_left,omitempty"`
	// NeverReachable is set when no probe of the endpoint has reached it
	// yet: nothing can have changed, and nothing is known to be right.
	NeverReachable bool `json:"never_reachable,omitempty"`
	// ProbeSeconds is how long the latest probe of the endpoint took, in
	// seconds; null when no probe result is at hand (Options.Probe).
	ProbeSeconds *float64 `json:"probe_duration_seconds,omitempty"`
	// OurCertificate is what an s2s peer did with our own certificate,
	// which the daemon presents as watch.from's: "accepted" (SASL
	// EXTERNAL), "refused" (with Latest.ExternalReason), "dialback only",
	// "not offered"; empty when none was presented.
	OurCertificate string `json:"our_certificate,omitempty"`
}

// ChangeAt is a classified change with the history entry that brought
// it.
type ChangeAt struct {
	changes.Change
	// Seq is the entry whose observation showed the change; At is when it
	// was first seen.
	Seq uint64    `json:"seq"`
	At  time.Time `json:"at"`
}

// EndpointDetail is GET /api/endpoints/ID and the endpoint page: the
// status and the history, newest first.
type EndpointDetail struct {
	EndpointStatus
	// History holds the stored entries, newest first, each with what
	// changed from the entry before it.
	History []HistoryItem `json:"history"`
}

// HistoryItem is one history entry with what changed from the entry
// before it.
type HistoryItem struct {
	history.Entry
	// Changes are changes.Classify's verdicts on this entry against the
	// previous one (for the first entry, the first-seen note); nil when
	// the previous entry was pruned.
	Changes []changes.Change `json:"changes"`
	// Diff lists every field that differs from the previous entry,
	// including those Classify does not judge (an upgrade, a new group).
	Diff []FieldDiff `json:"diff"`
	// Acknowledged is true when Seq is at or before the endpoint's
	// acknowledgement.
	Acknowledged bool `json:"acknowledged"`
}

// FieldDiff is one field that differs between two observations.
type FieldDiff struct {
	// Field names it for people ("certificate SHA-256", "TLS version").
	Field string `json:"field"`
	// Old and New are the values before and after.
	Old string `json:"old"`
	New string `json:"new"`
}

// Pending reports whether the entry brought changes that are not
// acknowledged yet (a first observation is not a change).
func (h HistoryItem) Pending() bool {
	if h.Acknowledged {
		return false
	}
	for _, c := range h.Changes {
		if c.Kind != changes.FirstSeen {
			return true
		}
	}
	return false
}

// Leaf is the leaf certificate of the latest observation (zero without
// one).
func (e EndpointStatus) Leaf() watcher.CertSummary {
	if len(e.Latest.Chain) == 0 {
		return watcher.CertSummary{}
	}
	return e.Latest.Chain[0]
}

// Severity is the most urgent severity among the unacknowledged changes
// and the conditions; empty when there are none.
func (e EndpointStatus) Severity() changes.Severity {
	var worst changes.Severity
	for _, c := range e.Unacknowledged {
		if c.Severity.Rank() > worst.Rank() {
			worst = c.Severity
		}
	}
	for _, c := range e.Conditions {
		if c.Severity.Rank() > worst.Rank() {
			worst = c.Severity
		}
	}
	return worst
}

// classify computes the changes and diffs of entries (newest first):
// each entry against the next older one, with an unreachable predecessor
// standing in for the last reachable entry before it. The oldest entry
// gets the first-seen note only when it is the endpoint's first (Seq 1);
// otherwise its predecessor is not at hand and it gets nothing.
func classify(entries []history.Entry, ctx changes.Context, acked uint64) []HistoryItem {
	items := make([]HistoryItem, len(entries))
	for i, e := range entries {
		it := HistoryItem{Entry: e, Acknowledged: e.Seq <= acked}
		switch {
		case i+1 < len(entries):
			prev := entries[i+1].Observation
			c := ctx
			c.Now = time.Time{}
			c.LastReachable = nil
			if !prev.Reachable {
				for _, older := range entries[i+2:] {
					if older.Reachable {
						o := older.Observation
						c.LastReachable = &o
						break
					}
				}
			}
			it.Changes = changes.Classify(&prev, e.Observation, c)
			it.Diff = diff(prev, e.Observation)
		case e.Seq == 1:
			c := ctx
			c.Now = time.Time{}
			it.Changes = changes.Classify(nil, e.Observation, c)
		}
		items[i] = it
	}
	return items
}

// unacknowledged collects the changes of items newer than acked, newest
// first, leaving out first-seen notes (a new endpoint is not a change).
func unacknowledged(items []HistoryItem, acked uint64) []ChangeAt {
	out := []ChangeAt{}
	for _, it := range items {
		if it.Seq <= acked {
			continue
		}
		for _, c := range it.Changes {
			if c.Kind == changes.FirstSeen {
				continue
			}
			out = append(out, ChangeAt{Change: c, Seq: it.Seq, At: it.FirstSeen})
		}
	}
	return out
}

// encryption describes how o's stream is encrypted.
func encryption(o watcher.Observation) string {
	switch {
	case !o.Reachable:
		return "no"
	case o.Endpoint.DirectTLS:
		return "direct TLS"
	case o.StartTLSRequired:
		return "STARTTLS (required)"
	}
	return "STARTTLS (optional)"
}

// authenticatedBy lists what authenticates the server of o, with the
// DANE and POSH verdicts of pe when known.
func authenticatedBy(o watcher.Observation, pe *probe.Endpoint) []string {
	out := []string{}
	if !o.Reachable {
		return out
	}
	if o.Valid {
		out = append(out, "certificate")
	}
	if pe != nil && pe.DANE != nil && pe.DANE.Matched {
		if pe.DANE.Applies {
			out = append(out, "DANE")
		} else {
			out = append(out, "DANE (not DNSSEC-validated)")
		}
	}
	if pe != nil && pe.POSH != nil && pe.POSH.Code == pinning.POSHPinMatch {
		out = append(out, "POSH")
	}
	if o.Dialback && o.Endpoint.Service == xmppaddr.ServiceServer {
		out = append(out, "dialback")
	}
	return out
}

// diff lists the fields that differ between a and b.
func diff(a, b watcher.Observation) []FieldDiff {
	var out []FieldDiff
	add := func(field, old, new string) {
		if old != new {
			out = append(out, FieldDiff{Field: field, Old: old, New: new})
		}
	}
	la, lb := leafOf(a), leafOf(b)
	add("reachable", yesNo(a.Reachable), yesNo(b.Reachable))
	add("failure", a.Failure, b.Failure)
	add("certificate SHA-256", la.SHA256, lb.SHA256)
	add("key (SPKI SHA-256)", la.SPKISHA256, lb.SPKISHA256)
	add("subject", la.Subject, lb.Subject)
	add("issuer", la.Issuer, lb.Issuer)
	add("expires", fmtTime(la.NotAfter), fmtTime(lb.NotAfter))
	add("intermediates", chainDigests(a.Chain), chainDigests(b.Chain))
	add("identity valid", yesNo(a.Valid), yesNo(b.Valid))
	add("identities matched", strings.Join(a.Matched, ", "), strings.Join(b.Matched, ", "))
	add("TLS version", a.TLSVersion, b.TLSVersion)
	add("cipher", a.Cipher, b.Cipher)
	add("group", a.Group, b.Group)
	add("forward secret", yesNo(a.ForwardSecret), yesNo(b.ForwardSecret))
	add("STARTTLS required", yesNo(a.StartTLSRequired), yesNo(b.StartTLSRequired))
	add("dialback", yesNo(a.Dialback), yesNo(b.Dialback))
	add("SASL mechanisms", strings.Join(a.SASL, " "), strings.Join(b.SASL, " "))
	add("SASL EXTERNAL", a.External, b.External)
	return out
}

func leafOf(o watcher.Observation) watcher.CertSummary {
	if len(o.Chain) == 0 {
		return watcher.CertSummary{}
	}
	return o.Chain[0]
}

func chainDigests(ch []watcher.CertSummary) string {
	if len(ch) <= 1 {
		return ""
	}
	var s []string
	for _, c := range ch[1:] {
		s = append(s, shortHex(c.SHA256))
	}
	return strings.Join(s, ", ")
}

// earliestExpiry is the earliest notAfter in o's chain (zero without a
// chain).
func earliestExpiry(o watcher.Observation) time.Time {
	var t time.Time
	for _, c := range o.Chain {
		if !c.NotAfter.IsZero() && (t.IsZero() || c.NotAfter.Before(t)) {
			t = c.NotAfter
		}
	}
	return t
}

func daysLeft(notAfter, now time.Time) *float64 {
	if notAfter.IsZero() {
		return nil
	}
	d := notAfter.Sub(now).Hours() / 24
	d = math.Round(d*100) / 100
	return &d
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// fmtTime formats t for people, in UTC; "" for the zero time.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// shortHex is the first 16 hex digits of a digest, for tables.
func shortHex(d string) string {
	if len(d) > 16 {
		return d[:16] + "…"
	}
	return d
}

// shortFingerprint is the first four bytes of a hex digest in colon form
// and an ellipsis: enough to tell certificates apart at a glance.
func shortFingerprint(d string) string {
	if len(d) > 8 {
		return colonHex(d[:8]) + "…"
	}
	return colonHex(d)
}

// colonHex writes a hex digest as colon-separated upper-case pairs, the
// way certificate viewers show fingerprints.
func colonHex(d string) string {
	d = strings.ToUpper(d)
	var b strings.Builder
	for i := 0; i < len(d); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(d[i:min(i+2, len(d))])
	}
	return b.String()
}

// fmtDays says how many days are left, for people.
func fmtDays(d *float64) string {
	if d == nil {
		return ""
	}
	if *d < 0 {
		return fmt.Sprintf("expired %s days ago", strconv.FormatFloat(-*d, 'f', 1, 64))
	}
	return strconv.FormatFloat(*d, 'f', 1, 64) + " days left"
}
