package xmppaddr_test

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/xmppcert/xmppcert/xmppaddr"
)

// limboDivergences are the x509-limbo cases where xmppcert's verdict
// differs from the suite's, each with the reason we accept the difference.
// The test fails if a case listed here starts to agree, so the list stays true.
var limboGoOwn = map[string]string{
	"crl::revoked-certificate-with-crl":                         "crypto/x509 does not check revocation; check takes no CRL",
	"crl::crlnumber-missing":                                    "crypto/x509 does not check revocation; check takes no CRL",
	"crl::crlnumber-critical":                                   "crypto/x509 does not check revocation; check takes no CRL",
	"crl::issuer-missing-crlsign":                               "crypto/x509 does not check revocation; check takes no CRL",
	"pathological::nc-dos-1":                                    "crypto/x509 evaluates the 2,048 x 2,048 name constraints instead of refusing them (technically valid, the suite expects a refusal)",
	"pathological::nc-dos-2":                                    "crypto/x509 evaluates the 2,048 x 2,048 name constraints instead of refusing them (technically valid, the suite expects a refusal)",
	"rfc5280::eku::ee-eku-empty":                                "crypto/x509 accepts an extKeyUsage extension with no usages",
	"rfc5280::nc::invalid-dnsname-leading-period":               "crypto/x509 accepts a DNS name constraint with a leading period, as OpenSSL does",
	"rfc5280::nc::nc-forbids-othername-noop":                    "crypto/x509 refuses an otherName constraint it cannot evaluate, even with no otherName on the path",
	"rfc5280::pc::ica-noncritical-pc":                           "crypto/x509 does not require policyConstraints to be critical",
	"rfc5280::validity::notafter-fractional":                    "crypto/x509 compares validity with sub-second precision (an ambiguity RFC 5280 leaves open)",
	"webpki::cn::ipv4-hex-mismatch":                             "CABF rule on the CN; RFC 9525 never reads the CN when a SAN exists, and crypto/x509 neither",
	"webpki::cn::ipv4-leading-zeros-mismatch":                   "CABF rule on the CN; RFC 9525 never reads the CN when a SAN exists, and crypto/x509 neither",
	"webpki::cn::ipv6-uppercase-mismatch":                       "CABF rule on the CN; RFC 9525 never reads the CN when a SAN exists, and crypto/x509 neither",
	"webpki::cn::ipv6-uncompressed-mismatch":                    "CABF rule on the CN; RFC 9525 never reads the CN when a SAN exists, and crypto/x509 neither",
	"webpki::cn::ipv6-non-rfc5952-mismatch":                     "CABF rule on the CN; RFC 9525 never reads the CN when a SAN exists, and crypto/x509 neither",
	"webpki::cn::punycode-not-in-san":                           "CABF rule on the CN; RFC 9525 never reads the CN when a SAN exists, and crypto/x509 neither",
	"webpki::cn::not-in-san":                                    "CABF rule on the CN; RFC 9525 never reads the CN when a SAN exists, and crypto/x509 neither",
	"webpki::cn::case-mismatch":                                 "CABF rule on the CN; RFC 9525 never reads the CN when a SAN exists, and crypto/x509 neither",
	"webpki::san::public-suffix-private-namespace-wildcard-san": "crypto/x509 has no Public Suffix List; xmppcert refuses wildcards directly over a single label only",
	"webpki::forbidden-weak-rsa-key-in-root":                    "crypto/x509 accepts an RSA-1024 trust anchor; xmppcert's weak-key rule is about the leaf a server presents",
	"webpki::forbidden-rsa-not-divisible-by-8-in-root":          "CABF rule on RSA key sizes; crypto/x509 accepts RSA-2052",
	"webpki::forbidden-rsa-key-not-divisible-by-8-in-leaf":      "CABF rule on RSA key sizes; crypto/x509 accepts RSA-2052, and so does OpenSSL",
	"pathlen::self-issued-certs-pathlen":                        "crypto/x509 counts self-issued intermediates against pathLenConstraint (RFC 5280 exempts them)",
	"pathlen::max-chain-depth-0-exhausted":                      "max_chain_depth is a harness option; crypto/x509 has no depth limit and we set none",
	"pathlen::max-chain-depth-1-exhausted":                      "max_chain_depth is a harness option; crypto/x509 has no depth limit and we set none",
	"rfc5280::aki::leaf-missing-aki":                            "crypto/x509 does not require the authorityKeyIdentifier extension",
	"rfc5280::aki::intermediate-missing-aki":                    "crypto/x509 does not require the authorityKeyIdentifier extension",
	"rfc5280::aki::cross-signed-root-missing-aki":               "crypto/x509 does not require the authorityKeyIdentifier extension",
	"rfc5280::nc::permitted-dns-match-noncritical":              "crypto/x509 honours a non-critical nameConstraints extension (as webpki does)",
	"rfc5280::nc::permitted-dn-match":                           "directoryName constraints are unsupported: a critical one fails the chain (README, \"Identity rules\")",
	"rfc5280::nc::permitted-self-issued":                        "crypto/x509 applies name constraints to self-issued intermediates too",
	"rfc5280::nc::not-allowed-in-ee-noncritical":                "crypto/x509 ignores nameConstraints in an end-entity certificate",
	"rfc5280::nc::not-allowed-in-ee-critical":                   "crypto/x509 ignores nameConstraints in an end-entity certificate",
	"rfc5280::san::noncritical-with-empty-subject":              "crypto/x509 does not require a critical SAN when the subject is empty",
	"rfc5280::serial::too-long":                                 "crypto/x509 accepts serial numbers longer than 20 octets",
	"rfc5280::serial::zero":                                     "crypto/x509 accepts a zero serial number",
	"rfc5280::ski::root-missing-ski":                            "crypto/x509 does not require the subjectKeyIdentifier extension",
	"rfc5280::ski::intermediate-missing-ski":                    "crypto/x509 does not require the subjectKeyIdentifier extension",
	"rfc5280::ca-empty-subject":                                 "crypto/x509 accepts a CA with an empty subject",
	"rfc5280::root-non-critical-basic-constraints":              "crypto/x509 does not require basicConstraints to be critical in a trust anchor",
	"rfc5280::root-inconsistent-ca-extensions":                  "crypto/x509 does not cross-check cA=TRUE against keyUsage in a trust anchor",
	"rfc5280::leaf-ku-keycertsign":                              "crypto/x509 does not refuse keyCertSign in a leaf without cA",
	"webpki::aki::root-with-aki-missing-keyidentifier":          "CABF profile rule on trust anchors; crypto/x509 does not check it",
	"webpki::aki::root-with-aki-authoritycertissuer":            "CABF profile rule on trust anchors; crypto/x509 does not check it",
	"webpki::aki::root-with-aki-authoritycertserialnumber":      "CABF profile rule on trust anchors; crypto/x509 does not check it",
	"webpki::aki::root-with-aki-all-fields":                     "CABF profile rule on trust anchors; crypto/x509 does not check it",
	"webpki::aki::root-with-aki-ski-mismatch":                   "CABF profile rule on trust anchors; crypto/x509 does not check it",
	"webpki::eku::ee-anyeku":                                    "anyExtendedKeyUsage permits serverAuth for XMPP peers (RFC 5280); only CABF forbids it",
	"webpki::eku::ee-critical-eku":                              "a critical EKU is valid under RFC 5280; only CABF forbids it",
	"webpki::eku::ee-without-eku":                               "no EKU means any purpose for XMPP peers (RFC 5280); only CABF requires one",
	"webpki::eku::root-has-eku":                                 "an EKU in a root constrains the chain (crypto/x509 nesting) but is not an error there",
	"webpki::san::san-critical-with-nonempty-subject":           "a critical SAN is valid under RFC 5280; only CABF forbids it beside a subject",
}

// limboStricter are the cases xmppcert refuses although crypto/x509
// accepts them, each with the rule that refuses it.
var limboStricter = map[string]string{
	"rfc5280::ca-as-leaf":                         "xmppcert refuses a CA certificate as a server's leaf (ca-as-leaf), stricter than RFC 5280 and crypto/x509",
	"pathlen::validation-ignores-pathlen-in-leaf": "xmppcert refuses a CA certificate as a server's leaf (ca-as-leaf), stricter than RFC 5280 and crypto/x509",
}

type limboCase struct {
	ID                     string   `json:"id"`
	ValidationKind         string   `json:"validation_kind"`
	TrustedCerts           []string `json:"trusted_certs"`
	UntrustedIntermediates []string `json:"untrusted_intermediates"`
	PeerCertificate        string   `json:"peer_certificate"`
	ValidationTime         *string  `json:"validation_time"`
	ExpectedResult         string   `json:"expected_result"`
	ExpectedPeerName       *struct {
		Kind  string `json:"kind"`
		Value string `json:"value"`
	} `json:"expected_peer_name"`
}

// TestX509Limbo runs the x509-limbo suite (its 2026 head, in testdata)
// through Verify with a DNS-ID (or IP-ID) reference, as the HTTPS service
// of an XMPP deployment checks it, and compares every verdict with the
// suite's. Every divergence must be listed: in limboGoOwn when plain
// crypto/x509, run on the same case, gives the same verdict as xmppcert
// (the test checks it), in limboStricter when xmppcert refuses what
// crypto/x509 accepts (checked too). CLIENT cases and a case without a
// peer name are not comparable: xmppcert judges server certificates for
// a name.
func TestX509Limbo(t *testing.T) {
	cases := readLimbo(t)
	agree, goOwn, stricter, skipped := 0, 0, 0, 0
	seen := map[string]bool{}
	for _, tc := range cases {
		seen[tc.ID] = true
		if tc.ValidationKind != "SERVER" || tc.ExpectedPeerName == nil {
			skipped++
			continue
		}
		got, plain := limboVerdicts(t, tc)
		want := tc.ExpectedResult == "SUCCESS"
		goReason, isGo := limboGoOwn[tc.ID]
		strictReason, isStrict := limboStricter[tc.ID]
		switch {
		case got == want && (isGo || isStrict):
			t.Errorf("%s: agrees now; remove it from the divergences", tc.ID)
		case got == want:
			agree++
		case isGo && plain == got:
			goOwn++
			t.Logf("divergence %s (crypto/x509's own verdict): %s", tc.ID, goReason)
		case isStrict && plain && !got:
			stricter++
			t.Logf("divergence %s (stricter than crypto/x509): %s", tc.ID, strictReason)
		case isGo:
			t.Errorf("%s: listed as crypto/x509's own verdict, but crypto/x509 says %v and xmppcert %v", tc.ID, plain, got)
		case isStrict:
			t.Errorf("%s: listed as stricter, but crypto/x509 says %v and xmppcert %v", tc.ID, plain, got)
		default:
			t.Errorf("%s: verdict %v (crypto/x509: %v), suite expects %s", tc.ID, got, plain, tc.ExpectedResult)
		}
	}
	for _, list := range []map[string]string{limboGoOwn, limboStricter} {
		for id := range list {
			if !seen[id] {
				t.Errorf("%s is listed as a divergence but is not in the suite", id)
			}
		}
	}
	t.Logf("x509-limbo 2026: %d of %d comparable cases agree; %d divergences are crypto/x509's own verdict, %d are xmppcert rules stricter than crypto/x509; %d CLIENT or nameless cases not comparable",
		agree, agree+goOwn+stricter, goOwn, stricter, skipped)
}

// readLimbo reads the x509-limbo 2026 cases from testdata.
func readLimbo(t *testing.T) []limboCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "x509-limbo-2026.json"))
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Testcases []limboCase `json:"testcases"`
	}
	if err := json.Unmarshal(data, &suite); err != nil {
		t.Fatal(err)
	}
	return suite.Testcases
}

// limboVerdicts returns xmppcert's verdict on the case and plain
// crypto/x509's (Certificate.Verify with the peer name and serverAuth).
func limboVerdicts(t *testing.T, tc limboCase) (xmppcert, plain bool) {
	leaf, untrusted, anchors, err := limboChain(tc)
	if err != nil {
		return false, false // crypto/x509 refuses to parse it: not valid for either
	}
	roots, intermediates := x509.NewCertPool(), x509.NewCertPool()
	for _, c := range anchors {
		roots.AddCert(c)
	}
	for _, c := range untrusted {
		intermediates.AddCert(c)
	}
	at := limboTime(t, tc)
	chain := append([]*x509.Certificate{leaf}, untrusted...)
	res, err := Verify(chain, Options{Domain: tc.ExpectedPeerName.Value, Service: ServiceHTTPS, Roots: roots, CurrentTime: at})
	xmppcert = err == nil && res.Valid
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: tc.ExpectedPeerName.Value, Roots: roots, Intermediates: intermediates, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return xmppcert, err == nil
}

// limboTime is the case's validation time, or now when it has none.
func limboTime(t *testing.T, tc limboCase) time.Time {
	t.Helper()
	if tc.ValidationTime == nil {
		return time.Now()
	}
	at, err := time.Parse(time.RFC3339, *tc.ValidationTime)
	if err != nil {
		t.Fatalf("%s: validation_time %q: %v", tc.ID, *tc.ValidationTime, err)
	}
	return at
}

func parsePEMCert(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, os.ErrInvalid
	}
	return x509.ParseCertificate(block.Bytes)
}
