package probe

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
)

const domain = "example.test"

// testPKI is a CA with certificates for the tests: a good one for
// domain, an expired one, one for another name, one from an unknown CA,
// and a client certificate for the probing side.
type testPKI struct {
	ca                                  *testpki.CA
	good, expired, wrongName, untrusted tls.Certificate
	client, strangerClient              tls.Certificate
}

var (
	pkiOnce sync.Once
	pki     *testPKI
)

func xmppLeaf(ca *testpki.CA, name string, edit func(*x509.Certificate)) tls.Certificate {
	cert, key := ca.Leaf(func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: name}
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false,
			testpki.DNS(name), testpki.SRV("_xmpp-client."+name), testpki.SRV("_xmpp-server."+name), testpki.Xmpp(name)))
		if edit != nil {
			edit(c)
		}
	})
	return chain(cert, key, ca)
}

func chain(cert *x509.Certificate, key crypto.Signer, ca *testpki.CA) tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{cert.Raw, ca.Cert.Raw}, PrivateKey: key, Leaf: cert}
}

// thePKI builds the test certificates once per test binary.
func thePKI() *testPKI {
	pkiOnce.Do(func() {
		ca := testpki.NewRoot("probe test root", nil)
		other := testpki.NewRoot("some other root", nil)
		pki = &testPKI{
			ca:   ca,
			good: xmppLeaf(ca, domain, nil),
			expired: xmppLeaf(ca, domain, func(c *x509.Certificate) {
				c.NotBefore, c.NotAfter = testpki.Epoch.Add(-100*24*time.Hour), testpki.Epoch.Add(-10*24*time.Hour)
			}),
			wrongName:      xmppLeaf(ca, "elsewhere.test", nil),
			untrusted:      xmppLeaf(other, domain, nil),
			client:         xmppLeaf(ca, "us.test", nil),
			strangerClient: xmppLeaf(other, "us.test", nil),
		}
	})
	return pki
}

// rsaLeaf is an RSA certificate for name, for the suites with RSA key
// exchange (testpki makes ECDSA keys only).
func rsaLeaf(t testing.TB, ca *testpki.CA, name string) tls.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := testpki.LeafTemplate()
	tmpl.Subject = pkix.Name{CommonName: name}
	tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	tmpl.ExtraExtensions = []pkix.Extension{testpki.SAN(false, testpki.DNS(name))}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return chain(cert, key, ca)
}

// server starts a fake server with the good certificate unless cfg has
// one.
func server(t testing.TB, cfg xmpptlstest.Config) *xmpptlstest.Server {
	t.Helper()
	if cfg.Certificate.Certificate == nil && cfg.GetCertificate == nil {
		cfg.Certificate = thePKI().good
	}
	return xmpptlstest.Start(t, cfg)
}

// options are probe options for a fake server at addr: its CA trusted,
// judged at testpki.At, short timeouts.
func options(addr string) Options {
	return Options{
		Connect:  addr,
		Roots:    thePKI().ca.Pool(),
		Now:      testpki.At,
		Timeout:  2 * time.Second,
		Deadline: 5 * time.Second,
	}
}

// dump logs the result as JSON, for failing tests.
func dump(t testing.TB, res Result) {
	t.Helper()
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	t.Logf("result:\n%s", b)
}

// one returns the only endpoint of res.
func one(t testing.TB, res Result) Endpoint {
	t.Helper()
	if len(res.Endpoints) != 1 {
		dump(t, res)
		t.Fatalf("%d endpoints, want 1", len(res.Endpoints))
	}
	return res.Endpoints[0]
}

// requirement returns the requirement id of g.
func requirement(t testing.TB, g Grade, id string) Requirement {
	t.Helper()
	for _, r := range g.Requirements {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("no requirement %s in %+v", id, g)
	return Requirement{}
}

// seen waits until the server has finished n connections and returns
// what they sent.
func seen(t testing.TB, s *xmpptlstest.Server, n int) []xmpptlstest.Hello {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if h := s.Seen(); len(h) >= n {
			return h
		}
	}
	t.Fatalf("the server finished %d connections, want %d", len(s.Seen()), n)
	return nil
}

// redirect is a Dial that sends every connection to addr, whatever was
// asked: for the fallback to DOMAIN:5222, which a test cannot bind.
func redirect(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

// hasFinding says whether the endpoint has a finding with the code.
func hasFinding(e Endpoint, code string) bool {
	for _, f := range e.Findings {
		if f.Code == code {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
