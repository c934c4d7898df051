package xmppaddr

import (
	"encoding/json"
	"fmt"
)

// Severity ranks a Finding. Any Error makes a Result invalid; warnings and
// information never do.
type Severity int

// Severities, least serious first.
const (
	Info Severity = iota
	Warning
	Error
)

var severityNames = [...]string{Info: "info", Warning: "warning", Error: "error"}

// String returns "info", "warning" or "error".
func (s Severity) String() string {
	if s < Info || s > Error {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// MarshalJSON writes the severity as its name, the stable form of --json.
func (s Severity) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads the name MarshalJSON writes, so that programs
// consuming --json output (and stored results) can decode findings.
func (s *Severity) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	for i, n := range severityNames {
		if n == name {
			*s = Severity(i)
			return nil
		}
	}
	return fmt.Errorf("unknown severity %q", name)
}

// Finding is one fact about a certificate that an operator should know:
// why it is not valid, what was ignored and why, or what a peer will do.
// Code is stable and meant for machines; Text is for people and may change.
type Finding struct {
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Text     string   `json:"text"`
}

func (f Finding) String() string { return f.Severity.String() + " " + f.Code + ": " + f.Text }

// Finding codes. They are part of the --json contract.
const (
	// Identity matching.
	CodeNoMatch          = "no-match"           // no presented identifier matches any reference identifier
	CodeCNIgnored        = "cn-ignored"         // a subject CN exists but the profile does not use it
	CodeCNOnly           = "cn-only"            // the identity is only in the CN, which RFC 9525 never uses
	CodeCNUsed           = "cn-used"            // matched through the CN under the rfc6125 profile
	CodeCNMultiple       = "cn-multiple"        // more than one CN attribute in the subject
	CodeSubjectInjection = "subject-injection"  // a subject attribute holds "CN=" text
	CodeWildcardApex     = "wildcard-apex"      // *.d presented, d referenced
	CodeWildcardDepth    = "wildcard-one-label" // *.d presented, a.b.d referenced
	CodeWrongService     = "srv-id-other-service"

	// SAN structure and individual entries.
	CodeSANAbsent         = "san-absent"
	CodeSANEmpty          = "san-empty"
	CodeSANMalformed      = "san-malformed"
	CodeSANTrailingData   = "san-trailing-data"
	CodeSANTooMany        = "san-too-many"
	CodeDNSNameInvalid    = "dnsname-invalid"
	CodeWildcardInvalid   = "wildcard-invalid"
	CodeSRVNameType       = "srvname-not-ia5string"
	CodeSRVNameProto      = "srvname-protocol-label"
	CodeSRVNameInvalid    = "srvname-invalid"
	CodeXmppAddrType      = "xmppaddr-not-utf8string"
	CodeXmppAddrNotDomain = "xmppaddr-not-bare-domain"
	CodeXmppAddrInvalid   = "xmppaddr-invalid"
	CodeOtherNameUnknown  = "othername-unknown"
	CodeOtherNameInvalid  = "othername-malformed"

	// Chain and policy.
	CodeChainUntrusted       = "chain-untrusted"
	CodeChainExpired         = "chain-expired"
	CodeChainInvalid         = "chain-invalid"
	CodeNameConstraint       = "name-constraint-violation"
	CodeEKUNoServerAuth      = "eku-no-server-auth"
	CodeEKUNoClientAuth      = "eku-no-client-auth"
	CodeExpiresSoon          = "expires-soon"
	CodeCriticalSANOtherOnly = "san-critical-othername-only"
	CodeChainOrder           = "chain-order" // the leaf is not the first certificate of the file
	CodeCALeaf               = "ca-as-leaf"  // the leaf is a CA certificate
	CodeWeakKey              = "weak-key"    // RSA under 2048 bits, or DSA
	CodeUnparseable          = "unparseable" // crypto/x509 cannot parse a certificate of the chain
)
