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
var limboDivergences = map[string]string{
	"pathlen::self-issued-certs-pathlen":                   "crypto/x509 counts self-issued intermediates against pathLenConstraint (RFC 5280 exempts them)",
	"pathlen::validation-ignores-pathlen-in-leaf":          "xmppcert refuses a CA certificate as a server's leaf (ca-as-leaf), stricter than RFC 5280 and crypto/x509",
	"pathlen::max-chain-depth-0-exhausted":                 "max_chain_depth is a harness option; crypto/x509 has no depth limit and we set none",
	"pathlen::max-chain-depth-1-exhausted":                 "max_chain_depth is a harness option; crypto/x509 has no depth limit and we set none",
	"rfc5280::aki::leaf-missing-aki":                       "crypto/x509 does not require the authorityKeyIdentifier extension",
	"rfc5280::aki::intermediate-missing-aki":               "crypto/x509 does not require the authorityKeyIdentifier extension",
	"rfc5280::aki::cross-signed-root-missing-aki":          "crypto/x509 does not require the authorityKeyIdentifier extension",
	"rfc5280::nc::permitted-dns-match-noncritical":         "crypto/x509 honours a non-critical nameConstraints extension (as webpki does)",
	"rfc5280::nc::permitted-dn-match":                      "directoryName constraints are unsupported: a critical one fails the chain (README, \"Identity rules\")",
	"rfc5280::nc::permitted-self-issued":                   "crypto/x509 applies name constraints to self-issued intermediates too",
	"rfc5280::nc::not-allowed-in-ee-noncritical":           "crypto/x509 ignores nameConstraints in an end-entity certificate",
	"rfc5280::nc::not-allowed-in-ee-critical":              "crypto/x509 ignores nameConstraints in an end-entity certificate",
	"rfc5280::san::noncritical-with-empty-subject":         "crypto/x509 does not require a critical SAN when the subject is empty",
	"rfc5280::serial::too-long":                            "crypto/x509 accepts serial numbers longer than 20 octets",
	"rfc5280::serial::zero":                                "crypto/x509 accepts a zero serial number",
	"rfc5280::ski::root-missing-ski":                       "crypto/x509 does not require the subjectKeyIdentifier extension",
	"rfc5280::ski::intermediate-missing-ski":               "crypto/x509 does not require the subjectKeyIdentifier extension",
	"rfc5280::ee-empty-issuer":                             "crypto/x509 accepts an empty issuer name that matches an empty subject",
	"rfc5280::ca-empty-subject":                            "crypto/x509 accepts a CA with an empty subject",
	"rfc5280::root-non-critical-basic-constraints":         "crypto/x509 does not require basicConstraints to be critical in a trust anchor",
	"rfc5280::root-inconsistent-ca-extensions":             "crypto/x509 does not cross-check cA=TRUE against keyUsage in a trust anchor",
	"rfc5280::leaf-ku-keycertsign":                         "crypto/x509 does not refuse keyCertSign in a leaf without cA",
	"webpki::aki::root-with-aki-missing-keyidentifier":     "CABF profile rule on trust anchors; crypto/x509 does not check it",
	"webpki::aki::root-with-aki-authoritycertissuer":       "CABF profile rule on trust anchors; crypto/x509 does not check it",
	"webpki::aki::root-with-aki-authoritycertserialnumber": "CABF profile rule on trust anchors; crypto/x509 does not check it",
	"webpki::aki::root-with-aki-all-fields":                "CABF profile rule on trust anchors; crypto/x509 does not check it",
	"webpki::aki::root-with-aki-ski-mismatch":              "CABF profile rule on trust anchors; crypto/x509 does not check it",
	"webpki::eku::ee-anyeku":                               "anyExtendedKeyUsage permits serverAuth for XMPP peers (RFC 5280); only CABF forbids it",
	"webpki::eku::ee-critical-eku":                         "a critical EKU is valid under RFC 5280; only CABF forbids it",
	"webpki::eku::ee-without-eku":                          "no EKU means any purpose for XMPP peers (RFC 5280); only CABF requires one",
	"webpki::eku::root-has-eku":                            "an EKU in a root constrains the chain (crypto/x509 nesting) but is not an error there",
	"webpki::san::san-critical-with-nonempty-subject":      "a critical SAN is valid under RFC 5280; only CABF forbids it beside a subject",
}

type limboCase struct {
	ID                     string   `json:"id"`
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

// TestX509Limbo runs the public x509-limbo suite through Verify with a
// DNS-ID (or IP-ID) reference, as the HTTPS service of an XMPP deployment
// checks it, and compares every verdict with the suite's.
func TestX509Limbo(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "x509-limbo-2023-12-02.json"))
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Testcases []limboCase `json:"testcases"`
	}
	if err := json.Unmarshal(data, &suite); err != nil {
		t.Fatal(err)
	}
	agree, diverge := 0, 0
	for _, tc := range suite.Testcases {
		got := limboVerdict(tc)
		want := tc.ExpectedResult == "SUCCESS"
		reason, listed := limboDivergences[tc.ID]
		switch {
		case got == want && listed:
			t.Errorf("%s: agrees now; remove it from limboDivergences", tc.ID)
		case got == want:
			agree++
		case listed:
			diverge++
			t.Logf("divergence %s: %s", tc.ID, reason)
		default:
			t.Errorf("%s: verdict %v, suite expects %s", tc.ID, got, tc.ExpectedResult)
		}
	}
	t.Logf("x509-limbo: %d of %d cases agree, %d listed divergences", agree, len(suite.Testcases), diverge)
}

func limboVerdict(tc limboCase) bool {
	roots := x509.NewCertPool()
	for _, p := range tc.TrustedCerts {
		c, err := parsePEMCert(p)
		if err != nil {
			return false
		}
		roots.AddCert(c)
	}
	leaf, err := parsePEMCert(tc.PeerCertificate)
	if err != nil {
		return false // crypto/x509 refuses to parse it: not valid
	}
	chain := []*x509.Certificate{leaf}
	for _, p := range tc.UntrustedIntermediates {
		c, err := parsePEMCert(p)
		if err != nil {
			return false
		}
		chain = append(chain, c)
	}
	at := time.Now()
	if tc.ValidationTime != nil {
		if at, err = time.Parse(time.RFC3339, *tc.ValidationTime); err != nil {
			return false
		}
	}
	res, err := Verify(chain, Options{Domain: tc.ExpectedPeerName.Value, Service: ServiceHTTPS, Roots: roots, CurrentTime: at})
	return err == nil && res.Valid
}

func parsePEMCert(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, os.ErrInvalid
	}
	return x509.ParseCertificate(block.Bytes)
}
