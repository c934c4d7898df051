package xmppaddr

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/net/idna"
)

// ejabberdCode names the code the ejabberd port follows, for the reasons
// it gives: processone/xmpp's xmpp_stream_pkix.erl, identical from p1_xmpp
// 1.6.1 (Debian's ejabberd 23.01) to its head.
const ejabberdCode = "xmpp_stream_pkix verify_server_cert"

// ejabberdAuthenticate is ejabberd's s2s identity check,
// xmpp_stream_pkix:authenticate/2 with verify_server_cert/2,
// get_cert_domains/1 and match_domain/2, over what the certificate holds.
// host is the peer's domain as ejabberd has it, nameprepped from the
// stream header (lower case; a trailing dot kept).
//
// The code collects names from the first subject CN (when it decodes as
// a bare JID: nameprepped, no IDNA) and from the SAN: each dNSName exactly
// as presented (no lower-casing) and each XmppAddr. For an XmppAddr that
// is a bare domain it returns a binary where lists:flatmap needs a list,
// so the check raises badarg before comparing anything and the stream
// process dies: crash is then that XmppAddr. Otherwise matched is the
// name that equals the host after IDNA ToASCII, or a "*." name whose
// rest equals the host without its first label; "" when none does.
func ejabberdAuthenticate(host string, p Presented, leaf *x509.Certificate) (matched, crash string) {
	server, err := ejabberdToASCII(host)
	if err != nil {
		return "", "" // idna_failed
	}
	for _, atv := range leaf.Subject.Names {
		if atv.Type.Equal(oidCN) {
			s, _ := atv.Value.(string)
			if d, ok := ejabberdBareJID(s); ok && ejabberdMatch(server, d) {
				matched = "CN " + strconv.Quote(d)
			}
			break // lists:keyfind: the first CN only
		}
	}
	for _, id := range p.Identifiers {
		switch {
		case id.Type == TypeDNSName:
			if matched == "" && ejabberdMatch(server, id.raw) {
				matched = "dNSName " + strconv.Quote(id.raw)
			}
		case id.Type == TypeXmppAddr && id.tag == cbasn1.UTF8String && crash == "":
			if d, ok := ejabberdBareJID(id.raw); ok {
				if _, err := ejabberdToASCII(d); err == nil {
					crash = id.raw
				}
			}
		}
	}
	if crash != "" {
		return "", crash
	}
	return matched, ""
}

// ejabberdToASCII is idna:utf8_to_ascii (the Erlang idna library) as
// ejabberd calls it, label by label: an empty label passes (so "a..b" and
// a trailing dot survive), an ASCII label must be letters, digits and
// hyphens, neither starting nor ending with a hyphen and without "--" in
// the third and fourth places unless it is an "xn--" label that decodes
// to a valid IDNA 2008 label, and keeps its case; any other label is
// converted to its A-label.
func ejabberdToASCII(s string) (string, error) {
	labels := strings.Split(s, ".")
	for i, label := range labels {
		switch {
		case label == "":
		case !isASCII(label):
			a, err := idnaRegistration.ToASCII(label)
			if err != nil {
				return "", err
			}
			if !idna2008Letters(label) {
				return "", errNotIDNA2008
			}
			labels[i] = a
		case !isLDH(label):
			return "", errNotLDH
		case len(label) >= 4 && label[2:4] == "--":
			lower := strings.ToLower(label)
			if !strings.HasPrefix(lower, "xn--") {
				return "", errNotLDH
			}
			u, err := idnaRegistration.ToUnicode(lower)
			if err != nil {
				return "", err
			}
			if !idna2008Letters(u) {
				return "", errNotIDNA2008
			}
		}
	}
	return strings.Join(labels, "."), nil
}

// idnaRegistration validates labels by RFC 5891's registration rules
// (hyphens, bidi, joiners); idna2008Letters adds what it lets through.
var idnaRegistration = idna.New(idna.ValidateForRegistration())

var (
	errNotLDH      = errors.New("not a letter-digit-hyphen label")
	errNotIDNA2008 = errors.New("a code point IDNA 2008 disallows")
)

// idna2008Letters reports whether every code point of the U-label is one
// IDNA 2008 can allow (RFC 5892 LetterDigits: lower-case and other
// letters, marks, decimal digits) or a hyphen. x/net/idna follows UTS #46,
// which keeps symbols such as U+2603 that IDNA 2008 disallows and the
// Erlang idna library refuses.
func idna2008Letters(label string) bool {
	for _, r := range label {
		if r != '-' && !unicode.In(r, unicode.Ll, unicode.Lo, unicode.Lm, unicode.Mn, unicode.Mc, unicode.Nd) {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isLDH reports whether label is letters, digits and hyphens, with no
// hyphen first or last.
func isLDH(label string) bool {
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return label[0] != '-' && label[len(label)-1] != '-'
}

// ejabberdBareJID is jid:decode keeping only a JID with neither localpart
// nor resource, as get_cert_domains does: it returns the nameprepped
// domain, or false when the text is no JID or not a bare domain.
func ejabberdBareJID(s string) (string, bool) {
	const maxDomain = 1023 // jid:nameprep refuses longer domains
	if s == "" || len(s) > maxDomain || strings.ContainsAny(s, "@/\t\n\v\f\r ") {
		return "", false
	}
	return nameprep(s), true
}

// ejabberdMatch is match_domain/2: equal, or a "*." name whose rest
// equals the server without its first label.
func ejabberdMatch(server, name string) bool {
	if server == name {
		return true
	}
	rest, ok := strings.CutPrefix(name, "*.")
	_, after, split := strings.Cut(server, ".")
	return ok && split && after == rest
}

// ejabberdVerdict is ejabberdAuthenticate with the words for it; host is
// the domain as given, nameprepped here as ejabberd's stream code does.
func ejabberdVerdict(host string, leaf *x509.Certificate, p Presented) (bool, string) {
	host = nameprep(host)
	matched, crash := ejabberdAuthenticate(host, p, leaf)
	switch {
	case crash != "":
		return false, fmt.Sprintf("refuses: %s raises badarg on the XmppAddr %q (get_domains_from_san returns a binary to lists:flatmap), so the stream process dies and the connection closes without dialback; a certificate for ejabberd peers must not carry a bare-domain XmppAddr", ejabberdCode, printable(crash))
	case matched != "":
		return true, "accepts through " + matched + " (" + ejabberdCode + ")"
	}
	return false, fmt.Sprintf("refuses: it compares the first CN, the dNSNames as written (case-sensitively) and no SRVName, and none of them names %s (%s)", host, ejabberdCode)
}
