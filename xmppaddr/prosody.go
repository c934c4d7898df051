package xmppaddr

import (
	"crypto/x509"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// Prosody's service strings for util/x509.lua verify_identity, as
// Prosody 0.12 passes them: mod_s2s_auth_certs checks a connecting or
// connected server with "xmpp-server", without the underscore, and so
// never compares XmppAddr (the function compares it only for
// "_xmpp-client" and "_xmpp-server"); prosodyctl check passes
// "_xmpp-client" and "_xmpp-server", and does.
const (
	prosodyS2S         = "xmpp-server"
	prosodyCheckClient = "_xmpp-client"
	prosodyCheckServer = "_xmpp-server"
)

// prosodyVerifyIdentity is Prosody 0.12's util/x509.lua verify_identity,
// line for line, over what LuaSec shows it of the certificate: the SAN
// entries of every type by their raw text (LuaSec reads an otherName of
// any string type), and the subject's CNs. host is the domain as Prosody
// has it (a trailing dot is kept), service the string Prosody passes.
// Where the Lua code departs from RFC 6125 the port departs with it:
// dNSNames and SRVNames are compared after ASCII lower-casing only (no
// IDNA on the presented side), the SRVName's service label
// case-sensitively, XmppAddr after nameprep only (no IDNA), a wildcard
// against the host without its first label (so "*.localhost" covers
// "localhost"), and the CN whenever no dNSName, SRVName, XmppAddr or URI
// is present, unless the subject has two.
//
// It returns the identifier that matched ("dNSName \"example.org\""), or
// "" when verify_identity returns false.
func prosodyVerifyIdentity(host, service string, p Presented, leaf *x509.Certificate) string {
	if p.SANPresent {
		var xmpp, srv, dns []string
		uri := false
		for _, id := range p.Identifiers {
			switch id.Type {
			case TypeXmppAddr:
				xmpp = append(xmpp, id.Value)
			case TypeSRVName:
				srv = append(srv, id.Value)
			case TypeDNSName:
				dns = append(dns, id.Value)
			case TypeURI:
				uri = true
			}
		}
		if len(xmpp) > 0 && (service == prosodyCheckClient || service == prosodyCheckServer) {
			if m := prosodyCompareXmppAddr(host, xmpp); m != "" {
				return "XmppAddr " + strconv.Quote(m)
			}
		}
		if len(srv) > 0 && service != "" {
			if m := prosodyCompareSRVName(host, service, srv); m != "" {
				return "SRVName " + strconv.Quote(m)
			}
		}
		if m := prosodyCompareDNSName(host, dns); m != "" {
			return "dNSName " + strconv.Quote(m)
		}
		if len(xmpp) > 0 || len(srv) > 0 || len(dns) > 0 || uri {
			return ""
		}
	}
	var cns []string
	for _, atv := range leaf.Subject.Names {
		if atv.Type.Equal(oidCN) {
			s, _ := atv.Value.(string)
			cns = append(cns, s)
		}
	}
	if len(cns) != 1 {
		return ""
	}
	if m := prosodyCompareDNSName(host, cns); m != "" {
		return "CN " + strconv.Quote(m)
	}
	return ""
}

// prosodyHost is compare_dnsname's and compare_srvname's normalisation of
// the host: IDNA ToASCII, then ASCII lower case; ok is false when ToASCII
// fails (the Lua code then refuses). Debian's Prosody does ToASCII with
// ICU's UTS #46 processing, STD3 rules and non-transitional mapping,
// which idna.Lookup is: an underscore, or an xn-- label that does not
// decode to a valid label, fails it.
func prosodyHost(host string) (norm, chopped string, ok bool) {
	a, err := idna.Lookup.ToASCII(host)
	if err != nil {
		return "", "", false
	}
	norm = asciiLower(a)
	return norm, chopFirstLabel(norm), true
}

// chopFirstLabel is the Lua gsub("^[^.]+%.", ""): the name without its
// first label, or the name itself when it has no non-empty first label
// followed by a dot.
func chopFirstLabel(s string) string {
	if i := strings.IndexByte(s, '.'); i > 0 {
		return s[i+1:]
	}
	return s
}

// prosodyWildcard is the Lua wildcard test shared by dNSName and SRVName:
// a name starting "*." covers the host when the rest equals the host
// without its first label.
func prosodyWildcard(chopped, name string) bool {
	return strings.HasPrefix(name, "*.") && chopped == asciiLower(chopFirstLabel(name))
}

// prosodyCompareDNSName is compare_dnsname; it returns the name that
// matched, or "".
func prosodyCompareDNSName(host string, names []string) string {
	norm, chopped, ok := prosodyHost(host)
	if !ok {
		return ""
	}
	for _, name := range names {
		if norm == asciiLower(name) || prosodyWildcard(chopped, name) {
			return name
		}
	}
	return ""
}

// prosodyCompareSRVName is compare_srvname; it returns the SRVName that
// matched, or "".
func prosodyCompareSRVName(host, service string, names []string) string {
	norm, chopped, ok := prosodyHost(host)
	if !ok {
		return ""
	}
	if !strings.HasPrefix(service, "_") {
		service = "_" + service
	}
	for _, srv := range names {
		// ^(_[^.]+)%.(.*)
		label, name, found := strings.Cut(srv, ".")
		if !found || len(label) < 2 || label[0] != '_' || label != service {
			continue
		}
		if norm == asciiLower(name) || prosodyWildcard(chopped, name) {
			return srv
		}
	}
	return ""
}

// prosodyCompareXmppAddr is compare_xmppaddr; it returns the XmppAddr
// that matched, or "".
func prosodyCompareXmppAddr(host string, names []string) string {
	h := nameprep(host)
	for _, name := range names {
		if strings.ContainsAny(name, "@/") {
			continue
		}
		if nameprep(name) == h {
			return name
		}
	}
	return ""
}

// nameprep approximates RFC 3491 nameprep as Prosody's util.encodings
// applies it: case folding and NFKC. It does not turn U-labels into
// A-labels or back, which is the difference that matters here.
func nameprep(s string) string {
	return norm.NFKC.String(cases.Fold().String(s))
}

// asciiLower is Lua's string.lower in the C locale: A-Z only.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// prosodyVerdict is prosodyVerifyIdentity with the words for it.
func prosodyVerdict(host, service string, leaf *x509.Certificate, p Presented) (bool, string) {
	call := fmt.Sprintf("util/x509.lua verify_identity(%q, %q)", host, service)
	if m := prosodyVerifyIdentity(host, service, p, leaf); m != "" {
		why := "accepts through " + m + " (" + call + ")"
		if strings.Contains(m, `"*.`) && !strings.Contains(strings.TrimSuffix(host, "."), ".") {
			why += ": a bug in its wildcard rule, which strips the first label of the host only when there is a second, so a single-label host such as localhost is compared whole with the wildcard's base; RFC 9525 matches a wildcard to exactly one label more"
		}
		return true, why
	}
	why := "refuses: nothing it compares names " + host + " (" + call
	if service == prosodyS2S {
		why += "; without the underscore XmppAddr is never compared"
	}
	return false, why + ")"
}
