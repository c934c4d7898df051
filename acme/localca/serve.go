package localca

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	stepacme "github.com/smallstep/certificates/acme"
	acmeapi "github.com/smallstep/certificates/acme/api"
	acmenosql "github.com/smallstep/certificates/acme/db/nosql"
	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql"
	"go.step.sm/crypto/jose"
	"go.step.sm/crypto/x509util"

	"github.com/xmppcert/xmppcert/acme"
)

// ServeOptions configure the ACME server of an opened CA.
type ServeOptions struct {
	// Host is the host:port the ACME directory's links name for requests
	// without a Host header (HTTP/1.0); step-ca builds them from the
	// request's Host header when there is one.
	Host string
	// AllowDomains, when not empty, limits orders to these domains and
	// their subdomains; other orders are refused with rejectedIdentifier.
	AllowDomains []string
	// ValidateIP, when set, makes challenge validation connect to this
	// address instead of the address DNS gives for the name (a split
	// horizon, or a test on loopback).
	ValidateIP string
	// HTTPPort and TLSALPNPort are where http-01 and tls-alpn-01 are
	// validated; 80 and 443 (RFC 8555, RFC 8737) when zero.
	HTTPPort, TLSALPNPort int
}

// ACMEPath is the ACME directory's path on the server.
const ACMEPath = "/acme/" + ProvisionerName + "/directory"

// Handler serves step-ca's ACME API (RFC 8555) from the CA: accounts,
// orders, http-01 and tls-alpn-01 validation, and finalisation through
// the provisioner's XMPP template, so that the certificate carries the
// SRV-IDs and XmppAddr of the names the order validated.
func (ca *CA) Handler(o ServeOptions) (http.Handler, error) {
	nosqlDB, ok := ca.db.(nosql.DB)
	if !ok {
		return nil, fmt.Errorf("the CA database %T does not support ACME", ca.db)
	}
	acmeDB, err := acmenosql.New(nosqlDB)
	if err != nil {
		return nil, err
	}
	client := newValidationClient(o)
	allowed := make([]string, 0, len(o.AllowDomains))
	for _, d := range o.AllowDomains {
		c, err := acme.CanonicalName(d)
		if err != nil {
			return nil, fmt.Errorf("--allow-domain %q: %w", d, err)
		}
		allowed = append(allowed, c)
	}
	linker := stepacme.NewLinker(o.Host, "acme")
	mux := chi.NewRouter()
	mux.Route("/acme", func(r chi.Router) { acmeapi.Route(r) })
	mux.Method(http.MethodGet, CRLPath, CRLHandler(ca.dir))
	base := func(ctx context.Context) context.Context {
		ctx = authority.NewContext(ctx, ca.auth)
		ctx = db.NewContext(ctx, ca.db)
		return stepacme.NewContext(ctx, acmeDB, client, linker, nil)
	}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(base(r.Context())))
	})
	if len(allowed) > 0 {
		h = allowDomains(allowed, h)
	}
	return h, nil
}

// maxOrderBody bounds the new-order request read by allowDomains.
const maxOrderBody = 64 << 10

// allowDomains refuses new orders for identifiers outside the allowed
// domains before step-ca sees them, with the RFC 8555 rejectedIdentifier
// problem. It reads the JWS payload without verifying the signature: it
// only ever refuses, and step-ca verifies everything it accepts. It parses
// the JWS with the parser step-ca uses, so that both read the same payload
// whatever the serialization (compact or JSON), whitespace or member-name
// case, and it refuses what it cannot read.
func allowDomains(allowed []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/new-order") {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxOrderBody+1))
		if err != nil || len(body) > maxOrderBody {
			acmeProblem(w, http.StatusBadRequest, "malformed", "the new-order request is unreadable or too large")
			return
		}
		ids, err := orderIdentifiers(body)
		if err != nil {
			acmeProblem(w, http.StatusBadRequest, "malformed", "the new-order request is not a JWS of an order: "+err.Error())
			return
		}
		for _, id := range ids {
			if id.Type != string(stepacme.DNS) || !domainAllowed(id.Value, allowed) {
				acmeProblem(w, http.StatusForbidden, "rejectedIdentifier",
					fmt.Sprintf("this CA issues only for the DNS names %s and their subdomains; %s %q is not allowed (xmppcert ca serve --allow-domain)", strings.Join(allowed, ", "), id.Type, id.Value))
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// orderIdentifier is an identifier of a new-order payload.
type orderIdentifier struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// orderIdentifiers returns the identifiers of a new-order JWS, read as
// step-ca reads them: go.step.sm/crypto/jose.ParseJWS, then encoding/json.
func orderIdentifiers(body []byte) ([]orderIdentifier, error) {
	jws, err := jose.ParseJWS(string(body))
	if err != nil {
		return nil, err
	}
	var order struct {
		Identifiers []orderIdentifier `json:"identifiers"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &order); err != nil {
		return nil, err
	}
	return order.Identifiers, nil
}

// domainAllowed reports whether name is one of the allowed domains or a
// subdomain of one. Names that are not valid domains are not allowed.
func domainAllowed(name string, allowed []string) bool {
	c, err := acme.CanonicalName(strings.TrimPrefix(name, "*."))
	if err != nil {
		return false
	}
	for _, a := range allowed {
		if c == a || strings.HasSuffix(c, "."+a) {
			return true
		}
	}
	return false
}

func acmeProblem(w http.ResponseWriter, status int, typ, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"type":   "urn:ietf:params:acme:error:" + typ,
		"detail": detail,
		"status": status,
	})
}

// ServerCertificate issues the certificate the ACME server presents, for
// the host names and IP addresses clients use to reach it.
func (ca *CA) ServerCertificate(ctx context.Context, hosts []string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		return tls.Certificate{}, errors.New("no host name for the server certificate")
	}
	key, err := acme.KeyECDSAP256.Generate()
	if err != nil {
		return tls.Certificate{}, err
	}
	csr, err := selfCSR(hosts[0], key)
	if err != nil {
		return tls.Certificate{}, err
	}
	data := x509util.NewTemplateData()
	data.SetCommonName(hosts[0])
	var sans []x509util.SubjectAlternativeName
	for _, h := range hosts {
		typ := x509util.DNSType
		if net.ParseIP(h) != nil {
			typ = x509util.IPType
		}
		sans = append(sans, x509util.SubjectAlternativeName{Type: typ, Value: h})
	}
	data.SetSubjectAlternativeNames(sans...)
	ctx = provisioner.NewContextWithMethod(ctx, provisioner.SignMethod)
	signOpts, err := ca.prov.AuthorizeSign(ctx, "")
	if err != nil {
		return tls.Certificate{}, err
	}
	tmplOpts, err := provisioner.CustomTemplateOptions(nil, data, x509util.DefaultLeafTemplate)
	if err != nil {
		return tls.Certificate{}, err
	}
	chain, err := ca.auth.SignWithContext(ctx, csr, provisioner.SignOptions{}, append(signOpts, tmplOpts)...)
	if err != nil {
		return tls.Certificate{}, err
	}
	cert := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// NewEABKey creates an External Account Binding key for the ACME
// provisioner: the key ID and the HMAC key an ACME client presents
// (certbot's --eab-kid and --eab-hmac-key, base64url).
func (ca *CA) NewEABKey(ctx context.Context, reference string) (kid string, hmac string, err error) {
	nosqlDB, ok := ca.db.(nosql.DB)
	if !ok {
		return "", "", fmt.Errorf("the CA database %T does not support ACME", ca.db)
	}
	acmeDB, err := acmenosql.New(nosqlDB)
	if err != nil {
		return "", "", err
	}
	// step-ca looks the key up under the ID field of the provisioner that
	// serves the new-account request, not under GetID().
	k, err := acmeDB.CreateExternalAccountKey(ctx, ca.prov.ID, reference)
	if err != nil {
		return "", "", err
	}
	return k.ID, base64.RawURLEncoding.EncodeToString(k.HmacKey), nil
}

// RootPool is a pool holding the CA's root, for clients of the server.
func (ca *CA) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.root)
	return p
}
