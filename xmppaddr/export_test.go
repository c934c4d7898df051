package xmppaddr

import "crypto/x509"

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
