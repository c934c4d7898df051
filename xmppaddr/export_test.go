package xmppaddr

import (
	"crypto/x509"
	"time"
)

// ProsodyVerifyIdentity is the port of Prosody's verify_identity alone,
// without the chain and key checks that Verify's prediction adds, for the
// differential test over certificates whose chains are not the point.
func ProsodyVerifyIdentity(host, service string, leaf *x509.Certificate) bool {
	return prosodyVerifyIdentity(host, service, Identities(leaf), leaf) != ""
}

// EjabberdAuthenticate is the port of ejabberd's identity check alone,
// answering as the differential's harness does: "true", "false", or
// "crash" when ejabberd's code raises.
func EjabberdAuthenticate(host string, leaf *x509.Certificate) string {
	matched, crash := ejabberdAuthenticate(nameprep(host), Identities(leaf), leaf)
	switch {
	case crash != "":
		return "crash"
	case matched != "":
		return "true"
	}
	return "false"
}

// OpenSSLVerify is the OpenSSL chain model alone: "" when OpenSSL would
// verify the chain, else what it would report.
func OpenSSLVerify(leaf *x509.Certificate, untrusted, anchors []*x509.Certificate, now time.Time) string {
	return opensslVerify(leaf, untrusted, anchors, now, nil)
}
