package probe

import (
	"crypto/x509"
	"time"

	"github.com/xmppcert/xmppcert/internal/tlsscan"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// Code classifies why a probe, or one endpoint of it, did not come out
// clean. The values are stable: --json output, scripts, metrics and
// alerts use them. The empty code means no failure.
type Code string

// Failure codes, roughly in the order a probe meets them.
const (
	// CodeInvalidInput: the domain or an option is unusable (see
	// InputError); nothing was probed. The caller's mistake: exit 2.
	CodeInvalidInput Code = "invalid-input"
	// CodeDNSError: the SRV or address lookup failed (no answer,
	// SERVFAIL, a target without addresses).
	CodeDNSError Code = "dns-error"
	// CodeNotOffered: the SRV records say the service is not offered
	// (target "."), or DirectTLS found no _xmpps-* record.
	CodeNotOffered Code = "not-offered"
	// CodeUnreachable: no TCP connection (refused, no route, timed out).
	CodeUnreachable Code = "unreachable"
	// CodeTimeout: connected, but the server did not answer a phase in
	// time (Options.Timeout or the probe's deadline).
	CodeTimeout Code = "timeout"
	// CodeFeaturesMissing: the server opened the stream but sent no
	// <stream:features> (in time, or before closing the stream).
	CodeFeaturesMissing Code = "features-missing"
	// CodeNoStartTLS: the pre-TLS features do not offer STARTTLS: the
	// endpoint speaks plaintext only.
	CodeNoStartTLS Code = "no-starttls"
	// CodeStartTLSFailure: the server answered <starttls/> with
	// <failure/>.
	CodeStartTLSFailure Code = "starttls-failure"
	// CodeStreamError: the server sent a stream error; the endpoint's
	// StreamError has its condition and text verbatim.
	CodeStreamError Code = "stream-error"
	// CodeTooLarge: the server sent more than the negotiation may take
	// (xmpptls.MaxPreTLS / MaxPostTLS bytes).
	CodeTooLarge Code = "too-large"
	// CodeProtocolError: the server did not speak XMPP: not XML, a
	// forbidden construct (a DTD, entities, comments), an unexpected
	// element, the stream closed.
	CodeProtocolError Code = "protocol-error"
	// CodeTLSAlert: the server sent a TLS alert (no shared version or
	// cipher suite, a refused client certificate).
	CodeTLSAlert Code = "tls-alert"
	// CodeTLSError: the TLS handshake failed otherwise (garbage instead
	// of TLS, the connection closed).
	CodeTLSError Code = "tls-error"
	// CodeConnectionLost: the connection broke after it was made (reset)
	// outside the TLS handshake.
	CodeConnectionLost Code = "connection-lost"
	// CodeCanceled: the caller cancelled the probe.
	CodeCanceled Code = "canceled"
	// CodeCertificateExpired: everything worked, but the presented
	// chain is not valid at Options.Now (expired or not yet valid).
	CodeCertificateExpired Code = "certificate-expired"
	// CodeCertificateUntrusted: everything worked, but the chain does
	// not lead to a trusted root.
	CodeCertificateUntrusted Code = "certificate-untrusted"
	// CodeCertificateNameMismatch: everything worked, but the
	// certificate does not name the domain for the service.
	CodeCertificateNameMismatch Code = "certificate-name-mismatch"
	// CodeCertificateInvalid: everything worked, but the certificate
	// fails another of xmppaddr's checks (EKU, name constraints, ...).
	CodeCertificateInvalid Code = "certificate-invalid"
)

// Encryption says how an endpoint's stream is encrypted.
type Encryption string

// Encryption values.
const (
	EncryptionNone      Encryption = "none"
	EncryptionStartTLS  Encryption = "starttls"
	EncryptionDirectTLS Encryption = "direct-tls"
)

// Result is what a probe of one domain and service found. Its JSON form
// is the stable output of `xmppcert probe --json`: snake_case keys, lists
// empty rather than null, durations in milliseconds. Objects that do not
// apply are null (or, where marked omitempty, absent).
type Result struct {
	// Domain is the canonical domain probed (A-labels, lower case), or
	// the input as given when it is invalid.
	Domain string `json:"domain"`
	// Service is the service probed, xmpp-client or xmpp-server.
	Service xmppaddr.Service `json:"service"`
	// From is the s2s from sent; empty for c2s.
	From string `json:"from,omitempty"`
	// CheckedAt is when the probe ran (Options.Now when set).
	CheckedAt time.Time `json:"checked_at"`
	// DurationMS is how long the whole probe took.
	DurationMS float64 `json:"duration_ms"`
	// OK is true when at least one endpoint was probed and every
	// endpoint is OK.
	OK bool `json:"ok"`
	// Failure is empty when OK; otherwise the resolution's failure code
	// or the first failing endpoint's, in SRV order.
	Failure Code `json:"failure"`
	// Error says what went wrong with the probe as a whole (invalid
	// input, DNS); endpoints carry their own.
	Error string `json:"error,omitempty"`
	// Resolution is how the endpoints were found.
	Resolution Resolution `json:"resolution"`
	// Endpoints has one entry per target and address, in SRV order.
	Endpoints []Endpoint `json:"endpoints"`
	// Pins is the pinning.Verifier report for the service (DANE per SRV
	// target, POSH), with Options.Pins; null otherwise. Each endpoint
	// carries its own DANE and POSH verdicts.
	Pins *pinning.ServiceReport `json:"pins"`
	// Grade is the manifesto grade over every endpoint: a requirement
	// fails when it fails anywhere.
	Grade Grade `json:"grade"`
	// Notes are facts about the probe as a whole, for people.
	Notes []string `json:"notes"`
}

// Resolution is how a probe found its endpoints.
type Resolution struct {
	// Connect is Options.Connect when it overrode SRV.
	Connect string `json:"connect,omitempty"`
	// Resolver is the DNS resolver asked (empty for the system's).
	Resolver string `json:"resolver,omitempty"`
	// Via is the SOCKS5 proxy the connections went through
	// (Options.Via, its password replaced by xxxxx).
	Via string `json:"via,omitempty"`
	// SRV is the SRV lookup (XEP-0368: _xmpp-* and _xmpps-* merged into
	// one order, "." meaning not offered); null with Connect.
	SRV *pinning.SRVReport `json:"srv"`
	// Targets are the hosts and ports probed, in order.
	Targets []Target `json:"targets"`
	// DurationMS is how long the SRV lookup took.
	DurationMS float64 `json:"duration_ms"`
	// Error says why resolution failed; empty otherwise.
	Error string `json:"error,omitempty"`
}

// Target is one host and port to probe, with how it was found.
type Target struct {
	// Host is the SRV target, the domain (fallback) or the Connect host.
	Host string `json:"host"`
	// Port is the TCP port.
	Port uint16 `json:"port"`
	// DirectTLS is true for XEP-0368 direct TLS (an _xmpps-* record).
	DirectTLS bool `json:"direct_tls"`
	// Source is "srv" (an SRV record), "fallback" (the domain itself on
	// 5222/5269, as peers do without SRV records) or "connect".
	Source string `json:"source"`
	// Addresses are the host's addresses probed (at most MaxAddresses).
	Addresses []string `json:"addresses"`
	// DurationMS is how long the address lookup took.
	DurationMS float64 `json:"duration_ms"`
	// Error says why the host has no address; empty otherwise.
	Error string `json:"error,omitempty"`
}

// Endpoint is what one address of one target showed.
type Endpoint struct {
	// Host and Port are the target (SRV target, domain or Connect host).
	Host string `json:"host"`
	// Port is the TCP port.
	Port uint16 `json:"port"`
	// Address is the IP:PORT connected to.
	Address string `json:"address"`
	// DirectTLS is true for XEP-0368 direct TLS, false for STARTTLS.
	DirectTLS bool `json:"direct_tls"`
	// Source is as for Target.
	Source string `json:"source"`
	// OK is true when the negotiation completed and Failure is empty.
	OK bool `json:"ok"`
	// Completed is true when TLS was established and the features of the
	// stream restarted over it were read.
	Completed bool `json:"completed"`
	// Failure is empty when OK; otherwise what went wrong first.
	Failure Code `json:"failure"`
	// Error says the same for people, verbatim from the failing step.
	Error string `json:"error,omitempty"`
	// Phase is the phase that failed: dns, connect, stream, starttls,
	// tls, features, certificate; empty when OK.
	Phase string `json:"phase,omitempty"`
	// StreamError is the stream error the server sent, verbatim.
	StreamError *StreamError `json:"stream_error,omitempty"`
	// Encrypted is true when TLS was established; Encryption says how.
	Encrypted bool `json:"encrypted"`
	// Encryption is starttls, direct-tls or none.
	Encryption Encryption `json:"encryption"`
	// StartTLS is what the pre-TLS features said about STARTTLS (both
	// false for direct TLS).
	StartTLS StartTLS `json:"starttls"`
	// BeforeTLS is the stream before TLS (null for direct TLS, or when
	// the server never opened one); AfterTLS the stream restarted over
	// TLS (null until then).
	BeforeTLS *Stream `json:"before_tls"`
	// AfterTLS is the stream restarted over TLS.
	AfterTLS *Stream `json:"after_tls"`
	// TLS is the negotiated session and the presented chain; null when
	// no handshake completed.
	TLS *TLSInfo `json:"tls"`
	// Certificate is xmppaddr's verdict on the presented chain for the
	// domain and service, with findings and peer predictions; null
	// without a chain.
	Certificate *xmppaddr.Result `json:"certificate"`
	// Dialback is what the endpoint offers of Server Dialback; null for
	// c2s.
	Dialback *Dialback `json:"dialback"`
	// External is the SASL EXTERNAL attempt with Options.ClientCert;
	// null without a client certificate.
	External *External `json:"sasl_external"`
	// DANE is the TLSA verdict for this target and address (Options.Pins).
	DANE *DANE `json:"dane,omitempty"`
	// POSH says whether the domain's POSH document pins the presented
	// certificate (Options.Pins).
	POSH *pinning.POSHPinCheck `json:"posh,omitempty"`
	// Full holds the Options.Full extras; null without Full.
	Full *Full `json:"full"`
	// Findings are facts about the endpoint an operator should know
	// (plaintext authentication offered, STARTTLS optional, weak TLS),
	// errors first. Certificate findings are in Certificate.
	Findings []xmppaddr.Finding `json:"findings"`
	// Timings are the durations of each phase.
	Timings Timings `json:"timings_ms"`
	// Grade is the manifesto grade of this endpoint.
	Grade Grade `json:"grade"`

	leaf *x509.Certificate // the presented leaf, for POSH
}

// StreamError is a stream error as the server sent it.
type StreamError struct {
	// Condition is the defined condition, such as "host-unknown".
	Condition string `json:"condition"`
	// Text is the <text/>, verbatim (up to xmpptls.MaxText bytes).
	Text string `json:"text"`
}

// StartTLS is what the features before TLS said about STARTTLS.
type StartTLS struct {
	// Offered is true when <starttls/> is among the features.
	Offered bool `json:"offered"`
	// Required is true when it carries <required/>.
	Required bool `json:"required"`
}

// Stream is the server's side of one stream: its header and features.
type Stream struct {
	// Header is the server's stream header.
	Header Header `json:"header"`
	// Features are its <stream:features>.
	Features Features `json:"features"`
}

// Header is the server's stream header.
type Header struct {
	// Namespace is the default namespace (jabber:client, jabber:server).
	Namespace string `json:"namespace"`
	// DialbackNS is true when it declares xmlns:db='jabber:server:dialback'.
	DialbackNS bool `json:"dialback_ns"`
	// From, ID, Version and Lang (xml:lang) are the header's attributes,
	// empty when absent.
	From string `json:"from"`
	// ID is the stream id.
	ID string `json:"id"`
	// Version is the stream version, "1.0" for RFC 6120 servers.
	Version string `json:"version"`
	// Lang is the xml:lang attribute.
	Lang string `json:"lang"`
}

// Features is a <stream:features> element read as a set.
type Features struct {
	// Names are the features offered, in the order sent.
	Names []FeatureName `json:"names"`
	// Dropped counts features beyond xmpptls.MaxFeatures, not listed.
	Dropped int `json:"dropped,omitempty"`
	// StartTLS is true when <starttls/> is offered.
	StartTLS bool `json:"starttls"`
	// StartTLSRequired is true when it carries <required/>.
	StartTLSRequired bool `json:"starttls_required"`
	// Mechanisms are the SASL mechanisms offered.
	Mechanisms []string `json:"sasl_mechanisms"`
	// Dialback is the XEP-0220 feature, DialbackErrors its <errors/>.
	Dialback bool `json:"dialback"`
	// DialbackErrors is true when the dialback feature holds <errors/>.
	DialbackErrors bool `json:"dialback_errors"`
}

// FeatureName is one stream feature by its element name.
type FeatureName struct {
	// Namespace is the element's namespace.
	Namespace string `json:"namespace"`
	// Name is its local name.
	Name string `json:"name"`
}

// TLSInfo is the negotiated TLS session and the presented chain.
type TLSInfo struct {
	// Version is as Go names it: "TLS 1.3", "TLS 1.2", ...
	Version string `json:"version"`
	// VersionID is the protocol version number (0x0304 for TLS 1.3).
	VersionID uint16 `json:"version_id"`
	// Cipher is the IANA name of the negotiated suite.
	Cipher string `json:"cipher"`
	// CipherID is its IANA number.
	CipherID uint16 `json:"cipher_id"`
	// Group is the key exchange group ("X25519MLKEM768", "X25519",
	// "CurveP256"); empty for RSA key exchange, which has none.
	Group string `json:"group"`
	// GroupID is its IANA number, 0 when none.
	GroupID uint16 `json:"group_id"`
	// ForwardSecret is true for TLS 1.3 and ephemeral (EC)DHE suites.
	ForwardSecret bool `json:"forward_secret"`
	// SNI is the server name sent; ALPNOffered the ALPN protocols offered
	// (direct TLS only) and ALPNNegotiated the one the server chose.
	SNI string `json:"sni"`
	// ALPNOffered are the ALPN protocols offered.
	ALPNOffered []string `json:"alpn_offered"`
	// ALPNNegotiated is the protocol the server chose, empty for none.
	ALPNNegotiated string `json:"alpn_negotiated"`
	// OCSPStapled is true when the server stapled an OCSP response.
	OCSPStapled bool `json:"ocsp_stapled"`
	// Chain is the chain as presented, leaf first.
	Chain []Certificate `json:"chain"`
}

// Certificate describes one presented certificate.
type Certificate struct {
	// Subject is the subject DN as crypto/x509 prints it.
	Subject string `json:"subject"`
	// Issuer is the issuer DN.
	Issuer string `json:"issuer"`
	// Serial is the serial number in hex.
	Serial string `json:"serial"`
	// NotBefore and NotAfter bound the validity, in UTC.
	NotBefore time.Time `json:"not_before"`
	// NotAfter is when the certificate expires.
	NotAfter time.Time `json:"not_after"`
	// DaysLeft is whole days from Options.Now to NotAfter; negative once
	// expired.
	DaysLeft int `json:"days_left"`
	// SHA256 is the hex SHA-256 of the DER certificate (TLSA x 0 1,
	// POSH), SPKISHA256 of its SubjectPublicKeyInfo (TLSA x 1 1).
	SHA256 string `json:"sha256"`
	// SPKISHA256 is the hex SHA-256 of the SubjectPublicKeyInfo.
	SPKISHA256 string `json:"spki_sha256"`
	// KeyType is "RSA", "ECDSA" or "Ed25519"; KeySize its size in bits
	// (the curve's for ECDSA).
	KeyType string `json:"key_type"`
	// KeySize is the key size in bits.
	KeySize int `json:"key_size"`
	// SignatureAlgorithm is as crypto/x509 names it.
	SignatureAlgorithm string `json:"signature_algorithm"`
	// EKU are the extended key usages: "serverAuth", "clientAuth",
	// "any", other names, or dotted OIDs; empty means unrestricted.
	EKU []string `json:"eku"`
	// IsCA is true for a CA certificate.
	IsCA bool `json:"is_ca"`
}

// Dialback is what an s2s endpoint offers of Server Dialback (XEP-0220).
// Prosody advertises the feature before and after TLS; ejabberd only
// after, with <errors/>; older servers only declare the namespace.
type Dialback struct {
	// Offered is true when the dialback feature is advertised, before or
	// after TLS. The fallback the manifesto allows is dialback after TLS
	// (AfterTLS).
	Offered bool `json:"offered"`
	// BeforeTLS and AfterTLS say where the feature was offered.
	BeforeTLS bool `json:"before_tls"`
	// AfterTLS is true when the feature is offered after TLS.
	AfterTLS bool `json:"after_tls"`
	// Errors is true when the feature carries <errors/>.
	Errors bool `json:"errors"`
	// StreamNamespace is true when a server stream header declared
	// xmlns:db='jabber:server:dialback'.
	StreamNamespace bool `json:"stream_namespace"`
}

// External is the outcome of a SASL EXTERNAL attempt.
type External struct {
	// Offered is true when the features after TLS offer EXTERNAL.
	Offered bool `json:"offered"`
	// Attempted is true when <auth mechanism='EXTERNAL'/> was sent.
	Attempted bool `json:"attempted"`
	// Result is "success", "failure", "not-offered" (not attempted, the
	// server did not offer it), "not-reached" (the stream never got that
	// far) or "error" (the attempt broke off; see Error).
	Result string `json:"result"`
	// Condition and Text are the SASL failure's, verbatim.
	Condition string `json:"condition,omitempty"`
	// Text is the failure's <text/>.
	Text string `json:"text,omitempty"`
	// Error says why the attempt broke off (result "error").
	Error string `json:"error,omitempty"`
}

// DANE is the TLSA verdict for one endpoint, from pinning.Verifier.
type DANE struct {
	// Owner is the TLSA owner name, _PORT._tcp.HOST.
	Owner string `json:"owner"`
	// Status is the target's pinning status (match, no-match, no-tlsa,
	// unvalidated, ...).
	Status pinning.TargetStatus `json:"status"`
	// Applies is true when DANE peers use the records (they exist and the
	// SRV and TLSA answers were DNSSEC-validated).
	Applies bool `json:"applies"`
	// TLSAValidated is true when the TLSA answer carried the AD bit.
	TLSAValidated bool `json:"tlsa_validated"`
	// Matched is true when a published record authenticates the chain
	// this address presented to the pinning check.
	Matched bool `json:"matched"`
	// Records are the published records, each with its verdict.
	Records []pinning.RecordCheck `json:"records"`
	// Notes say what follows, for people.
	Notes []string `json:"notes"`
}

// Full holds the Options.Full extras of one endpoint.
type Full struct {
	// Scan is the TLS scan (tlsscan.Report: versions, TLS 1.2 and 1.3
	// suites, preference, non-forward-secret suites); null when no
	// scanner is wired or the endpoint never reached TLS.
	Scan *tlsscan.Report `json:"scan"`
	// SNI compares the certificate presented with and without SNI; null
	// when the endpoint never reached TLS.
	SNI *SNICheck `json:"sni"`
	// Notes say what was left out and why.
	Notes []string `json:"notes"`
}

// SNICheck compares the certificate presented with SNI (the domain) and
// without any.
type SNICheck struct {
	// WithSNI and WithoutSNI are the leaves' SHA-256, hex; WithoutSNI is
	// empty when that handshake failed (Error says why).
	WithSNI string `json:"with_sni_sha256"`
	// WithoutSNI is the leaf's SHA-256 without SNI.
	WithoutSNI string `json:"without_sni_sha256"`
	// Same is true when both are the same certificate.
	Same bool `json:"same"`
	// WithoutSNICertificate describes the leaf presented without SNI
	// when it differs, and WithoutSNIValid says whether it would still
	// authenticate the domain for the service.
	WithoutSNICertificate *Certificate `json:"without_sni_certificate,omitempty"`
	// WithoutSNIValid is true when that certificate authenticates the
	// domain for the service too.
	WithoutSNIValid bool `json:"without_sni_valid"`
	// Error says why the handshake without SNI failed.
	Error string `json:"error,omitempty"`
}

// Timings are the durations of an endpoint's phases in milliseconds;
// zero for phases that did not run.
type Timings struct {
	// DNS is the SRV lookup plus the target's address lookup.
	DNS float64 `json:"dns"`
	// Connect is the TCP connect.
	Connect float64 `json:"connect"`
	// Stream is the stream header and features before TLS.
	Stream float64 `json:"stream"`
	// StartTLS is <starttls/> and <proceed/>.
	StartTLS float64 `json:"starttls"`
	// TLS is the handshake.
	TLS float64 `json:"tls"`
	// Features is the stream restart over TLS (header and features).
	Features float64 `json:"features"`
	// Auth is the SASL EXTERNAL attempt.
	Auth float64 `json:"auth"`
	// Full is the scan and the SNI comparison.
	Full float64 `json:"full"`
	// Total is from the start of the probe to the end of the endpoint.
	Total float64 `json:"total"`
}

// Finding codes of an endpoint (Endpoint.Findings). They are part of the
// --json contract.
const (
	// FindingPlainBeforeTLS: SASL PLAIN is offered before TLS, so a
	// client may send its password in the clear.
	FindingPlainBeforeTLS = "plain-before-tls"
	// FindingSASLBeforeTLS: other SASL mechanisms are offered before TLS.
	FindingSASLBeforeTLS = "sasl-before-tls"
	// FindingDialbackBeforeTLS: dialback is offered before TLS without
	// STARTTLS being required: s2s may run unencrypted.
	FindingDialbackBeforeTLS = "dialback-before-tls"
	// FindingStartTLSOptional: STARTTLS is offered without <required/>.
	FindingStartTLSOptional = "starttls-optional"
	// FindingNoStartTLS: STARTTLS is not offered at all.
	FindingNoStartTLS = "no-starttls"
	// FindingOldTLS: the negotiated version is older than TLS 1.2.
	FindingOldTLS = "tls-version-old"
	// FindingNoForwardSecrecy: the negotiated suite lacks forward secrecy.
	FindingNoForwardSecrecy = "no-forward-secrecy"
	// FindingALPNNotNegotiated: direct TLS without ALPN agreement.
	FindingALPNNotNegotiated = "alpn-not-negotiated"
	// FindingNoDialback: an s2s endpoint offers no dialback.
	FindingNoDialback = "dialback-not-offered"
	// FindingNoFrom: an s2s probe without Options.From; servers may hide
	// EXTERNAL and dialback from it.
	FindingNoFrom = "no-from"
	// FindingExternalNotOffered: a client certificate was given but
	// EXTERNAL is not offered after TLS.
	FindingExternalNotOffered = "external-not-offered"
	// FindingExternalFailed: SASL EXTERNAL was refused.
	FindingExternalFailed = "external-failed"
	// FindingSNIDifferent: without SNI the server presents another
	// certificate (Full).
	FindingSNIDifferent = "sni-certificate-differs"
	// FindingNoCertificate: the server completed TLS without a
	// certificate.
	FindingNoCertificate = "no-certificate"
)
