// Package xmppaddr decides whether a certificate proves an XMPP identity.
//
// It is the heart of xmppcert: it reads the identities a certificate
// presents (dNSName, SRVName and XmppAddr subject alternative names, parsed
// structurally, never from printed strings), builds the reference identities
// a peer derives from the domain it wants to reach, matches the two the way
// RFC 6120 §13.7 applies RFC 9525 (or, by option, RFC 6125), validates the
// chain with crypto/x509 plus the XMPP-specific rules crypto/x509 does not
// know (name constraints on SRV-IDs and XmppAddrs, extended key usage for
// server-to-server), and reports the outcome as a structured Result whose
// findings explain every decision, including what common XMPP software will
// do where it departs from the standard. Those predictions are the peers'
// own code where it can be ported (prosody.go: Prosody's util/x509.lua;
// ejabberd.go: ejabberd's xmpp_stream_pkix; openssl.go: OpenSSL's
// X509_verify_cert, the chain check of both), and the tests hold each to
// the real thing (the installed Prosody, ejabberd and openssl).
//
// It also encodes those identities (SANExtension, CertificateRequestTemplate),
// so the certificates xmppcert issues carry exactly what it checks.
//
// xmppaddr imports no other xmppcert package.
package xmppaddr
