package pinning

import (
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// CAA (RFC 8659) with the ACME parameters of RFC 8657: which CA may
// issue for a name, from which ACME account, validated how. A record
// set that names our CA with our account URI binds the names to
// xmppcert's account: another account at the same CA, even one that
// passes validation (an interception of the server's traffic), gets no
// certificate.

// CAA property tags (RFC 8659 §4; contactemail and contactphone are the
// CA/Browser Forum's, issuemail RFC 9495's, issuevmc the BIMI group's).
const (
	CAAIssue     = "issue"
	CAAIssueWild = "issuewild"
	CAAIodef     = "iodef"
)

// knownCAATags are the property tags a CA understands; an unknown one
// with the critical flag forbids issuance (RFC 8659 §4.1).
var knownCAATags = []string{CAAIssue, CAAIssueWild, CAAIodef, "contactemail", "contactphone", "issuemail", "issuevmc"}

// CAA parameters of RFC 8657.
const (
	CAAAccountURI        = "accounturi"
	CAAValidationMethods = "validationmethods"
)

// MaxCAAValue bounds the length of a CAA value parsed: a DNS record
// holds at most 64 KiB, a real value a few hundred bytes.
const MaxCAAValue = 4096

// CAAParam is one parameter of an issue or issuewild value.
type CAAParam struct {
	// Tag is the parameter's name (accounturi, validationmethods, ...).
	Tag string `json:"tag"`
	// Value is its value, printable ASCII without spaces.
	Value string `json:"value"`
}

// CAAValue is an issue or issuewild property's value (RFC 8659 §4.2):
// the issuer's domain name, empty for ";" (no CA may issue by this
// property), and its parameters in order.
type CAAValue struct {
	Issuer string     `json:"issuer"`
	Params []CAAParam `json:"params,omitempty"`
}

// Param returns the values of every parameter named tag (compared
// without regard to case).
func (v CAAValue) Param(tag string) []string {
	var out []string
	for _, p := range v.Params {
		if strings.EqualFold(p.Tag, tag) {
			out = append(out, p.Value)
		}
	}
	return out
}

// String is the value in zone-file form, "letsencrypt.org;
// accounturi=https://...; validationmethods=dns-01".
func (v CAAValue) String() string {
	s := v.Issuer
	if s == "" {
		s = ";"
	}
	for i, p := range v.Params {
		if i > 0 || v.Issuer != "" {
			s += "; "
		} else {
			s += " "
		}
		s += p.Tag + "=" + p.Value
	}
	return s
}

// ParseCAAValue parses an issue or issuewild value by RFC 8659's
// grammar: issuer-domain-name (LDH labels) then parameters "tag=value"
// separated by ";", white space allowed around them. An error means the
// value is malformed, which authorises no CA.
func ParseCAAValue(s string) (CAAValue, error) {
	if len(s) > MaxCAAValue {
		return CAAValue{}, fmt.Errorf("longer than %d bytes", MaxCAAValue)
	}
	var v CAAValue
	issuer, rest, hasParams := strings.Cut(s, ";")
	issuer = strings.Trim(issuer, " \t")
	if issuer != "" {
		if err := ldhDomain(issuer); err != nil {
			return CAAValue{}, fmt.Errorf("issuer %q: %v", issuer, err)
		}
		v.Issuer = strings.ToLower(issuer)
	}
	if !hasParams {
		return v, nil
	}
	for part := range strings.SplitSeq(rest, ";") {
		part = strings.Trim(part, " \t")
		if part == "" {
			continue // "issuer;" and "; ;" carry no parameter
		}
		tag, value, ok := strings.Cut(part, "=")
		tag, value = strings.Trim(tag, " \t"), strings.Trim(value, " \t")
		if !ok || !caaTag(tag) {
			return CAAValue{}, fmt.Errorf("parameter %q is not tag=value", part)
		}
		for _, c := range value {
			if c < 0x21 || c > 0x7e {
				return CAAValue{}, fmt.Errorf("parameter %s: the value holds %q, outside printable ASCII without spaces", tag, c)
			}
		}
		v.Params = append(v.Params, CAAParam{Tag: tag, Value: value})
	}
	return v, nil
}

// ParseCAAIdentity checks a CA's CAA issuer domain name ("letsencrypt.org")
// and returns it in lower case.
func ParseCAAIdentity(s string) (string, error) {
	if err := ldhDomain(s); err != nil || len(s) > 253 {
		return "", fmt.Errorf("%q is not a CAA issuer domain name such as letsencrypt.org", s)
	}
	return strings.ToLower(s), nil
}

// ldhDomain checks a domain of letter-digit-hyphen labels.
func ldhDomain(s string) error {
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("empty or over-long label")
		}
		for i, c := range label {
			alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
			if !alnum && (c != '-' || i == 0 || i == len(label)-1) {
				return fmt.Errorf("label %q is not letters, digits and inner hyphens", label)
			}
		}
	}
	return nil
}

// caaTag: (ALPHA / DIGIT) *( *("-") (ALPHA / DIGIT) ).
func caaTag(s string) bool {
	return s != "" && ldhDomain(s) == nil && !strings.Contains(s, ".")
}

// CAAIssuer is who asks to issue: the CA, the ACME account and the
// validation methods of an order.
type CAAIssuer struct {
	// Domains are the CA's issuer domain names (its ACME directory's
	// caaIdentities, such as "letsencrypt.org"); a property naming any of
	// them names the CA.
	Domains []string `json:"domains"`
	// AccountURI is the ACME account URL the order comes from; empty when
	// there is no account yet, which no accounturi parameter matches.
	AccountURI string `json:"account_uri,omitempty"`
	// Methods are the ACME challenge types the order may be validated
	// by ("http-01", "tls-alpn-01", "dns-01").
	Methods []string `json:"methods"`
}

// CAAReason says why a record set permits or forbids an issuance.
type CAAReason string

// CAA reasons.
const (
	// CAANone: no CAA record anywhere up the tree: any CA may issue.
	CAANone CAAReason = "no-caa"
	// CAANoIssueProperty: records exist, none restricts issuance (iodef
	// only, say): any CA may issue.
	CAANoIssueProperty CAAReason = "no-issue-property"
	// CAAPermitted: a property names the CA and its parameters hold.
	CAAPermitted CAAReason = "permitted"
	// CAACANotListed: the properties name other CAs only.
	CAACANotListed CAAReason = "ca-not-listed"
	// CAANoCA: the properties authorise no CA at all (issue ";").
	CAANoCA CAAReason = "no-ca-may-issue"
	// CAAOtherAccount: the CA is named, bound to another account.
	CAAOtherAccount CAAReason = "account-mismatch"
	// CAAMethodNotAllowed: the CA is named for validation methods this
	// order does not offer.
	CAAMethodNotAllowed CAAReason = "method-not-allowed"
	// CAAUnknownCritical: a property with the critical flag that no CA
	// understands: none may issue.
	CAAUnknownCritical CAAReason = "unknown-critical"
)

// CAADecision is what one name's relevant CAA record set says about an
// issuance.
type CAADecision struct {
	// Name is the name asked about, fully qualified.
	Name string `json:"name"`
	// Owner is where the relevant record set was found: Name, one of its
	// parents, or a CNAME target; empty when none was.
	Owner string `json:"owner,omitempty"`
	// Records are the relevant record set, in zone-file syntax.
	Records []string `json:"records"`
	// Permitted is the verdict.
	Permitted bool `json:"permitted"`
	// Reason is why.
	Reason CAAReason `json:"reason"`
	// Methods are the validation methods the record that permits allows
	// of the order's (all of them without validationmethods).
	Methods []string `json:"methods,omitempty"`
	// Detail says what the records allow instead, for people: the CAs
	// named, the account or methods bound.
	Detail string `json:"detail,omitempty"`
}

// EvaluateCAA decides whether iss may issue for name (a wildcard when it
// starts with "*.") under rrs, the relevant record set found at owner
// (RFC 8659 §4, RFC 8657 §3 and §4).
func EvaluateCAA(name, owner string, rrs []*dns.CAA, iss CAAIssuer) CAADecision {
	d := CAADecision{Name: dns.Fqdn(strings.ToLower(name)), Owner: owner, Records: []string{}}
	for _, rr := range rrs {
		d.Records = append(d.Records, caaData(rr))
	}
	if len(rrs) == 0 {
		d.Permitted, d.Reason, d.Detail = true, CAANone, "no CAA records up to the top-level domain: any CA may issue"
		return d
	}
	for _, rr := range rrs {
		if rr.Flag&128 != 0 && !slices.Contains(knownCAATags, strings.ToLower(rr.Tag)) {
			d.Reason, d.Detail = CAAUnknownCritical, fmt.Sprintf("the critical property %q is one no CA understands", rr.Tag)
			return d
		}
	}
	tag := CAAIssue
	if strings.HasPrefix(name, "*.") && slices.ContainsFunc(rrs, func(rr *dns.CAA) bool { return strings.EqualFold(rr.Tag, CAAIssueWild) }) {
		tag = CAAIssueWild
	}
	var props []*dns.CAA
	for _, rr := range rrs {
		if strings.EqualFold(rr.Tag, tag) {
			props = append(props, rr)
		}
	}
	if len(props) == 0 {
		d.Permitted, d.Reason, d.Detail = true, CAANoIssueProperty, "no "+tag+" property: any CA may issue"
		return d
	}
	var named, others []string
	var accounts, methods []string
	for _, rr := range props {
		v, err := ParseCAAValue(rr.Value)
		if err != nil || v.Issuer == "" {
			continue // malformed or ";": authorises no CA
		}
		if !slices.ContainsFunc(iss.Domains, func(s string) bool { return strings.EqualFold(s, v.Issuer) }) {
			others = append(others, v.Issuer)
			continue
		}
		named = append(named, v.Issuer)
		acct := v.Param(CAAAccountURI)
		if len(acct) > 1 || len(acct) == 1 && acct[0] != iss.AccountURI {
			accounts = append(accounts, acct...)
			continue
		}
		allowed := iss.Methods
		if vm := v.Param(CAAValidationMethods); len(vm) > 0 {
			var listed []string
			for _, m := range vm {
				listed = append(listed, strings.Split(m, ",")...)
			}
			allowed = slices.DeleteFunc(slices.Clone(iss.Methods), func(m string) bool { return !slices.Contains(listed, m) })
			if len(allowed) == 0 {
				methods = append(methods, listed...)
				continue
			}
		}
		d.Permitted, d.Reason, d.Methods = true, CAAPermitted, allowed
		d.Detail = fmt.Sprintf("%s may issue, validated by %s", v.Issuer, strings.Join(allowed, ", "))
		return d
	}
	switch {
	case len(accounts) > 0:
		d.Reason = CAAOtherAccount
		d.Detail = fmt.Sprintf("%s may issue only to account %s", strings.Join(slices.Compact(named), ", "), strings.Join(accounts, ", "))
		if iss.AccountURI == "" {
			d.Detail += "; there is no account of ours yet to compare"
		} else {
			d.Detail += ", not to ours (" + iss.AccountURI + ")"
		}
	case len(methods) > 0:
		d.Reason = CAAMethodNotAllowed
		d.Detail = fmt.Sprintf("%s may validate only by %s, and this order offers %s", strings.Join(slices.Compact(named), ", "), strings.Join(slices.Compact(methods), ", "), strings.Join(iss.Methods, ", "))
	case len(others) > 0:
		d.Reason = CAACANotListed
		d.Detail = fmt.Sprintf("only %s may issue, not %s", strings.Join(slices.Compact(others), ", "), strings.Join(iss.Domains, " / "))
	default:
		d.Reason, d.Detail = CAANoCA, "the "+tag+" properties authorise no CA"
	}
	return d
}

// caaData is a CAA record's data in zone-file syntax: 0 issue "value".
func caaData(rr *dns.CAA) string {
	return fmt.Sprintf("%d %s %q", rr.Flag, rr.Tag, rr.Value)
}

// CAARecords are the records that let iss issue for each name and no
// other CA or account: one issue property per name naming the CA's
// first domain, with accounturi when iss has an account and
// validationmethods when it names methods. ttl is in seconds.
func CAARecords(names []string, iss CAAIssuer, ttl uint32) []*dns.CAA {
	if len(iss.Domains) == 0 {
		return nil
	}
	v := CAAValue{Issuer: iss.Domains[0]}
	if iss.AccountURI != "" {
		v.Params = append(v.Params, CAAParam{CAAAccountURI, iss.AccountURI})
	}
	if len(iss.Methods) > 0 {
		v.Params = append(v.Params, CAAParam{CAAValidationMethods, strings.Join(iss.Methods, ",")})
	}
	var out []*dns.CAA
	for _, n := range names {
		out = append(out, &dns.CAA{
			Hdr:  dns.RR_Header{Name: dns.Fqdn(strings.ToLower(n)), Rrtype: dns.TypeCAA, Class: dns.ClassINET, Ttl: ttl},
			Flag: 0, Tag: CAAIssue, Value: v.String(),
		})
	}
	return out
}
