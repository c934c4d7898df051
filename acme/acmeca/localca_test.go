package acmeca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/mholt/acmez/v3"
	acmeproto "github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// startCAServe serves the embedded CA's ACME API (what 'xmppcert ca
// serve' runs) over HTTPS on loopback, validating http-01 against h.
func startCAServe(t *testing.T, opts localca.Options, h *acmecatest.HTTP01) (*localca.CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := localca.Init(dir); err != nil {
		t.Fatal(err)
	}
	ca, err := localca.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	srv := httptest.NewUnstartedServer(nil)
	handler, err := ca.Handler(localca.ServeOptions{Host: srv.Listener.Addr().String(), ValidateIP: "127.0.0.1", HTTPPort: h.Port})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = handler
	cert, err := ca.ServerCertificate(context.Background(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return ca, "https://" + srv.Listener.Addr().String() + localca.ACMEPath
}

// TestCAServe issues from xmppcert's own ACME server through this
// Issuer, with RequireXMPPIDs: the SRV-IDs and XmppAddr of each role
// arrive end to end through ACME, with clientAuth; the server's roles
// come from its --component configuration.
func TestCAServe(t *testing.T) {
	h := acmecatest.NewHTTP01(t)
	ca, directory := startCAServe(t, localca.Options{Components: []string{"conference.example.org"}}, h)
	state := t.TempDir()
	iss := mustIssuer(t, Config{
		Directory: directory, StateDir: state, AgreeTOS: true, TrustRoots: ca.RootPool(),
		Solvers:        map[string]acmez.Solver{acmeproto.ChallengeTypeHTTP01: h},
		RequireXMPPIDs: true, PollInterval: 20 * time.Millisecond,
	})
	store := acme.DiskStore{Dir: state}
	req := hostRequest(t, "conference.example.org")
	got, err := acme.Obtain(context.Background(), store, iss, req)
	if err != nil {
		t.Fatal(err)
	}
	leaf := got.Chain[0]
	var ids []string
	for _, id := range xmppaddr.Identities(leaf).Identifiers {
		if id.Type != xmppaddr.TypeCN {
			ids = append(ids, string(id.Type)+":"+id.Value)
		}
	}
	want := []string{
		"dNSName:conference.example.org", "SRVName:_xmpp-server.conference.example.org", "XmppAddr:conference.example.org",
		"dNSName:example.org", "SRVName:_xmpp-client.example.org", "SRVName:_xmpp-server.example.org", "XmppAddr:example.org",
	}
	if !slices.Equal(slices.Sorted(slices.Values(ids)), slices.Sorted(slices.Values(want))) {
		t.Errorf("identities\n got %q\nwant %q", ids, want)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("EKU %v; the embedded CA adds clientAuth", leaf.ExtKeyUsage)
	}
	for _, n := range req.Names {
		for _, svc := range n.Role.Services() {
			r, err := xmppaddr.Verify(got.Chain, xmppaddr.Options{Domain: n.Domain, Service: svc, Roots: ca.RootPool()})
			if err != nil {
				t.Fatal(err)
			}
			srv := slices.ContainsFunc(r.Matched, func(m xmppaddr.Match) bool { return m.ReferenceType == xmppaddr.RefSRVID })
			if !r.Valid || !srv || len(r.Findings) > 0 && slices.Contains(findingCodes(r), string(xmppaddr.CodeEKUNoClientAuth)) {
				t.Errorf("%s %s: valid %v, SRV-ID matched %v, findings %q", n.Domain, svc, r.Valid, srv, findingCodes(r))
			}
		}
	}
	// Renewal asks for ARI, which step-ca does not offer: renew falls
	// back to the lifetime.
	if _, err := iss.RenewalWindow(context.Background(), leaf); err == nil || !errors.Is(err, ErrNoRenewalInfo) {
		t.Errorf("RenewalWindow: %v; want ErrNoRenewalInfo", err)
	}
}
