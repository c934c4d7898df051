package acmeca

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3"
	acmeproto "github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/internal/testfs"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// pebbleEnv is pebble with an http-01 responder its validation reaches.
type pebbleEnv struct {
	pebble *acmecatest.Pebble
	http01 *acmecatest.HTTP01
	state  string
}

func startPebble(t *testing.T, o acmecatest.PebbleOptions) *pebbleEnv {
	t.Helper()
	h := acmecatest.NewHTTP01(t)
	o.HTTPPort = h.Port
	return &pebbleEnv{pebble: acmecatest.StartPebble(t, o), http01: h, state: t.TempDir()}
}

// config is a Config for this pebble with fast polling, agreeing to the
// terms.
func (e *pebbleEnv) config() Config {
	return Config{
		Directory:    e.pebble.Directory,
		StateDir:     e.state,
		Email:        "admin@example.org",
		AgreeTOS:     true,
		TrustRoots:   e.pebble.Roots(),
		Solvers:      map[string]acmez.Solver{acmeproto.ChallengeTypeHTTP01: e.http01},
		PollInterval: 20 * time.Millisecond,
		PollTimeout:  20 * time.Second,
		Timeout:      time.Minute,
		Backoff:      10 * time.Millisecond,
	}
}

func mustIssuer(t *testing.T, cfg Config) *Issuer {
	t.Helper()
	iss, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.Close)
	return iss
}

func hostRequest(t *testing.T, components ...string) acme.Request {
	t.Helper()
	req, err := acme.NewRequest("example.org", xmppaddr.RoleHost, components, acme.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func findingCodes(r *xmppaddr.Result) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, string(f.Code))
	}
	return out
}

// TestPebbleBundle obtains one certificate for a host and its component
// from pebble over http-01 and writes the lineage: DNS-IDs only,
// serverAuth only (like Let's Encrypt since 2026), and the check finds
// the missing clientAuth for s2s.
func TestPebbleBundle(t *testing.T) {
	e := startPebble(t, acmecatest.PebbleOptions{})
	iss := mustIssuer(t, e.config())
	store := acme.DiskStore{Dir: e.state}
	req := hostRequest(t, "conference.example.org")
	start := time.Now()
	got, err := acme.Obtain(context.Background(), store, iss, req)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("issuance took %v", time.Since(start).Round(time.Millisecond))
	leaf := got.Chain[0]
	if names := slices.Sorted(slices.Values(leaf.DNSNames)); !slices.Equal(names, []string{"conference.example.org", "example.org"}) {
		t.Errorf("dNSNames %q", names)
	}
	for _, id := range xmppaddr.Identities(leaf).Identifiers {
		if id.Type == xmppaddr.TypeSRVName || id.Type == xmppaddr.TypeXmppAddr {
			t.Errorf("a public-style CA issued %s %s", id.Type, id.Value)
		}
	}
	if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) {
		t.Errorf("EKU %v; pebble issues serverAuth only", leaf.ExtKeyUsage)
	}
	if len(got.Chain) < 2 || got.Chain[len(got.Chain)-1].Equal(e.pebble.IssuingRoot) {
		t.Errorf("chain of %d certificates: want leaf and intermediates, no root", len(got.Chain))
	}
	if got.Issuer != iss.Name() || !strings.Contains(got.Issuer, e.pebble.Directory) {
		t.Errorf("issuer %q", got.Issuer)
	}
	// One order for both names.
	orders := e.pebble.Orders()
	if len(orders) != 1 || !slices.Equal(slices.Sorted(slices.Values(orders[0].Identifiers)), []string{"conference.example.org", "example.org"}) {
		t.Errorf("orders %+v; want one for both names", orders)
	}
	for _, host := range []string{"example.org", "conference.example.org"} {
		if !slices.ContainsFunc(e.http01.Requests(), func(r string) bool { return strings.HasPrefix(r, host+":") || strings.HasPrefix(r, host+"/") }) {
			t.Errorf("no http-01 validation for %s: %q", host, e.http01.Requests())
		}
	}
	// The written lineage is what was issued, and it checks valid under
	// pebble's root, with the clientAuth finding for s2s.
	l, err := store.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Chain[0].Equal(leaf) || l.Request.ACME != nil {
		t.Errorf("lineage holds another certificate or request: %+v", l.Request)
	}
	for _, n := range req.Names {
		for _, svc := range n.Role.Services() {
			r, err := xmppaddr.Verify(l.Chain, xmppaddr.Options{Domain: n.Domain, Service: svc, Roots: e.pebble.Roots()})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Valid {
				t.Errorf("%s %s not valid: %v", n.Domain, svc, r.Findings)
			}
			hasEKU := slices.Contains(findingCodes(r), string(xmppaddr.CodeEKUNoClientAuth))
			if hasEKU != (svc == xmppaddr.ServiceServer) {
				t.Errorf("%s %s: findings %q; the missing clientAuth finding belongs to xmpp-server only", n.Domain, svc, findingCodes(r))
			}
		}
	}
}

// TestPebbleAccountReuse registers one account and reuses it from a
// second Issuer without --agree-tos; a state directory without an
// account and without agreement is refused before any order.
func TestPebbleAccountReuse(t *testing.T) {
	e := startPebble(t, acmecatest.PebbleOptions{})
	ctx := context.Background()
	first := mustIssuer(t, e.config())
	if _, err := acme.Obtain(ctx, acme.DiskStore{Dir: e.state}, first, hostRequest(t)); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.AgreeTOS, cfg.Email = false, ""
	second := mustIssuer(t, cfg)
	if _, err := acme.Obtain(ctx, acme.DiskStore{Dir: e.state}, second, hostRequest(t)); err != nil {
		t.Fatalf("second issuer, stored account: %v", err)
	}
	if n := e.pebble.NewAccounts(); n != 1 {
		t.Errorf("%d accounts registered; want 1", n)
	}
	if len(e.pebble.Orders()) != 2 {
		t.Errorf("%d orders; want 2", len(e.pebble.Orders()))
	}
	dir := AccountDir(e.state, e.pebble.Directory)
	if !strings.HasPrefix(dir, filepath.Join(e.state, "accounts", "127.0.0.1_")) {
		t.Errorf("account directory %s", dir)
	}
	for name, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, AccountKeyFile): 0o600, filepath.Join(dir, AccountFile): 0o600} {
		if st, err := os.Stat(name); err != nil || st.Mode() != want {
			t.Errorf("%s: mode %v, %v; want %v", name, st.Mode(), err, want)
		}
	}
	var rec acme.Account
	b, _ := os.ReadFile(filepath.Join(dir, AccountFile))
	if err := json.Unmarshal(b, &rec); err != nil || rec.Directory != e.pebble.Directory || !rec.TermsOfServiceAgreed ||
		!slices.Equal(rec.Contact, []string{"mailto:admin@example.org"}) || !strings.HasPrefix(rec.Location, "https://") {
		t.Errorf("account.json %s (%v)", b, err)
	}
	if !accountKept(e.state, e.pebble.Directory) || accountKept(e.state, e.pebble.Directory+"x") {
		t.Error("the kept account is wrong")
	}

	// Another state directory, no account, no agreement: refused, no
	// order, nothing written.
	cfg.StateDir = t.TempDir()
	third := mustIssuer(t, cfg)
	store := acme.DiskStore{Dir: cfg.StateDir}
	_, err := acme.Obtain(ctx, store, third, hostRequest(t))
	var ae *Error
	if !errors.As(err, &ae) || ae.Kind != KindConfig || ae.Remedy() != RemedyAgreeTOS || !strings.Contains(err.Error(), "agree to them to register one") {
		t.Errorf("no account, no agreement: %v", err)
	}
	if len(e.pebble.Orders()) != 2 || e.pebble.NewAccounts() != 1 {
		t.Errorf("the refused issuer talked to the CA: %d orders, %d accounts", len(e.pebble.Orders()), e.pebble.NewAccounts())
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "live")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a lineage was written: %v", err)
	}
}

// TestPebbleEAB registers with External Account Binding: refused
// without it (pebble's directory says it is required), refused with a
// wrong key, accepted with the right one; the HMAC key is stored nowhere.
func TestPebbleEAB(t *testing.T) {
	const kid, hmac = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	e := startPebble(t, acmecatest.PebbleOptions{EABKeys: map[string]string{kid: hmac}})
	ctx := context.Background()
	store := acme.DiskStore{Dir: e.state}

	_, err := acme.Obtain(ctx, store, mustIssuer(t, e.config()), hostRequest(t))
	var ae *Error
	if !errors.As(err, &ae) || ae.Remedy() != RemedyEAB || !strings.Contains(err.Error(), "External Account Binding key ID and HMAC key") {
		t.Errorf("without EAB: %v", err)
	}
	cfg := e.config()
	cfg.EAB = &EAB{KeyID: kid, HMAC: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"}
	_, err = acme.Obtain(ctx, store, mustIssuer(t, cfg), hostRequest(t))
	if err == nil || !strings.Contains(err.Error(), "registering") && !strings.Contains(err.Error(), "ordering") {
		t.Errorf("with a wrong HMAC key: %v", err)
	}
	if accountKept(e.state, e.pebble.Directory) {
		t.Error("an account was stored after a failed registration")
	}
	cfg.EAB = &EAB{KeyID: kid, HMAC: hmac}
	if _, err := acme.Obtain(ctx, store, mustIssuer(t, cfg), hostRequest(t)); err != nil {
		t.Fatalf("with EAB: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(AccountDir(e.state, e.pebble.Directory), AccountFile))
	if err != nil || !strings.Contains(string(b), `"eab_kid": "kid-1"`) {
		t.Errorf("account.json %s (%v) does not record the key ID", b, err)
	}
	for path, desc := range testfs.Snapshot(t, e.state) {
		if strings.Contains(desc, hexOf(hmac)) {
			t.Errorf("%s holds the EAB HMAC key", path)
		}
	}
	// The registered account then needs no EAB.
	if _, err := acme.Obtain(ctx, store, mustIssuer(t, e.config()), hostRequest(t)); err != nil {
		t.Errorf("stored EAB account: %v", err)
	}
}

func hexOf(s string) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, digits[s[i]>>4], digits[s[i]&15])
	}
	return string(out)
}

// TestPebbleRenewal asks pebble for its ARI window, renews inside it with
// the key reused and "replaces" sent, which pebble accepts, and renews
// the same certificate again, which pebble refuses as already replaced
// and acmez then orders without "replaces".
func TestPebbleRenewal(t *testing.T) {
	e := startPebble(t, acmecatest.PebbleOptions{})
	ctx := context.Background()
	iss := mustIssuer(t, e.config())
	store := acme.DiskStore{Dir: e.state}
	req := hostRequest(t)
	first, err := acme.Obtain(ctx, store, iss, req)
	if err != nil {
		t.Fatal(err)
	}
	leaf := first.Chain[0]
	w, err := iss.RenewalWindow(ctx, leaf)
	if err != nil {
		t.Fatal(err)
	}
	// Pebble's window: a day either side of the point a third of the
	// lifetime before expiry.
	life := leaf.NotAfter.Add(time.Second).Sub(leaf.NotBefore)
	ideal := leaf.NotAfter.Add(-life / 3)
	if d := w.Start.Sub(ideal.Add(-24 * time.Hour)).Abs(); d > time.Second {
		t.Errorf("window start %v; want %v", w.Start, ideal.Add(-24*time.Hour))
	}
	if d := w.End.Sub(ideal.Add(24 * time.Hour)).Abs(); d > time.Second {
		t.Errorf("window end %v; want %v", w.End, ideal.Add(24*time.Hour))
	}
	if w.RetryAfter.Before(time.Now().Add(5*time.Hour)) || w.RetryAfter.After(time.Now().Add(7*time.Hour)) {
		t.Errorf("retry after %v; pebble says 6 hours", w.RetryAfter)
	}

	req.ReuseKey, req.Replaces = true, leaf
	second, err := acme.Obtain(ctx, store, iss, req)
	if err != nil {
		t.Fatal(err)
	}
	if !second.KeyReused || string(second.Chain[0].RawSubjectPublicKeyInfo) != string(leaf.RawSubjectPublicKeyInfo) {
		t.Error("--reuse-key: the renewed certificate has another key")
	}
	if second.Version != 2 {
		t.Errorf("version %d", second.Version)
	}
	certID, err := acmeproto.ARIUniqueIdentifier(leaf)
	if err != nil {
		t.Fatal(err)
	}
	orders := e.pebble.Orders()
	if len(orders) != 2 || orders[1].Replaces != certID || orders[1].Status != 201 {
		t.Fatalf("orders %+v; want the second to replace %s, accepted", orders, certID)
	}
	// Again for the same, already replaced certificate (a second node
	// that did not see the renewal): pebble refuses with
	// alreadyReplaced, and no second order follows; what to do is the
	// caller's (lifecycle reads its store again).
	_, err = acme.Obtain(ctx, store, iss, req)
	var ae *Error
	if !acme.AlreadyReplaced(err) || !errors.As(err, &ae) || ae.Kind != KindAlreadyReplaced {
		t.Fatalf("renewing a replaced certificate: %v; want alreadyReplaced", err)
	}
	orders = e.pebble.Orders()
	if n := len(orders); n != 3 || orders[2].Replaces != certID || orders[2].Status != 409 {
		t.Errorf("orders %+v; want one more, refused", orders)
	}
	if l, err := store.Load("example.org"); err != nil || l.Version != 2 {
		t.Errorf("after the refusal: version %v, %v; want 2, nothing written", l, err)
	}
	req.Replaces = nil
	third, err := acme.Obtain(ctx, store, iss, req)
	if err != nil || !third.KeyReused {
		t.Fatalf("third: %v", err)
	}
	// A certificate from another account cannot be replaced: pebble
	// refuses, and the order goes through without "replaces".
	other := e.config()
	other.StateDir = t.TempDir()
	req.Replaces = third.Chain[0]
	req.ReuseKey = false
	if _, err := acme.Obtain(ctx, acme.DiskStore{Dir: other.StateDir}, mustIssuer(t, other), req); err != nil {
		t.Errorf("replacing another account's certificate: %v", err)
	}
}

// TestPebbleProfile orders a profile pebble offers and refuses, before
// any order, one it does not.
func TestPebbleProfile(t *testing.T) {
	e := startPebble(t, acmecatest.PebbleOptions{})
	cfg := e.config()
	cfg.Profile = "shortlived"
	got, err := acme.Obtain(context.Background(), acme.DiskStore{Dir: e.state}, mustIssuer(t, cfg), hostRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	leaf := got.Chain[0]
	if life := leaf.NotAfter.Sub(leaf.NotBefore).Round(time.Hour); life != acmecatest.Profiles["shortlived"] {
		t.Errorf("lifetime %v; want the shortlived profile's %v", life, acmecatest.Profiles["shortlived"])
	}
	if o := e.pebble.Orders(); len(o) != 1 || o[0].Profile != "shortlived" {
		t.Errorf("orders %+v", o)
	}
	cfg.Profile = "forever"
	_, err = acme.Obtain(context.Background(), acme.DiskStore{Dir: e.state}, mustIssuer(t, cfg), hostRequest(t))
	var ae *Error
	if !errors.As(err, &ae) || ae.Kind != KindRejected || !strings.Contains(err.Error(), `profile "forever" is not offered; the CA offers classic, shortlived`) {
		t.Errorf("unknown profile: %v", err)
	}
	if len(e.pebble.Orders()) != 1 {
		t.Error("an order was sent for an unknown profile")
	}
}

// TestPebbleRequireXMPPIDs: pebble certifies DNS names only, so
// RequireXMPPIDs fails after issuance and before anything is written,
// saying why and what to do.
func TestPebbleRequireXMPPIDs(t *testing.T) {
	e := startPebble(t, acmecatest.PebbleOptions{})
	cfg := e.config()
	cfg.RequireXMPPIDs = true
	store := acme.DiskStore{Dir: e.state}
	_, err := acme.Obtain(context.Background(), store, mustIssuer(t, cfg), hostRequest(t, "conference.example.org"))
	var ae *Error
	if !errors.As(err, &ae) || ae.Kind != KindIdentities || ae.Remedy() != RemedyXMPPIDs {
		t.Fatalf("err %v; want KindIdentities", err)
	}
	for _, want := range []string{"missing SRV-ID _xmpp-client.example.org, SRV-ID _xmpp-server.example.org, XmppAddr example.org, SRV-ID _xmpp-server.conference.example.org, XmppAddr conference.example.org",
		"nothing was written", "from a private CA", "POSH or DANE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("message is not one line: %q", err)
	}
	if _, err := store.Load("example.org"); !errors.Is(err, acme.ErrNoLineage) {
		t.Errorf("a lineage was written: %v", err)
	}
}

// TestPebbleForgottenAccount: the CA no longer knows the stored account
// (a test CA that was reset). Without --agree-tos that is reported with
// what to do; with it a new account is registered and used.
func TestPebbleForgottenAccount(t *testing.T) {
	e := startPebble(t, acmecatest.PebbleOptions{})
	ctx := context.Background()
	store := acme.DiskStore{Dir: e.state}
	if _, err := acme.Obtain(ctx, store, mustIssuer(t, e.config()), hostRequest(t)); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(AccountDir(e.state, e.pebble.Directory), AccountFile)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rec acme.Account
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	rec.Location = rec.Location[:strings.LastIndexByte(rec.Location, '/')+1] + "999999"
	b, _ = json.Marshal(rec)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.config()
	cfg.AgreeTOS = false
	_, err = acme.Obtain(ctx, store, mustIssuer(t, cfg), hostRequest(t))
	var ae *Error
	if !errors.As(err, &ae) || ae.Kind != KindAccount || ae.Remedy() != RemedyAgreeTOS || !strings.Contains(err.Error(), "agreeing to the CA's terms, to register a new one") {
		t.Fatalf("forgotten account, no agreement: %v", err)
	}
	t.Log(err)
	if _, err := acme.Obtain(ctx, store, mustIssuer(t, e.config()), hostRequest(t)); err != nil {
		t.Fatalf("forgotten account, --agree-tos: %v", err)
	}
	if n := e.pebble.NewAccounts(); n != 2 {
		t.Errorf("%d accounts; want a second one", n)
	}
}

// accountKept reports whether an account for directory is kept in the
// state directory state.
func accountKept(state, directory string) bool {
	_, err := DiskAccounts{State: state}.Account(directory)
	return err == nil
}
