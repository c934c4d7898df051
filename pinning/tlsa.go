package pinning

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/miekg/dns"
)

// TLSA certificate usages (RFC 6698 §2.1.1, mnemonics from RFC 7218).
const (
	UsagePKIXTA uint8 = 0 // CA constraint, PKIX validation still applies
	UsagePKIXEE uint8 = 1 // service certificate constraint, PKIX still applies
	UsageDANETA uint8 = 2 // trust anchor assertion: the CA is the anchor
	UsageDANEEE uint8 = 3 // domain-issued certificate: the key alone is trusted
)

// TLSA selectors (RFC 6698 §2.1.2).
const (
	SelectorCert uint8 = 0 // the whole DER certificate
	SelectorSPKI uint8 = 1 // the DER SubjectPublicKeyInfo: survives renewals that keep the key
)

// TLSA matching types (RFC 6698 §2.1.3).
const (
	MatchFull   uint8 = 0 // the selected bytes themselves
	MatchSHA256 uint8 = 1
	MatchSHA512 uint8 = 2
)

// TLSA is one TLSA record: the owner name and the record data. The README
// ("Pin data and key rollover") recommends 3 1 1 (DANE-EE, SPKI, SHA-256), published for the next key
// before a renewal switches to it, and 2 1 1 to pin a CA.
type TLSA struct {
	// Name is the owner name, _PORT._tcp.TARGET. in canonical form
	// (lower case, trailing dot); empty for bare record data.
	Name         string `json:"name,omitempty"`
	Usage        uint8  `json:"usage"`
	Selector     uint8  `json:"selector"`
	MatchingType uint8  `json:"matching_type"`
	// Data is the certificate association data, in hex as zone files
	// write it.
	Data string `json:"data"`
}

// NewTLSA makes the record data that pins cert with the given
// parameters. For the CA usages (0 and 2) cert must be the CA's
// certificate, for 1 and 3 the server's.
func NewTLSA(cert *x509.Certificate, usage, selector, mtype uint8) (TLSA, error) {
	if usage > UsageDANEEE {
		return TLSA{}, fmt.Errorf("TLSA usage %d is not one of 0 (PKIX-TA), 1 (PKIX-EE), 2 (DANE-TA), 3 (DANE-EE)", usage)
	}
	data, err := association(cert, selector, mtype)
	if err != nil {
		return TLSA{}, err
	}
	return TLSA{Usage: usage, Selector: selector, MatchingType: mtype, Data: hex.EncodeToString(data)}, nil
}

// NewKeyTLSA makes the SPKI record data (selector 1) that pins a public
// key, for a key that has no certificate yet: the next key of a
// lineage, published before the renewal that switches to it.
func NewKeyTLSA(pub crypto.PublicKey, usage, mtype uint8) (TLSA, error) {
	if usage > UsageDANEEE {
		return TLSA{}, fmt.Errorf("TLSA usage %d is not one of 0 (PKIX-TA), 1 (PKIX-EE), 2 (DANE-TA), 3 (DANE-EE)", usage)
	}
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return TLSA{}, err
	}
	data, err := digest(spki, mtype)
	if err != nil {
		return TLSA{}, err
	}
	return TLSA{Usage: usage, Selector: SelectorSPKI, MatchingType: mtype, Data: hex.EncodeToString(data)}, nil
}

// association computes the certificate association data of cert.
func association(cert *x509.Certificate, selector, mtype uint8) ([]byte, error) {
	switch selector {
	case SelectorCert:
		return digest(cert.Raw, mtype)
	case SelectorSPKI:
		return digest(cert.RawSubjectPublicKeyInfo, mtype)
	}
	return nil, fmt.Errorf("TLSA selector %d is not one of 0 (full certificate), 1 (SPKI)", selector)
}

// digest applies a matching type to the selected bytes.
func digest(selected []byte, mtype uint8) ([]byte, error) {
	switch mtype {
	case MatchFull:
		return selected, nil
	case MatchSHA256:
		d := sha256.Sum256(selected)
		return d[:], nil
	case MatchSHA512:
		d := sha512.Sum512(selected)
		return d[:], nil
	}
	return nil, fmt.Errorf("TLSA matching type %d is not one of 0 (full), 1 (SHA-256), 2 (SHA-512)", mtype)
}

// Matches reports whether the record pins cert: whether cert's selected
// bytes have the record's association data. Which certificate of a chain
// to try is the caller's choice (the leaf for usages 1 and 3, the CAs for
// 0 and 2).
func (r TLSA) Matches(cert *x509.Certificate) bool {
	want, err := hex.DecodeString(r.Data)
	if err != nil {
		return false
	}
	got, err := association(cert, r.Selector, r.MatchingType)
	return err == nil && bytes.Equal(got, want)
}

// MatchesChain reports whether the record authenticates a presented
// chain (leaf first) by DANE's rules for its usage, leaving out PKIX
// validation: usages 1 and 3 match the leaf, usages 0 and 2 any
// certificate above it.
func (r TLSA) MatchesChain(chain []*x509.Certificate) bool {
	if len(chain) == 0 {
		return false
	}
	if r.Usage == UsagePKIXEE || r.Usage == UsageDANEEE {
		return r.Matches(chain[0])
	}
	for _, c := range chain[1:] {
		if r.Matches(c) {
			return true
		}
	}
	return false
}

// Equal reports whether two records have the same owner and data (hex
// case aside).
func (r TLSA) Equal(o TLSA) bool {
	return dns.CanonicalName(r.Name) == dns.CanonicalName(o.Name) && r.Usage == o.Usage &&
		r.Selector == o.Selector && r.MatchingType == o.MatchingType && strings.EqualFold(r.Data, o.Data)
}

// String is the record as a zone-file line, the form hash-slinger's
// `tlsa --create` prints: "_5222._tcp.xmpp.example. IN TLSA 3 1 1 hex".
// Without a Name it is the record data alone.
func (r TLSA) String() string {
	rdata := fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, strings.ToLower(r.Data))
	if r.Name == "" {
		return rdata
	}
	return r.Name + " IN TLSA " + rdata
}

// RR converts the record for miekg/dns, with the given TTL in seconds.
func (r TLSA) RR(ttl uint32) *dns.TLSA {
	return &dns.TLSA{
		Hdr:          dns.RR_Header{Name: dns.CanonicalName(r.Name), Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: ttl},
		Usage:        r.Usage,
		Selector:     r.Selector,
		MatchingType: r.MatchingType,
		Certificate:  strings.ToLower(r.Data),
	}
}

// FromRR converts a miekg/dns TLSA record.
func FromRR(rr *dns.TLSA) TLSA {
	return TLSA{Name: dns.CanonicalName(rr.Hdr.Name), Usage: rr.Usage, Selector: rr.Selector, MatchingType: rr.MatchingType, Data: strings.ToLower(rr.Certificate)}
}

// MaxTLSALine bounds what ParseTLSA reads: a SHA-512 record with a long
// owner name fits many times over, a full certificate (matching type 0)
// of any sane size too.
const MaxTLSALine = 64 << 10

// ParseTLSA reads one TLSA record in presentation form: a zone-file line
// ("NAME [TTL] [IN] TLSA U S M HEX") or the record data alone
// ("U S M HEX"). It checks the fields: usage 0-3, selector 0-1, matching
// type 0-2, and data of the length the matching type implies.
func ParseTLSA(line string) (TLSA, error) {
	if len(line) > MaxTLSALine {
		return TLSA{}, fmt.Errorf("TLSA record of %d bytes; at most %d", len(line), MaxTLSALine)
	}
	f := strings.Fields(line)
	var r TLSA
	if i := indexFold(f, "TLSA"); i >= 0 {
		if i == 0 {
			return TLSA{}, errors.New("TLSA record without an owner name")
		}
		name := f[0]
		if _, ok := dns.IsDomainName(name); !ok || !strings.HasSuffix(name, ".") {
			return TLSA{}, fmt.Errorf("TLSA owner %q is not a fully qualified domain name (end it with a dot)", name)
		}
		// A zone file names an IDN by its A-labels; other bytes would not
		// survive canonical (lower-case) form unchanged.
		if strings.ContainsFunc(name, func(r rune) bool { return r >= utf8.RuneSelf }) {
			return TLSA{}, fmt.Errorf("TLSA owner %q is not ASCII; write an internationalised name in its xn-- form", name)
		}
		r.Name = dns.CanonicalName(name)
		f = f[i+1:]
	}
	if len(f) < 4 {
		return TLSA{}, errors.New(`TLSA record data needs four fields: usage, selector, matching type and hex data, as in "3 1 1 ab12..."`)
	}
	fields := []*uint8{&r.Usage, &r.Selector, &r.MatchingType}
	for i, p := range fields {
		v, err := strconv.ParseUint(f[i], 10, 8)
		if err != nil {
			return TLSA{}, fmt.Errorf("TLSA field %q is not a number from 0 to 255", f[i])
		}
		*p = uint8(v)
	}
	// Zone files may split the data into several hex words.
	data := strings.ToLower(strings.Join(f[3:], ""))
	raw, err := hex.DecodeString(data)
	if err != nil || len(raw) == 0 {
		return TLSA{}, errors.New("TLSA certificate association data is not hex")
	}
	r.Data = data
	return r, r.validate(len(raw))
}

// validate checks the fields of a record whose data has n bytes.
func (r TLSA) validate(n int) error {
	switch {
	case r.Usage > UsageDANEEE:
		return fmt.Errorf("TLSA usage %d is not one of 0 (PKIX-TA), 1 (PKIX-EE), 2 (DANE-TA), 3 (DANE-EE)", r.Usage)
	case r.Selector > SelectorSPKI:
		return fmt.Errorf("TLSA selector %d is not one of 0 (full certificate), 1 (SPKI)", r.Selector)
	case r.MatchingType > MatchSHA512:
		return fmt.Errorf("TLSA matching type %d is not one of 0 (full), 1 (SHA-256), 2 (SHA-512)", r.MatchingType)
	case r.MatchingType == MatchSHA256 && n != sha256.Size:
		return fmt.Errorf("TLSA SHA-256 data has %d bytes, not %d", n, sha256.Size)
	case r.MatchingType == MatchSHA512 && n != sha512.Size:
		return fmt.Errorf("TLSA SHA-512 data has %d bytes, not %d", n, sha512.Size)
	}
	return nil
}

func indexFold(f []string, s string) int {
	for i, x := range f {
		if strings.EqualFold(x, s) {
			return i
		}
	}
	return -1
}

// Endpoint is a port on an SRV target where a TLSA record set lives.
type Endpoint struct {
	Target string `json:"target"`
	Port   uint16 `json:"port"`
}

// DefaultPorts are the XMPP ports a host's TLSA records cover when no SRV
// record says otherwise: c2s and s2s with STARTTLS (5222, 5269) and with
// direct TLS (5223, 5270, XEP-0368).
var DefaultPorts = []uint16{5222, 5269, 5223, 5270}

// Owner is the TLSA owner name for the endpoint, _PORT._tcp.TARGET.
// (RFC 6698 §3; RFC 7673 for SRV targets).
func (e Endpoint) Owner() string {
	return fmt.Sprintf("_%d._tcp.%s", e.Port, dns.CanonicalName(e.Target))
}

// Records returns one record per endpoint and per pin, owners set: the
// record set a zone needs so that each endpoint matches every pin.
func Records(endpoints []Endpoint, pins []TLSA) []TLSA {
	out := make([]TLSA, 0, len(endpoints)*len(pins))
	for _, e := range endpoints {
		for _, p := range pins {
			p.Name = e.Owner()
			out = append(out, p)
		}
	}
	return out
}
