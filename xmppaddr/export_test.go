package xmppaddr

import "crypto/x509"

// ProsodyVerifyIdentity is the port of Prosody's verify_identity alone,
// without the chain and key checks that Verify's prediction adds, for the
// differential test over certificates whose chains are not the point.
func ProsodyVerifyIdentity(host, service string, leaf *x509.Certificate) bool {
	return prosodyVerifyIdentity(host, service, Identities(leaf), leaf) != ""
}
