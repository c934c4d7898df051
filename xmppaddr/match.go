package xmppaddr

import (
	"fmt"
	"strings"
)

// Profile selects the identity-matching rules.
type Profile string

// Matching profiles.
const (
	// ProfileRFC9525 never uses the subject CN. It is the default.
	ProfileRFC9525 Profile = "rfc9525"
	// ProfileRFC6125 falls back to the CN (CN-ID) when the certificate
	// presents no subjectAltName of a supported type: dNSName, SRVName,
	// XmppAddr or URI.
	ProfileRFC6125 Profile = "rfc6125"
)

// ParseProfile turns a command-line value into a Profile; empty means the
// default.
func ParseProfile(s string) (Profile, error) {
	switch Profile(s) {
	case "", ProfileRFC9525:
		return ProfileRFC9525, nil
	case ProfileRFC6125:
		return ProfileRFC6125, nil
	}
	return "", fmt.Errorf("unknown profile %q: use rfc9525 or rfc6125", s)
}

// Match records that a reference identity was found in a certificate, and
// through which presented identifier.
type Match struct {
	Reference     string  `json:"reference"`
	ReferenceType RefType `json:"reference_type"`
	Presented     string  `json:"presented"`
	Type          IDType  `json:"type"`
}

// matchIdentities pairs every reference with every usable presented
// identifier of a type the reference can be found in.
func matchIdentities(refs []Reference, ids []Identifier, profile Profile) []Match {
	useCN := profile == ProfileRFC6125 && !hasSupportedSAN(ids)
	var ms []Match
	for _, r := range refs {
		for i := range ids {
			id := &ids[i]
			if !id.usable() || !refMatches(r, id, useCN) {
				continue
			}
			ms = append(ms, Match{Reference: r.Value, ReferenceType: r.Type, Presented: id.Value, Type: id.Type})
		}
	}
	return ms
}

// refMatches decides one pair: which presented types can carry which
// reference type, the SRV-ID service binding, and the wildcard rule.
func refMatches(r Reference, id *Identifier, useCN bool) bool {
	switch r.Type {
	case RefDNSID:
		return (id.Type == TypeDNSName || useCN && id.Type == TypeCN) && matchHost(r.Domain, id.Domain, id.wildcard)
	case RefSRVID:
		return id.Type == TypeSRVName && id.Service == r.service && matchHost(r.Domain, id.Domain, id.wildcard)
	case RefXmppAddr:
		return id.Type == TypeXmppAddr && id.Domain == r.Domain
	case RefIPID:
		return id.Type == TypeIPAddress && id.ip.Equal(r.ip)
	}
	return false
}

// hasSupportedSAN reports whether the certificate presents a SAN of a type
// that, under RFC 6125 §6.4.4, forbids falling back to the CN. An entry
// counts even when it is unusable: the CA meant the SAN to be the identity.
func hasSupportedSAN(ids []Identifier) bool {
	for _, id := range ids {
		switch id.Type {
		case TypeDNSName, TypeSRVName, TypeXmppAddr, TypeURI:
			return true
		}
	}
	return false
}

// matchHost compares a canonical reference domain with a presented host
// name that passed checkWildcard. A wildcard stands for exactly one whole
// label: never the apex, never two labels, and a single-label reference
// has nothing for it to stand for.
func matchHost(ref, presented string, wildcard bool) bool {
	if !wildcard {
		return ref == presented
	}
	first, rest, ok := strings.Cut(ref, ".")
	return ok && first != "" && rest == presented[2:]
}

// nearMisses explains why wildcards that almost match did not: the two
// mistakes operators actually make (expecting *.d to cover d, or a.b.d).
func nearMisses(refs []Reference, ids []Identifier) []Finding {
	var fs []Finding
	for _, r := range refs {
		if r.Type != RefDNSID && r.Type != RefSRVID {
			continue
		}
		for _, id := range ids {
			if !id.usable() || !id.wildcard || (r.Type == RefSRVID) != (id.Type == TypeSRVName) {
				continue
			}
			if r.Type == RefSRVID && id.Service != r.service {
				continue
			}
			base := id.Domain[2:]
			switch {
			case r.Domain == base:
				fs = append(fs, Finding{CodeWildcardApex, Info, fmt.Sprintf(
					"%s %q does not cover %s itself: a wildcard never matches the apex; add %s as its own name", id.Type, id.Value, r.Value, r.Value)})
			case strings.HasSuffix(r.Domain, "."+base) && !matchHost(r.Domain, id.Domain, true):
				fs = append(fs, Finding{CodeWildcardDepth, Info, fmt.Sprintf(
					"%s %q does not cover %s: a wildcard matches exactly one label", id.Type, id.Value, r.Value)})
			}
		}
	}
	return fs
}

// otherServiceSRV reports SRV-IDs for the right domain but the other
// service: _xmpp-server.d never proves c2s, _xmpp-client.d never s2s.
func otherServiceSRV(refs []Reference, ids []Identifier) []Finding {
	var fs []Finding
	for _, r := range refs {
		if r.Type != RefSRVID {
			continue
		}
		for _, id := range ids {
			if id.usable() && id.Type == TypeSRVName && id.Service != r.service && matchHost(r.Domain, id.Domain, id.wildcard) {
				fs = append(fs, Finding{CodeWrongService, Info, fmt.Sprintf(
					"SRVName %q is for the %s service; it does not prove %s", id.Value, id.Service, r.Value)})
			}
		}
	}
	return fs
}
