package testxmpp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testpki"
)

// pki is a CA and certificates for two domains, written to a directory.
type pki struct {
	ca           *testpki.CA
	dir, caFile  string
	aCert, aKey  string // a.example
	bCert, bKey  string // b.example
	aLeaf, bLeaf *x509.Certificate
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{ca: testpki.NewRoot("xmppcert test CA", nil), dir: t.TempDir()}
	p.aCert, p.aKey = IssueLeaf(t, p.ca, p.dir, "a", "a.example")
	p.bCert, p.bKey = IssueLeaf(t, p.ca, p.dir, "b", "b.example")
	p.aLeaf, p.bLeaf = readLeaf(t, p.aCert), readLeaf(t, p.bCert)
	p.caFile = filepath.Join(p.dir, "ca.pem")
	if err := os.WriteFile(p.caFile, testpki.PEM(p.ca.Cert), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readLeaf(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(file, file[:len(file)-len(".crt")]+".key")
	if err != nil {
		t.Fatal(err)
	}
	return pair.Leaf
}

func open(t *testing.T, addr string, opts StreamOptions) *Stream {
	t.Helper()
	s, err := OpenStream(context.Background(), addr, opts)
	if err != nil {
		t.Fatalf("stream to %s at %s: %v", opts.To, addr, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Prosody serves two hosts on one set of ports, with STARTTLS required
// on c2s for one and optional for the other (c2s_require_encryption per
// VirtualHost), each presenting its own certificate after STARTTLS and
// on the direct TLS ports (by SNI, without ALPN); s2s offers STARTTLS
// and dialback.
func TestProsodyTwoHosts(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	p := StartProsody(t, ProsodyOptions{VirtualHosts: []VirtualHost{
		{Domain: "a.example", CertFile: k.aCert, KeyFile: k.aKey, C2SRequireEncryption: true},
		{Domain: "b.example", CertFile: k.bCert, KeyFile: k.bKey},
	}})
	t.Logf("Prosody started in %v (c2s %s, s2s %s, c2s direct TLS %s, s2s direct TLS %s; data %s)",
		p.StartupTime, p.C2SAddr, p.S2SAddr, p.C2SDirectTLSAddr, p.S2SDirectTLSAddr, p.DataDir)

	for _, tc := range []struct {
		domain   string
		required bool
		leaf     *x509.Certificate
	}{{"a.example", true, k.aLeaf}, {"b.example", false, k.bLeaf}} {
		s := open(t, p.C2SAddr, StreamOptions{To: tc.domain})
		f := s.Features
		if !f.StartTLS || f.StartTLSRequired != tc.required {
			t.Errorf("c2s %s: STARTTLS offered %v, required %v; want offered, required %v\n%s", tc.domain, f.StartTLS, f.StartTLSRequired, tc.required, f.Raw)
		}
		if s.Header.From != tc.domain {
			t.Errorf("c2s %s: the stream header is from %q", tc.domain, s.Header.From)
		}
		// Optional encryption lets clients authenticate in plaintext:
		// SASL is offered before TLS (PLAIN is not: Prosody hides it
		// until TLS).
		if hasSASL := len(f.Mechanisms) > 0; hasSASL == tc.required {
			t.Errorf("c2s %s: SASL before TLS %q with STARTTLS required %v", tc.domain, f.Mechanisms, tc.required)
		}
		if err := s.StartTLS(nil); err != nil {
			t.Fatalf("c2s %s: %v\n%s", tc.domain, err, p.Log())
		}
		if !s.TLS.PeerCertificates[0].Equal(tc.leaf) {
			t.Errorf("c2s %s: STARTTLS presented %q, not the host's certificate", tc.domain, s.TLS.PeerCertificates[0].Subject)
		}
		if s.Features.StartTLS || !s.Features.HasMechanism("PLAIN") {
			t.Errorf("c2s %s after TLS: %s", tc.domain, s.Features.Raw)
		}

		s2s := open(t, p.S2SAddr, StreamOptions{Server: true, To: tc.domain, From: "remote.example"})
		if !s2s.Features.StartTLS || !s2s.Features.Dialback || !s2s.Header.DialbackNS {
			t.Errorf("s2s %s: features %s (xmlns:db declared: %v); want STARTTLS and dialback", tc.domain, s2s.Features.Raw, s2s.Header.DialbackNS)
		}
		if err := s2s.StartTLS(nil); err != nil {
			t.Fatalf("s2s %s: %v\n%s", tc.domain, err, p.Log())
		}
		if !s2s.TLS.PeerCertificates[0].Equal(tc.leaf) {
			t.Errorf("s2s %s: STARTTLS presented %q, not the host's certificate", tc.domain, s2s.TLS.PeerCertificates[0].Subject)
		}

		for _, direct := range []struct {
			addr   string
			server bool
		}{{p.C2SDirectTLSAddr, false}, {p.S2SDirectTLSAddr, true}} {
			s := open(t, direct.addr, StreamOptions{Server: direct.server, To: tc.domain, From: "remote.example", DirectTLS: &tls.Config{InsecureSkipVerify: true}})
			if !s.TLS.PeerCertificates[0].Equal(tc.leaf) {
				t.Errorf("direct TLS %s (s2s %v) with SNI %s presented %q", direct.addr, direct.server, tc.domain, s.TLS.PeerCertificates[0].Subject)
			}
			if s.Features.StartTLS {
				t.Errorf("direct TLS %s offers STARTTLS: %s", direct.addr, s.Features.Raw)
			}
			// Prosody 0.12 ignores the client's ALPN on direct TLS.
			if s.TLS.NegotiatedProtocol != "" {
				t.Errorf("direct TLS %s negotiated ALPN %q", direct.addr, s.TLS.NegotiatedProtocol)
			}
		}
	}
}

// An s2s peer presenting a certificate from the CA that Prosody trusts
// (CAFile) for the domain it claims is offered SASL EXTERNAL and
// authenticated by it; one from another CA is not offered EXTERNAL and
// is refused: with s2s_secure_auth by a <not-authorized/> stream error
// as soon as the stream restarts after TLS, without it by an
// <unsupported-stanza-type/> stream error when it tries EXTERNAL.
func TestProsodyExternal(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	trustedCert, trustedKey := IssueLeaf(t, k.ca, k.dir, "peer", "peer.example")
	other := testpki.NewRoot("a CA Prosody does not trust", nil)
	otherCert, otherKey := IssueLeaf(t, other, k.dir, "stranger", "peer.example")
	trusted, err := tls.LoadX509KeyPair(trustedCert, trustedKey)
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := tls.LoadX509KeyPair(otherCert, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, secureAuth := range []bool{false, true} {
		p := StartProsody(t, ProsodyOptions{
			VirtualHosts:         []VirtualHost{{Domain: "a.example", CertFile: k.aCert, KeyFile: k.aKey, C2SRequireEncryption: true}},
			CAFile:               k.caFile,
			S2SRequireEncryption: true,
			S2SSecureAuth:        secureAuth,
		})
		s2s := func(cert tls.Certificate) (*Stream, error) {
			s := open(t, p.S2SAddr, StreamOptions{Server: true, To: "a.example", From: "peer.example"})
			return s, s.StartTLS(&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}})
		}

		s, err := s2s(trusted)
		if err != nil {
			t.Fatalf("secure_auth %v, trusted certificate: %v\n%s", secureAuth, err, p.Log())
		}
		if !s.Features.HasMechanism("EXTERNAL") {
			t.Errorf("secure_auth %v, trusted certificate: EXTERNAL not offered: %s", secureAuth, s.Features.Raw)
		}
		if err := s.AuthExternal(); err != nil {
			t.Errorf("secure_auth %v, trusted certificate: EXTERNAL: %v\n%s", secureAuth, err, p.Log())
		}

		s, err = s2s(untrusted)
		var se *StreamError
		if secureAuth {
			if !errors.As(err, &se) || se.Condition != "not-authorized" {
				t.Errorf("secure_auth, untrusted certificate: the restarted stream gave %v (features %q); want a <not-authorized/> stream error", err, s.Features.Raw)
			}
			continue
		}
		if err != nil {
			t.Fatalf("untrusted certificate: %v\n%s", err, p.Log())
		}
		if s.Features.HasMechanism("EXTERNAL") {
			t.Errorf("untrusted certificate: EXTERNAL offered: %s", s.Features.Raw)
		}
		err = s.AuthExternal()
		if !errors.As(err, &se) || se.Condition != "unsupported-stanza-type" {
			t.Errorf("untrusted certificate: EXTERNAL gave %v; want an <unsupported-stanza-type/> stream error", err)
		}
	}
}

// ejabberd starts with STARTTLS required or optional on c2s and s2s,
// answers on its c2s, s2s and direct TLS ports with the host's
// certificate, and offers dialback with <errors/> on s2s: after TLS
// only when s2s STARTTLS is required, before it too when optional; and
// SASL EXTERNAL after TLS to a peer without a certificate.
func TestEjabberd(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	for _, required := range []bool{true, false} {
		t.Run(fmt.Sprintf("starttls_required=%v", required), func(t *testing.T) {
			t.Parallel()
			s2sMode := map[bool]string{true: "required", false: "optional"}[required]
			e := StartEjabberd(t, EjabberdOptions{
				Hosts: []EjabberdHost{
					{Domain: "a.example", CertFile: k.aCert, KeyFile: k.aKey},
					{Domain: "b.example", CertFile: k.bCert, KeyFile: k.bKey},
				},
				StartTLSRequired: required,
				S2SUseStartTLS:   s2sMode,
			})
			t.Logf("ejabberd %s started in %v (c2s %s, s2s %s, c2s direct TLS %s, s2s direct TLS %s)",
				e.Node, e.StartupTime, e.C2SAddr, e.S2SAddr, e.C2SDirectTLSAddr, e.S2SDirectTLSAddr)
			for domain, leaf := range map[string]*x509.Certificate{"a.example": k.aLeaf, "b.example": k.bLeaf} {
				c2s := open(t, e.C2SAddr, StreamOptions{To: domain})
				if !c2s.Features.StartTLS || c2s.Features.StartTLSRequired != required {
					t.Errorf("c2s %s: %s; want STARTTLS, required %v", domain, c2s.Features.Raw, required)
				}
				if err := c2s.StartTLS(nil); err != nil {
					t.Fatalf("c2s %s: %v\n%s", domain, err, e.Log())
				}
				if !c2s.TLS.PeerCertificates[0].Equal(leaf) {
					t.Errorf("c2s %s: STARTTLS presented %q", domain, c2s.TLS.PeerCertificates[0].Subject)
				}

				s2s := open(t, e.S2SAddr, StreamOptions{Server: true, To: domain, From: "remote.example"})
				f := s2s.Features
				if !f.StartTLS || f.StartTLSRequired != required || f.Dialback == required || !s2s.Header.DialbackNS {
					t.Errorf("s2s %s (s2s_use_starttls %s) before TLS: %s (xmlns:db %v); want STARTTLS, required %v, dialback %v",
						domain, s2sMode, f.Raw, s2s.Header.DialbackNS, required, !required)
				}
				if err := s2s.StartTLS(nil); err != nil {
					t.Fatalf("s2s %s: %v\n%s", domain, err, e.Log())
				}
				// EXTERNAL is offered although no client certificate
				// was presented.
				if !s2s.Features.Dialback || !s2s.Features.DialbackErrors || !s2s.Features.HasMechanism("EXTERNAL") {
					t.Errorf("s2s %s after TLS: %s; want dialback with <errors/>, and EXTERNAL", domain, s2s.Features.Raw)
				}
				if !s2s.TLS.PeerCertificates[0].Equal(leaf) {
					t.Errorf("s2s %s: STARTTLS presented %q", domain, s2s.TLS.PeerCertificates[0].Subject)
				}

				for _, direct := range []string{e.C2SDirectTLSAddr, e.S2SDirectTLSAddr} {
					s := open(t, direct, StreamOptions{Server: direct == e.S2SDirectTLSAddr, To: domain, From: "remote.example", DirectTLS: &tls.Config{InsecureSkipVerify: true}})
					if !s.TLS.PeerCertificates[0].Equal(leaf) {
						t.Errorf("direct TLS %s with SNI %s presented %q", direct, domain, s.TLS.PeerCertificates[0].Subject)
					}
				}
			}
		})
	}
}

// testssl.sh against Prosody's c2s STARTTLS port finds what Go finds:
// TLS 1.2 and 1.3 offered and nothing older (Prosody's default
// "intermediate" profile), the same TLS 1.2 suites among those Go
// knows, the three TLS 1.3 suites, no server cipher order (the
// intermediate profile leaves the choice to the client), forward
// secrecy.
func TestTestSSLProsody(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	p := StartProsody(t, ProsodyOptions{VirtualHosts: []VirtualHost{
		{Domain: "a.example", CertFile: k.aCert, KeyFile: k.aKey, C2SRequireEncryption: true},
	}})
	r := TestSSL(t, p.C2SAddr, TestSSLOptions{StartTLS: "xmpp", XMPPHost: "a.example",
		Protocols: true, CipherPerProto: true, ServerPreference: true, ForwardSecrecy: true})
	t.Logf("testssl.sh %v took %v", r.Args, r.Duration)

	for _, proto := range TestSSLProtocols {
		want := proto == TLS1_2 || proto == TLS1_3
		if got, ok := r.Protocols[proto]; !ok || got.Offered != want {
			t.Errorf("%s: %+v (reported: %v); want offered %v", proto, got, ok, want)
		}
	}

	// What Go's crypto/tls gets accepted, one suite at a time.
	var goAccepted []uint32
	goKnows := map[uint32]bool{}
	for _, cs := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if !slices.Contains(cs.SupportedVersions, tls.VersionTLS12) {
			continue
		}
		goKnows[uint32(cs.ID)] = true
		s := open(t, p.C2SAddr, StreamOptions{To: "a.example"})
		err := s.StartTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{cs.ID}})
		if err == nil {
			goAccepted = append(goAccepted, uint32(cs.ID))
		}
	}
	var testsslKnown []uint32
	for _, id := range r.CipherIDs(TLS1_2) {
		if goKnows[id] {
			testsslKnown = append(testsslKnown, id)
		}
	}
	slices.Sort(goAccepted)
	slices.Sort(testsslKnown)
	if len(goAccepted) == 0 || !slices.Equal(goAccepted, testsslKnown) {
		t.Errorf("TLS 1.2 suites Go knows: testssl.sh found %x, Go %x\nall of testssl.sh's: %+v", testsslKnown, goAccepted, r.Ciphers[TLS1_2])
	}
	tls13 := r.CipherIDs(TLS1_3)
	slices.Sort(tls13)
	if want := []uint32{0x1301, 0x1302, 0x1303}; !slices.Equal(tls13, want) {
		t.Errorf("TLS 1.3 suites %x, want %x", tls13, want)
	}
	for _, c := range r.Ciphers[TLS1_2] {
		if c.IANA == "" || c.OpenSSL == "" || c.Bits == 0 || c.KeyExchange == "" {
			t.Errorf("incomplete cipher %+v", c)
		}
	}
	if r.CipherOrder == nil || *r.CipherOrder {
		t.Errorf("server cipher order %v (%q); want none", r.CipherOrder, r.CipherOrderFinding)
	}
	if r.ForwardSecrecy == nil || !*r.ForwardSecrecy || len(r.FSCiphers) == 0 || len(r.FSCurves) == 0 {
		t.Errorf("forward secrecy %v %q, suites %q, curves %q", r.ForwardSecrecy, r.ForwardSecrecyText, r.FSCiphers, r.FSCurves)
	}
}

// The parser reads testssl.sh 3.0's flat JSON as it is: two runs of
// -p -E -P -f against Prosody's c2s STARTTLS port, with its default
// profile and an ECDSA certificate, and with tls_profile "old", an RSA
// certificate and ciphers "ALL:@SECLEVEL=0" (TLS 1.0 and 1.1, static
// RSA and anonymous suites).
func TestParseTestSSLJSON(t *testing.T) {
	parse := func(name string) TestSSLResult {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseTestSSLJSON(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r
	}
	def := parse("testssl-prosody-default.json")
	weak := parse("testssl-prosody-weak.json")

	for _, tc := range []struct {
		r       TestSSLResult
		offered []string
	}{{def, []string{TLS1_2, TLS1_3}}, {weak, []string{TLS1, TLS1_1, TLS1_2, TLS1_3}}} {
		for _, p := range TestSSLProtocols {
			if tc.r.Offered(p) != slices.Contains(tc.offered, p) {
				t.Errorf("%s: %+v", p, tc.r.Protocols[p])
			}
		}
	}
	if got := weak.Protocols[TLS1].Finding; got != "offered (deprecated)" {
		t.Errorf("TLS1 finding %q", got)
	}

	want := TestSSLCipher{ID: 0xc02b, Hex: "xc02b", OpenSSL: "ECDHE-ECDSA-AES128-GCM-SHA256", IANA: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		KeyExchange: "ECDH 253", Encryption: "AESGCM", Bits: 128}
	if got := def.Ciphers[TLS1_2]; len(got) != 3 || got[2] != want {
		t.Errorf("TLS 1.2 ciphers %+v; want 3, the last %+v", got, want)
	}
	if got := def.CipherIDs(TLS1_3); !slices.Equal(got, []uint32{0x1302, 0x1303, 0x1301}) {
		t.Errorf("TLS 1.3 ciphers %x", got)
	}
	if def.CipherOrder == nil || *def.CipherOrder || def.CipherOrderTLS13 == nil || *def.CipherOrderTLS13 {
		t.Errorf("cipher order %v %v (%q); want no, no", def.CipherOrder, def.CipherOrderTLS13, def.CipherOrderFinding)
	}
	if def.ForwardSecrecy == nil || !*def.ForwardSecrecy || len(def.FSCiphers) != 6 || !slices.Equal(def.FSCurves, []string{"prime256v1", "secp384r1", "X25519"}) {
		t.Errorf("forward secrecy %v, %q, %q", def.ForwardSecrecy, def.FSCiphers, def.FSCurves)
	}

	if n := len(weak.Ciphers[TLS1]); n != 8 {
		t.Errorf("%d TLS 1.0 ciphers: %+v", n, weak.Ciphers[TLS1])
	}
	rsa := TestSSLCipher{ID: 0x2f, Hex: "x2f", OpenSSL: "AES128-SHA", IANA: "TLS_RSA_WITH_AES_128_CBC_SHA", KeyExchange: "RSA", Encryption: "AES", Bits: 128}
	if !slices.Contains(weak.Ciphers[TLS1_1], rsa) {
		t.Errorf("TLS 1.1 ciphers lack %+v: %+v", rsa, weak.Ciphers[TLS1_1])
	}
	if !slices.Contains(weak.CipherIDs(TLS1_2), 0xc0) {
		t.Errorf("TLS 1.2 ciphers lack xc0 (CAMELLIA256-SHA256)")
	}
	if weak.CipherOrder == nil || !*weak.CipherOrder || weak.CipherOrderTLS13 == nil || !*weak.CipherOrderTLS13 {
		t.Errorf("cipher order %v %v (%q); want yes, yes", weak.CipherOrder, weak.CipherOrderTLS13, weak.CipherOrderFinding)
	}
	if got := weak.PreferredOrder[TLS1_2]; len(got) < 2 || got[0] != "ECDHE-RSA-AES256-GCM-SHA384" {
		t.Errorf("TLS 1.2 order %q", got)
	}
	if got := weak.PreferredOrder[TLS1]; len(got) != 8 {
		t.Errorf("TLS 1.0 order %q", got)
	}
	if _, err := ParseTestSSLJSON([]byte(`[{"id":"cipher-tls1_2_xc02f","finding":"TLS 1.2 garbage"}]`)); err == nil {
		t.Error("a malformed cipher finding parsed")
	}
}

// Startup and shutdown are fast enough to start servers per test.
func TestProsodyStartStop(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	p := StartProsody(t, ProsodyOptions{VirtualHosts: []VirtualHost{{Domain: "a.example", CertFile: k.aCert, KeyFile: k.aKey}}})
	start := time.Now()
	p.Stop()
	t.Logf("Prosody: started in %v, stopped in %v", p.StartupTime, time.Since(start))
	if _, err := OpenStream(context.Background(), p.C2SAddr, StreamOptions{To: "a.example", Timeout: time.Second}); err == nil {
		t.Error("Prosody still answers after Stop")
	}
}

// StartTLSProxy relays, after the s2s STARTTLS it negotiates for the
// host asked for, the TLS of that host: a TLS client connecting to it
// gets the host's certificate, whatever SNI it sends; and testssl.sh
// scans the s2s STARTTLS port through it (testssl.sh 3.0 has no
// --starttls xmpp-server) with the same protocol findings as the c2s
// port's.
func TestStartTLSProxy(t *testing.T) {
	t.Parallel()
	k := newPKI(t)
	p := StartProsody(t, ProsodyOptions{S2SRequireEncryption: true, VirtualHosts: []VirtualHost{
		{Domain: "a.example", CertFile: k.aCert, KeyFile: k.aKey, C2SRequireEncryption: true},
		{Domain: "b.example", CertFile: k.bCert, KeyFile: k.bKey, C2SRequireEncryption: true},
	}})
	proxy := StartTLSProxy(t, p.S2SAddr, StreamOptions{Server: true, To: "b.example", From: "remote.example"})
	for range 2 {
		c, err := tls.DialWithDialer(dialer(5*time.Second), "tcp", proxy, &tls.Config{ServerName: "a.example", InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("TLS through the proxy: %v\n%s", err, p.Log())
		}
		if got := c.ConnectionState().PeerCertificates[0]; !got.Equal(k.bLeaf) {
			t.Errorf("through the proxy for b.example: %q", got.Subject)
		}
		c.Close()
	}

	r := TestSSL(t, p.S2SAddr, TestSSLOptions{StartTLS: "xmpp-server", XMPPHost: "b.example", Protocols: true})
	t.Logf("testssl.sh %v took %v (through a proxy: %q)", r.Args, r.Duration, r.Proxy)
	for _, proto := range TestSSLProtocols {
		want := proto == TLS1_2 || proto == TLS1_3
		if got, ok := r.Protocols[proto]; !ok || got.Offered != want {
			t.Errorf("s2s %s: %+v (reported: %v); want offered %v", proto, got, ok, want)
		}
	}
}
