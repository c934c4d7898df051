// Package preflight checks, before an order goes to an ACME CA, what
// would make the CA refuse it, so that a refusal costs one line and not
// the CA's rate limit (README, "Commands", Pre-flight):
//
//   - CAA (RFC 8659, with RFC 8657's accounturi and validationmethods)
//     permits this CA, this account and a method the order offers, for
//     every name, judged as the CA does it (pinning.CAAChecker);
//   - DNSSEC for every name is not bogus: CAs validate (CA/Browser Forum
//     ballot SC-085v2, since 2026-03-15) and refuse a name whose answers
//     do not verify;
//   - for http-01 and tls-alpn-01, every name has an address to be
//     reached at, and a standalone responder's address is free;
//   - for dns-01 by RFC 2136, the zone's primary accepts the update key.
//
// It returns facts (a Report with a Finding per check); the order's
// issuer refuses with a *RefusedError.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/pinning"
)

// Checks a Finding reports on.
const (
	CheckCAA       = "caa"
	CheckDNSSEC    = "dnssec"
	CheckAddress   = "address"
	CheckDNSUpdate = "dns-update"
	CheckListen    = "listen"
)

// ACME challenge types, as CAA's validationmethods names them.
const (
	HTTP01    = "http-01"
	TLSALPN01 = "tls-alpn-01"
	DNS01     = "dns-01"
)

// DefaultTimeout bounds each DNS exchange when Checker.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// DNSUpdater is the dns-01 solver's access check
// (challenge.RFC2136.CheckAccess).
type DNSUpdater interface {
	CheckAccess(ctx context.Context, domain string) error
}

// Checker runs the pre-flight checks.
type Checker struct {
	// Resolver is the recursive resolver's HOST:PORT, which should
	// validate DNSSEC (a bogus name is found only through one); empty
	// means the first nameserver of /etc/resolv.conf.
	Resolver string
	// Timeout bounds each DNS exchange; DefaultTimeout when zero.
	Timeout time.Duration
	// DNSUpdate is the dns-01 solver by RFC 2136, whose key is checked
	// when the order offers dns-01; nil when dns-01 is solved otherwise
	// (a hook), which is not checked.
	DNSUpdate DNSUpdater
	// Listen are the addresses the standalone responders listen on, by
	// method (http-01, tls-alpn-01): each must be free when the order
	// offers its method, since the CA's validation would otherwise
	// reach the program holding it.
	Listen map[string]string
}

// Order is what is about to be ordered.
type Order struct {
	// Names are the DNS identifiers.
	Names []string
	// Issuer is the CA (its CAA identities; none when the CA names none
	// and none was configured, which leaves CAA unjudged), the account
	// and the methods the order offers.
	Issuer pinning.CAAIssuer
}

// Finding is one check of one name.
type Finding struct {
	// Name is the name checked (a listen address for CheckListen; empty
	// for a finding about the whole order); Check which check it is.
	Name  string `json:"name"`
	Check string `json:"check"`
	// OK is true when the check passed.
	OK bool `json:"ok"`
	// Detail says what was found, for people.
	Detail string `json:"detail"`
	// CAA is the CAA decision of a caa check.
	CAA *pinning.CAADecision `json:"caa,omitempty"`
}

// Report is the outcome of the checks.
type Report struct {
	// Findings are the checks, name by name, in order.
	Findings []Finding `json:"findings"`
	// Methods are the order's methods that CAA permits for every name:
	// the ones the order may be validated by.
	Methods []string `json:"methods"`
}

// Failed returns the findings that refuse the order.
func (r Report) Failed() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if !f.OK {
			out = append(out, f)
		}
	}
	return out
}

// RefusedError is an order the pre-flight refuses: at least one finding
// failed.
type RefusedError struct {
	// Report is the whole outcome, passing checks included.
	Report Report
}

// Error names the first failing check and how many others failed.
func (e *RefusedError) Error() string {
	failed := e.Report.Failed()
	if len(failed) == 0 {
		return "pre-flight refused the order"
	}
	s := fmt.Sprintf("pre-flight: %s %s: %s", failed[0].Check, strings.TrimSuffix(failed[0].Name, "."), failed[0].Detail)
	if len(failed) > 1 {
		s += fmt.Sprintf(" (and %d more failing checks)", len(failed)-1)
	}
	return s
}

// Run checks the order; its error is a *RefusedError carrying the report
// when a check fails. The report is returned either way.
func (c *Checker) Run(ctx context.Context, o Order) (Report, error) {
	r := Report{Findings: []Finding{}, Methods: slices.Clone(o.Issuer.Methods)}
	caa := &pinning.CAAChecker{Resolver: c.Resolver, Timeout: c.Timeout}
	for _, name := range o.Names {
		fqdn := dns.Fqdn(strings.ToLower(name))
		d, err := caa.Check(ctx, name, o.Issuer)
		var bogus *pinning.DNSSECBogusError
		switch {
		case errors.As(err, &bogus):
			r.Findings = append(r.Findings, Finding{Name: fqdn, Check: CheckDNSSEC, Detail: fmt.Sprintf("DNSSEC validation fails at %s (%s answers SERVFAIL, and answers with checking disabled): CAs validate DNSSEC and refuse every order for it; fix the zone's signatures or its DS at the parent", bogus.Name, bogus.Resolver)})
			continue
		case err != nil:
			r.Findings = append(r.Findings, Finding{Name: fqdn, Check: CheckCAA, Detail: "cannot read the CAA records: " + err.Error()})
			continue
		}
		r.Findings = append(r.Findings, Finding{Name: fqdn, Check: CheckDNSSEC, OK: true, Detail: "not bogus"})
		r.Findings = append(r.Findings, caaFinding(fqdn, d, o.Issuer))
		if d.Permitted && d.Reason == pinning.CAAPermitted {
			r.Methods = slices.DeleteFunc(r.Methods, func(m string) bool { return !slices.Contains(d.Methods, m) })
		}
	}
	if len(o.Issuer.Domains) > 0 && len(r.Methods) == 0 && len(r.Failed()) == 0 {
		r.Findings = append(r.Findings, Finding{Check: CheckCAA, Detail: fmt.Sprintf("the names' CAA records permit different validation methods, none of %s for all of them", strings.Join(o.Issuer.Methods, ", "))})
	}
	if slices.Contains(r.Methods, HTTP01) || slices.Contains(r.Methods, TLSALPN01) {
		for _, name := range o.Names {
			r.Findings = append(r.Findings, c.address(ctx, name))
		}
	}
	for _, m := range []string{HTTP01, TLSALPN01} {
		if addr := c.Listen[m]; addr != "" && slices.Contains(r.Methods, m) {
			f := Finding{Name: addr, Check: CheckListen, OK: true, Detail: "free for the " + m + " responder"}
			if ln, err := net.Listen("tcp", addr); err != nil {
				f.OK, f.Detail = false, fmt.Sprintf("the %s responder cannot listen there: %v; stop what holds it, or prove control another way", m, err)
			} else {
				ln.Close()
			}
			r.Findings = append(r.Findings, f)
		}
	}
	if slices.Contains(r.Methods, DNS01) && c.DNSUpdate != nil {
		for _, name := range o.Names {
			f := Finding{Name: dns.Fqdn(strings.ToLower(name)), Check: CheckDNSUpdate, OK: true, Detail: "the primary accepts the update key"}
			if err := c.DNSUpdate.CheckAccess(ctx, name); err != nil {
				f.OK, f.Detail = false, err.Error()
			}
			r.Findings = append(r.Findings, f)
		}
	}
	if len(r.Failed()) > 0 {
		return r, &RefusedError{Report: r}
	}
	return r, nil
}

// caaFinding phrases a CAA decision.
func caaFinding(fqdn string, d pinning.CAADecision, iss pinning.CAAIssuer) Finding {
	f := Finding{Name: fqdn, Check: CheckCAA, OK: d.Permitted, CAA: &d}
	switch {
	case d.Reason == pinning.CAANone:
		f.Detail = d.Detail + " (publish ours to bind the names to this account)"
	case d.Permitted:
		f.Detail = fmt.Sprintf("CAA at %s: %s", d.Owner, d.Detail)
	case len(iss.Domains) == 0:
		// The CA's identity is unknown: its records cannot be judged.
		f.OK = true
		f.Detail = fmt.Sprintf("%s restricts issuance (%s), and the CA names no CAA identity to compare: not judged", d.Owner, strings.Join(d.Records, "; "))
	default:
		f.Detail = fmt.Sprintf("CAA at %s: %s", d.Owner, d.Detail)
	}
	return f
}

// address checks that name has an A or AAAA record, which http-01 and
// tls-alpn-01 need for the CA to connect to.
func (c *Checker) address(ctx context.Context, name string) Finding {
	f := Finding{Name: dns.Fqdn(strings.ToLower(name)), Check: CheckAddress}
	r := net.DefaultResolver
	if c.Resolver != "" {
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, c.Resolver)
		}}
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addrs, err := r.LookupIPAddr(ctx, strings.TrimPrefix(name, "*."))
	var de *net.DNSError
	switch {
	case len(addrs) == 0 && (err == nil || errors.As(err, &de) && de.IsNotFound):
		f.Detail = "no A or AAAA record for the CA to validate http-01/tls-alpn-01 at; add one pointing at this host, or use dns-01"
	case err != nil && errors.As(err, &de):
		f.Detail = fmt.Sprintf("cannot look up its addresses for http-01/tls-alpn-01: %s", de.Err)
	case err != nil:
		f.Detail = fmt.Sprintf("cannot look up its addresses for http-01/tls-alpn-01: %v", err)
	default:
		f.OK = true
		var s []string
		local := false
		for _, a := range addrs {
			s = append(s, a.String())
			local = local || isLocal(a.IP)
		}
		f.Detail = "resolves to " + strings.Join(s, ", ")
		if local {
			f.Detail += ", an address of this host"
		} else {
			f.Detail += ", not an address of this host (fine when a NAT or a proxy forwards the CA's connection here)"
		}
	}
	return f
}

// isLocal reports whether ip is an address of one of this host's
// interfaces (a loopback address included).
func isLocal(ip net.IP) bool {
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}
