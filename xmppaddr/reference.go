package xmppaddr

import (
	"fmt"
	"net"
)

// RefType names the kind of a reference identity (RFC 9525 §2).
type RefType string

// Reference identity types.
const (
	RefDNSID    RefType = "DNS-ID"
	RefSRVID    RefType = "SRV-ID"
	RefXmppAddr RefType = "XmppAddr"
	RefIPID     RefType = "IP-ID"
)

// Reference is one identity a peer looks for in a certificate when it
// wants to reach a domain for a service.
type Reference struct {
	Type RefType `json:"type"`
	// Value is the identity as a peer writes it: "example.org",
	// "_xmpp-client.example.org", or an IP address.
	Value string `json:"value"`
	// Domain is the canonical domain part ("example.org"); for an SRV-ID
	// the service label is in Value only.
	Domain string `json:"-"`

	service string // for an SRV-ID, "xmpp-client" or "xmpp-server"
	ip      net.IP
}

// References returns the reference identities for reaching domain for
// svc, per RFC 6120 §13.7.2.1 (README, "Identity rules"): c2s and s2s look for the
// DNS-ID, the SRV-ID of their own service and the XmppAddr; HTTPS looks
// only for the DNS-ID. An IP-literal domain (RFC 7622 allows one) is
// looked for only as an IP-ID. The domain is the source domain (a JID's
// domainpart, a stream's to, a configured host), never an SRV target.
func References(domain string, svc Service) ([]Reference, error) {
	if _, err := ParseService(string(svc)); err != nil {
		return nil, err
	}
	if ip := net.ParseIP(domain); ip != nil {
		return []Reference{{Type: RefIPID, Value: ip.String(), ip: ip}}, nil
	}
	d, err := CanonicalDomain(domain)
	if err != nil {
		return nil, err
	}
	refs := []Reference{{Type: RefDNSID, Value: d, Domain: d}}
	if label := svc.srvLabel(); label != "" {
		refs = append(refs,
			Reference{Type: RefSRVID, Value: label + "." + d, Domain: d, service: string(svc)},
			Reference{Type: RefXmppAddr, Value: d, Domain: d})
	}
	return refs, nil
}

func (r Reference) String() string { return fmt.Sprintf("%s %s", r.Type, r.Value) }
