package lifecycle

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/mholt/acmez/v3"
	acmeproto "github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/challenge"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/acme/preflight"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/pinning"
)

// IssueOptions are what an issuance knows beyond the stored request:
// what registering a new ACME account needs (never stored: the agreement
// is given each time and the EAB HMAC is a secret) and the time allowed.
type IssueOptions struct {
	AgreeTOS bool
	EABHMAC  string
	// Timeout bounds one issuance (acmeca.DefaultTimeout when zero).
	Timeout time.Duration

	// accounts, orderSlots and caMaterial are the engine's
	// (Engine.Accounts, OrderSlots and CAMaterial), for OpenIssuer.
	accounts   acme.AccountStore
	orderSlots acme.OrderSlots
	caMaterial CAMaterialStore
}

// CAMaterialStore keeps the embedded CA's material (its certificates and
// keys, localca.Material) for a cluster's nodes, so that every node's
// embedded CA is the same CA (acme/etcdstore).
type CAMaterialStore interface {
	// LoadCAMaterial reads the material; an error wrapping
	// fs.ErrNotExist when none is kept yet.
	LoadCAMaterial() (map[string][]byte, error)
	// SaveCAMaterial keeps files unless material is kept already, and
	// returns what is kept: the first writer's.
	SaveCAMaterial(files map[string][]byte) (map[string][]byte, error)
}

// CAMismatchError says that a node's embedded CA is another CA than its
// cluster's: it was created before the node joined.
type CAMismatchError struct {
	// Dir is the node's CA directory.
	Dir string
}

func (e *CAMismatchError) Error() string {
	return fmt.Sprintf("the embedded CA in %s is not the cluster's: it was created on this node before it joined the cluster", e.Dir)
}

// ErrNoClusterCA says that the cluster keeps no embedded CA yet.
var ErrNoClusterCA = errors.New("the cluster keeps no embedded CA yet")

// InstallClusterCA makes the embedded CA of state the one the cluster
// keeps in m, without creating one: ErrNoClusterCA when the cluster
// keeps none, a *CAMismatchError when state holds another CA (left as it
// is).
func InstallClusterCA(state string, m CAMaterialStore) error {
	dir := CADir(state)
	shared, err := m.LoadCAMaterial()
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNoClusterCA
	}
	if err != nil {
		return fmt.Errorf("the cluster's embedded CA: %w", err)
	}
	err = localca.InstallMaterial(dir, shared)
	if errors.Is(err, localca.ErrOtherCA) {
		return &CAMismatchError{Dir: dir}
	}
	if err != nil {
		return fmt.Errorf("installing the cluster's embedded CA in %s: %w", dir, err)
	}
	return nil
}

// CAExistsError says that InitCA found an embedded CA in Dir and
// changed nothing; Cluster says that it is the cluster's.
type CAExistsError struct {
	Dir     string
	Cluster bool
}

func (e *CAExistsError) Error() string {
	if e.Cluster {
		return fmt.Sprintf("a CA already exists in %s: the cluster's", e.Dir)
	}
	return fmt.Sprintf("a CA already exists in %s", e.Dir)
}

// Unwrap makes a *CAExistsError match localca.ErrExists.
func (e *CAExistsError) Unwrap() error { return localca.ErrExists }

// ErrClusterKeepsCA says that InitCA was to create a CA whose root key
// goes elsewhere on a cluster that keeps a CA already, whose root key is
// wherever its creator put it.
var ErrClusterKeepsCA = errors.New("the cluster keeps an embedded CA already")

// InitCA creates the embedded CA of the engine's state directory, or
// installs the cluster's there when the engine's cluster keeps one; it
// says which (created is false when installed). An existing CA is never
// replaced: a *CAExistsError. With rootKeyOut, the new root's private
// key is written to that new file and never kept in the state directory
// (localca.InitOffline); a cluster that keeps a CA refuses it with
// ErrClusterKeepsCA, and nothing is written. On a cluster that keeps
// none, the new CA becomes the cluster's: a *CAMismatchError when
// another node's was kept first.
func (e *Engine) InitCA(rootKeyOut string) (created bool, err error) {
	state, err := e.stateDir()
	if err != nil {
		return false, err
	}
	dir := CADir(state)
	if e.CAMaterial != nil {
		if rootKeyOut != "" {
			if _, err := e.CAMaterial.LoadCAMaterial(); err == nil {
				return false, ErrClusterKeepsCA
			}
		}
		_, missing := localca.RootPEM(dir)
		switch err := InstallClusterCA(state, e.CAMaterial); {
		case err == nil && missing == nil:
			return false, &CAExistsError{Dir: dir, Cluster: true}
		case err == nil:
			return false, nil
		case !errors.Is(err, ErrNoClusterCA):
			return false, err
		}
	}
	if rootKeyOut != "" {
		err = localca.InitOffline(dir, rootKeyOut)
	} else {
		err = localca.Init(dir)
	}
	switch {
	case errors.Is(err, localca.ErrExists):
		return false, &CAExistsError{Dir: dir}
	case err != nil:
		return false, fmt.Errorf("creating the CA in %s: %w", dir, err)
	case e.CAMaterial == nil:
		return true, nil
	}
	ca, err := openSharedCA(state, localca.Options{}, e.CAMaterial)
	if err != nil {
		return true, err
	}
	return true, ca.Close()
}

// openSharedCA opens the embedded CA of state as the cluster's CA: the
// material m keeps is installed in state first; when m keeps none, this
// node's CA (created if missing) is offered as the cluster's, and
// replaced by another node's that was kept first when it was created
// just now.
func openSharedCA(state string, opts localca.Options, m CAMaterialStore) (*localca.CA, error) {
	dir := CADir(state)
	shared, err := m.LoadCAMaterial()
	created := false
	if errors.Is(err, fs.ErrNotExist) {
		if err = localca.Init(dir); err == nil {
			created = true
		} else if !errors.Is(err, localca.ErrExists) {
			return nil, fmt.Errorf("creating the CA in %s: %w", dir, err)
		}
		var mine map[string][]byte
		if mine, err = localca.Material(dir); err == nil {
			shared, err = m.SaveCAMaterial(mine)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("the cluster's embedded CA: %w", err)
	}
	err = localca.InstallMaterial(dir, shared)
	if errors.Is(err, localca.ErrOtherCA) && created {
		// Another node's CA was kept first, while this one was made.
		if err = os.RemoveAll(dir); err == nil {
			err = localca.InstallMaterial(dir, shared)
		}
	}
	if errors.Is(err, localca.ErrOtherCA) {
		return nil, &CAMismatchError{Dir: dir}
	}
	if err != nil {
		return nil, fmt.Errorf("installing the cluster's embedded CA in %s: %w", dir, err)
	}
	return localca.Open(dir, opts)
}

// CADir is where the embedded CA lives in a state directory.
func CADir(state string) string { return filepath.Join(state, "ca") }

// OpenCA opens the embedded CA of a state directory; with create, a
// missing CA is created first. Without create, a missing CA is an error
// that wraps localca.ErrNotInitialized.
func OpenCA(state string, opts localca.Options, create bool) (*localca.CA, error) {
	dir := CADir(state)
	ca, err := localca.Open(dir, opts)
	if errors.Is(err, localca.ErrNotInitialized) && create {
		if err := localca.Init(dir); err != nil && !errors.Is(err, localca.ErrExists) {
			return nil, fmt.Errorf("creating the CA in %s: %w", dir, err)
		}
		ca, err = localca.Open(dir, opts)
	}
	if errors.Is(err, localca.ErrNotInitialized) {
		return nil, fmt.Errorf("no CA in %s: %w", dir, err)
	}
	return ca, err
}

// OpenIssuer returns the Issuer for a request's CA, the roots its
// certificates are checked against, and release, which frees what the
// Issuer holds (the local CA's database, an ACME client's connections)
// and is to be called once issuance is over. An ACME CA's Issuer is
// rebuilt from the stored request alone: its account is kept in the
// state directory.
func OpenIssuer(state string, req acme.Request, o IssueOptions) (acme.Issuer, *x509.CertPool, func(), error) {
	if LocalCA(req) {
		opts := localca.Options{Lifetime: time.Duration(req.Days) * 24 * time.Hour}
		var ca *localca.CA
		var err error
		if o.caMaterial != nil {
			ca, err = openSharedCA(state, opts, o.caMaterial)
		} else {
			ca, err = OpenCA(state, opts, true)
		}
		if err != nil {
			return nil, nil, nil, err
		}
		return ca, ca.RootPool(), func() { ca.Close() }, nil
	}
	a := req.ACME
	if a == nil {
		return nil, nil, nil, fmt.Errorf("lineage %s names CA %q but records no ACME settings; issuing it again from that CA records them", req.Host(), req.CA)
	}
	roots, err := TrustPool(a.TrustRoot)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lineage %s: %w", req.Host(), err)
	}
	solvers, err := ChallengeSolvers(a.Challenges)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lineage %s: %w", req.Host(), err)
	}
	cfg := acmeca.Config{
		Directory:      a.Directory,
		StateDir:       state,
		Accounts:       o.accounts,
		OrderSlots:     o.orderSlots,
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
	cfg.CAAIdentities = a.CAAIdentities
	if a.Preflight(acmeca.IsPublic(a.Directory)) {
		cfg.Preflight = preflightFunc(a, solvers)
	}
	iss, err := acmeca.New(cfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lineage %s: %w", req.Host(), err)
	}
	return iss, roots, iss.Close, nil
}

// preflightFunc is the pre-flight of an ACME CA's orders
// (acmeca.Config.Preflight): acme/preflight's checks through the
// settings' resolver, with the dns-01 key checked when dns-01 is solved
// by RFC 2136.
func preflightFunc(a *acme.ACMESettings, solvers map[string]acmez.Solver) func(context.Context, []string, pinning.CAAIssuer) ([]string, error) {
	c := preflightChecker(a, solvers)
	return func(ctx context.Context, names []string, iss pinning.CAAIssuer) ([]string, error) {
		r, err := c.Run(ctx, preflight.Order{Names: names, Issuer: iss})
		return r.Methods, err
	}
}

// preflightChecker is the pre-flight of settings a with their solvers.
func preflightChecker(a *acme.ACMESettings, solvers map[string]acmez.Solver) *preflight.Checker {
	c := &preflight.Checker{Resolver: a.Resolver, Listen: map[string]string{
		acmeproto.ChallengeTypeHTTP01: a.Challenges.HTTPListen, acmeproto.ChallengeTypeTLSALPN01: a.Challenges.TLSALPNListen,
	}}
	if s, ok := solvers[acmeproto.ChallengeTypeDNS01].(*challenge.RFC2136); ok {
		c.DNSUpdate = s
	}
	return c
}

// LocalCA reports whether the embedded CA signs for req. It offers no
// renewal window (RFC 9773 is for ACME servers), so its lineages are
// decided without opening it: opening costs about 20 ms and takes its
// database, which 'ca serve' or another run may hold.
func LocalCA(req acme.Request) bool { return req.CA == "local" || req.CA == "" }

// TrustPool is the system roots plus those in file, for an ACME CA's
// HTTPS and for checking what it issues. Without a file it is nil: the
// system roots.
func TrustPool(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	extra, err := certfile.Read(file, nil)
	if err != nil {
		return nil, &TrustRootError{File: file, Err: err}
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

// TrustRootError is a trust-root file that cannot be used.
type TrustRootError struct {
	File string
	Err  error
}

func (e *TrustRootError) Error() string { return fmt.Sprintf("trust root %s: %v", e.File, e.Err) }

// Unwrap returns the reason.
func (e *TrustRootError) Unwrap() error { return e.Err }

// ErrNoSolver says that stored challenge settings configure no way to
// prove control of the names.
var ErrNoSolver = errors.New("no way to prove control of the names is configured")

// SolverConflictError says that two settings solve the same challenge
// type; only one may.
type SolverConflictError struct {
	// Type is the ACME challenge type, such as http-01.
	Type string
}

func (e *SolverConflictError) Error() string {
	return fmt.Sprintf("two ways to solve %s are configured; choose one", e.Type)
}

// ChallengeSolvers builds the challenge solvers of stored settings
// (acme/challenge), checking them without touching the network; a TSIG
// secret is read from its file here, at every issuance, never from the
// lineage. issue calls it before anything is written.
func ChallengeSolvers(c acme.ChallengeSettings) (map[string]acmez.Solver, error) {
	if c.Empty() {
		return nil, ErrNoSolver
	}
	type validator interface {
		acmez.Solver
		Validate() error
	}
	solvers := map[string]acmez.Solver{}
	add := func(typ string, s validator) error {
		if _, dup := solvers[typ]; dup {
			return &SolverConflictError{Type: typ}
		}
		if err := s.Validate(); err != nil {
			return err
		}
		solvers[typ] = s
		return nil
	}
	if c.HTTPListen != "" {
		if err := add(acmeproto.ChallengeTypeHTTP01, &challenge.HTTP01{Addr: c.HTTPListen}); err != nil {
			return nil, err
		}
	}
	if c.Webroot != "" {
		if err := add(acmeproto.ChallengeTypeHTTP01, &challenge.Webroot{Dir: c.Webroot}); err != nil {
			return nil, err
		}
	}
	if c.TLSALPNListen != "" {
		if err := add(acmeproto.ChallengeTypeTLSALPN01, &challenge.TLSALPN01{Addr: c.TLSALPNListen}); err != nil {
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
		if err := add(acmeproto.ChallengeTypeDNS01, s); err != nil {
			return nil, err
		}
	}
	if c.DNSHook != "" {
		if err := add(acmeproto.ChallengeTypeDNS01, &challenge.DNSHook{Command: c.DNSHook}); err != nil {
			return nil, err
		}
	}
	return solvers, nil
}

// AccountError says that an ACME CA has no account kept for it in the
// state directory and none may be registered: the operator's agreement
// to the CA's terms, or an External Account Binding the CA requires, is
// missing.
type AccountError struct {
	// Directory is the CA's directory URL.
	Directory string
	// NeedAgreeTOS is true when the agreement is missing, NeedEAB when
	// the CA requires External Account Binding and none was given.
	NeedAgreeTOS, NeedEAB bool
}

func (e *AccountError) Error() string {
	name := acmeca.DisplayName(e.Directory)
	if e.NeedAgreeTOS {
		return fmt.Sprintf("no account with %s yet, and registering one needs agreement to its terms of service", name)
	}
	return fmt.Sprintf("no account with %s yet, and registering one needs External Account Binding", name)
}

// CheckAccount returns an *AccountError, before anything is written,
// when req's ACME CA has no account kept and none may be registered with
// o. It returns nil for the embedded CA.
func (e *Engine) CheckAccount(req acme.Request, o IssueOptions) error {
	if req.ACME == nil {
		return nil
	}
	accounts := e.Accounts
	if accounts == nil {
		state, err := e.stateDir()
		if err != nil {
			return err
		}
		accounts = acmeca.DiskAccounts{State: state}
	}
	if _, err := accounts.Account(req.CA); err == nil {
		return nil
	}
	if !o.AgreeTOS {
		return &AccountError{Directory: req.CA, NeedAgreeTOS: true}
	}
	if req.CA == acmeca.ZeroSSL && o.EABHMAC == "" {
		return &AccountError{Directory: req.CA, NeedEAB: true}
	}
	return nil
}
