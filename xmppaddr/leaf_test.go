package xmppaddr_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testpki"
	. "github.com/xmppcert/xmppcert/xmppaddr"
)

// TestChainOrder: an intermediate pasted before the leaf. The leaf is
// found and judged, and a chain-order error says to put it first.
func TestChainOrder(t *testing.T) {
	inter := root.Intermediate("Order Intermediate", nil)
	leaf, _ := inter.Leaf(san(testpki.DNS("example.org")))
	res, err := Verify([]*x509.Certificate{inter.Cert, leaf}, Options{Domain: "example.org", Service: ServiceClient, Roots: root.Pool(), CurrentTime: testpki.At})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid || !hasCode(res, CodeChainOrder) || len(res.Matched) != 1 || hasCode(res, CodeNoMatch) || hasCode(res, CodeChainUntrusted) {
		t.Fatalf("valid=%v matched=%v:\n%s", res.Valid, res.Matched, findingsText(res))
	}
	for _, f := range res.Findings {
		if f.Code == CodeChainOrder && !strings.Contains(f.Text, "certificate 2 of 2") || f.Code == CodeChainOrder && !strings.Contains(f.Text, "put the leaf first") {
			t.Errorf("finding %q", f.Text)
		}
	}
}

// TestCAAsLeaf: a CA certificate issued by another CA, presented as a
// server's certificate, is refused, though crypto/x509 verifies it; a
// self-signed one is not.
func TestCAAsLeaf(t *testing.T) {
	ca := root.Intermediate("Leaf CA", func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS("example.org")))
	})
	res, err := Verify([]*x509.Certificate{ca.Cert}, Options{Domain: "example.org", Service: ServiceServer, Roots: root.Pool(), CurrentTime: testpki.At})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid || !hasCode(res, CodeCALeaf) || len(res.Matched) != 1 {
		t.Fatalf("valid=%v:\n%s", res.Valid, findingsText(res))
	}
	// A self-signed server certificate with cA TRUE, as openssl req -x509
	// and prosodyctl cert generate make it, is its own trust anchor.
	self := testpki.NewRoot("example.org", func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS("example.org")))
	})
	res, err = Verify([]*x509.Certificate{self.Cert}, Options{Domain: "example.org", Service: ServiceClient, Roots: self.Pool(), CurrentTime: testpki.At})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Valid || hasCode(res, CodeCALeaf) {
		t.Errorf("self-signed with cA TRUE: valid=%v:\n%s", res.Valid, findingsText(res))
	}
}

// TestWeakKey: a self-signed RSA-1024 certificate (trusted as its own
// root) gets the weak-key error, and the OpenSSL-based peers (Prosody,
// ejabberd) are predicted to refuse it while Openfire accepts.
func TestWeakKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := testpki.LeafTemplate()
	tmpl.SerialNumber = big.NewInt(1024)
	tmpl.Subject = pkix.Name{CommonName: "example.org"}
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, testpki.SAN(false, testpki.DNS("example.org")))
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	res, err := Verify([]*x509.Certificate{cert}, Options{Domain: "example.org", Service: ServiceServer, Roots: pool, CurrentTime: testpki.At})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid || !hasCode(res, CodeWeakKey) {
		t.Fatalf("valid=%v:\n%s", res.Valid, findingsText(res))
	}
	want := map[string]bool{"Prosody 0.12": false, "ejabberd": false, "Openfire": true}
	for _, v := range res.Peers {
		if w, ok := want[v.Peer]; ok && v.Accepts != w {
			t.Errorf("%s accepts=%v (%s); want %v", v.Peer, v.Accepts, v.Reason, w)
		}
	}
}

// TestEKUAnyChain: the intermediate is certified twice, by a root that
// restricts it to clientAuth and by one that does not. The leaf is
// valid for serverAuth through the second, whichever chain crypto/x509
// returns first; restricted to the first root only, the finding names
// the intermediate, not the leaf.
func TestEKUAnyChain(t *testing.T) {
	restrictive := testpki.NewRoot("Restrictive Root", nil)
	open := testpki.NewRoot("Open Root", nil)
	inter := restrictive.Intermediate("Twice Certified", func(c *x509.Certificate) {
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	})
	cross := testpki.CrossSign(open, inter, nil)
	leaf, _ := inter.Leaf(san(testpki.DNS("example.org")))
	both := x509.NewCertPool()
	both.AddCert(restrictive.Cert)
	both.AddCert(open.Cert)
	res, err := Verify([]*x509.Certificate{leaf, inter.Cert, cross}, Options{Domain: "example.org", Service: ServiceServer, Roots: both, CurrentTime: testpki.At})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Valid || hasCode(res, CodeEKUNoServerAuth) {
		t.Errorf("with both roots: valid=%v:\n%s", res.Valid, findingsText(res))
	}
	res, err = Verify([]*x509.Certificate{leaf, inter.Cert}, Options{Domain: "example.org", Service: ServiceServer, Roots: restrictive.Pool(), CurrentTime: testpki.At})
	if err != nil {
		t.Fatal(err)
	}
	var text string
	for _, f := range res.Findings {
		if f.Code == CodeEKUNoServerAuth {
			text = f.Text
		}
	}
	if res.Valid || !strings.Contains(text, "the leaf permits serverAuth") || !strings.Contains(text, "Twice Certified") {
		t.Errorf("restricted chain only: valid=%v, finding %q", res.Valid, text)
	}
}
