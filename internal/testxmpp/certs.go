package testxmpp

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testpki"
)

// IssueLeaf issues with ca a certificate for the DNS names (the first
// also its common name), valid from an hour ago for 90 days, for
// serverAuth and clientAuth, and writes it (with ca's certificate after
// it) and its key with WriteCertKey to dir/file.crt and dir/file.key.
// Servers check validity against the clock, and internal/testpki's
// leaves are valid for 90 days from its fixed Epoch, so tests that give
// certificates to real servers use this.
func IssueLeaf(t testing.TB, ca *testpki.CA, dir, file string, names ...string) (certFile, keyFile string) {
	t.Helper()
	if len(names) == 0 {
		t.Fatal("testxmpp.IssueLeaf: no names")
	}
	var sans [][]byte
	for _, n := range names {
		sans = append(sans, testpki.DNS(n))
	}
	cert, key := ca.Leaf(func(c *x509.Certificate) {
		c.Subject.CommonName = names[0]
		c.NotBefore, c.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour)
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, sans...))
	})
	return WriteCertKey(t, dir, file, []*x509.Certificate{cert, ca.Cert}, key)
}
