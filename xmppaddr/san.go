package xmppaddr

import (
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/net/publicsuffix"
)

// IDType names the form of a presented identifier, as RFC 5280, RFC 4985
// and RFC 6120 name the subject alternative name forms.
type IDType string

// Presented identifier types.
const (
	TypeDNSName       IDType = "dNSName"
	TypeSRVName       IDType = "SRVName"  // otherName 1.3.6.1.5.5.7.8.7, RFC 4985
	TypeXmppAddr      IDType = "XmppAddr" // otherName 1.3.6.1.5.5.7.8.5, RFC 6120 §13.7.1.4
	TypeIPAddress     IDType = "iPAddress"
	TypeURI           IDType = "URI"
	TypeEmail         IDType = "rfc822Name"
	TypeOtherName     IDType = "otherName" // an otherName of a type-id xmppcert does not know
	TypeDirectoryName IDType = "directoryName"
	TypeX400Address   IDType = "x400Address"
	TypeEDIPartyName  IDType = "ediPartyName"
	TypeRegisteredID  IDType = "registeredID"
	TypeCN            IDType = "CN" // a subject common name, not a SAN
)

// Object identifiers of the XMPP otherName forms and the SAN extension.
var (
	OIDSRVName  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
	OIDXmppAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}
	OIDSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidCN       = asn1.ObjectIdentifier{2, 5, 4, 3}
)

// MaxSANEntries bounds the work done on one certificate: entries past it
// are not read, and a finding says so. Real certificates carry at most a
// few hundred names (public CAs cap at 100).
const MaxSANEntries = 1024

// Identifier is one identity a certificate presents.
type Identifier struct {
	Type IDType `json:"type"`
	// Value is the identifier as presented, with control and invalid
	// characters escaped so that it is safe to print.
	Value string `json:"value"`
	// OID is the type-id of an otherName.
	OID string `json:"oid,omitempty"`
	// Service is the service of an SRVName without its underscore
	// ("xmpp-client").
	Service string `json:"service,omitempty"`
	// Domain is the canonical (A-label, lower case) DNS domain the
	// identifier asserts, the part matched against reference identities.
	// A host name with a wildcard RFC 9525 refuses keeps its Domain (and
	// Ignored says why), because some peers match it all the same.
	Domain string `json:"domain,omitempty"`
	// Ignored says why the identifier is never used for matching; it is
	// empty for identifiers that are.
	Ignored string `json:"ignored,omitempty"`

	wildcard bool   // Domain is "*." followed by a valid base domain
	ip       net.IP // the address of an iPAddress
	// raw is the value's text exactly as the certificate holds it (a
	// dNSName, a CN, an otherName's string), and tag the string type of an
	// otherName's value: what a peer's own code reads, before any checks.
	raw string
	tag cbasn1.Tag
}

// usable reports whether the identifier takes part in matching at all.
func (id *Identifier) usable() bool { return id.Ignored == "" }

// Presented is everything a certificate says about whose it is: its
// subject alternative names and its subject common names, with findings
// about entries that are malformed or unusable.
type Presented struct {
	Identifiers []Identifier
	Findings    []Finding
	// SANPresent is true when the certificate has a subjectAltName
	// extension, even an empty or malformed one.
	SANPresent bool
}

// Identities reads the identities a certificate presents. The SAN
// extension is parsed from its DER, not from anything crypto/x509 printed
// or kept, so that otherNames and invalid entries are seen as they are.
func Identities(cert *x509.Certificate) Presented {
	var p Presented
	for _, ext := range cert.Extensions {
		if ext.Id.Equal(OIDSAN) {
			p.SANPresent = true
			p.Identifiers, p.Findings = ParseSAN(ext.Value)
			break
		}
	}
	if !p.SANPresent {
		p.Findings = append(p.Findings, Finding{CodeSANAbsent, Info,
			"the certificate has no subjectAltName extension; RFC 9525 peers find no identity in it"})
	} else if len(p.Identifiers) == 0 && len(p.Findings) == 0 {
		p.Findings = append(p.Findings, Finding{CodeSANEmpty, Warning,
			"the subjectAltName extension is empty, which RFC 5280 forbids; it presents no identity"})
	}
	p.Identifiers, p.Findings = appendSubjectCNs(cert, p.Identifiers, p.Findings)
	// Empty, not nil: "none" is an answer, and JSON shows it as [].
	p.Identifiers, p.Findings = nonNil(p.Identifiers), nonNil(p.Findings)
	return p
}

// appendSubjectCNs adds the subject's common names as identifiers of type
// CN, read attribute by attribute, and flags subject attributes whose text
// contains "CN=": software that extracts the CN from a printed DN (Openfire
// before CVE-2025-59154 was fixed) takes such text for an identity.
func appendSubjectCNs(cert *x509.Certificate, ids []Identifier, fs []Finding) ([]Identifier, []Finding) {
	cns := 0
	for _, atv := range cert.Subject.Names {
		s, isString := atv.Value.(string)
		if !isString {
			continue
		}
		if atv.Type.Equal(oidCN) {
			cns++
			id := Identifier{Type: TypeCN, Value: printable(s), raw: s}
			if d, err := presentedHostname(s); err != nil {
				id.Ignored = "not a host name: " + err.Error()
			} else if werr := checkWildcard(d); werr != nil {
				id.Domain, id.Ignored = d, werr.Error()
			} else {
				id.Domain, id.wildcard = d, strings.HasPrefix(d, "*.")
			}
			ids = append(ids, id)
		}
		if strings.Contains(strings.ToUpper(s), "CN=") {
			fs = append(fs, Finding{CodeSubjectInjection, Warning, fmt.Sprintf(
				"subject attribute %s holds %q: software that parses a printed DN for CN= (Openfire before CVE-2025-59154 was fixed) can take it for an identity",
				attributeName(atv.Type), printable(s))})
		}
	}
	if cns > 1 {
		fs = append(fs, Finding{CodeCNMultiple, Warning, fmt.Sprintf(
			"the subject has %d CN attributes; software that falls back to the CN picks one of them unpredictably", cns)})
	}
	return ids, fs
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// ParseSAN parses the DER value of a subjectAltName extension. Entries of
// a wrong string type, malformed entries, unknown otherNames and names that
// cannot serve as server identities come back marked Ignored with a finding
// each; parsing never fails as a whole and never panics.
func ParseSAN(der []byte) ([]Identifier, []Finding) {
	var ids []Identifier
	var fs []Finding
	input := cryptobyte.String(der)
	var seq cryptobyte.String
	if !input.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return nil, []Finding{{CodeSANMalformed, Error,
			"the subjectAltName extension is not a DER SEQUENCE of names; no identity can be read from it"}}
	}
	if !input.Empty() {
		fs = append(fs, Finding{CodeSANTrailingData, Warning,
			fmt.Sprintf("%d bytes of trailing data after the subjectAltName names were ignored", len(input))})
	}
	if seq.Empty() {
		return nil, append(fs, Finding{CodeSANEmpty, Warning,
			"the subjectAltName extension is empty, which RFC 5280 forbids; it presents no identity"})
	}
	for n := 0; !seq.Empty(); n++ {
		if n == MaxSANEntries {
			fs = append(fs, Finding{CodeSANTooMany, Warning, fmt.Sprintf(
				"more than %d subjectAltName entries; the rest were not read", MaxSANEntries)})
			break
		}
		var v cryptobyte.String
		var tag cbasn1.Tag
		if !seq.ReadAnyASN1(&v, &tag) {
			fs = append(fs, Finding{CodeSANMalformed, Error, fmt.Sprintf(
				"subjectAltName entry %d is not valid DER; it and the entries after it were not read", n+1)})
			break
		}
		id, f := parseGeneralName(tag, v)
		ids = append(ids, id)
		if f != nil {
			fs = append(fs, *f)
		}
	}
	return ids, fs
}

// GeneralName tags (RFC 5280 §4.2.1.6), all context-specific.
const (
	tagOtherName     = 0
	tagEmail         = 1
	tagDNSName       = 2
	tagX400Address   = 3
	tagDirectoryName = 4
	tagEDIPartyName  = 5
	tagURI           = 6
	tagIPAddress     = 7
	tagRegisteredID  = 8
)

// parseGeneralName turns one GeneralName into an Identifier, with a
// finding when the entry is malformed or unusable for XMPP.
func parseGeneralName(tag cbasn1.Tag, v cryptobyte.String) (Identifier, *Finding) {
	const classMask, constructed = 0xc0, 0x20
	if tag&classMask != 0x80 {
		id := Identifier{Type: TypeOtherName, Value: hexValue(v), Ignored: "not a GeneralName"}
		return id, &Finding{CodeSANMalformed, Warning, fmt.Sprintf("subjectAltName entry with tag 0x%02x is not a GeneralName; ignored", uint8(tag))}
	}
	switch int(tag &^ (classMask | constructed)) {
	case tagOtherName:
		return parseOtherName(v)
	case tagDNSName:
		return parseDNSName(string(v))
	case tagIPAddress:
		id := Identifier{Type: TypeIPAddress, Value: hexValue(v)}
		if len(v) == net.IPv4len || len(v) == net.IPv6len {
			id.ip = net.IP(append([]byte(nil), v...))
			id.Value = id.ip.String()
			return id, nil
		}
		id.Ignored = fmt.Sprintf("an IP address has 4 or 16 bytes, not %d", len(v))
		return id, &Finding{CodeSANMalformed, Warning, "iPAddress entry " + id.Value + ": " + id.Ignored + "; ignored"}
	case tagURI:
		return Identifier{Type: TypeURI, Value: printable(string(v)), Ignored: "URI-IDs are not XMPP identities"}, nil
	case tagEmail:
		return Identifier{Type: TypeEmail, Value: printable(string(v)), Ignored: "e-mail addresses are not XMPP identities"}, nil
	case tagDirectoryName:
		return Identifier{Type: TypeDirectoryName, Value: hexValue(v), Ignored: "directory names are not XMPP identities"}, nil
	case tagX400Address:
		return Identifier{Type: TypeX400Address, Value: hexValue(v), Ignored: "X.400 addresses are not XMPP identities"}, nil
	case tagEDIPartyName:
		return Identifier{Type: TypeEDIPartyName, Value: hexValue(v), Ignored: "EDI party names are not XMPP identities"}, nil
	case tagRegisteredID:
		return Identifier{Type: TypeRegisteredID, Value: hexValue(v), Ignored: "registered IDs are not XMPP identities"}, nil
	}
	id := Identifier{Type: TypeOtherName, Value: hexValue(v), Ignored: "unknown GeneralName form"}
	return id, &Finding{CodeSANMalformed, Warning, fmt.Sprintf("subjectAltName entry of unknown form [%d]; ignored", int(tag&^(classMask|constructed)))}
}

// parseDNSName checks a dNSName: an IA5String host name, possibly with a
// wildcard that RFC 9525 allows (the whole left-most label, nothing else).
func parseDNSName(s string) (Identifier, *Finding) {
	id := Identifier{Type: TypeDNSName, Value: printable(s), raw: s}
	d, err := presentedHostname(s)
	if err != nil {
		id.Ignored = err.Error()
		return id, &Finding{CodeDNSNameInvalid, Warning, fmt.Sprintf("dNSName %q ignored: %s", id.Value, err)}
	}
	id.Domain = d // kept for peers with their own wildcard rules
	if err := checkWildcard(d); err != nil {
		id.Ignored = err.Error()
		return id, &Finding{CodeWildcardInvalid, Warning, fmt.Sprintf("dNSName %q ignored: %s", id.Value, err)}
	}
	id.wildcard = strings.HasPrefix(d, "*.")
	return id, nil
}

// checkWildcard enforces RFC 9525 §6.3 on a presented name: a wildcard is
// the complete left-most label and the only "*"; it never stands inside a
// label (ba*.example.org) nor inside an A-label (xn--*-...); and it never
// spans a public suffix (*.com), which no CA may issue.
func checkWildcard(name string) error {
	if !strings.Contains(name, "*") {
		return nil
	}
	if name == "*" {
		return fmt.Errorf("a bare \"*\" names no domain")
	}
	first, rest, _ := strings.Cut(name, ".")
	switch {
	case strings.Contains(rest, "*"):
		return fmt.Errorf("a wildcard may only be the left-most label")
	case strings.HasPrefix(first, "xn--"):
		return fmt.Errorf("a wildcard inside an A-label (%s) matches nothing", first)
	case first != "*":
		return fmt.Errorf("a partial-label wildcard (%s) matches nothing under RFC 9525", first)
	case rest == "":
		return fmt.Errorf("a wildcard needs a domain after it")
	}
	if suffix, icann := publicsuffix.PublicSuffix(rest); icann && suffix == rest {
		return fmt.Errorf("a wildcard over the public suffix %q would match other people's domains", rest)
	}
	return nil
}

// parseOtherName dispatches an otherName on its type-id: SRVName and
// XmppAddr are read, anything else is shown and ignored.
func parseOtherName(v cryptobyte.String) (Identifier, *Finding) {
	var oid asn1.ObjectIdentifier
	var explicit cryptobyte.String
	if !v.ReadASN1ObjectIdentifier(&oid) || !v.ReadASN1(&explicit, cbasn1.Tag(0).ContextSpecific().Constructed()) {
		id := Identifier{Type: TypeOtherName, Value: hexValue(v), Ignored: "malformed otherName"}
		return id, &Finding{CodeOtherNameInvalid, Warning, "an otherName entry is not a type-id followed by an [0] EXPLICIT value; ignored"}
	}
	var value cryptobyte.String
	var valueTag cbasn1.Tag
	ok := explicit.ReadAnyASN1(&value, &valueTag)
	typ, code := TypeOtherName, CodeOtherNameUnknown
	switch {
	case oid.Equal(OIDSRVName):
		typ = TypeSRVName
	case oid.Equal(OIDXmppAddr):
		typ = TypeXmppAddr
	}
	id := Identifier{Type: typ, OID: oid.String(), Value: stringValue(valueTag, value), raw: string(value), tag: valueTag}
	if !ok || !explicit.Empty() || !v.Empty() {
		id.Ignored = "malformed or trailing data in the otherName value"
		return id, &Finding{CodeOtherNameInvalid, Warning, fmt.Sprintf("%s entry %q has malformed or trailing data; ignored", typ, id.Value)}
	}
	switch typ {
	case TypeSRVName:
		return parseSRVName(id, valueTag, string(value))
	case TypeXmppAddr:
		return parseXmppAddr(id, valueTag, string(value))
	}
	id.Ignored = "unknown otherName type " + id.OID
	if _, isString := stringTypeNames[valueTag]; !isString {
		id.Value = hexValue(value)
	}
	return id, &Finding{code, Warning, fmt.Sprintf(
		"otherName of unknown type %s holding %q ignored: XMPP peers read only SRVName (1.3.6.1.5.5.7.8.7) and XmppAddr (1.3.6.1.5.5.7.8.5)",
		id.OID, id.Value)}
}

// parseSRVName checks an RFC 4985 SRVName: IA5String "_service.name",
// with no protocol label.
func parseSRVName(id Identifier, tag cbasn1.Tag, s string) (Identifier, *Finding) {
	if tag != cbasn1.IA5String {
		id.Ignored = "SRVName must be an IA5String, not " + tagName(tag)
		return id, &Finding{CodeSRVNameType, Warning, fmt.Sprintf("SRVName %q is a %s; RFC 4985 requires IA5String and peers ignore it", id.Value, tagName(tag))}
	}
	service, name, _ := strings.Cut(s, ".")
	if strings.HasPrefix(name, "_") {
		proto, host, _ := strings.Cut(name, ".")
		id.Ignored = "SRVName carries a protocol label " + proto
		return id, &Finding{CodeSRVNameProto, Warning, fmt.Sprintf(
			"SRVName %q carries the protocol label %s; RFC 4985 names are _service.name, so write %s.%s", id.Value, printable(proto), printable(service), printable(host))}
	}
	svc, valid := strings.CutPrefix(service, "_")
	valid = valid && svc != "" && len(svc) <= 15 && strings.Trim(svc, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == ""
	d, err := presentedHostname(name)
	if err == nil {
		err = checkWildcard(d)
	}
	if !valid || err != nil {
		why := "not of the form _service.name"
		if valid {
			why = err.Error()
		}
		id.Ignored = why
		return id, &Finding{CodeSRVNameInvalid, Warning, fmt.Sprintf("SRVName %q ignored: %s", id.Value, why)}
	}
	id.Service, id.Domain, id.wildcard = strings.ToLower(svc), d, strings.HasPrefix(d, "*.")
	return id, nil
}

// parseXmppAddr checks an XmppAddr: a UTF8String JID. For a server's
// identity only a bare domain counts (RFC 6120 §13.7.1.4).
func parseXmppAddr(id Identifier, tag cbasn1.Tag, s string) (Identifier, *Finding) {
	if tag != cbasn1.UTF8String {
		id.Ignored = "XmppAddr must be a UTF8String, not " + tagName(tag)
		return id, &Finding{CodeXmppAddrType, Warning, fmt.Sprintf("XmppAddr %q is a %s; RFC 6120 requires UTF8String and peers ignore it", id.Value, tagName(tag))}
	}
	if !utf8.ValidString(s) {
		id.Ignored = "not valid UTF-8"
		return id, &Finding{CodeXmppAddrInvalid, Warning, fmt.Sprintf("XmppAddr %q is not valid UTF-8; ignored", id.Value)}
	}
	bare, resource, hasResource := strings.Cut(s, "/")
	domain := bare
	local, afterAt, hasLocal := strings.Cut(bare, "@")
	if hasLocal {
		domain = afterAt
	}
	if hasLocal || hasResource {
		what := "a resource (/" + printable(resource) + ")"
		if hasLocal {
			what = "a localpart (" + printable(local) + "@)"
		}
		id.Ignored = "JID with " + what + " is not a server identity"
		return id, &Finding{CodeXmppAddrNotDomain, Warning, fmt.Sprintf(
			"XmppAddr %q has %s: only a bare domain proves a server's identity; ignored", id.Value, what)}
	}
	d, err := CanonicalDomain(domain)
	if err != nil {
		id.Ignored = err.Error()
		return id, &Finding{CodeXmppAddrInvalid, Warning, fmt.Sprintf("XmppAddr %q ignored: %s", id.Value, err)}
	}
	id.Domain = d
	return id, nil
}

var stringTypeNames = map[cbasn1.Tag]string{
	cbasn1.UTF8String:      "UTF8String",
	cbasn1.IA5String:       "IA5String",
	cbasn1.PrintableString: "PrintableString",
	cbasn1.T61String:       "TeletexString",
	cbasn1.Tag(28):         "UniversalString",
	cbasn1.Tag(30):         "BMPString",
	cbasn1.Tag(26):         "VisibleString",
}

// tagName names an ASN.1 tag the way an operator reads it in openssl output.
func tagName(tag cbasn1.Tag) string {
	if n, ok := stringTypeNames[tag]; ok {
		return n
	}
	return fmt.Sprintf("tag 0x%02x", uint8(tag))
}

// stringValue shows a value of any string type as text, others as hex.
func stringValue(tag cbasn1.Tag, v cryptobyte.String) string {
	if _, ok := stringTypeNames[tag]; ok && tag != cbasn1.Tag(28) && tag != cbasn1.Tag(30) {
		return printable(string(v))
	}
	return hexValue(v)
}

func hexValue(v []byte) string {
	const max = 64
	if len(v) > max {
		return hex.EncodeToString(v[:max]) + "..."
	}
	return hex.EncodeToString(v)
}

// printable returns s unchanged when it is valid UTF-8 without control
// characters, and an escaped form otherwise, so that no certificate can
// write terminal escapes or fake lines into xmppcert's output.
func printable(s string) string {
	const max = 256
	if len(s) > max {
		s = s[:max] + "..."
	}
	if utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

var attributeNames = map[string]string{
	"2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
	"2.5.4.11": "OU", "2.5.4.5": "serialNumber", "0.9.2342.19200300.100.1.25": "DC",
	"1.2.840.113549.1.9.1": "emailAddress",
}

func attributeName(oid asn1.ObjectIdentifier) string {
	if n, ok := attributeNames[oid.String()]; ok {
		return n
	}
	return oid.String()
}
