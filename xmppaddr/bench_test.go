package xmppaddr_test

import (
	"crypto/x509"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testpki"
	. "github.com/xmppcert/xmppcert/xmppaddr"
)

// benchChain is root -> intermediate -> leaf, ECDSA P-256 like Let's
// Encrypt's E-series, the leaf carrying every identity of a host.
func benchChain(b *testing.B) ([]*x509.Certificate, *x509.CertPool) {
	r := testpki.NewRoot("Bench Root", nil)
	inter := r.Intermediate("Bench Intermediate", nil)
	ext, err := SANExtension([]Name{{Domain: "example.org", Role: RoleHost}, {Domain: "conference.example.org", Role: RoleComponent}}, false)
	if err != nil {
		b.Fatal(err)
	}
	leaf, _ := inter.Leaf(func(c *x509.Certificate) { c.ExtraExtensions = append(c.ExtraExtensions, ext) })
	return []*x509.Certificate{leaf, inter.Cert}, r.Pool()
}

// BenchmarkCheck is xmppcert's whole check of a presented chain for s2s:
// path validation, SAN parsing, matching, EKU policy, findings and peers.
func BenchmarkCheck(b *testing.B) {
	chain, roots := benchChain(b)
	opts := Options{Domain: "example.org", Service: ServiceServer, Roots: roots, CurrentTime: testpki.At}
	for b.Loop() {
		res, err := Verify(chain, opts)
		if err != nil || !res.Valid {
			b.Fatal(err, res)
		}
	}
}

// BenchmarkX509Verify is what a Go peer does with the same chain using
// crypto/x509 alone: pool the intermediates, verify with DNSName.
func BenchmarkX509Verify(b *testing.B) {
	chain, roots := benchChain(b)
	for b.Loop() {
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		if _, err := chain[0].Verify(x509.VerifyOptions{
			DNSName: "example.org", Roots: roots, Intermediates: inter, CurrentTime: testpki.At,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}); err != nil {
			b.Fatal(err)
		}
	}
}
