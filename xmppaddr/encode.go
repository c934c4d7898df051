package xmppaddr

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/net/idna"
)

// Role is what a name is in an XMPP deployment. It decides which
// identities a certificate carries for it (README, "Identity rules").
type Role int

// Roles.
const (
	// RoleHost is a user host: clients log in to it and servers federate
	// with it. DNS-ID, both SRV-IDs and XmppAddr.
	RoleHost Role = iota
	// RoleComponent is a component (conference, upload, pubsub): reached
	// by servers only. DNS-ID, _xmpp-server SRV-ID and XmppAddr.
	RoleComponent
	// RoleAnonymousHost is a host for anonymous logins that does not
	// federate. DNS-ID, _xmpp-client SRV-ID and XmppAddr.
	RoleAnonymousHost
)

var roleNames = [...]string{RoleHost: "host", RoleComponent: "component", RoleAnonymousHost: "anonymous"}

// String returns "host", "component" or "anonymous".
func (r Role) String() string {
	if r < RoleHost || r > RoleAnonymousHost {
		return fmt.Sprintf("role(%d)", int(r))
	}
	return roleNames[r]
}

// MarshalText writes the role's name, so stored requests read "host".
func (r Role) MarshalText() ([]byte, error) {
	if r < RoleHost || r > RoleAnonymousHost {
		return nil, fmt.Errorf("unknown role %d", int(r))
	}
	return []byte(r.String()), nil
}

// UnmarshalText reads a role's name.
func (r *Role) UnmarshalText(b []byte) error {
	for i, n := range roleNames {
		if string(b) == n {
			*r = Role(i)
			return nil
		}
	}
	return fmt.Errorf("unknown role %q; use host, component or anonymous", b)
}

// Services lists the XMPP services a name of this role is reached for.
func (r Role) Services() []Service {
	switch r {
	case RoleComponent:
		return []Service{ServiceServer}
	case RoleAnonymousHost:
		return []Service{ServiceClient}
	}
	return []Service{ServiceClient, ServiceServer}
}

// Name is a domain with the role it plays.
type Name struct {
	Domain string
	Role   Role
}

// SANExtension builds the subjectAltName extension that proves every name
// for every service its role serves: a dNSName (A-labels), one SRVName per
// service (IA5String, RFC 4985) and an XmppAddr (UTF8String, with
// U-labels as JIDs are written). It is marked critical only when critical
// is true, which RFC 5280 requires for certificates with an empty subject.
func SANExtension(names []Name, critical bool) (pkix.Extension, error) {
	if len(names) == 0 {
		return pkix.Extension{}, errors.New("no names to put in a certificate")
	}
	var b cryptobyte.Builder
	var err error
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, n := range names {
			d, cerr := CanonicalDomain(n.Domain)
			if cerr != nil {
				err = cerr
				return
			}
			jid, uerr := idna.Lookup.ToUnicode(d)
			if uerr != nil {
				err = uerr
				return
			}
			b.AddASN1(cbasn1.Tag(tagDNSName).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(d)) })
			for _, svc := range n.Role.Services() {
				addOtherName(b, OIDSRVName, cbasn1.IA5String, svc.srvLabel()+"."+d)
			}
			addOtherName(b, OIDXmppAddr, cbasn1.UTF8String, jid)
		}
	})
	if err != nil {
		return pkix.Extension{}, err
	}
	der, err := b.Bytes()
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: OIDSAN, Critical: critical, Value: der}, nil
}

// addOtherName appends an otherName GeneralName: type-id, then the value
// under [0] EXPLICIT in the given string type.
func addOtherName(b *cryptobyte.Builder, oid asn1.ObjectIdentifier, tag cbasn1.Tag, value string) {
	b.AddASN1(cbasn1.Tag(tagOtherName).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.Tag(0).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1(tag, func(b *cryptobyte.Builder) { b.AddBytes([]byte(value)) })
		})
	})
}

// CertificateRequestTemplate returns a CSR template for the names: the
// first name as subject CN (for software that still displays it) and the
// SAN extension of SANExtension, non-critical.
func CertificateRequestTemplate(names []Name) (*x509.CertificateRequest, error) {
	ext, err := SANExtension(names, false)
	if err != nil {
		return nil, err
	}
	cn, _ := CanonicalDomain(names[0].Domain)
	return &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: cn},
		ExtraExtensions: []pkix.Extension{ext},
	}, nil
}
