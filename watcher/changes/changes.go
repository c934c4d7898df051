// Package changes classifies what changed between two observations of one
// endpoint (README, "The daemon"): certificate renewals with
// the same key or a pre-announced next key, unexpected key changes, CA
// changes, identities dropped or added, expiry approaching, TLS downgrades,
// STARTTLS, dialback and SASL EXTERNAL lost, and reachability.
//
// Classify is a pure function: it reads two observations and a Context
// that says what the operator expects (our own keys and certificates, the
// time), and returns the changes with a severity each. Expected rotations
// are info; surprises warn; what breaks peers now is critical.
//
// Two kinds of result come out of it. Transitions (a key changed, an
// endpoint went down) are reported once, by the call that sees them.
// Conditions (an expiry threshold crossed) are reported by every call
// while they hold, so that Classify(prev, cur) with prev Equal to cur
// returns only conditions. Each Change carries a Key; watcher/alert uses it
// to de-duplicate repeats and re-send conditions on an interval.
package changes

import (
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/xmppcert/xmppcert/watcher"
)

// Severity says how urgently a person should look at a change.
type Severity string

// The severities, from least to most urgent.
const (
	// Info is expected or good news: our own renewals, pre-announced key
	// rotations, an endpoint recovering, a first observation.
	Info Severity = "info"
	// Warning is a surprise or a degradation that peers may not notice
	// yet: an unexpected key, a new CA, a TLS downgrade, expiry in 30 or 7
	// days.
	Warning Severity = "warning"
	// Critical is what breaks or may already break authentication: a
	// pinned key replaced by an unknown one, a certificate no longer valid
	// for the domain, expiry within a day or past.
	Critical Severity = "critical"
)

// Rank orders severities (info 1, warning 2, critical 3; 0 for anything
// else) so that sinks can filter on a minimum.
func (s Severity) Rank() int {
	switch s {
	case Info:
		return 1
	case Warning:
		return 2
	case Critical:
		return 3
	}
	return 0
}

// Kind is a stable code for what changed. Codes are part of the alert
// schema: they are never renamed, only added.
type Kind string

// The kinds of change, in the order Classify reports them.
const (
	// FirstSeen: no earlier observation of the endpoint (info).
	FirstSeen Kind = "first-seen"
	// Unreachable: the endpoint was reachable and is not now (warning).
	Unreachable Kind = "unreachable"
	// Recovered: the endpoint was unreachable and is reachable now (info).
	Recovered Kind = "recovered"
	// RenewalSameKey: a new leaf certificate with the same SPKI (info).
	RenewalSameKey Kind = "renewal-same-key"
	// RenewalNextKey: a new leaf whose key was pre-announced as a next
	// key, so the pins published ahead match it (info).
	RenewalNextKey Kind = "renewal-next-key"
	// RenewalOwnKey: a new leaf with a new key that we issued ourselves
	// or that is our lineage's current key, but that was not
	// pre-announced (info; the text says pins of the old key no longer
	// match).
	RenewalOwnKey Kind = "renewal-own-key"
	// KeyChanged: a new leaf with a key nobody announced (warning;
	// critical when the old key was pinned: ours, or in Context.PinnedSPKI).
	KeyChanged Kind = "key-changed"
	// IssuerChanged: the leaf's issuer differs (warning; info when the new
	// certificate is one we issued).
	IssuerChanged Kind = "issuer-changed"
	// ChainChanged: the same leaf with different intermediates (info).
	ChainChanged Kind = "chain-changed"
	// IdentityDropped: an identity that matched the domain no longer does
	// (warning). One change per identity.
	IdentityDropped Kind = "identity-dropped"
	// IdentityAdded: a newly matching identity (info).
	IdentityAdded Kind = "identity-added"
	// IdentityInvalid: the certificate was valid for the domain and
	// service and is not now (critical).
	IdentityInvalid Kind = "identity-invalid"
	// IdentityValid: the certificate was not valid and is now (info).
	IdentityValid Kind = "identity-valid"
	// TLSVersionDowngrade: a lower TLS version than before (warning).
	TLSVersionDowngrade Kind = "tls-version-downgrade"
	// ForwardSecrecyLost: the session was forward secret and is not now
	// (warning).
	ForwardSecrecyLost Kind = "forward-secrecy-lost"
	// CipherWeaker: the negotiated suite is in a weaker class than before
	// (see CipherClass) (warning).
	CipherWeaker Kind = "cipher-weaker"
	// StartTLSNotRequired: STARTTLS was required and is only optional now
	// (warning).
	StartTLSNotRequired Kind = "starttls-not-required"
	// DialbackLost: dialback was offered after TLS and is not now
	// (warning).
	DialbackLost Kind = "dialback-lost"
	// ExternalLost: SASL EXTERNAL succeeded and now has another result
	// (warning).
	ExternalLost Kind = "external-lost"
	// Expiry30d: the leaf expires within 30 days (warning; condition).
	Expiry30d Kind = "expiry-30d"
	// Expiry7d: the leaf expires within 7 days (warning; condition).
	Expiry7d Kind = "expiry-7d"
	// Expiry1d: the leaf expires within 1 day (critical; condition).
	Expiry1d Kind = "expiry-1d"
	// Expired: the leaf has expired (critical; condition).
	Expired Kind = "expired"
	// ServedStale: one of our own endpoints still presents an older
	// version of its lineage well after the current one was deployed:
	// the reload did not take (warning).
	ServedStale Kind = "served-stale"
	// ServedMismatch: one of our own endpoints presents another
	// lineage's certificate (warning).
	ServedMismatch Kind = "served-mismatch"
	// ServedForeign: one of our own endpoints presents a certificate
	// whose key belongs to no lineage we keep (critical).
	ServedForeign Kind = "served-foreign"
	// VantageMismatch: one of our own endpoints presents another key
	// through a vantage point (a proxy on another network) than it does
	// here: something on one of the two paths answers in its place
	// (critical; condition).
	VantageMismatch Kind = "vantage-mismatch"
	// CTUnexpected: a Certificate Transparency log holds a certificate or
	// precertificate for one of our names that xmppcert did not issue
	// (critical).
	CTUnexpected Kind = "ct-unexpected"
	// VantageFailed: a vantage point could not reach one of our own
	// endpoints that is reachable here, so nothing is compared there
	// (warning; condition).
	VantageFailed Kind = "vantage-failed"
	// ClusterUnavailable: a cluster node cannot reach a quorum of etcd,
	// so it renews nothing; it names the earliest expiry among the
	// lineages the node deploys (warning; critical within 7 days of it).
	ClusterUnavailable Kind = "cluster-unavailable"
)

// Change is one classified difference (or condition) of an endpoint.
type Change struct {
	// Kind is the stable code.
	Kind Kind `json:"kind"`
	// Severity is how urgent it is.
	Severity Severity `json:"severity"`
	// Text is one line for people, naming the old and new values.
	Text string `json:"text"`
	// Old and New are the values before and after, where meaningful
	// (digests in hex, issuer DNs, identities, TLS versions, ciphers).
	Old string `json:"old,omitempty"`
	New string `json:"new,omitempty"`
	// Key identifies the condition for de-duplication: the endpoint
	// (EndpointKey.String()), the kind and what distinguishes one
	// occurrence from another (the new digest, the identity, the leaf
	// whose expiry is near), joined by "|".
	Key string `json:"key"`
}

// Context tells Classify what the operator expects for the endpoint's
// domain. The zero Context expects nothing: every key change is a
// surprise, and no expiry is judged (Now is zero).
type Context struct {
	// Now is the time expiry is judged against. Zero disables the expiry
	// conditions.
	Now time.Time
	// CurrentSPKI and NextSPKI are hex SHA-256 digests of the
	// SubjectPublicKeyInfo of our own lineages' current keys and of the
	// pre-announced next keys for the endpoint's domain (from the acme
	// lineages). Case and colons are ignored.
	CurrentSPKI []string
	NextSPKI    []string
	// IssuedCerts are hex SHA-256 digests of DER certificates we issued
	// ourselves: a change to one of them is our own renewal.
	IssuedCerts []string
	// PinnedSPKI are further SPKI digests known to be pinned for the
	// domain (published TLSA 3 1 1, XEP-0487, or configured for a peer).
	// Our own current and next keys count as pinned without being listed.
	PinnedSPKI []string
	// LastReachable, when prev is unreachable, is the most recent
	// reachable observation before it: the certificate and TLS posture
	// are then compared across the outage instead of being lost.
	LastReachable *watcher.Observation
}

// Expiry thresholds, tightest first.
var expiryThresholds = []struct {
	within   time.Duration
	kind     Kind
	severity Severity
	label    string
}{
	{24 * time.Hour, Expiry1d, Critical, "1 day"},
	{7 * 24 * time.Hour, Expiry7d, Warning, "7 days"},
	{30 * 24 * time.Hour, Expiry30d, Warning, "30 days"},
}

// Classify returns what changed from prev to cur, in the order of the Kind
// constants; nil when nothing did. prev nil means cur is the first
// observation. prev and cur may be Equal (or the same observation), in
// which case only conditions (expiry) are reported.
//
// When cur is unreachable nothing but reachability is judged: a probe
// that saw no TLS session says nothing about certificates or features.
func Classify(prev *watcher.Observation, cur watcher.Observation, ctx Context) []Change {
	c := classifier{ep: cur.Endpoint.String(), ctx: ctx}
	switch {
	case prev == nil:
		if cur.Reachable {
			leaf := leafOf(cur)
			c.add(FirstSeen, Info, "first seen: "+describeLeaf(leaf), "", leaf.SHA256, leaf.SHA256)
		} else {
			c.add(FirstSeen, Info, "first seen, unreachable: "+orUnknown(cur.Failure), "", "unreachable", "unreachable")
		}
	case prev.Reachable && !cur.Reachable:
		c.add(Unreachable, Warning, "endpoint unreachable: "+orUnknown(cur.Failure), "reachable", orUnknown(cur.Failure), "")
	case !prev.Reachable && cur.Reachable:
		c.add(Recovered, Info, "endpoint reachable again (was: "+orUnknown(prev.Failure)+")", orUnknown(prev.Failure), "reachable", "")
	}
	if !cur.Reachable {
		return c.out
	}
	base := prev
	if base != nil && !base.Reachable {
		base = ctx.LastReachable
		if base != nil && !base.Reachable {
			base = nil
		}
	}
	if base != nil {
		c.certificate(*base, cur)
		c.identities(*base, cur)
		c.tls(*base, cur)
		c.features(*base, cur)
	}
	c.expiry(cur)
	return c.out
}

type classifier struct {
	ep  string
	ctx Context
	out []Change
}

func (c *classifier) add(k Kind, s Severity, text, old, new, cond string) {
	c.out = append(c.out, Change{
		Kind: k, Severity: s, Text: oneLine(text), Old: oneLine(old), New: oneLine(new),
		Key: c.ep + "|" + string(k) + "|" + oneLine(cond),
	})
}

func leafOf(o watcher.Observation) watcher.CertSummary {
	if len(o.Chain) == 0 {
		return watcher.CertSummary{}
	}
	return o.Chain[0]
}

func (c *classifier) certificate(prev, cur watcher.Observation) {
	old, new := leafOf(prev), leafOf(cur)
	if norm(old.SHA256) == norm(new.SHA256) {
		if !chainEqual(prev.Chain, cur.Chain) {
			c.add(ChainChanged, Info, "same leaf, intermediates changed: "+chainIssuers(prev.Chain)+" -> "+chainIssuers(cur.Chain),
				chainIssuers(prev.Chain), chainIssuers(cur.Chain), chainDigests(cur.Chain))
		}
		return
	}
	ours := contains(c.ctx.IssuedCerts, new.SHA256)
	switch {
	case norm(old.SPKISHA256) == norm(new.SPKISHA256):
		c.add(RenewalSameKey, Info, "certificate renewed with the same key "+short(new.SPKISHA256)+": "+short(old.SHA256)+" -> "+short(new.SHA256)+expiresText(new),
			old.SHA256, new.SHA256, new.SHA256)
	case contains(c.ctx.NextSPKI, new.SPKISHA256):
		c.add(RenewalNextKey, Info, "certificate renewed with the pre-announced next key: key "+short(old.SPKISHA256)+" -> "+short(new.SPKISHA256)+expiresText(new),
			old.SPKISHA256, new.SPKISHA256, new.SPKISHA256)
	case ours || contains(c.ctx.CurrentSPKI, new.SPKISHA256):
		c.add(RenewalOwnKey, Info, "our own renewal with a key that was not pre-announced: key "+short(old.SPKISHA256)+" -> "+short(new.SPKISHA256)+" (pins of the old key no longer match)",
			old.SPKISHA256, new.SPKISHA256, new.SPKISHA256)
	default:
		sev, why := Warning, ""
		if c.pinned(old.SPKISHA256) {
			sev, why = Critical, " (the old key was pinned: DANE/XEP-0487 peers will refuse the new one)"
		}
		if old.SPKISHA256 == "" {
			why = " (no key seen before)"
		}
		c.add(KeyChanged, sev, "unexpected key change: "+short(old.SPKISHA256)+" -> "+short(new.SPKISHA256)+", subject "+orUnknown(new.Subject)+why,
			old.SPKISHA256, new.SPKISHA256, new.SPKISHA256)
	}
	if old.Issuer != new.Issuer {
		sev := Warning
		if ours {
			sev = Info
		}
		c.add(IssuerChanged, sev, "issuer changed: "+quoteDN(old.Issuer)+" -> "+quoteDN(new.Issuer), old.Issuer, new.Issuer, new.Issuer)
	}
}

func (c *classifier) pinned(spki string) bool {
	return spki != "" && (contains(c.ctx.CurrentSPKI, spki) || contains(c.ctx.NextSPKI, spki) || contains(c.ctx.PinnedSPKI, spki))
}

func (c *classifier) identities(prev, cur watcher.Observation) {
	for _, id := range prev.Matched {
		if !containsExact(cur.Matched, id) {
			c.add(IdentityDropped, Warning, "identity no longer matched: "+id, id, "", id)
		}
	}
	for _, id := range cur.Matched {
		if !containsExact(prev.Matched, id) {
			c.add(IdentityAdded, Info, "identity newly matched: "+id, "", id, id)
		}
	}
	leaf := leafOf(cur)
	switch {
	case prev.Valid && !cur.Valid:
		c.add(IdentityInvalid, Critical, "certificate no longer valid for "+cur.Endpoint.Domain+" "+string(cur.Endpoint.Service)+": "+describeLeaf(leaf),
			"valid", "invalid", leaf.SHA256)
	case !prev.Valid && cur.Valid:
		c.add(IdentityValid, Info, "certificate valid again for "+cur.Endpoint.Domain+" "+string(cur.Endpoint.Service), "invalid", "valid", leaf.SHA256)
	}
}

func (c *classifier) tls(prev, cur watcher.Observation) {
	if po, co := VersionOrder(prev.TLSVersion), VersionOrder(cur.TLSVersion); po > 0 && co > 0 && co < po {
		c.add(TLSVersionDowngrade, Warning, "TLS version downgraded: "+prev.TLSVersion+" -> "+cur.TLSVersion, prev.TLSVersion, cur.TLSVersion, cur.TLSVersion)
	}
	if prev.ForwardSecret && !cur.ForwardSecret {
		c.add(ForwardSecrecyLost, Warning, "forward secrecy lost: "+orUnknown(prev.Cipher)+" -> "+orUnknown(cur.Cipher), prev.Cipher, cur.Cipher, cur.Cipher)
	}
	if pc, cc := CipherClass(prev.Cipher), CipherClass(cur.Cipher); pc > 0 && cc > 0 && cc < pc {
		c.add(CipherWeaker, Warning, "weaker cipher suite: "+prev.Cipher+" -> "+cur.Cipher, prev.Cipher, cur.Cipher, cur.Cipher)
	}
}

func (c *classifier) features(prev, cur watcher.Observation) {
	if prev.StartTLSRequired && !cur.StartTLSRequired {
		c.add(StartTLSNotRequired, Warning, "STARTTLS no longer required: plaintext streams are accepted", "required", "optional", "")
	}
	if prev.Dialback && !cur.Dialback {
		c.add(DialbackLost, Warning, "dialback no longer offered after TLS", "offered", "not offered", "")
	}
	if prev.External == "success" && cur.External != "success" {
		now := orUnknown(cur.OurCertificate())
		if cur.ExternalReason != "" {
			now += " (" + cur.ExternalReason + ")"
		}
		c.add(ExternalLost, Warning, "the peer no longer accepts our certificate: SASL EXTERNAL accepted -> "+now, prev.OurCertificate(), now, cur.External)
	}
}

func (c *classifier) expiry(cur watcher.Observation) {
	leaf := leafOf(cur)
	if c.ctx.Now.IsZero() || leaf.NotAfter.IsZero() {
		return
	}
	left := leaf.NotAfter.Sub(c.ctx.Now)
	na := leaf.NotAfter.UTC().Format(time.RFC3339)
	if left <= 0 {
		c.add(Expired, Critical, "certificate "+short(leaf.SHA256)+" expired at "+na, "", na, leaf.SHA256)
		return
	}
	for _, t := range expiryThresholds {
		if left <= t.within {
			c.add(t.kind, t.severity, "certificate "+short(leaf.SHA256)+" expires within "+t.label+", at "+na+" (in "+humanDuration(left)+")", "", na, leaf.SHA256)
			return
		}
	}
}

// VersionOrder ranks TLS version names as Go's tls.VersionName and the
// probe spell them: SSLv2 1, SSLv3 2, TLS 1.0 3, TLS 1.1 4, TLS 1.2 5,
// TLS 1.3 6; 0 for empty or unknown names, which are never compared.
func VersionOrder(v string) int {
	switch strings.ReplaceAll(strings.ToUpper(v), " ", "") {
	case "SSLV2", "SSL2", "SSL2.0", "SSLV2.0":
		return 1
	case "SSLV3", "SSL3", "SSL3.0", "SSLV3.0":
		return 2
	case "TLS1.0", "TLSV1.0", "TLSV1", "TLS1":
		return 3
	case "TLS1.1", "TLSV1.1":
		return 4
	case "TLS1.2", "TLSV1.2":
		return 5
	case "TLS1.3", "TLSV1.3":
		return 6
	}
	return 0
}

// CipherClass ranks an IANA cipher suite name by the strength of its
// bulk encryption, which is what a downgrade loses (forward secrecy is
// judged separately):
//
//	1 broken:  NULL, anonymous, EXPORT, RC4, single DES, RC2, IDEA
//	2 3DES
//	3 CBC with AES, Camellia, ARIA or SEED (MAC-then-encrypt)
//	4 AEAD: GCM, CCM, ChaCha20-Poly1305, and every TLS 1.3 suite
//
// 0 means empty or unrecognised, and is never compared.
func CipherClass(name string) int {
	n := strings.ToUpper(name)
	if n == "" || !strings.HasPrefix(n, "TLS_") && !strings.HasPrefix(n, "SSL_") {
		return 0
	}
	switch {
	case strings.Contains(n, "NULL"), strings.Contains(n, "_ANON_"), strings.Contains(n, "EXPORT"),
		strings.Contains(n, "RC4"), strings.Contains(n, "RC2"), strings.Contains(n, "IDEA"),
		strings.Contains(n, "_DES_") || strings.Contains(n, "_DES40_"):
		return 1
	case strings.Contains(n, "3DES"):
		return 2
	case strings.Contains(n, "GCM"), strings.Contains(n, "CCM"), strings.Contains(n, "CHACHA20"):
		return 4
	case strings.Contains(n, "CBC"):
		return 3
	}
	return 0
}

func chainEqual(a, b []watcher.CertSummary) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if norm(a[i].SHA256) != norm(b[i].SHA256) {
			return false
		}
	}
	return true
}

func chainIssuers(ch []watcher.CertSummary) string {
	if len(ch) <= 1 {
		return "(no intermediates)"
	}
	var parts []string
	for _, c := range ch[1:] {
		parts = append(parts, quoteDN(c.Subject))
	}
	return strings.Join(parts, ", ")
}

func chainDigests(ch []watcher.CertSummary) string {
	var parts []string
	for _, c := range ch {
		parts = append(parts, norm(c.SHA256))
	}
	return strings.Join(parts, ",")
}

func describeLeaf(l watcher.CertSummary) string {
	if l.SHA256 == "" {
		return "no certificate"
	}
	s := "certificate " + short(l.SHA256) + ", key " + short(l.SPKISHA256) + ", subject " + quoteDN(l.Subject) + ", issuer " + quoteDN(l.Issuer)
	if !l.NotAfter.IsZero() {
		s += ", expires " + l.NotAfter.UTC().Format(time.RFC3339)
	}
	return s
}

func expiresText(l watcher.CertSummary) string {
	if l.NotAfter.IsZero() {
		return ""
	}
	return ", expires " + l.NotAfter.UTC().Format(time.RFC3339)
}

// digestSeparators are what norm drops from a digest.
var digestSeparators = strings.NewReplacer(":", "", " ", "")

// norm canonicalises a hex digest: lower case, no colons or spaces.
func norm(d string) string {
	return strings.ToLower(digestSeparators.Replace(d))
}

func contains(list []string, d string) bool {
	if d == "" {
		return false
	}
	d = norm(d)
	for _, x := range list {
		if norm(x) == d {
			return true
		}
	}
	return false
}

func containsExact(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// short abbreviates a hex digest for text: the first 16 hex digits are
// plenty for a person to tell keys apart; Old and New carry it whole.
func short(d string) string {
	d = norm(d)
	if d == "" {
		return "(none)"
	}
	if len(d) > 16 {
		return d[:16] + "…"
	}
	return d
}

func quoteDN(s string) string {
	if s == "" {
		return "(empty)"
	}
	return "\"" + s + "\""
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// oneLine keeps peer-controlled strings (subjects, issuers, failures) on
// one line and bounded: control characters become '?', and anything past
// 512 bytes is cut.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return '?'
		}
		return r
	}, s)
	if len(s) > 512 {
		s = strings.ToValidUTF8(s[:512], "") + "…"
	}
	return s
}

func humanDuration(d time.Duration) string {
	if d >= 48*time.Hour {
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	if d >= 2*time.Hour {
		return strconv.Itoa(int(d/time.Hour)) + " hours"
	}
	return strconv.Itoa(int(d/time.Minute)) + " minutes"
}
