package localca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"go.step.sm/crypto/jose"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/xmppcert/xmppcert/xmppaddr"
)

// acmeEnv is the CA's Server on loopback, with an http-01
// and a tls-alpn-01 responder that the CA's validation is pointed at.
type acmeEnv struct {
	ca        *CA
	directory string
	client    *http.Client // trusts the CA's root
	http01    *http01Solver
	alpn      *tlsALPNSolver
}

// startACME opens a CA with opts and serves its ACME API with so, whose
// validation fields it fills in.
func startACME(t *testing.T, opts Options, so ServeOptions) *acmeEnv {
	t.Helper()
	return startACMEWith(t, openTestCA(t, opts), so)
}

// startACMEWith serves ca's ACME API with so, as startACME does, on a
// port of loopback that Listen picks; Serve must return nil once its
// context ends.
func startACMEWith(t *testing.T, ca *CA, so ServeOptions) *acmeEnv {
	t.Helper()
	env := &acmeEnv{ca: ca, http01: newHTTP01Solver(t), alpn: newTLSALPNSolver(t)}
	so.ValidateIP = "127.0.0.1"
	so.HTTPPort = env.http01.port
	so.TLSALPNPort = env.alpn.port
	srv, err := ca.Listen(context.Background(), "127.0.0.1:0", so)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve after its context ended: %v", err)
		}
	})
	env.directory = srv.DirectoryURL()
	env.client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: ca.RootPool()},
	}}
	return env
}

// acmeClient is an acmez client of the server that solves the given
// challenge types (http-01, tls-alpn-01) with env's responders.
func (env *acmeEnv) acmeClient(challenges ...string) *acmez.Client {
	solvers := map[string]acmez.Solver{}
	for _, c := range challenges {
		switch c {
		case acme.ChallengeTypeHTTP01:
			solvers[c] = env.http01
		case acme.ChallengeTypeTLSALPN01:
			solvers[c] = env.alpn
		}
	}
	return &acmez.Client{
		Client: &acme.Client{
			Directory:    env.directory,
			HTTPClient:   env.client,
			PollInterval: 20 * time.Millisecond,
			PollTimeout:  30 * time.Second,
		},
		ChallengeSolvers: solvers,
	}
}

// newAccount registers an account, with External Account Binding when
// eab is not nil.
func newAccount(ctx context.Context, c *acmez.Client, eab *acme.EAB) (acme.Account, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return acme.Account{}, err
	}
	acct := acme.Account{Contact: []string{"mailto:admin@example.org"}, TermsOfServiceAgreed: true, PrivateKey: key}
	if eab != nil {
		if err := acct.SetExternalAccountBinding(ctx, c.Client, *eab); err != nil {
			return acme.Account{}, err
		}
	}
	return c.NewAccount(ctx, acct)
}

func mustAccount(t *testing.T, c *acmez.Client) acme.Account {
	t.Helper()
	acct, err := newAccount(context.Background(), c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return acct
}

// http01Solver answers http-01 challenges on a loopback port and records
// the Host header of every validation request.
type http01Solver struct {
	port  int
	keys  sync.Map // resource path -> key authorization
	mu    sync.Mutex
	hosts []string
}

func newHTTP01Solver(t *testing.T) *http01Solver {
	s := &http01Solver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.hosts = append(s.hosts, r.Host)
		s.mu.Unlock()
		v, ok := s.keys.Load(r.URL.Path)
		if !ok {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, v)
	}))
	t.Cleanup(srv.Close)
	s.port = srv.Listener.Addr().(*net.TCPAddr).Port
	return s
}

func (s *http01Solver) Present(_ context.Context, ch acme.Challenge) error {
	s.keys.Store(ch.HTTP01ResourcePath(), ch.KeyAuthorization)
	return nil
}

func (s *http01Solver) CleanUp(_ context.Context, ch acme.Challenge) error {
	s.keys.Delete(ch.HTTP01ResourcePath())
	return nil
}

func (s *http01Solver) requestHosts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hosts)
}

// tlsALPNSolver answers tls-alpn-01 challenges (RFC 8737) on a loopback
// port and records the SNI of every validation handshake.
type tlsALPNSolver struct {
	port  int
	certs sync.Map // domain -> *tls.Certificate
	mu    sync.Mutex
	snis  []string
}

func newTLSALPNSolver(t *testing.T) *tlsALPNSolver {
	s := &tlsALPNSolver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s.port = ln.Addr().(*net.TCPAddr).Port
	cfg := &tls.Config{
		NextProtos: []string{"acme-tls/1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			s.mu.Lock()
			s.snis = append(s.snis, hello.ServerName)
			s.mu.Unlock()
			if c, ok := s.certs.Load(hello.ServerName); ok {
				return c.(*tls.Certificate), nil
			}
			return nil, fmt.Errorf("no challenge for %q", hello.ServerName)
		},
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				tls.Server(conn, cfg).Handshake()
			}()
		}
	}()
	return s
}

func (s *tlsALPNSolver) Present(_ context.Context, ch acme.Challenge) error {
	cert, err := acmez.TLSALPN01ChallengeCert(ch)
	if err != nil {
		return err
	}
	s.certs.Store(ch.Identifier.Value, cert)
	return nil
}

func (s *tlsALPNSolver) CleanUp(_ context.Context, ch acme.Challenge) error {
	s.certs.Delete(ch.Identifier.Value)
	return nil
}

func (s *tlsALPNSolver) serverNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.snis)
}

// chainOf parses the first chain an ACME server offered, leaf first.
func chainOf(t *testing.T, certs []acme.Certificate) []*x509.Certificate {
	t.Helper()
	if len(certs) == 0 {
		t.Fatal("no certificate chain")
	}
	var chain []*x509.Certificate
	rest := certs[0].ChainPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		t.Fatal("the chain holds no certificate")
	}
	return chain
}

// sanList lists a certificate's subject alternative names as
// "type:value", in certificate order.
func sanList(cert *x509.Certificate) []string {
	var out []string
	for _, id := range xmppaddr.Identities(cert).Identifiers {
		if id.Type != xmppaddr.TypeCN {
			out = append(out, string(id.Type)+":"+id.Value)
		}
	}
	return out
}

// hostAndComponentSANs is what example.org (a host) and
// conference.example.org (a component) must get: step-ca sorts the names.
var hostAndComponentSANs = []string{
	"dNSName:conference.example.org", "SRVName:_xmpp-server.conference.example.org", "XmppAddr:conference.example.org",
	"dNSName:example.org", "SRVName:_xmpp-client.example.org", "SRVName:_xmpp-server.example.org", "XmppAddr:example.org",
}

// verifyFor checks that chain is valid for domain and service under the
// CA's root, and reports whether an SRV-ID matched.
func verifyFor(t *testing.T, ca *CA, chain []*x509.Certificate, domain string, svc xmppaddr.Service) (valid, srvMatched bool) {
	t.Helper()
	res, err := xmppaddr.Verify(chain, xmppaddr.Options{Domain: domain, Service: svc, Roots: ca.RootPool()})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range res.Matched {
		srvMatched = srvMatched || m.ReferenceType == xmppaddr.RefSRVID
	}
	return res.Valid, srvMatched
}

// TestACMEHTTP01 obtains a certificate for a host and its component over
// http-01 and checks that it carries the XMPP identities of each role.
func TestACMEHTTP01(t *testing.T) {
	env := startACME(t, Options{Components: []string{"conference.example.org"}}, ServeOptions{})
	c := env.acmeClient(acme.ChallengeTypeHTTP01)
	acct := mustAccount(t, c)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certs, err := c.ObtainCertificateForSANs(context.Background(), acct, key, []string{"example.org", "conference.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	chain := chainOf(t, certs)
	if got := sanList(chain[0]); !slices.Equal(got, hostAndComponentSANs) {
		t.Errorf("identities:\n got %q\nwant %q", got, hostAndComponentSANs)
	}
	if !slices.Contains(chain[0].ExtKeyUsage, x509.ExtKeyUsageClientAuth) || !slices.Contains(chain[0].ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("EKU %v; want serverAuth and clientAuth", chain[0].ExtKeyUsage)
	}
	for _, tc := range []struct {
		domain    string
		svc       xmppaddr.Service
		valid     bool
		srvByName bool
	}{
		{"example.org", xmppaddr.ServiceClient, true, true},
		{"example.org", xmppaddr.ServiceServer, true, true},
		{"conference.example.org", xmppaddr.ServiceServer, true, true},
		// A component is not reached by clients: no _xmpp-client SRV-ID
		// (the DNS-ID still matches).
		{"conference.example.org", xmppaddr.ServiceClient, true, false},
	} {
		valid, srv := verifyFor(t, env.ca, chain, tc.domain, tc.svc)
		if valid != tc.valid || srv != tc.srvByName {
			t.Errorf("%s %s: valid %v, SRV-ID matched %v; want %v, %v", tc.domain, tc.svc, valid, srv, tc.valid, tc.srvByName)
		}
	}
	// Validation went to the responder, with the name in the Host header
	// as a name-based virtual host needs it.
	hosts := env.http01.requestHosts()
	for _, want := range []string{"example.org", "conference.example.org"} {
		if !slices.Contains(hosts, want) {
			t.Errorf("validation requests came for hosts %q; none for %s", hosts, want)
		}
	}
}

// TestACMETLSALPN01 obtains a certificate over tls-alpn-01 only.
func TestACMETLSALPN01(t *testing.T) {
	env := startACME(t, Options{}, ServeOptions{})
	c := env.acmeClient(acme.ChallengeTypeTLSALPN01)
	acct := mustAccount(t, c)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certs, err := c.ObtainCertificateForSANs(context.Background(), acct, key, []string{"example.org"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dNSName:example.org", "SRVName:_xmpp-client.example.org", "SRVName:_xmpp-server.example.org", "XmppAddr:example.org"}
	if got := sanList(chainOf(t, certs)[0]); !slices.Equal(got, want) {
		t.Errorf("identities:\n got %q\nwant %q", got, want)
	}
	if snis := env.alpn.serverNames(); !slices.Contains(snis, "example.org") {
		t.Errorf("tls-alpn-01 handshakes came with SNI %q; want example.org", snis)
	}
	if hosts := env.http01.requestHosts(); len(hosts) != 0 {
		t.Errorf("http-01 was validated too (hosts %q)", hosts)
	}
}

// sanElements returns the GeneralNames xmppaddr.SANExtension encodes for
// names, each as its DER element.
func sanElements(t *testing.T, names ...xmppaddr.Name) [][]byte {
	t.Helper()
	ext, err := xmppaddr.SANExtension(names, false)
	if err != nil {
		t.Fatal(err)
	}
	s := cryptobyte.String(ext.Value)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		t.Fatal("bad SAN extension")
	}
	var out [][]byte
	for !seq.Empty() {
		var el cryptobyte.String
		if !seq.ReadAnyASN1Element(&el, nil) {
			t.Fatal("bad SAN element")
		}
		out = append(out, el)
	}
	return out
}

// isDNSName reports whether a GeneralName element is a dNSName ([2]).
func isDNSName(el []byte) bool { return len(el) > 0 && el[0] == 0x82 }

// csrWithSANs makes a CSR signed by key with exactly these GeneralNames
// in its subjectAltName extension.
func csrWithSANs(t *testing.T, key crypto.Signer, cn string, elements [][]byte) *x509.CertificateRequest {
	t.Helper()
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		for _, el := range elements {
			b.AddBytes(el)
		}
	})
	val, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject:         pkix.Name{CommonName: cn},
		ExtraExtensions: []pkix.Extension{{Id: xmppaddr.OIDSAN, Value: val}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// presentedCSR makes acmez send csr.Raw whatever names it holds: acmez
// refuses, before finalising, a CSR whose dNSNames differ from the order,
// and these tests are about what the server does with one.
type presentedCSR struct{ csr *x509.CertificateRequest }

func (p presentedCSR) CSR(_ context.Context, ids []acme.Identifier) (*x509.CertificateRequest, error) {
	c := *p.csr
	c.DNSNames = nil
	for _, id := range ids {
		c.DNSNames = append(c.DNSNames, id.Value)
	}
	return &c, nil
}

// TestACMESmuggledIdentities finalises orders for example.org and
// conference.example.org (a component) with CSRs that ask for more than
// the order validated.
func TestACMESmuggledIdentities(t *testing.T) {
	env := startACME(t, Options{Components: []string{"conference.example.org"}}, ServeOptions{})
	c := env.acmeClient(acme.ChallengeTypeHTTP01)
	acct := mustAccount(t, c)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	ordered := sanElements(t, xmppaddr.Name{Domain: "example.org"}, xmppaddr.Name{Domain: "conference.example.org"})
	evil := sanElements(t, xmppaddr.Name{Domain: "evil.example"})
	var evilOtherNames [][]byte
	for _, el := range evil {
		if !isDNSName(el) {
			evilOtherNames = append(evilOtherNames, el)
		}
	}
	cases := []struct {
		name     string
		cn       string
		elements [][]byte
		// problem is the ACME error finalisation must fail with; when
		// empty, the certificate must carry exactly hostAndComponentSANs.
		problem string
	}{
		// The SRV-IDs and XmppAddr of another domain, and an _xmpp-client
		// SRV-ID for the component (ordered requests conference.example.org
		// as a host), beside exactly the ordered dNSNames: step-ca signs,
		// and the template leaves out everything it did not derive itself.
		{"otherNames for an unvalidated domain and a role", "example.org", slices.Concat(ordered, evilOtherNames), ""},
		// A dNSName the order does not hold: step-ca refuses the CSR.
		{"dNSName outside the order", "example.org", slices.Concat(ordered, evil), acme.ProblemTypeBadCSR},
		// The subject CN counts as a requested name.
		{"CN outside the order", "evil.example", ordered, acme.ProblemTypeBadCSR},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			csr := csrWithSANs(t, key, tc.cn, tc.elements)
			params := acmez.OrderParameters{
				Account:     acct,
				Identifiers: []acme.Identifier{{Type: "dns", Value: "example.org"}, {Type: "dns", Value: "conference.example.org"}},
				CSR:         presentedCSR{csr},
			}
			certs, err := c.ObtainCertificate(context.Background(), params)
			if tc.problem != "" {
				var p acme.Problem
				if !errors.As(err, &p) || p.Type != tc.problem {
					t.Fatalf("finalisation: %v; want problem %s", err, tc.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := sanList(chainOf(t, certs)[0]); !slices.Equal(got, hostAndComponentSANs) {
				t.Errorf("identities:\n got %q\nwant %q", got, hostAndComponentSANs)
			}
		})
	}
}

// problemOf returns the ACME problem an error carries, or fails.
func problemOf(t *testing.T, err error) acme.Problem {
	t.Helper()
	var p acme.Problem
	if !errors.As(err, &p) {
		t.Fatalf("error %v is not an ACME problem", err)
	}
	return p
}

// TestACMEAllowDomains checks that with AllowDomains an order is refused
// at new-order unless every name is an allowed domain or under one.
func TestACMEAllowDomains(t *testing.T) {
	env := startACME(t, Options{}, ServeOptions{AllowDomains: []string{"Example.ORG"}})
	c := env.acmeClient(acme.ChallengeTypeHTTP01)
	acct := mustAccount(t, c)
	ctx := context.Background()

	for _, names := range [][]string{
		{"evil.example"},
		{"example.org", "evil.example"},
		{"notexample.org"},
		{"example.org.evil.example"},
	} {
		var ids []acme.Identifier
		for _, n := range names {
			ids = append(ids, acme.Identifier{Type: "dns", Value: n})
		}
		_, err := c.NewOrder(ctx, acct, acme.Order{Identifiers: ids})
		p := problemOf(t, err)
		if p.Type != acme.ProblemTypeRejectedIdentifier || p.Status != http.StatusForbidden {
			t.Errorf("order for %q: %s (status %d); want %s, 403", names, p.Type, p.Status, acme.ProblemTypeRejectedIdentifier)
		}
	}
	// Only DNS names: not an IP address, nor an identifier of another
	// type whose value looks like an allowed name.
	for _, c0 := range []struct {
		id   acme.Identifier
		want string
	}{
		{acme.Identifier{Type: "ip", Value: "127.0.0.1"}, acme.ProblemTypeRejectedIdentifier},
		{acme.Identifier{Type: "permanent-identifier", Value: "example.org"}, acme.ProblemTypeUnsupportedIdentifier},
	} {
		_, err := c.NewOrder(ctx, acct, acme.Order{Identifiers: []acme.Identifier{c0.id}})
		if p := problemOf(t, err); p.Type != c0.want {
			t.Errorf("order for %s %q: %s; want %s", c0.id.Type, c0.id.Value, p.Type, c0.want)
		}
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	certs, err := c.ObtainCertificateForSANs(ctx, acct, key, []string{"example.org", "a.b.example.org"})
	if err != nil {
		t.Fatalf("order for example.org and a.b.example.org under --allow-domain example.org: %v", err)
	}
	if got := chainOf(t, certs)[0].DNSNames; !slices.Equal(got, []string{"a.b.example.org", "example.org"}) {
		t.Errorf("dNSNames %q", got)
	}
}

// TestACMEAllowDomainsJWSForms sends new-order requests for a name
// outside the allowed domains, signed by a real account, in the JWS forms
// step-ca's parser accepts besides the flattened JSON ACME clients send:
// each must be refused as that one is.
func TestACMEAllowDomainsJWSForms(t *testing.T) {
	env := startACME(t, Options{}, ServeOptions{AllowDomains: []string{"example.org"}})
	c := env.acmeClient()
	acct := mustAccount(t, c)
	ctx := context.Background()
	dir, err := c.GetDirectory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	evilOrder := []byte(`{"identifiers":[{"type":"dns","value":"evil.example"}]}`)
	goodOrder := []byte(`{"identifiers":[{"type":"dns","value":"example.org"}]}`)

	sign := func(payload []byte) *jose.JSONWebSignature {
		t.Helper()
		return env.sign(t, acct.PrivateKey, acct.Location, dir, payload)
	}
	flattened := func(jws *jose.JSONWebSignature) map[string]string {
		var m map[string]string
		if err := json.Unmarshal([]byte(jws.FullSerialize()), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	forms := []struct {
		name string
		body func() string
	}{
		{"flattened JSON", func() string { return sign(evilOrder).FullSerialize() }},
		{"compact", func() string {
			s, err := sign(evilOrder).CompactSerialize()
			if err != nil {
				t.Fatal(err)
			}
			return s
		}},
		{"whitespace inside the payload", func() string {
			m := flattened(sign(evilOrder))
			b, _ := json.Marshal(map[string]string{"protected": m["protected"], "payload": m["payload"][:8] + " \n" + m["payload"][8:], "signature": m["signature"]})
			return string(b)
		}},
		{"a second payload member differing in case", func() string {
			m := flattened(sign(evilOrder))
			good := flattened(sign(goodOrder))
			return fmt.Sprintf(`{"protected":%q,"payload":%q,"signature":%q,"Payload":%q}`, m["protected"], m["payload"], m["signature"], good["payload"])
		}},
	}
	for _, f := range forms {
		t.Run(f.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, dir.NewOrder, strings.NewReader(f.body()))
			req.Header.Set("Content-Type", "application/jose+json")
			resp, err := env.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var p acme.Problem
			json.NewDecoder(resp.Body).Decode(&p)
			if resp.StatusCode != http.StatusForbidden || p.Type != acme.ProblemTypeRejectedIdentifier {
				t.Errorf("status %d, problem %q (%s); want 403 %s", resp.StatusCode, p.Type, p.Detail, acme.ProblemTypeRejectedIdentifier)
			}
		})
	}

	// The same signing, for an allowed name, is accepted: the forms above
	// were refused for the name, not for the signature.
	resp, err := env.client.Post(dir.NewOrder, "application/jose+json", bytes.NewReader([]byte(sign(goodOrder).FullSerialize())))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("order for example.org: status %d; want 201", resp.StatusCode)
	}
}

// sign returns the new-order JWS of payload with a fresh nonce, signed
// by key and naming the account URL kid.
func (env *acmeEnv) sign(t *testing.T, key crypto.Signer, kid string, dir acme.Directory, payload []byte) *jose.JSONWebSignature {
	t.Helper()
	resp, err := env.client.Head(dir.NewNonce)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid).
		WithHeader("nonce", resp.Header.Get("Replay-Nonce")).WithHeader("url", dir.NewOrder)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	return jws
}

// TestACMERequireEAB checks that accounts need an External Account
// Binding key from NewEABKey, and that a key binds one account only.
func TestACMERequireEAB(t *testing.T) {
	env := startACME(t, Options{RequireEAB: true}, ServeOptions{})
	c := env.acmeClient(acme.ChallengeTypeHTTP01)
	ctx := context.Background()
	_, err := newAccount(ctx, c, nil)
	if p := problemOf(t, err); p.Type != acme.ProblemTypeExternalAccountRequired {
		t.Errorf("account without EAB: %s; want %s", p.Type, acme.ProblemTypeExternalAccountRequired)
	}
	kid, hmac, err := env.ca.NewEABKey(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	eab := &acme.EAB{KeyID: kid, MACKey: hmac}
	// Each refusal is the ACME problem a client can act on, 401, answered
	// once (acmez retries a 500 twice).
	unauthorized := func(what string, err error) {
		t.Helper()
		if p := problemOf(t, err); p.Type != acme.ProblemTypeUnauthorized || p.Status != http.StatusUnauthorized {
			t.Errorf("account %s: %s (status %d, %s); want %s, 401", what, p.Type, p.Status, p.Detail, acme.ProblemTypeUnauthorized)
		}
	}
	_, err = newAccount(ctx, c, &acme.EAB{KeyID: kid, MACKey: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"})
	unauthorized("with a wrong EAB MAC key", err)
	_, err = newAccount(ctx, c, &acme.EAB{KeyID: "no-such-key", MACKey: hmac})
	unauthorized("with an unknown EAB key ID", err)
	acct, err := newAccount(ctx, c, eab)
	if err != nil {
		t.Fatalf("account with EAB: %v", err)
	}
	if acct.Status != acme.StatusValid {
		t.Errorf("account status %q", acct.Status)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := c.ObtainCertificateForSANs(ctx, acct, key, []string{"example.org"}); err != nil {
		t.Errorf("issuance for the bound account: %v", err)
	}
	_, err = newAccount(ctx, c, eab)
	unauthorized("with an EAB key already bound", err)
	// The bound account itself registers again as before (step-ca answers
	// an existing account's key with the account).
	again := acme.Account{Contact: acct.Contact, TermsOfServiceAgreed: true, PrivateKey: acct.PrivateKey}
	if err := again.SetExternalAccountBinding(ctx, c.Client, *eab); err != nil {
		t.Fatal(err)
	}
	if got, err := c.NewAccount(ctx, again); err != nil || got.Location != acct.Location {
		t.Errorf("the bound account again: %v, %q; want %q", err, got.Location, acct.Location)
	}
}
