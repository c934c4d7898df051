package acme

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/xmppaddr"
)

// Issuer signs certificates. The embedded private CA and public ACME CAs
// implement it, so that issue and renew treat them alike.
type Issuer interface {
	// Name says who signs, for output and for the lineage's record.
	Name() string
	// Issue returns a certificate for req's names, bound to key's public
	// half. It must not return a certificate for names req did not ask
	// for.
	Issue(ctx context.Context, req Request, key crypto.Signer) (*Issued, error)
}

// Request is what to certify. The first name is the host; it names the
// lineage. Requests are stored with each lineage version so that renewal
// repeats them.
type Request struct {
	Names    []Name  `json:"names"`
	Key      KeyType `json:"key"`
	ReuseKey bool    `json:"reuse_key"`
	// CA is who issued the lineage: "local" or an ACME directory URL.
	CA string `json:"ca"`
	// Days is the validity asked of CAs that let the client choose (the
	// local CA); 0 means the CA's default.
	Days int `json:"days,omitempty"`
	// Deploy and Hooks are the --deploy targets and --hook commands given
	// at issuance; renewal runs them again.
	Deploy []string `json:"deploy,omitempty"`
	Hooks  []string `json:"hooks,omitempty"`
	// ProsodyConfig and EjabberdCtlConfig are the servers' own
	// configuration files, which their deploy targets' status and
	// reload commands are given; empty for the defaults.
	ProsodyConfig     string `json:"prosody_config,omitempty"`
	EjabberdCtlConfig string `json:"ejabberd_ctl_config,omitempty"`
	// ServeCheck are the endpoints that serve the lineage's certificate,
	// asked after every deploy what they present.
	ServeCheck []ServeEndpoint `json:"serve_check,omitempty"`
	// Replaces is the certificate this issuance renews, for ACME Renewal
	// Information (RFC 9773: the new order's "replaces"). Not stored.
	Replaces *x509.Certificate `json:"-"`
	// KeyCompromised makes the issuance leave the current key, whatever
	// ReuseKey and the pin hold say: the key was revoked as compromised.
	// Not stored.
	KeyCompromised bool `json:"-"`
	// Stage writes the new version without making it current: a
	// renewal of a lineage pinned by POSH stages the certificate, so
	// that POSH lists it before peers see it (pins.go). Not stored.
	Stage bool `json:"-"`
	// ACME is how to reach an ACME CA again (CA is then its directory
	// URL); nil for the local CA.
	ACME *ACMESettings `json:"acme,omitempty"`
}

// ACMESettings is what renewal needs to repeat an issuance from an ACME
// CA without the operator. Secrets are never stored here: not the EAB
// HMAC key (only needed once, to register the account, which is then
// kept in the state directory) and not the TSIG secret (its file's path
// is stored and the file read at each renewal).
type ACMESettings struct {
	// Directory is the CA's ACME directory URL.
	Directory string `json:"directory"`
	// Email is the account's contact address, if any.
	Email string `json:"email,omitempty"`
	// Profile is the ACME profile asked for (draft-aaron-acme-profiles).
	Profile string `json:"profile,omitempty"`
	// TrustRoot is the PEM file of roots trusted for the CA's HTTPS and
	// for checking what it issues (a private CA), in addition to the
	// system roots.
	TrustRoot string `json:"trust_root,omitempty"`
	// EABKeyID is the External Account Binding key ID the account was
	// registered with, for the record.
	EABKeyID string `json:"eab_kid,omitempty"`
	// RequireXMPPIDs makes issuance fail, before anything is written,
	// unless the certificate carries the SRV-IDs and XmppAddr of every
	// name's role: only a private CA issues them.
	RequireXMPPIDs bool `json:"require_xmpp_ids,omitempty"`
	// Challenges says how control of the names is proved.
	Challenges ChallengeSettings `json:"challenges"`
	// CAAIdentities are the CA's CAA issuer domains, for a CA whose
	// directory names none (its caaIdentities win). Giving them also
	// turns the pre-flight on for a CA not known to be public.
	CAAIdentities []string `json:"caa_identities,omitempty"`
	// Resolver is the DNS resolver (HOST:PORT) the pre-flight asks, a
	// DNSSEC-validating one; empty means the system's.
	Resolver string `json:"resolver,omitempty"`
	// NoPreflight turns the pre-flight off (acme/preflight).
	NoPreflight bool `json:"no_preflight,omitempty"`
}

// Preflight reports whether orders for these settings are checked first
// (acme/preflight): for a publicly trusted CA, or one whose CAA
// identities are given, unless turned off. A private CA checks no CAA
// and may issue for names public DNS does not know.
func (a *ACMESettings) Preflight(public bool) bool {
	return !a.NoPreflight && (public || len(a.CAAIdentities) > 0)
}

// ChallengeSettings are the ways an ACME order's challenges are solved;
// every one configured is offered to the CA.
type ChallengeSettings struct {
	// HTTPListen is the address a standalone http-01 responder listens
	// on while a challenge is pending (port 80 as the CA sees it).
	HTTPListen string `json:"http_listen,omitempty"`
	// Webroot is a directory served as the names' web root: http-01
	// answers are written to .well-known/acme-challenge/ in it.
	Webroot string `json:"webroot,omitempty"`
	// TLSALPNListen is the address a tls-alpn-01 responder listens on
	// (port 443 as the CA sees it).
	TLSALPNListen string `json:"tls_alpn_listen,omitempty"`
	// RFC2136 solves dns-01 by dynamic update, when set.
	RFC2136 *RFC2136Settings `json:"dns_rfc2136,omitempty"`
	// DNSHook is a command run with present|cleanup, the record name and
	// its value to solve dns-01.
	DNSHook string `json:"dns_hook,omitempty"`
}

// Empty reports whether no way of solving a challenge is configured.
func (c ChallengeSettings) Empty() bool {
	return c.HTTPListen == "" && c.Webroot == "" && c.TLSALPNListen == "" && c.RFC2136 == nil && c.DNSHook == ""
}

// RFC2136Settings configure dns-01 by RFC 2136 dynamic update with TSIG.
type RFC2136Settings struct {
	// Server is the primary's HOST:PORT.
	Server string `json:"server"`
	// TSIGName is the TSIG key name.
	TSIGName string `json:"tsig_name,omitempty"`
	// TSIGAlgorithm is the TSIG algorithm, such as hmac-sha256.
	TSIGAlgorithm string `json:"tsig_algorithm,omitempty"`
	// TSIGSecretFile holds the base64 TSIG secret; the secret itself is
	// never stored in the lineage.
	TSIGSecretFile string `json:"tsig_secret_file,omitempty"`
}

// Name is a domain and its role, in the stored form.
type Name struct {
	Domain string        `json:"domain"`
	Role   xmppaddr.Role `json:"role"`
}

// Host is the request's first name, the lineage name.
func (r Request) Host() string { return r.Names[0].Domain }

// Domains lists the names in order.
func (r Request) Domains() []string {
	d := make([]string, len(r.Names))
	for i, n := range r.Names {
		d[i] = n.Domain
	}
	return d
}

// XMPPNames converts the names for xmppaddr's encoders.
func (r Request) XMPPNames() []xmppaddr.Name {
	n := make([]xmppaddr.Name, len(r.Names))
	for i, x := range r.Names {
		n[i] = xmppaddr.Name{Domain: x.Domain, Role: x.Role}
	}
	return n
}

// MaxNames bounds a request; no XMPP host has more components than this
// and CAs refuse far fewer (Let's Encrypt: 100).
const MaxNames = 100

// NewRequest checks and canonicalises a host and its components: every
// name must be a valid domain name (IDNA2008, A-labels stored), not an IP
// literal, and appear once. Errors name the offending domain.
func NewRequest(host string, hostRole xmppaddr.Role, components []string, key KeyType) (Request, error) {
	req := Request{Key: key}
	seen := map[string]bool{}
	add := func(d string, role xmppaddr.Role) error {
		c, err := CanonicalName(d)
		if err != nil {
			return err
		}
		if seen[c] {
			return fmt.Errorf("%s is named twice", c)
		}
		seen[c] = true
		req.Names = append(req.Names, Name{Domain: c, Role: role})
		return nil
	}
	if err := add(host, hostRole); err != nil {
		return Request{}, err
	}
	for _, c := range components {
		if err := add(c, xmppaddr.RoleComponent); err != nil {
			return Request{}, err
		}
	}
	if len(req.Names) > MaxNames {
		return Request{}, fmt.Errorf("%d names in one certificate; at most %d", len(req.Names), MaxNames)
	}
	return req, nil
}

// CanonicalName checks one domain for a certificate: a DNS name that
// IDNA2008 accepts, no IP literal, no wildcard (XMPP identities cannot be
// wildcards), returned in A-label form.
func CanonicalName(d string) (string, error) {
	if net.ParseIP(strings.Trim(d, "[]")) != nil {
		return "", fmt.Errorf("%q is an IP address; XMPP certificates name domains", d)
	}
	if strings.HasPrefix(d, "*.") {
		return "", fmt.Errorf("%q is a wildcard; name each host and component instead", d)
	}
	c, err := xmppaddr.CanonicalDomain(d)
	if err != nil {
		return "", err
	}
	return c, nil
}

// Unrelated lists the components that are neither the host's subdomains
// nor share its parent domain: allowed, but worth a second look.
func (r Request) Unrelated() []string {
	host := r.Host()
	parent := host
	if i := strings.IndexByte(host, '.'); i >= 0 {
		parent = host[i+1:]
	}
	var out []string
	for _, n := range r.Names[1:] {
		if strings.HasSuffix(n.Domain, "."+host) || (strings.Count(parent, ".") > 0 && strings.HasSuffix(n.Domain, "."+parent)) {
			continue
		}
		out = append(out, n.Domain)
	}
	return out
}

// RenewalWindow is when a CA suggests renewing a certificate (RFC 9773).
type RenewalWindow struct {
	Start, End time.Time
	// ExplanationURL, when the CA gives one, says why the window moved
	// (a revocation, say).
	ExplanationURL string
	// RetryAfter is when to ask the CA again.
	RetryAfter time.Time
}

// RenewalAdvisor is an Issuer that offers ACME Renewal Information.
// Renewal asks it first and falls back to the certificate's lifetime.
type RenewalAdvisor interface {
	RenewalWindow(ctx context.Context, leaf *x509.Certificate) (RenewalWindow, error)
}

// Issued is a signed certificate with its key.
type Issued struct {
	// Chain is the leaf first, then the intermediates; never the root.
	Chain []*x509.Certificate
	Key   crypto.Signer
	// Issuer is the Issuer's Name.
	Issuer string
}

// Leaf is the end-entity certificate.
func (i *Issued) Leaf() *x509.Certificate { return i.Chain[0] }

// KeyType is the kind of private key a certificate gets.
type KeyType string

// Key types. ECDSA P-256 is the default: every XMPP server in use takes
// it, and it is small and fast.
const (
	KeyECDSAP256 KeyType = "ecdsa-p256"
	KeyRSA2048   KeyType = "rsa2048"
	KeyRSA3072   KeyType = "rsa3072"
)

// ParseKeyType accepts the --key-type values.
func ParseKeyType(s string) (KeyType, error) {
	switch k := KeyType(strings.ToLower(s)); k {
	case KeyECDSAP256, KeyRSA2048, KeyRSA3072:
		return k, nil
	case "", "ecdsa", "p256", "p-256":
		return KeyECDSAP256, nil
	}
	return "", fmt.Errorf("unknown key type %q; use ecdsa-p256, rsa2048 or rsa3072", s)
}

// Generate makes a new key of this type.
func (k KeyType) Generate() (crypto.Signer, error) {
	switch k {
	case KeyECDSAP256, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyRSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case KeyRSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	}
	return nil, fmt.Errorf("unknown key type %q", string(k))
}

// Matches reports whether key is of this type, for --reuse-key: a
// request that changed its key type gets a new key.
func (k KeyType) Matches(key crypto.Signer) bool {
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		return (k == KeyECDSAP256 || k == "") && pub.Curve == elliptic.P256()
	case *rsa.PublicKey:
		return (k == KeyRSA2048 && pub.N.BitLen() == 2048) || (k == KeyRSA3072 && pub.N.BitLen() == 3072)
	}
	return false
}

// KeyDescription names a public key's algorithm and size, for output:
// "ECDSA P-256", "RSA 2048", "Ed25519".
func KeyDescription(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", pub)
}
