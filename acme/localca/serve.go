package localca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	stepacme "github.com/smallstep/certificates/acme"
	acmeapi "github.com/smallstep/certificates/acme/api"
	acmenosql "github.com/smallstep/certificates/acme/db/nosql"
	"github.com/smallstep/certificates/authority"
	"github.com/smallstep/certificates/authority/provisioner"
	"github.com/smallstep/certificates/db"
	"github.com/smallstep/nosql"
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
	// MaxNamesPerOrder and MaxOrdersPerHour limit each account: an order
	// of more names, or more orders within an hour, is refused with the
	// rateLimited problem (the second with Retry-After).
	// DefaultMaxNamesPerOrder and DefaultMaxOrdersPerHour when zero.
	MaxNamesPerOrder, MaxOrdersPerHour int
	// Now is the quota's clock; time.Now when nil.
	Now func() time.Time
}

// ACMEPath is the ACME directory's path on the server.
const ACMEPath = "/acme/" + ProvisionerName + "/directory"

// Handler serves step-ca's ACME API (RFC 8555) from the CA: accounts,
// orders, http-01 and tls-alpn-01 validation, and finalisation through
// the provisioner's XMPP template, so that the certificate carries the
// SRV-IDs and XmppAddr of the names the order validated.
func (ca *CA) Handler(o ServeOptions) (http.Handler, error) {
	_, acmeDB, err := ca.acmeDB()
	if err != nil {
		return nil, err
	}
	client := newValidationClient(o)
	allowed := make([]string, 0, len(o.AllowDomains))
	for _, d := range o.AllowDomains {
		c, err := acme.CanonicalName(d)
		if err != nil {
			return nil, fmt.Errorf("allowed domain %q: %w", d, err)
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
	maxNames, maxOrders, now := o.MaxNamesPerOrder, o.MaxOrdersPerHour, o.Now
	if maxNames <= 0 {
		maxNames = DefaultMaxNamesPerOrder
	}
	if maxOrders <= 0 {
		maxOrders = DefaultMaxOrdersPerHour
	}
	if now == nil {
		now = time.Now
	}
	h = &orderPolicy{allowed: allowed, maxNames: maxNames, quota: newOrderQuota(maxOrders, now), next: h}
	return &eabGuard{db: acmeDB, provID: ca.prov.ID, required: ca.prov.RequireEAB, next: h}, nil
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

// acmeDB is the CA's database as step-ca's ACME layer reads it.
func (ca *CA) acmeDB() (nosql.DB, *acmenosql.DB, error) {
	nosqlDB, ok := ca.db.(nosql.DB)
	if !ok {
		return nil, nil, fmt.Errorf("the CA database %T does not support ACME", ca.db)
	}
	acmeDB, err := acmenosql.New(nosqlDB)
	return nosqlDB, acmeDB, err
}

// RootPool is a pool holding the CA's root, for clients of the server.
func (ca *CA) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.root)
	return p
}
