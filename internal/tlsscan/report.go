package tlsscan

import "crypto/x509"

// Report is what Scan found out about one TLS endpoint: the protocol
// versions it accepts, the TLS 1.2 cipher suites it accepts and in which
// order it prefers them, and what follows for forward secrecy. Its JSON
// form is part of `xmppcert probe --full --json`.
//
// Slices are never nil, so the JSON form always has arrays, never null.
type Report struct {
	// Versions has one entry per protocol, oldest first: SSLv2, SSLv3,
	// TLSv1.0, TLSv1.1, TLSv1.2, TLSv1.3.
	Versions []Version `json:"versions"`
	// TLS12Ciphers are the TLS 1.2 cipher suites the server accepted, in
	// its order of preference when ServerPreference is true, else in the
	// order they were tried.
	TLS12Ciphers []Cipher `json:"tls12_ciphers"`
	// TLS13Ciphers are the TLS 1.3 cipher suites the server accepted, in
	// its order of preference when TLS13ServerPreference is true, else in
	// the order they were tried.
	TLS13Ciphers []Cipher `json:"tls13_ciphers"`
	// ServerPreference says whether the server chooses the TLS 1.2 cipher
	// suite by its own order (true) or the client's (false); nil when it
	// could not be told (fewer than two suites accepted).
	//
	// It is false only when the server picked the client's first suite in
	// every ordering tried. A server whose own order depends on the
	// client's (Go's crypto/tls prefers ChaCha20 for clients that do not
	// list AES-GCM first) counts as having its own preference, and
	// TLS12Ciphers is then its order for a client that lists AES-GCM
	// first.
	ServerPreference *bool `json:"server_preference"`
	// TLS13ServerPreference is ServerPreference for the TLS 1.3 suites.
	TLS13ServerPreference *bool `json:"tls13_server_preference"`
	// NonForwardSecret is true when any accepted suite lacks forward
	// secrecy (static RSA key exchange, or DH/ECDH without ephemeral
	// keys): any of TLS12Ciphers, or the suite the server chose when
	// probed for SSLv3, TLS 1.0 or TLS 1.1 (those versions are probed
	// once each, not enumerated).
	NonForwardSecret bool `json:"non_forward_secret"`
	// Certificates are the leaf certificates the server presented with
	// SNI (Options.SNI) and without SNI, in that order; only the one
	// without SNI when Options.SNI is empty; none unless
	// Options.Certificates is set.
	Certificates []CertificateSeen `json:"certificates"`
	// CertificateDependsOnSNI is true when the server presented a
	// different leaf without SNI than with it (a peer that sends no SNI
	// sees the other certificate), false when both are the same; nil when
	// either handshake failed, no SNI was given or Options.Certificates
	// is not set.
	CertificateDependsOnSNI *bool `json:"certificate_depends_on_sni"`
	// Connections is how many connections the scan opened or tried to
	// open (one per probe, each a Dialer call), for comparing its cost
	// with other scanners.
	Connections int `json:"connections"`
	// Errors are the probes that failed for a reason other than the
	// server refusing (connection reset before a ServerHello counts as
	// refusing); each a one-line text.
	Errors []string `json:"errors"`
}

// Version is one protocol version and whether the server accepts it.
type Version struct {
	// Name is "SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1", "TLSv1.2" or "TLSv1.3".
	Name string `json:"name"`
	// Offered is true when the server completed a ServerHello (or, for
	// SSLv2, a SERVER-HELLO) with this version. For TLS 1.3 a
	// HelloRetryRequest counts.
	Offered bool `json:"offered"`
	// Detail says how the server refused: "protocol_version alert",
	// "handshake_failure alert", "connection closed", "server chose
	// TLSv1.2", "no answer within 5s", ... When Offered, it may note how
	// ("HelloRetryRequest for secp256r1", "SERVER-HELLO with 2 cipher
	// specs").
	Detail string `json:"detail,omitempty"`
	// Cipher is the suite the server chose when first asked for this
	// version with a broad list (nil for SSLv2 and when not offered).
	Cipher *Cipher `json:"cipher,omitempty"`
}

// Cipher is a cipher suite by its IANA number and name.
type Cipher struct {
	// ID is the suite's number as the ServerHello carries it, e.g.
	// 0xC02F (49199 in JSON).
	ID uint16 `json:"id"`
	// Name is the IANA name, e.g. "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
	// (for the few suites IANA never registered, the name of their
	// draft); "unknown 0xXXXX" for a number the scanner does not know.
	Name string `json:"name"`
	// OpenSSLName is OpenSSL's name for the suite ("ECDHE-RSA-AES128-GCM-SHA256"),
	// empty where OpenSSL never had one.
	OpenSSLName string `json:"openssl_name,omitempty"`
	// KeyExchange is the key exchange of a TLS 1.0-1.2 suite: "ECDHE",
	// "DHE", "RSA", "ECDH", "DH", "DH_anon" or "ECDH_anon"; empty for TLS
	// 1.3 suites, which leave it to the key_share extension.
	KeyExchange string `json:"key_exchange,omitempty"`
	// ForwardSecret is true for ephemeral (EC)DHE key exchange and for
	// every TLS 1.3 suite.
	ForwardSecret bool `json:"forward_secret"`
	// Anonymous is true for DH_anon and ECDH_anon suites: ephemeral, but
	// the server is not authenticated, so an active attacker reads
	// everything.
	Anonymous bool `json:"anonymous,omitempty"`
}

// CertificateSeen is the certificate one handshake presented.
type CertificateSeen struct {
	// SNI is the server name sent, empty for none.
	SNI string `json:"sni"`
	// SHA256 is the hex SHA-256 of the leaf certificate's DER.
	SHA256 string `json:"sha256,omitempty"`
	// Subject is the leaf's subject as text.
	Subject string `json:"subject,omitempty"`
	// DNSNames are the leaf's dNSName SANs.
	DNSNames []string `json:"dns_names,omitempty"`
	// Error says why the handshake failed; the other fields are then
	// empty.
	Error string `json:"error,omitempty"`
	// Chain is the chain the server sent, leaf first, for callers that
	// check it further (identities, expiry); not part of the JSON form.
	Chain []*x509.Certificate `json:"-"`
}
