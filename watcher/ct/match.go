package ct

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/internal/oneline"
)

// Issued is a certificate xmppcert issued (any version of any lineage),
// as Matcher knows it.
type Issued struct {
	// Lineage is the lineage it belongs to.
	Lineage string
	// Cert is the certificate.
	Cert *x509.Certificate
}

// Matcher sorts log entries by our names and our certificates.
type Matcher struct {
	names   map[string]string // name -> lineage
	ours    map[[32]byte]string
	issuers map[string]bool // raw subject of our certificates' issuers
	keys    map[[32]byte]string
}

// NewMatcher knows names (lineage by name, every name of every lineage)
// and issued, the certificates xmppcert issued; keys are the SHA-256 of
// the SubjectPublicKeyInfo of our keys (current and next) by lineage.
func NewMatcher(names map[string]string, issued []Issued, keys map[[32]byte]string) (*Matcher, error) {
	m := &Matcher{names: map[string]string{}, ours: map[[32]byte]string{}, issuers: map[string]bool{}, keys: keys}
	for n, l := range names {
		m.names[strings.ToLower(strings.TrimSuffix(n, "."))] = l
	}
	for _, c := range issued {
		h, err := TBSHash(c.Cert.Raw)
		if err != nil {
			return nil, fmt.Errorf("lineage %s: %w", c.Lineage, err)
		}
		m.ours[h] = c.Lineage
		m.issuers[string(c.Cert.RawIssuer)] = true
	}
	return m, nil
}

// Match is an entry that covers one of our names.
type Match struct {
	// Entry is the log entry.
	Entry Entry
	// Names are the entry's names that cover ours; Lineages the
	// lineages of ours they cover.
	Names    []string
	Lineages []string
	// Ours is the lineage whose version the entry is (a certificate or
	// precertificate xmppcert issued); empty for an unexpected one.
	Ours string
	// KnownIssuer is true when the issuer is one that issued one of our
	// certificates; KnownKey names the lineage whose key the entry
	// certifies, if any.
	KnownIssuer bool
	KnownKey    string
}

// Match reports whether e covers one of our names, and how.
func (m *Matcher) Match(e Entry) (Match, bool) {
	if e.Cert == nil {
		return Match{}, false
	}
	var names []string
	names = append(names, e.Cert.DNSNames...)
	if cn := e.Cert.Subject.CommonName; cn != "" {
		names = append(names, cn)
	}
	mt := Match{Entry: e}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		for _, l := range m.covers(n) {
			if !slices.Contains(mt.Names, n) {
				mt.Names = append(mt.Names, n)
			}
			if !slices.Contains(mt.Lineages, l) {
				mt.Lineages = append(mt.Lineages, l)
			}
		}
	}
	if len(mt.Names) == 0 {
		return Match{}, false
	}
	mt.Ours = m.ours[e.TBSHash]
	mt.KnownIssuer = m.issuers[string(e.Cert.RawIssuer)]
	mt.KnownKey = m.keys[sha256.Sum256(e.Cert.RawSubjectPublicKeyInfo)]
	return mt, true
}

// covers returns the lineages of our names that the certificate name n
// covers: n itself, or every name one label below a wildcard's parent.
func (m *Matcher) covers(n string) []string {
	if l, ok := m.names[n]; ok {
		return []string{l}
	}
	parent, ok := strings.CutPrefix(n, "*.")
	if !ok {
		return nil
	}
	var out []string
	for ours, l := range m.names {
		if _, p, ok := strings.Cut(ours, "."); ok && p == parent && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// maxText bounds each piece of certificate text (an issuer DN, the
// names) in Describe: a certificate may carry anything.
const maxText = 256

// Describe is one line about an unexpected match, for alerts: what it
// is, for which names, from which issuer (its control characters
// replaced, each piece cut at maxText), and whether issuer and key are
// ours.
func (mt Match) Describe(logName string) string {
	c := mt.Entry.Cert
	what := "certificate"
	if mt.Entry.Precert {
		what = "precertificate"
	}
	issuer := "an issuer that never issued for us"
	if mt.KnownIssuer {
		issuer = "one of our issuers"
	}
	key := "a key that is none of ours"
	if mt.KnownKey != "" {
		key = "the key of lineage " + mt.KnownKey
	}
	return fmt.Sprintf("CT log %s entry %d: a %s for %s that xmppcert did not issue: issuer %s (%s), serial %s, not before %s, for %s",
		oneline.Clip(logName, maxText), mt.Entry.Index, what, oneline.Clip(strings.Join(mt.Names, ", "), maxText), oneline.Clip(c.Issuer.String(), maxText), issuer, oneline.Clip(hex.EncodeToString(c.SerialNumber.Bytes()), 64),
		c.NotBefore.UTC().Format(time.RFC3339), key)
}
