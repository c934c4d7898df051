package pinning

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DefaultCAATimeout bounds each DNS query of a CAAChecker when its
// Timeout is zero.
const DefaultCAATimeout = 5 * time.Second

// CAAChecker finds the CAA record set that applies to a name the way a
// CA does (RFC 8659 §3) and judges an issuance by it. Its resolver
// should validate DNSSEC: CAs do (CA/Browser Forum ballot SC-085v2,
// since 2026-03-15), and a name whose answers are bogus gets no
// certificate, whatever its records say.
type CAAChecker struct {
	// Resolver is the recursive resolver's HOST:PORT; empty means the
	// first nameserver of /etc/resolv.conf.
	Resolver string
	// Timeout bounds each query; DefaultCAATimeout when zero.
	Timeout time.Duration
}

// DNSSECBogusError means a validating resolver refuses a name's answers
// (SERVFAIL) that it gives with checking disabled: the zone's
// signatures or its DS do not verify. A CA that validates refuses every
// order for the name.
type DNSSECBogusError struct {
	// Name is the name queried, fully qualified; Resolver the resolver.
	Name, Resolver string
}

func (e *DNSSECBogusError) Error() string {
	return fmt.Sprintf("DNSSEC validation fails for %s: %s answers SERVFAIL, and answers with checking disabled (bogus signatures or a DS that matches no key)", e.Name, e.Resolver)
}

// Relevant returns the relevant CAA record set of name and the name
// that holds it (the name, a CNAME target the resolver followed, or the
// first parent with records), or no records and owner "" when no name up
// to the top-level domain has any. NXDOMAIN climbs on like an empty
// answer. A SERVFAIL that checking disabled cures is a
// *DNSSECBogusError.
func (c *CAAChecker) Relevant(ctx context.Context, name string) (owner string, rrs []*dns.CAA, err error) {
	resolver := c.Resolver
	if resolver == "" {
		if resolver, err = resolverFrom(DefaultResolvConf); err != nil {
			return "", nil, err
		}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultCAATimeout
	}
	labels := dns.SplitDomainName(strings.ToLower(dns.Fqdn(name)))
	for i := range labels {
		q := dns.Fqdn(strings.Join(labels[i:], "."))
		r, err := exchangeDNSSEC(ctx, resolver, q, dns.TypeCAA, timeout, false)
		if err != nil {
			return "", nil, fmt.Errorf("asking %s for %s CAA: %v", resolver, q, err)
		}
		switch r.Rcode {
		case dns.RcodeSuccess, dns.RcodeNameError:
		case dns.RcodeServerFailure:
			if cd, err := exchangeDNSSEC(ctx, resolver, q, dns.TypeCAA, timeout, true); err == nil && (cd.Rcode == dns.RcodeSuccess || cd.Rcode == dns.RcodeNameError) {
				return "", nil, &DNSSECBogusError{Name: q, Resolver: resolver}
			}
			return "", nil, fmt.Errorf("%s answered SERVFAIL for %s CAA, also with checking disabled: the zone's servers do not answer", resolver, q)
		default:
			return "", nil, fmt.Errorf("%s answered %s for %s CAA", resolver, dns.RcodeToString[r.Rcode], q)
		}
		if found := answers[*dns.CAA](r); len(found) > 0 {
			return found[0].Hdr.Name, found, nil
		}
	}
	return "", nil, nil
}

// Check judges an issuance by iss for name under its relevant CAA
// record set.
func (c *CAAChecker) Check(ctx context.Context, name string, iss CAAIssuer) (CAADecision, error) {
	owner, rrs, err := c.Relevant(ctx, name)
	if err != nil {
		return CAADecision{Name: dns.Fqdn(strings.ToLower(name))}, err
	}
	return EvaluateCAA(name, owner, rrs, iss), nil
}
