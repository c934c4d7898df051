package xmppaddr

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"slices"
)

// minRSABits is the smallest RSA key OpenSSL accepts at security level
// 2, the default of Debian's and Ubuntu's OpenSSL, under which Prosody and
// ejabberd run there.
const minRSABits = 2048

// leafFirst finds the leaf of a file that lists a CA certificate first
// (an intermediate pasted before the server's own): the first certificate
// that is not a CA moves to the front, the others keep their order, and
// a finding says to put it first, because a server sends the file in its
// order and takes the first certificate for its own.
func leafFirst(chain []*x509.Certificate) ([]*x509.Certificate, []Finding) {
	if !isCA(chain[0]) {
		return chain, nil
	}
	i := slices.IndexFunc(chain, func(c *x509.Certificate) bool { return !isCA(c) })
	if i < 0 {
		return chain, nil
	}
	out := make([]*x509.Certificate, 0, len(chain))
	out = append(append(append(out, chain[i]), chain[:i]...), chain[i+1:]...)
	return out, []Finding{{CodeChainOrder, Error, fmt.Sprintf(
		"certificate %d of %d (%q) is the leaf, but the CA certificate %q comes first: a server sends the file in its order and takes the first certificate for its own, so put the leaf first, then the intermediates",
		i+1, len(chain), chain[i].Subject.String(), chain[0].Subject.String())}}
}

// isCA reports whether c is a CA certificate (basicConstraints cA).
func isCA(c *x509.Certificate) bool { return c.BasicConstraintsValid && c.IsCA }

// selfSigned reports whether c names itself as issuer and its signature
// verifies with its own key. A self-signed server certificate is its own
// trust anchor, and cA TRUE is how `openssl req -x509` and `prosodyctl
// cert generate` make it, so ca-as-leaf leaves it alone.
func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// leafFindings are what is wrong with the leaf itself, whatever it
// names: a CA certificate in a server's place, a key too weak for the
// peers.
func leafFindings(leaf *x509.Certificate) []Finding {
	var fs []Finding
	if isCA(leaf) && !selfSigned(leaf) {
		fs = append(fs, Finding{CodeCALeaf, Error,
			"the leaf is a CA certificate issued by another CA (basicConstraints cA TRUE): a server's certificate must be an end-entity certificate (RFC 5280), and whoever holds this key can issue for any name under its issuer; crypto/x509 accepts it all the same, xmppcert does not: issue an end-entity certificate"})
	}
	if why := weakKey(leaf); why != "" {
		fs = append(fs, Finding{CodeWeakKey, Error, why + ": reissue with ECDSA P-256 or RSA of 2048 bits or more"})
	}
	return fs
}

// weakKey says why the leaf's key is too weak for OpenSSL-based peers at
// their default security level, or "".
func weakKey(leaf *x509.Certificate) string {
	if k, ok := leaf.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < minRSABits {
		return fmt.Sprintf("the key is RSA of %d bits: OpenSSL at security level 2 (the default on Debian and Ubuntu) refuses RSA under %d bits, so Prosody and ejabberd there refuse it; Java's default certificate policy (Openfire, Smack) refuses only RSA under 1024 bits", k.N.BitLen(), minRSABits)
	}
	if leaf.PublicKeyAlgorithm == x509.DSA {
		return "the key is DSA: TLS 1.3 has no DSA and Go's crypto/tls none at all, so only a TLS 1.2 DSS cipher suite can use it; OpenSSL-based peers (Prosody, ejabberd) still accept the certificate"
	}
	return ""
}
