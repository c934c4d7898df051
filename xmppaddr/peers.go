package xmppaddr

import (
	"crypto/x509"
	"fmt"
	"path"
	"slices"
	"strings"
)

// PeerVerdict predicts what one widely deployed XMPP implementation does
// with a certificate for a domain and service. Peers are modelled from
// their source code (see the table in peers below); they are assumed to
// trust the same roots. The chain is judged by crypto/x509, or for the
// peers whose TLS is OpenSSL by the OpenSSL chain model (openssl.go).
type PeerVerdict struct {
	Peer    string `json:"peer"`
	Accepts bool   `json:"accepts"`
	// Differs is true when the peer decides otherwise than the Result:
	// it refuses a valid certificate or accepts an invalid one.
	Differs bool   `json:"differs"`
	Reason  string `json:"reason"`
}

// cnRule says when a peer reads the subject CN as an identity.
type cnRule int

const (
	cnNever    cnRule = iota // the CN is never an identity (RFC 9525)
	cnFallback               // only when no SAN of a type in cnBlockers exists
)

// wildcardRule is how a peer matches a "*" in a presented host name.
type wildcardRule int

const (
	// wildcardAnyDepthApex: *.d matches any name ending in .d, and d
	// itself (Openfire SASLAuthentication.verifyCertificate).
	wildcardAnyDepthApex wildcardRule = iota
	// wildcardAnyDepth: *.d matches any name ending in .d, not d
	// (Conversations XmppDomainVerifier).
	wildcardAnyDepth
	// wildcardGlob: RFC 2818 style, "*" anywhere in any label, equal
	// label counts (Smack XmppHostnameVerifier).
	wildcardGlob
)

// peer models one implementation's certificate identity check.
type peer struct {
	name     string
	services []Service
	reads    []IDType // SAN types the peer matches
	// srvAnyService: an XMPP SRVName counts whatever its service.
	srvAnyService bool
	cn            cnRule
	cnBlockers    []IDType
	// printedDN: the CN is found by searching the printed subject DN for
	// "CN=", so text injected into another attribute counts.
	printedDN bool
	wildcard  wildcardRule
	// clientAuth is non-empty when the peer refuses, for s2s, a
	// certificate without the clientAuth EKU; it says which versions do.
	clientAuth string
	// ignoresEKU: the peer does not check the extended key usage (Prosody
	// sets LuaSec's lsec_ignore_purpose by default).
	ignoresEKU bool
	// openssl: the peer's TLS is OpenSSL at the distributions' default
	// security level 2: its chain check is OpenSSL's (openssl.go), which
	// refuses keys under 112 bits of security anywhere in the chain.
	openssl bool
	// identity, when set, is the peer's own identity check ported from
	// its code, used instead of the rules above; host is the domain as
	// given, before canonicalisation.
	identity func(host string, res *Result, leaf *x509.Certificate, p Presented) (bool, string)
}

// peers are the implementations xmppcert predicts, from their source:
// Prosody 0.12 util/x509.lua (prosody.go); processone/xmpp
// xmpp_stream_pkix.erl (ejabberd.go);
// Openfire CertificateManager, SANCertificateIdentityMapping and
// SASLAuthentication; Conversations XmppDomainVerifier; Smack
// XmppHostnameVerifier. Servers verify s2s peers; clients verify c2s.
var peers = []peer{
	{name: "Prosody 0.12", services: []Service{ServiceServer}, ignoresEKU: true, openssl: true,
		identity: func(host string, res *Result, leaf *x509.Certificate, p Presented) (bool, string) {
			return prosodyVerdict(host, prosodyS2S, leaf, p)
		}},
	{name: "prosodyctl check", services: []Service{ServiceClient, ServiceServer}, ignoresEKU: true,
		identity: func(host string, res *Result, leaf *x509.Certificate, p Presented) (bool, string) {
			return prosodyVerdict(host, "_"+string(res.Service), leaf, p)
		}},
	{name: "ejabberd", services: []Service{ServiceServer}, openssl: true,
		identity: func(host string, res *Result, leaf *x509.Certificate, p Presented) (bool, string) {
			return ejabberdVerdict(host, leaf, p)
		},
		clientAuth: "refuses it from a connecting server (no clientAuth EKU) before ejabberd " +
			ejabberdClientAuthFix + ", which accepts it; until then dialback is the fallback"},
	{name: "Openfire", services: []Service{ServiceServer},
		reads: []IDType{TypeXmppAddr, TypeSRVName, TypeDNSName}, srvAnyService: true,
		cn: cnFallback, cnBlockers: []IDType{TypeXmppAddr, TypeSRVName, TypeDNSName, TypeURI}, printedDN: true,
		wildcard: wildcardAnyDepthApex},
	{name: "Conversations", services: []Service{ServiceClient},
		reads: []IDType{TypeXmppAddr, TypeSRVName, TypeDNSName},
		cn:    cnFallback, cnBlockers: []IDType{TypeXmppAddr, TypeSRVName, TypeDNSName},
		wildcard: wildcardAnyDepth},
	{name: "Smack", services: []Service{ServiceClient},
		reads: []IDType{TypeDNSName, TypeIPAddress},
		cn:    cnFallback, cnBlockers: []IDType{TypeDNSName},
		wildcard: wildcardGlob},
}

// chainVerdicts are the chain checks the peers run: crypto/x509's, and
// the OpenSSL model's ("" when OpenSSL verifies it, else why not).
type chainVerdicts struct {
	goOK    bool
	openssl string
}

// predictPeers runs every peer model that verifies certificates for the
// Result's service.
func predictPeers(res *Result, leaf *x509.Certificate, pres Presented, host string, chains chainVerdicts, serverOK, clientOK bool) []PeerVerdict {
	verdicts := []PeerVerdict{}
	for i := range peers {
		p := &peers[i]
		if !slices.Contains(p.services, res.Service) {
			continue
		}
		v := PeerVerdict{Peer: p.name}
		switch {
		case p.openssl && chains.openssl != "":
			v.Reason = "refuses: OpenSSL's chain check fails (" + chains.openssl + ")"
		case !p.openssl && !chains.goOK:
			v.Reason = "refuses: the chain does not validate"
		case !serverOK && !p.ignoresEKU:
			v.Reason = "refuses: the certificate is not for serverAuth"
		case p.clientAuth != "" && res.Service == ServiceServer && !clientOK:
			v.Reason = p.clientAuth
		case p.identity != nil && res.References[0].Type != RefIPID:
			v.Accepts, v.Reason = p.identity(host, res, leaf, pres)
		default:
			v.Accepts, v.Reason = p.matches(res, leaf)
		}
		v.Differs = v.Accepts != res.Valid
		verdicts = append(verdicts, v)
	}
	return verdicts
}

// matches applies the peer's identity rules to what the leaf presents.
func (p *peer) matches(res *Result, leaf *x509.Certificate) (bool, string) {
	domain := res.References[0].Domain
	if res.References[0].Type == RefIPID {
		for _, id := range res.Presented {
			if slices.Contains(p.reads, TypeIPAddress) && id.Type == TypeIPAddress && id.ip.Equal(res.References[0].ip) {
				return true, "accepts through iPAddress " + id.Value
			}
		}
		return false, "refuses: no iPAddress matches " + res.References[0].Value
	}
	hasBlocker := false
	for _, id := range res.Presented {
		hasBlocker = hasBlocker || slices.Contains(p.cnBlockers, id.Type)
	}
	useCN := p.cn == cnFallback && !hasBlocker
	for _, id := range res.Presented {
		if id.Domain == "" {
			continue
		}
		var ok bool
		var quirk string
		switch id.Type {
		case TypeDNSName:
			ok, quirk = p.wildcard.match(domain, id.Domain)
			ok = ok && slices.Contains(p.reads, id.Type)
		case TypeSRVName:
			sameService := id.Service == string(res.Service) || p.srvAnyService && strings.HasPrefix(id.Service, "xmpp-")
			ok, quirk = p.wildcard.match(domain, id.Domain)
			ok = ok && slices.Contains(p.reads, id.Type) && sameService
			if ok && id.Service != string(res.Service) {
				quirk = "it accepts an SRV-ID of either XMPP service"
			}
		case TypeXmppAddr:
			ok = slices.Contains(p.reads, id.Type) && id.Domain == domain
		case TypeCN:
			ok, quirk = p.wildcard.match(domain, id.Domain)
			ok = ok && useCN
			if ok && !res.Valid {
				quirk = "it still reads the subject CN"
			}
		}
		if ok {
			return true, accepted(string(id.Type), id.Value, quirk)
		}
	}
	if p.printedDN && useCN {
		for _, cand := range injectedCNs(leaf) {
			if ok, _ := p.wildcard.match(domain, cand); ok {
				return true, accepted("injected CN", cand, "versions before the CVE-2025-59154 fix find CN= text inside other subject attributes")
			}
		}
	}
	read := make([]string, 0, len(p.reads)+1)
	for _, t := range p.reads {
		read = append(read, string(t))
	}
	if useCN {
		read = append(read, "the CN")
	}
	return false, fmt.Sprintf("refuses: it reads only %s, and none of them names %s", strings.Join(read, ", "), domain)
}

func accepted(what, value, quirk string) string {
	s := fmt.Sprintf("accepts through %s %q", what, value)
	if quirk != "" {
		s += ": " + quirk
	}
	return s
}

// match compares a reference domain with a presented host name under the
// rule; quirk is non-empty when the rule matched where RFC 9525 would not.
func (w wildcardRule) match(ref, presented string) (ok bool, quirk string) {
	if ref == presented {
		return true, ""
	}
	if !strings.Contains(presented, "*") {
		return false, ""
	}
	rfc := checkWildcard(presented) == nil && matchHost(ref, presented, true)
	base, isLeft := strings.CutPrefix(presented, "*.")
	switch w {
	case wildcardAnyDepthApex:
		ok = isLeft && (ref == base || strings.HasSuffix(ref, "."+base))
	case wildcardAnyDepth:
		ok = isLeft && strings.HasSuffix(ref, "."+base)
	case wildcardGlob:
		ok = globMatch(ref, presented)
	}
	if ok && !rfc {
		quirk = "its wildcard rule matches " + presented + " against " + ref + ", which RFC 9525 does not"
	}
	return ok, quirk
}

// globMatch is RFC 2818 matching: equal label counts, "*" matching any
// run of characters within its label.
func globMatch(ref, pattern string) bool {
	rl, pl := strings.Split(ref, "."), strings.Split(pattern, ".")
	if len(rl) != len(pl) {
		return false
	}
	for i := range rl {
		if ok, err := path.Match(pl[i], rl[i]); err != nil || !ok {
			return false
		}
	}
	return true
}

// injectedCNs returns what a search for "CN=" in the printed subject DN
// finds inside attributes other than CN: the identities a peer that parses
// printed DNs (CVE-2025-59154) can be made to see.
func injectedCNs(cert *x509.Certificate) []string {
	var out []string
	for _, atv := range cert.Subject.Names {
		s, ok := atv.Value.(string)
		if !ok || atv.Type.Equal(oidCN) {
			continue
		}
		rest := s
		for {
			i := strings.Index(strings.ToUpper(rest), "CN=")
			if i < 0 {
				break
			}
			rest = rest[i+3:]
			v, _, _ := strings.Cut(rest, ",")
			if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}
