package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/mholt/acmez/v3"
	acmeproto "github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/challenge"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/certfile"
)

// openIssuer returns the Issuer for a request's CA, the roots its
// certificates are checked against, and release, which frees what the
// Issuer holds (the local CA's database, an ACME client's connections)
// and is to be called once issuance is over. issue and renew both get
// their Issuer here; renew rebuilds an ACME CA's Issuer from the stored
// request alone (its account is kept in the state directory).
func openIssuer(state string, req acme.Request) (iss acme.Issuer, roots *x509.CertPool, release func(), err error) {
	return openIssuerWith(state, req, issueOptions{})
}

// issueOptions are what issue knows beyond the stored request: what
// registering a new ACME account needs (never stored: the agreement is
// given each time and the EAB HMAC is a secret) and the time allowed.
type issueOptions struct {
	AgreeTOS bool
	EABHMAC  string
	// Timeout bounds one issuance (acmeca.DefaultTimeout when zero).
	Timeout time.Duration
}

// openIssuerWith is openIssuer with issue's one-time options.
func openIssuerWith(state string, req acme.Request, o issueOptions) (acme.Issuer, *x509.CertPool, func(), error) {
	switch req.CA {
	case "local", "":
		ca, err := openCA(state, localca.Options{Lifetime: time.Duration(req.Days) * 24 * time.Hour}, true)
		if err != nil {
			return nil, nil, nil, err
		}
		return ca, ca.RootPool(), func() { ca.Close() }, nil
	}
	a := req.ACME
	if a == nil {
		return nil, nil, nil, fmt.Errorf("lineage %s names CA %q but records no ACME settings; issue it again with 'xmppcert issue %s --ca ...'", req.Host(), req.CA, req.Host())
	}
	roots, err := trustPool(a.TrustRoot)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lineage %s: %v", req.Host(), err)
	}
	solvers, err := challengeSolvers(a.Challenges)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lineage %s: %v", req.Host(), err)
	}
	cfg := acmeca.Config{
		Directory:      a.Directory,
		StateDir:       state,
		Email:          a.Email,
		AgreeTOS:       o.AgreeTOS,
		Profile:        a.Profile,
		TrustRoots:     roots,
		Solvers:        solvers,
		RequireXMPPIDs: a.RequireXMPPIDs,
		Timeout:        o.Timeout,
	}
	if a.EABKeyID != "" && o.EABHMAC != "" {
		cfg.EAB = &acmeca.EAB{KeyID: a.EABKeyID, HMAC: o.EABHMAC}
	}
	iss, err := acmeca.New(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lineage %s: %v", req.Host(), err)
	}
	return iss, roots, iss.Close, nil
}

// trustPool is the system roots plus those in file (--trust-root), for
// the CA's HTTPS and for checking what it issues. Without a file it is
// nil: the system roots.
func trustPool(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	extra, err := certfile.Read(file, nil)
	if err != nil {
		return nil, fmt.Errorf("--trust-root %s: %v", file, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	for _, c := range extra {
		pool.AddCert(c)
	}
	return pool, nil
}

// challengeSolvers builds the challenge solvers of stored settings
// (acme/challenge), checking them without touching the network; a TSIG
// secret is read from its file here, at every issuance, never from the
// lineage. issue calls it before anything is written, so its errors are
// usage errors there.
func challengeSolvers(c acme.ChallengeSettings) (map[string]acmez.Solver, error) {
	if c.Empty() {
		return nil, errors.New("no way to prove control of the names is configured: give --http-listen, --webroot, --tls-alpn-listen, --dns-rfc2136-server or --dns-hook")
	}
	type validator interface {
		acmez.Solver
		Validate() error
	}
	solvers := map[string]acmez.Solver{}
	add := func(typ, flags string, s validator) error {
		if _, dup := solvers[typ]; dup {
			return fmt.Errorf("%s: choose one way to solve %s", flags, typ)
		}
		if err := s.Validate(); err != nil {
			return err
		}
		solvers[typ] = s
		return nil
	}
	if c.HTTPListen != "" {
		if err := add(acmeproto.ChallengeTypeHTTP01, "--http-listen and --webroot", &challenge.HTTP01{Addr: c.HTTPListen}); err != nil {
			return nil, err
		}
	}
	if c.Webroot != "" {
		if err := add(acmeproto.ChallengeTypeHTTP01, "--http-listen and --webroot", &challenge.Webroot{Dir: c.Webroot}); err != nil {
			return nil, err
		}
	}
	if c.TLSALPNListen != "" {
		if err := add(acmeproto.ChallengeTypeTLSALPN01, "--tls-alpn-listen", &challenge.TLSALPN01{Addr: c.TLSALPNListen}); err != nil {
			return nil, err
		}
	}
	if r := c.RFC2136; r != nil {
		s := &challenge.RFC2136{Server: r.Server, KeyName: r.TSIGName, Algorithm: r.TSIGAlgorithm}
		if r.TSIGSecretFile != "" {
			secret, err := challenge.LoadTSIGSecret(r.TSIGSecretFile)
			if err != nil {
				return nil, err
			}
			s.Secret = secret
		}
		if err := add(acmeproto.ChallengeTypeDNS01, "--dns-rfc2136-server and --dns-hook", s); err != nil {
			return nil, err
		}
	}
	if c.DNSHook != "" {
		if err := add(acmeproto.ChallengeTypeDNS01, "--dns-rfc2136-server and --dns-hook", &challenge.DNSHook{Command: c.DNSHook}); err != nil {
			return nil, err
		}
	}
	return solvers, nil
}
