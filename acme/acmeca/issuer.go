// Package acmeca issues certificates from ACME CAs (RFC 8555): Let's
// Encrypt, ZeroSSL, any other public CA, or a private one such as
// xmppcert's own 'ca serve', step-ca or pebble. It implements
// acme.Issuer and acme.RenewalAdvisor on github.com/mholt/acmez, which
// carries the RFC 9773 "replaces" of a renewal.
//
// One Issue is one order for all of a request's names as DNS
// identifiers: a public CA certifies DNS names only, and whatever SRV-IDs
// or XmppAddr a private CA adds come from its own template. The account
// is kept (in the state directory, DiskAccounts, or a cluster's store)
// and reused; it is registered only when the configuration agrees to the CA's terms, never
// after a prompt. Failures are *Error values that name the CA and say
// what to do; retries inside one call are bounded, and a rate limit or a
// Retry-After is reported, not hammered.
package acmeca

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mholt/acmez/v3"
	acmeproto "github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// Config configures an Issuer.
type Config struct {
	// Directory is the CA's ACME directory URL, as ParseDirectory
	// returns it.
	Directory string
	// StateDir is the state directory; the account is kept in
	// AccountDir(StateDir, Directory) unless Accounts is set.
	StateDir string
	// Accounts keeps the account (a cluster's shared store);
	// DiskAccounts in StateDir when nil.
	Accounts acme.AccountStore
	// OrderSlots, when set, is taken before each order and released
	// once it is over: a cap on the orders open at once with the
	// account.
	OrderSlots acme.OrderSlots
	// Email is the account's contact address; empty for none.
	Email string
	// AgreeTOS agrees to the CA's terms of service, which registering a
	// new account needs. Without it and without a stored account, Issue
	// fails: there is never a prompt.
	AgreeTOS bool
	// EAB is the External Account Binding for registering a new account
	// with a CA that wants one (ZeroSSL, Google, step-ca --require-eab).
	EAB *EAB
	// Profile is the ACME profile to order (draft-aaron-acme-profiles);
	// empty for the CA's default.
	Profile string
	// TrustRoots verify the CA's HTTPS certificate; nil for the system
	// roots.
	TrustRoots *x509.CertPool
	// Solvers solve challenges, by challenge type (acme "http-01",
	// "tls-alpn-01", "dns-01"). Issue needs at least one.
	Solvers map[string]acmez.Solver
	// RequireXMPPIDs makes Issue fail, before anything is written, when
	// the certificate lacks the SRV-IDs and XmppAddr of a name's role.
	RequireXMPPIDs bool

	// Timeout bounds one Issue, retries included (DefaultTimeout when
	// zero); the caller's context may end it sooner.
	Timeout time.Duration
	// Attempts bounds the tries of one Issue after transient failures
	// (unreachable CA, 5xx answers); DefaultAttempts when zero.
	Attempts int
	// Backoff is the wait before the second try, doubled before each
	// further one; DefaultBackoff when zero.
	Backoff time.Duration
	// MaxRetryWait is the longest Retry-After an Issue waits for before
	// trying again itself; a later one is reported instead.
	// DefaultMaxRetryWait when zero.
	MaxRetryWait time.Duration
	// PollInterval is how often authorizations and orders are polled
	// when the CA does not say (acmez's default when zero).
	PollInterval time.Duration
	// PollTimeout bounds the wait for one validation or finalisation;
	// DefaultPollTimeout when zero.
	PollTimeout time.Duration
	// Logger receives acmez's log; nil for none.
	Logger *slog.Logger
	// Preflight, when set, checks each order before it is sent, once the
	// account is known (acme/preflight): its error refuses the order
	// (KindPreflight, nothing sent), and only the methods it returns are
	// offered to the CA's challenges.
	Preflight func(ctx context.Context, names []string, iss pinning.CAAIssuer) (methods []string, err error)
	// CAAIdentities are the CA's CAA issuer domains (for Preflight and
	// CAAIssuer) when its directory names none (pebble, some private
	// CAs); the directory's caaIdentities win.
	CAAIdentities []string
}

// EAB is an External Account Binding (RFC 8555 §7.3.4): the key ID and
// the base64url HMAC key the CA gave out of band.
type EAB struct {
	// KeyID is the key identifier (--eab-kid).
	KeyID string
	// HMAC is the MAC key in base64url (--eab-hmac).
	HMAC string
}

// Defaults of Config.
const (
	DefaultTimeout      = 10 * time.Minute
	DefaultAttempts     = 3
	DefaultBackoff      = 2 * time.Second
	DefaultMaxRetryWait = 30 * time.Second
	DefaultPollTimeout  = 3 * time.Minute
	// requestTimeout bounds one HTTP exchange with the CA.
	requestTimeout = 60 * time.Second
)

// ErrNoRenewalInfo is wrapped by RenewalWindow's error when the CA
// offers no ACME Renewal Information: renew then by the certificate's
// lifetime. It is acme.ErrNoRenewalInfo, which renewal looks for.
var ErrNoRenewalInfo = acme.ErrNoRenewalInfo

// Issuer gets certificates from one ACME CA.
type Issuer struct {
	cfg       Config
	transport *http.Transport
}

// New checks cfg and returns an Issuer. It does not contact the CA.
func New(cfg Config) (*Issuer, error) {
	dir, err := ParseDirectory(cfg.Directory)
	if err != nil {
		return nil, err
	}
	cfg.Directory = dir
	if cfg.Accounts == nil {
		if cfg.StateDir == "" {
			return nil, errors.New("no state directory to keep the ACME account in")
		}
		cfg.Accounts = DiskAccounts{State: cfg.StateDir}
	}
	if err := CheckEmail(cfg.Email); err != nil {
		return nil, err
	}
	if cfg.EAB != nil {
		if err := CheckEAB(cfg.EAB.KeyID, cfg.EAB.HMAC); err != nil {
			return nil, err
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxRetryWait <= 0 {
		cfg.MaxRetryWait = DefaultMaxRetryWait
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = DefaultPollTimeout
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{RootCAs: cfg.TrustRoots, MinVersion: tls.VersionTLS12}
	t.ResponseHeaderTimeout = requestTimeout
	return &Issuer{cfg: cfg, transport: t}, nil
}

// CheckEmail accepts an empty address (no contact) or one with a local
// part, an @ and a domain, without spaces or a mailto: prefix.
func CheckEmail(email string) error {
	if email == "" {
		return nil
	}
	at := strings.LastIndexByte(email, '@')
	switch {
	case strings.HasPrefix(strings.ToLower(email), "mailto:"):
		return fmt.Errorf("email %q: give the address without mailto:", email)
	case at <= 0 || at == len(email)-1:
		return fmt.Errorf("email %q is not an address (no user@domain); the CA writes to it about expiring certificates and policy changes", email)
	case strings.ContainsAny(email, " \t\r\n,;<>\""):
		return fmt.Errorf("email %q contains a space or separator; give one address", email)
	case !strings.Contains(email[at+1:], "."):
		return fmt.Errorf("email %q: the domain %q has no dot; give a reachable address", email, email[at+1:])
	}
	return nil
}

// CheckEAB checks an External Account Binding: both parts, and an HMAC
// key in base64url (padding tolerated) as CAs hand them out.
func CheckEAB(kid, hmac string) error {
	switch {
	case kid == "" && hmac == "":
		return errors.New("External Account Binding needs a key ID and an HMAC key")
	case kid == "":
		return errors.New("an External Account Binding HMAC key without its key ID: give both, from the CA's account page")
	case hmac == "":
		return errors.New("an External Account Binding key ID without its HMAC key: give both, from the CA's account page")
	}
	if _, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(hmac, "=")); err != nil {
		return errors.New("the External Account Binding HMAC key is not base64url (the CA's HMAC key, as its account page shows it)")
	}
	return nil
}

// Name says who signs: the CA's name and directory URL.
func (i *Issuer) Name() string {
	return DisplayName(i.cfg.Directory) + " (" + i.cfg.Directory + ")"
}

// Directory is the CA's ACME directory URL.
func (i *Issuer) Directory() string { return i.cfg.Directory }

// Close releases the Issuer's idle connections.
func (i *Issuer) Close() { i.transport.CloseIdleConnections() }

// client makes the acmez client of one operation, whose transport
// records what the CA says about retrying.
func (i *Issuer) client() (*acmez.Client, *recorder) {
	rec := &recorder{base: i.transport}
	return &acmez.Client{
		Client: &acmeproto.Client{
			Directory:    i.cfg.Directory,
			HTTPClient:   &http.Client{Transport: rec, Timeout: requestTimeout},
			UserAgent:    "xmppcert",
			PollInterval: i.cfg.PollInterval,
			PollTimeout:  i.cfg.PollTimeout,
			Logger:       i.cfg.Logger,
		},
		ChallengeSolvers: i.cfg.Solvers,
	}, rec
}

// Issue orders one certificate for all of req's names as DNS
// identifiers, with req.Replaces as the order's ARI "replaces" and the
// configured profile, and returns the first chain the CA offers (leaf
// and intermediates). Transient failures are retried with backoff within
// the Config's bounds; the error is an *Error.
func (i *Issuer) Issue(ctx context.Context, req acme.Request, key crypto.Signer) (*acme.Issued, error) {
	if len(req.Names) == 0 {
		return nil, errors.New("no names to certify")
	}
	names := req.Domains()
	op := "ordering a certificate for " + strings.Join(names, ", ")
	fail := func(kind Kind, attempts int, err error, advice string) *Error {
		return &Error{CA: i.Name(), Op: op, Kind: kind, Attempts: attempts, Err: err, advice: advice, issuing: true}
	}
	if len(i.cfg.Solvers) == 0 {
		return nil, fail(KindConfig, 0, errors.New("no challenge solver configured"),
			"say how to prove control of the names: http-01, tls-alpn-01 or dns-01")
	}
	ctx, cancel := context.WithTimeout(ctx, i.cfg.Timeout)
	defer cancel()
	client, rec := i.client()
	replaces := req.Replaces
	reregistered := false
	backoff := i.cfg.Backoff
	for attempt := 1; ; attempt++ {
		rec.reset()
		chain, err := i.issueOnce(ctx, client, names, key, replaces)
		if err == nil {
			if i.cfg.RequireXMPPIDs {
				if missing := missingXMPPIDs(chain[0], req); len(missing) > 0 {
					e := fail(KindIdentities, attempt, fmt.Errorf("missing %s", strings.Join(missing, ", ")),
						"this CA certifies DNS names only (every public CA does: CA/Browser Forum rules); SRV-IDs and XmppAddr come from a private CA (the embedded one, xmppcert ca serve, or a step-ca with 'xmppcert ca template'); or let peers match the DNS-IDs, with POSH or DANE for delegated domains")
					e.remedy = RemedyXMPPIDs
					return nil, e
				}
			}
			return &acme.Issued{Chain: chain, Key: key, Issuer: i.Name()}, nil
		}
		var ours *Error
		if errors.As(err, &ours) {
			ours.Attempts, ours.issuing = attempt, true
			return nil, ours
		}
		kind, retry := classify(err, rec)
		if ctx.Err() != nil {
			kind, retry = KindTimeout, false
		}
		retryAt, _ := rec.last()
		e := fail(kind, attempt, err, "")
		e.advice, e.remedy = i.advice(kind, err)
		e.RetryAt = retryAt
		if ctx.Err() != nil {
			e.advice, e.remedy = fmt.Sprintf("it did not finish within %s: run again; if the CA or the DNS is slow, allow more time", i.cfg.Timeout), RemedyTimeout
		}
		// The certificate was renewed already (another node of a
		// cluster): no second order here; the caller reads its store.
		if replaces != nil && (rec.replaced() || isProblemType(err, acmeproto.ProblemTypeAlreadyReplaced)) {
			e.Kind, e.advice = KindAlreadyReplaced, ""
			return nil, e
		}
		// A CA may refuse the "replaces" of a renewal (a certificate from
		// another account, or one it does not know): order without it.
		if replaces != nil && strings.Contains(err.Error(), "creating new order") && (kind == KindRejected || kind == KindServer) {
			replaces = nil
			attempt--
			continue
		}
		// The CA forgot the account (a test CA that was reset): register
		// anew, once, if the terms are agreed to.
		if kind == KindAccount && isProblemType(err, acmeproto.ProblemTypeAccountDoesNotExist) && i.cfg.AgreeTOS && !reregistered {
			reregistered = true
			if rerr := i.forgetAccount(ctx); rerr == nil {
				attempt--
				continue
			}
		}
		if !retry || attempt >= i.cfg.Attempts {
			return nil, e
		}
		wait := backoff
		backoff *= 2
		if !retryAt.IsZero() {
			w := time.Until(retryAt)
			if w > i.cfg.MaxRetryWait {
				return nil, e
			}
			wait = max(wait, w)
		}
		if d, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(d) {
			return nil, e
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			e.Kind = KindTimeout
			return nil, e
		}
	}
}

// issueOnce is one try: the account, the order, the chain.
func (i *Issuer) issueOnce(ctx context.Context, client *acmez.Client, names []string, key crypto.Signer, replaces *x509.Certificate) ([]*x509.Certificate, error) {
	acct, err := i.account(ctx, client)
	if err != nil {
		return nil, err
	}
	if i.cfg.Profile != "" {
		dir, err := client.GetDirectory(ctx)
		if err != nil {
			return nil, err
		}
		if err := checkProfile(i.cfg.Profile, dir); err != nil {
			return nil, &Error{CA: i.Name(), Op: "ordering a certificate for " + strings.Join(names, ", "), Kind: KindRejected, Err: err,
				advice: "choose one of the profiles the CA offers, or none for the CA's default", remedy: RemedyProfile}
		}
	}
	if i.cfg.Preflight != nil {
		if client, err = i.preflight(ctx, client, names, acct); err != nil {
			return nil, err
		}
	}
	csr, err := acmez.NewCSR(key, names)
	if err != nil {
		return nil, err
	}
	ids := make([]acmeproto.Identifier, len(names))
	for j, n := range names {
		ids[j] = acmeproto.Identifier{Type: "dns", Value: n}
	}
	if i.cfg.OrderSlots != nil {
		release, err := i.cfg.OrderSlots.TakeOrderSlot(ctx, acct.Location)
		if err != nil {
			return nil, &Error{CA: i.Name(), Op: "waiting for a free order slot", Kind: KindOther, Err: err}
		}
		defer release()
	}
	certs, err := client.ObtainCertificate(ctx, acmez.OrderParameters{
		Account:     acct,
		Profile:     i.cfg.Profile,
		Identifiers: ids,
		CSR:         acmez.StaticCSR(csr),
		Replaces:    replaces,
	})
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("the CA offered no certificate chain")
	}
	chain, err := certfile.Parse(certs[0].ChainPEM)
	if err != nil {
		return nil, fmt.Errorf("the CA's certificate chain: %w", err)
	}
	// Drop a self-signed root the CA may append: lineages hold the leaf
	// and intermediates.
	if n := len(chain); n > 1 && isSelfSigned(chain[n-1]) {
		chain = chain[:n-1]
	}
	if err := sameNames(chain[0], names); err != nil {
		return nil, err
	}
	return chain, nil
}

// CAAIssuer is who orders from this Issuer, as CAA judges it: the CA's
// CAA identities (its directory's caaIdentities, else
// Config.CAAIdentities), the account kept in the state directory (none
// yet: no AccountURI; nothing is registered) and the challenge types of
// the configured solvers. It asks the CA for its directory.
func (i *Issuer) CAAIssuer(ctx context.Context) (pinning.CAAIssuer, error) {
	client, rec := i.client()
	iss, err := i.caaIssuer(ctx, client, "")
	if err != nil {
		kind, _ := classify(err, rec)
		return iss, &Error{CA: i.Name(), Op: "reading the directory", Kind: kind, Err: err}
	}
	return iss, nil
}

func (i *Issuer) caaIssuer(ctx context.Context, client *acmez.Client, account string) (pinning.CAAIssuer, error) {
	dir, err := client.GetDirectory(ctx)
	if err != nil {
		return pinning.CAAIssuer{}, err
	}
	iss := pinning.CAAIssuer{Domains: i.cfg.CAAIdentities, AccountURI: account}
	if dir.Meta != nil && len(dir.Meta.CAAIdentities) > 0 {
		iss.Domains = dir.Meta.CAAIdentities
	}
	if iss.AccountURI == "" {
		if a, err := i.cfg.Accounts.Account(i.cfg.Directory); err == nil {
			iss.AccountURI = a.Location
		}
	}
	for m := range client.ChallengeSolvers {
		iss.Methods = append(iss.Methods, m)
	}
	sort.Strings(iss.Methods)
	return iss, nil
}

// preflight runs Config.Preflight for an order and returns the client
// to order with: its solvers narrowed to the methods the pre-flight
// allows.
func (i *Issuer) preflight(ctx context.Context, client *acmez.Client, names []string, acct acmeproto.Account) (*acmez.Client, error) {
	iss, err := i.caaIssuer(ctx, client, acct.Location)
	if err != nil {
		return nil, err
	}
	methods, err := i.cfg.Preflight(ctx, names, iss)
	if err != nil {
		return nil, &Error{CA: i.Name(), Op: "ordering a certificate for " + strings.Join(names, ", "), Kind: KindPreflight, Err: err}
	}
	narrowed := *client
	narrowed.ChallengeSolvers = map[string]acmez.Solver{}
	for _, m := range methods {
		if s, ok := client.ChallengeSolvers[m]; ok {
			narrowed.ChallengeSolvers[m] = s
		}
	}
	return &narrowed, nil
}

func isSelfSigned(c *x509.Certificate) bool {
	return c.CheckSignatureFrom(c) == nil && string(c.RawIssuer) == string(c.RawSubject)
}

// sameNames makes sure the leaf's DNS names are those ordered: a CA may
// not add names the request did not ask for.
func sameNames(leaf *x509.Certificate, names []string) error {
	got := make([]string, len(leaf.DNSNames))
	for j, n := range leaf.DNSNames {
		got[j] = strings.ToLower(n)
	}
	want := slices.Clone(names)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(slices.Compact(got), slices.Compact(want)) {
		return fmt.Errorf("the CA returned a certificate for %s, not for the names ordered (%s)", strings.Join(got, ", "), strings.Join(want, ", "))
	}
	return nil
}

// missingXMPPIDs lists the SRV-IDs and XmppAddrs req's roles call for
// that leaf does not carry.
func missingXMPPIDs(leaf *x509.Certificate, req acme.Request) []string {
	have := map[string]bool{}
	for _, id := range xmppaddr.Identities(leaf).Identifiers {
		if id.Ignored == "" {
			have[string(id.Type)+" "+id.Domain+" "+id.Service] = true
		}
	}
	var missing []string
	for _, n := range req.Names {
		for _, svc := range n.Role.Services() {
			if !have[string(xmppaddr.TypeSRVName)+" "+n.Domain+" "+string(svc)] {
				missing = append(missing, "SRV-ID _"+string(svc)+"."+n.Domain)
			}
		}
		if !have[string(xmppaddr.TypeXmppAddr)+" "+n.Domain+" "] {
			missing = append(missing, "XmppAddr "+n.Domain)
		}
	}
	return missing
}

// checkProfile refuses a profile the directory does not offer.
func checkProfile(profile string, dir acmeproto.Directory) error {
	var offered []string
	if dir.Meta != nil {
		for p := range dir.Meta.Profiles {
			offered = append(offered, p)
		}
	}
	sort.Strings(offered)
	if len(offered) == 0 {
		return fmt.Errorf("profile %q: the CA offers no profiles", profile)
	}
	if !slices.Contains(offered, profile) {
		return fmt.Errorf("profile %q is not offered; the CA offers %s", profile, strings.Join(offered, ", "))
	}
	return nil
}

// advice says what to do about a failure whose advice depends on the
// configuration, and which setting that changes.
func (i *Issuer) advice(kind Kind, err error) (string, Remedy) {
	switch kind {
	case KindChallenge:
		var hints []string
		for _, t := range slices.Sorted(mapKeys(i.cfg.Solvers)) {
			switch t {
			case acmeproto.ChallengeTypeHTTP01:
				hints = append(hints, "http-01: port 80 of every name's A/AAAA address must reach the responder (or the web server of the webroot) and serve /.well-known/acme-challenge/")
			case acmeproto.ChallengeTypeTLSALPN01:
				hints = append(hints, "tls-alpn-01: port 443 of every name's address must reach the responder")
			case acmeproto.ChallengeTypeDNS01:
				hints = append(hints, "dns-01: the TXT record _acme-challenge.NAME must be published on the zone's authoritative servers")
			default:
				hints = append(hints, t)
			}
		}
		return "check the challenge set-up: " + strings.Join(hints, "; ") + "; then run again", RemedyNone
	case KindAccount:
		dir := i.cfg.Accounts.AccountPlace(i.cfg.Directory)
		switch {
		case isProblemType(err, acmeproto.ProblemTypeExternalAccountRequired):
			return "this CA wants External Account Binding: give a key ID and HMAC key from the CA's account page", RemedyEAB
		case isProblemType(err, acmeproto.ProblemTypeAccountDoesNotExist):
			return "the CA no longer knows the account kept in " + dir + ": issue again, agreeing to the CA's terms, to register a new one", RemedyAgreeTOS
		case isProblemType(err, acmeproto.ProblemTypeInvalidContact), isProblemType(err, acmeproto.ProblemTypeUnsupportedContact):
			return "give a working contact address", RemedyEmail
		case isProblemType(err, acmeproto.ProblemTypeUserActionRequired):
			return "the CA's terms changed: read them (the problem names a page) and issue again, agreeing to them", RemedyAgreeTOS
		}
		return "check the account kept in " + dir, RemedyNone
	}
	return "", RemedyNone
}

func isProblemType(err error, typ string) bool {
	var p acmeproto.Problem
	return errors.As(err, &p) && p.Type == typ
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// account returns the stored account, or registers one when there is
// none and the terms are agreed to. The account's lock makes concurrent
// runs (and a cluster's nodes) register once.
func (i *Issuer) account(ctx context.Context, client *acmez.Client) (acmeproto.Account, error) {
	accounts, place := i.cfg.Accounts, i.cfg.Accounts.AccountPlace(i.cfg.Directory)
	stored, err := accounts.Account(i.cfg.Directory)
	if errors.Is(err, fs.ErrNotExist) && i.cfg.AgreeTOS {
		// Register under the lock, unless another run just did.
		unlock, lerr := accounts.LockAccount(ctx, i.cfg.Directory)
		if lerr != nil {
			return acmeproto.Account{}, &Error{CA: i.Name(), Op: "registering an ACME account", Kind: KindOther, Err: lerr,
				advice: "make " + place + " writable"}
		}
		defer unlock()
		stored, err = accounts.Account(i.cfg.Directory)
	}
	switch {
	case err == nil:
		// The account keeps the contact it was registered with.
		return acmeproto.Account{
			Status:               acmeproto.StatusValid,
			Contact:              stored.Contact,
			TermsOfServiceAgreed: stored.TermsOfServiceAgreed,
			Location:             stored.Location,
			PrivateKey:           stored.Key,
		}, nil
	case !errors.Is(err, fs.ErrNotExist):
		return acmeproto.Account{}, &Error{CA: i.Name(), Op: "reading the ACME account", Kind: KindAccount, Err: err,
			advice: "repair or remove " + place + " (a new account is then registered once the CA's terms are agreed to)", remedy: RemedyAgreeTOS}
	}
	op := "registering an ACME account"
	if !i.cfg.AgreeTOS {
		return acmeproto.Account{}, &Error{CA: i.Name(), Op: op, Kind: KindConfig, Err: errors.New("no account for this CA is kept in " + place),
			advice: "read the CA's terms of service and agree to them to register one (xmppcert never prompts)", remedy: RemedyAgreeTOS}
	}
	return i.register(ctx, client, place, op)
}

// register registers a new account and keeps it (at place); the caller
// holds the account's lock.
func (i *Issuer) register(ctx context.Context, client *acmez.Client, place, op string) (acmeproto.Account, error) {
	d, err := client.GetDirectory(ctx)
	if err != nil {
		return acmeproto.Account{}, err
	}
	if d.Meta != nil && d.Meta.ExternalAccountRequired && i.cfg.EAB == nil {
		return acmeproto.Account{}, &Error{CA: i.Name(), Op: op, Kind: KindConfig, Err: errors.New("the CA requires External Account Binding for new accounts"),
			advice: "give an External Account Binding key ID and HMAC key from the CA's account page", remedy: RemedyEAB}
	}
	key, err := newAccountKey()
	if err != nil {
		return acmeproto.Account{}, err
	}
	acct := acmeproto.Account{TermsOfServiceAgreed: true, PrivateKey: key}
	if i.cfg.Email != "" {
		acct.Contact = []string{"mailto:" + i.cfg.Email}
	}
	kid := ""
	if i.cfg.EAB != nil {
		kid = i.cfg.EAB.KeyID
		eab := acmeproto.EAB{KeyID: i.cfg.EAB.KeyID, MACKey: strings.TrimRight(i.cfg.EAB.HMAC, "=")}
		if err := acct.SetExternalAccountBinding(ctx, client.Client, eab); err != nil {
			return acmeproto.Account{}, err
		}
	}
	acct, err = client.NewAccount(ctx, acct)
	if err != nil {
		return acmeproto.Account{}, err
	}
	if acct.Location == "" {
		return acmeproto.Account{}, errors.New("the CA registered the account but gave no account URL")
	}
	if acct.Status == "" {
		acct.Status = acmeproto.StatusValid
	}
	if acct.Status != acmeproto.StatusValid {
		return acmeproto.Account{}, &Error{CA: i.Name(), Op: op, Kind: KindAccount, Err: fmt.Errorf("the new account's status is %q", acct.Status)}
	}
	rec := &acme.Account{
		Directory: i.cfg.Directory, Location: acct.Location, Contact: acct.Contact,
		TermsOfServiceAgreed: true, EABKeyID: kid, Created: time.Now().UTC(), Key: key,
	}
	if err := i.cfg.Accounts.SaveAccount(rec); err != nil {
		return acmeproto.Account{}, &Error{CA: i.Name(), Op: op, Kind: KindOther, Err: err,
			advice: "the account exists at the CA but could not be kept: make " + place + " writable and run again"}
	}
	acct.PrivateKey = key
	return acct, nil
}

// forgetAccount removes the stored account so that the next try
// registers a new one.
func (i *Issuer) forgetAccount(ctx context.Context) error {
	unlock, err := i.cfg.Accounts.LockAccount(ctx, i.cfg.Directory)
	if err != nil {
		return err
	}
	defer unlock()
	return i.cfg.Accounts.RemoveAccount(i.cfg.Directory)
}

// RenewalWindow asks the CA when to renew leaf (ACME Renewal
// Information, RFC 9773). It fetches the renewalInfo resource itself
// rather than through acmez, whose client refuses windows of a second or
// less, the form CAs (pebble, Boulder) give for "renew now" after a
// revocation. A CA without ARI gives ErrNoRenewalInfo; any other failure
// an *Error, after which renewal falls back to the lifetime rule.
func (i *Issuer) RenewalWindow(ctx context.Context, leaf *x509.Certificate) (acme.RenewalWindow, error) {
	ctx, cancel := context.WithTimeout(ctx, min(i.cfg.Timeout, 2*time.Minute))
	defer cancel()
	client, rec := i.client()
	op := "asking when to renew the certificate for " + strings.Join(leaf.DNSNames, ", ")
	fail := func(err error) error {
		kind, _ := classify(err, rec)
		if ctx.Err() != nil {
			kind = KindTimeout
		}
		retryAt, _ := rec.last()
		return &Error{CA: i.Name(), Op: op, Kind: kind, Err: err, RetryAt: retryAt, advice: "renewal falls back to the certificate's lifetime"}
	}
	dir, err := client.GetDirectory(ctx)
	if err != nil {
		return acme.RenewalWindow{}, fail(err)
	}
	if dir.RenewalInfo == "" {
		return acme.RenewalWindow{}, fmt.Errorf("%s: %w", i.Name(), ErrNoRenewalInfo)
	}
	id, err := acmeproto.ARIUniqueIdentifier(leaf)
	if err != nil {
		return acme.RenewalWindow{}, fail(err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(dir.RenewalInfo, "/")+"/"+id, nil)
	if err != nil {
		return acme.RenewalWindow{}, fail(err)
	}
	hreq.Header.Set("User-Agent", "xmppcert")
	resp, err := (&http.Client{Transport: rec, Timeout: requestTimeout}).Do(hreq)
	if err != nil {
		return acme.RenewalWindow{}, fail(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRenewalInfo+1))
	if err != nil {
		return acme.RenewalWindow{}, fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		return acme.RenewalWindow{}, fail(fmt.Errorf("renewalInfo answered HTTP %d", resp.StatusCode))
	}
	var ri struct {
		SuggestedWindow struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"suggestedWindow"`
		ExplanationURL string `json:"explanationURL"`
	}
	if len(body) > maxRenewalInfo || json.Unmarshal(body, &ri) != nil {
		return acme.RenewalWindow{}, fail(errors.New("renewalInfo is not a renewal information object"))
	}
	w := acme.RenewalWindow{Start: ri.SuggestedWindow.Start, End: ri.SuggestedWindow.End, ExplanationURL: ri.ExplanationURL,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	// RFC 9773 §4.2: a window whose end does not follow its start is
	// malformed; the client makes its own decision.
	if w.Start.IsZero() || !w.End.After(w.Start) {
		return acme.RenewalWindow{}, fail(fmt.Errorf("malformed renewal window %s to %s", w.Start, w.End))
	}
	return w, nil
}

// maxRenewalInfo bounds a renewalInfo response; real ones are a few
// hundred bytes.
const maxRenewalInfo = 64 << 10

var (
	_ acme.Issuer         = (*Issuer)(nil)
	_ acme.RenewalAdvisor = (*Issuer)(nil)
)

// Revoke asks the CA to revoke cert for reason (an RFC 5280 code),
// signed with the account's key: the CA accepts it from the account
// that ordered the certificate or one that holds authorizations for all
// its names (RFC 8555 §7.6). It is not retried; the error is an *Error.
func (i *Issuer) Revoke(ctx context.Context, cert *x509.Certificate, reason int) error {
	ctx, cancel := context.WithTimeout(ctx, i.cfg.Timeout)
	defer cancel()
	client, rec := i.client()
	op := "revoking the certificate with serial " + cert.SerialNumber.String()
	acct, err := i.account(ctx, client)
	if err == nil {
		err = client.RevokeCertificate(ctx, acct, cert, nil, reason)
	}
	if err != nil {
		kind, _ := classify(err, rec)
		return &Error{CA: i.Name(), Op: op, Kind: kind, Attempts: 1, Err: err}
	}
	return nil
}
