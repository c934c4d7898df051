package pinning

// Verifying what is published: `pin verify DOMAIN` resolves the XMPP
// services of a domain through a DNSSEC-validating resolver, looks up the
// TLSA records of every SRV target and port, connects to every address
// of every target as a peer would (STARTTLS or direct TLS), and compares
// the certificate chain each presents with every published record and
// with the pins the operator expects (the current key and the next one).
// Where a POSH fetcher is at hand it also says whether the domain's POSH
// documents pin what the servers present.

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/xmpptls"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// Defaults of a Verifier's fields, and the bounds it keeps to when DNS
// answers are larger than any sane deployment.
const (
	// DefaultVerifyTimeout bounds each DNS query and each connection.
	DefaultVerifyTimeout = 10 * time.Second
	// DefaultVerifyDeadline bounds a whole Verify.
	DefaultVerifyDeadline = 2 * time.Minute
	// MaxVerifyTargets is the most SRV targets checked per service;
	// further ones are reported as left out.
	MaxVerifyTargets = 16
	// MaxVerifyAddresses is the most addresses connected to per target.
	MaxVerifyAddresses = 4
	// verifyConcurrency is how many targets are checked at once.
	verifyConcurrency = 8
)

// DefaultResolvConf is where Verifier finds its resolver when
// Verifier.Resolver is empty.
const DefaultResolvConf = "/etc/resolv.conf"

// Verifier checks the pin data a domain publishes against what its XMPP
// servers present. The zero value is ready to use: it asks the first
// resolver of /etc/resolv.conf, which should validate DNSSEC (unbound on
// 127.0.0.1, say), or every TLSA answer is reported as unvalidated.
type Verifier struct {
	// Resolver is the HOST:PORT of a DNSSEC-validating recursive resolver.
	// Its AD bit is what "validated" means in the report, so it should be
	// on this host or reached over a trusted path. Empty means the first
	// nameserver of /etc/resolv.conf, port 53.
	Resolver string
	// Timeout bounds each DNS query and each connection (TCP, XMPP
	// negotiation and TLS handshake). Zero means DefaultVerifyTimeout.
	Timeout time.Duration
	// Deadline bounds the whole Verify, whatever the context says. Zero
	// means DefaultVerifyDeadline.
	Deadline time.Duration
	// From is this side's own domain, sent as the stream's from on s2s
	// connections (xmpp-server); servers decide on SASL EXTERNAL and
	// dialback by it, and some present a different certificate. Empty
	// sends no from.
	From string
	// Ports are the ports used for a service that has no SRV records (the
	// fallback to the domain itself, always STARTTLS). Missing entries
	// mean 5222 for xmpp-client and 5269 for xmpp-server.
	Ports map[xmppaddr.Service]uint16
	// Roots are the trust anchors of the PKIX validation that TLSA usages
	// 0 (PKIX-TA) and 1 (PKIX-EE) require, and that the report shows for
	// every chain. nil means the system roots.
	Roots *x509.CertPool
	// CurrentTime is the time certificates are validated at. Zero means
	// now.
	CurrentTime time.Time
	// Dial opens the TCP connections to XMPP servers. nil means a
	// net.Dialer. DNS queries always go to Resolver.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// POSH fetches the domain's POSH documents (RFC 7711). nil means a
	// POSHFetcher with the system roots and Timeout.
	POSH *POSHFetcher
	// NoPOSH skips POSH: the report then has no posh section.
	NoPOSH bool
}

// Expectation is what the operator expects a domain to publish, as TLSA
// record data without owner names (Name is ignored): typically the
// `3 1 1` pins of the lineage's current key and of its pre-made next key.
// Either may be empty; then nothing is expected of it.
type Expectation struct {
	// Current pins the key the servers should be presenting now.
	Current []TLSA `json:"current"`
	// Next pins the key the next renewal will switch to. Published ahead
	// of the switch, it keeps DANE peers connecting across it.
	Next []TLSA `json:"next"`
}

// TargetStatus is the verdict on one SRV target and port. The values are
// stable: scripts and alerts use them.
type TargetStatus string

// Target statuses, from worst to best. A target gets the first that
// applies.
const (
	// StatusDNSError: the TLSA query failed, or the A/AAAA queries did
	// (SERVFAIL from a validating resolver usually means a bogus
	// signature, and then DANE peers refuse to connect at all).
	StatusDNSError TargetStatus = "dns-error"
	// StatusUnreachable: no address of the target accepted a TCP
	// connection (or it has none).
	StatusUnreachable TargetStatus = "unreachable"
	// StatusTLSError: connections were made, but none got as far as a
	// certificate (no STARTTLS, <failure/>, a stream error, a failed
	// handshake).
	StatusTLSError TargetStatus = "tls-error"
	// StatusNoTLSA: there are no TLSA records at the endpoint: DANE is
	// not in use there.
	StatusNoTLSA TargetStatus = "no-tlsa"
	// StatusUnvalidated: TLSA records exist but their answer (or the SRV
	// answer that named the target) was not DNSSEC-validated, so DANE
	// does not apply (RFC 7673) and peers ignore the records.
	StatusUnvalidated TargetStatus = "unvalidated"
	// StatusNoMatch: validated TLSA records exist and some presented
	// chain matches none of them: DANE peers refuse that server.
	StatusNoMatch TargetStatus = "no-match"
	// StatusMatch: validated TLSA records exist and every presented chain
	// matches one of them.
	StatusMatch TargetStatus = "match"
)

// Report is the outcome of Verify. Its JSON form is the stable output of
// `pin verify --json`. Lists are empty rather than null.
type Report struct {
	Domain string `json:"domain"`
	// Resolver is the resolver that was asked.
	Resolver string `json:"resolver"`
	// CheckedAt is when the check ran (Verifier.CurrentTime if set).
	CheckedAt time.Time `json:"checked_at"`
	// OK is true when nothing is wrong: no Error, every service OK.
	OK bool `json:"ok"`
	// Services has one entry per service asked for, in that order.
	Services []ServiceReport `json:"services"`
	// Notes are facts about the check as a whole, for people.
	Notes []string `json:"notes"`
	// Error says why nothing could be checked (an invalid domain or
	// service, no resolver); empty otherwise.
	Error string `json:"error,omitempty"`
}

// ServiceReport is the part of a Report about one service.
type ServiceReport struct {
	Service xmppaddr.Service `json:"service"`
	// OK is true when the SRV lookup worked, every target is OK (see
	// TargetReport.OK) and POSH, where published, pins what is presented.
	OK  bool      `json:"ok"`
	SRV SRVReport `json:"srv"`
	// Targets has one entry per SRV target and port, in SRV order.
	Targets []TargetReport `json:"targets"`
	// POSH is the POSH check; nil when skipped (Verifier.NoPOSH).
	POSH *POSHReport `json:"posh,omitempty"`
}

// SRVReport is what the SRV lookup of a service found (XEP-0368: the
// STARTTLS and the direct TLS records, merged).
type SRVReport struct {
	// Names are the owner names asked for, STARTTLS first.
	Names []string `json:"names"`
	// Records are the SRV records, merged and sorted by priority, then
	// weight (heaviest first). "." records are not listed.
	Records []SRVRecord `json:"records"`
	// Validated is true when every SRV answer (including a denial that
	// any exist) carried the AD bit. When false, DANE does not apply to
	// the targets the records name.
	Validated bool `json:"validated"`
	// Fallback is true when there were no SRV records, so the domain
	// itself was checked on the fallback port with STARTTLS.
	Fallback bool `json:"fallback"`
	// NotOffered is true when the SRV records say the service is not
	// offered at all (a single "." target, RFC 2782).
	NotOffered bool `json:"not_offered"`
	// Notes say what follows from the answers, for people.
	Notes []string `json:"notes"`
	// Error says why the lookup failed; empty otherwise.
	Error string `json:"error,omitempty"`
}

// SRVRecord is one SRV record of a service.
type SRVRecord struct {
	// Name is the owner name, _xmpp-client._tcp.DOMAIN. or a sibling.
	Name     string `json:"name"`
	Target   string `json:"target"`
	Port     uint16 `json:"port"`
	Priority uint16 `json:"priority"`
	Weight   uint16 `json:"weight"`
	// DirectTLS is true for the _xmpps-* records of XEP-0368.
	DirectTLS bool `json:"direct_tls"`
}

// TargetReport is the verdict on one SRV target and port: its TLSA
// records, what each address presented, and how the two compare with
// each other and with the Expectation.
type TargetReport struct {
	Endpoint
	DirectTLS bool `json:"direct_tls"`
	// Owner is the TLSA owner name, _PORT._tcp.TARGET.
	Owner  string       `json:"owner"`
	Status TargetStatus `json:"status"`
	// OK is true when Status is match, or no-tlsa while nothing is
	// expected; every connection worked; no expected record is missing;
	// and a renewal would not break DANE.
	OK bool `json:"ok"`
	// TLSAValidated is true when the TLSA answer (records or their
	// denial) carried the AD bit.
	TLSAValidated bool `json:"tlsa_validated"`
	// DANEApplies is true when a DANE peer would use the records: they
	// exist, the TLSA answer was validated, and so was the SRV answer
	// that named the target (unless the target is the domain itself, the
	// fallback without SRV records, which no DNS answer chose).
	DANEApplies bool `json:"dane_applies"`
	// Addresses are the target's A and AAAA addresses.
	Addresses []string `json:"addresses"`
	// AddressesValidated is true when the A and AAAA answers carried the
	// AD bit.
	AddressesValidated bool `json:"addresses_validated"`
	// Connections has one entry per address connected to.
	Connections []Connection `json:"connections"`
	// Records are the published TLSA records, each with its verdict.
	Records []RecordCheck `json:"records"`
	// Matching are the records that authenticate a presented chain.
	Matching []TLSA `json:"matching"`
	// Stale are the records that authenticate no presented chain and are
	// not an expected pin either: left over from an earlier key or CA.
	// Only known when some connection presented a chain.
	Stale []TLSA `json:"stale"`
	// MissingCurrent and MissingNext are the expected pins that are not
	// published at this endpoint.
	MissingCurrent []TLSA `json:"missing_current"`
	MissingNext    []TLSA `json:"missing_next"`
	// RenewalWouldBreak is true when TLSA records are published here but
	// none would match the next key: switching keys now would leave DANE
	// peers with no matching record. A record survives the switch when it
	// is an expected next pin, or a CA record (usage 0 or 2) that matches
	// today's chain, assuming the next certificate comes from the same
	// CA. Without expected next pins it is false and a note says so.
	RenewalWouldBreak bool `json:"renewal_would_break"`
	// Notes say what follows, for people.
	Notes []string `json:"notes"`
	// Error is the DNS error behind dns-error or unreachable.
	Error string `json:"error,omitempty"`
}

// Connection is what one address of a target presented.
type Connection struct {
	// Address is the HOST:PORT connected to.
	Address string `json:"address"`
	// Failure is unreachable or tls-error when no chain was obtained;
	// empty otherwise.
	Failure TargetStatus `json:"failure,omitempty"`
	// Error says what went wrong, verbatim from the connection attempt.
	Error      string `json:"error,omitempty"`
	TLSVersion string `json:"tls_version,omitempty"`
	// ALPN is the negotiated ALPN protocol (direct TLS).
	ALPN string `json:"alpn,omitempty"`
	// Chain summarizes the presented chain, leaf first.
	Chain []CertInfo `json:"chain"`
	// PKIX is the PKIX verdict on the chain for the XMPP domain and
	// service (xmppaddr), as TLSA usages 0 and 1 and non-DANE peers
	// require it.
	PKIX *PKIXCheck `json:"pkix,omitempty"`
	// Matched is true when some published record authenticates the chain.
	Matched bool `json:"matched"`

	chain []*x509.Certificate
}

// CertInfo identifies a presented certificate.
type CertInfo struct {
	Subject  string    `json:"subject"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	// SHA256 is the hex SHA-256 of the DER certificate (TLSA x 0 1, POSH).
	SHA256 string `json:"sha256"`
	// SPKISHA256 is the hex SHA-256 of the SubjectPublicKeyInfo (TLSA x 1 1).
	SPKISHA256 string `json:"spki_sha256"`
}

// PKIXCheck is the part of an xmppaddr.Result the report shows.
type PKIXCheck struct {
	Valid bool `json:"valid"`
	// Findings are the errors and warnings behind the verdict.
	Findings []xmppaddr.Finding `json:"findings"`
}

// RecordCheck is the verdict on one published TLSA record.
type RecordCheck struct {
	Record TLSA `json:"record"`
	// Matches is true when the record authenticates at least one
	// presented chain by the rules of its usage.
	Matches bool `json:"matches"`
	// Expected names the expected pins the record is: "current", "next",
	// "current+next", or empty.
	Expected string `json:"expected,omitempty"`
	// Stale is true when the record neither matches nor is expected.
	Stale bool `json:"stale"`
	// Note explains a record whose data matches but that does not count,
	// or one that is malformed.
	Note string `json:"note,omitempty"`
}

// POSHReport is the POSH check of one service: the domain's document and
// whether it pins each target's presented certificate.
type POSHReport struct {
	Document POSHResult `json:"document"`
	// Pins has one entry per connection that presented a certificate.
	Pins []POSHPin `json:"pins"`
	// OK is false when a document is published but unusable, or a usable
	// one does not pin a presented certificate. Not publishing POSH at
	// all (or no web server) is fine.
	OK bool `json:"ok"`
}

// POSHPin says whether the POSH document pins the leaf one address of a
// target presented.
type POSHPin struct {
	Target  string `json:"target"`
	Port    uint16 `json:"port"`
	Address string `json:"address"`
	POSHPinCheck
}

// Verify checks the pin data of domain for services ("xmpp-client",
// "xmpp-server"; both when empty) against what its servers present and
// what expect says should be published. It never returns an error:
// everything, including why nothing could be checked, is in the Report.
func (v *Verifier) Verify(ctx context.Context, domain string, services []string, expect Expectation) Report {
	now := v.now()
	rep := Report{Domain: domain, CheckedAt: now, Services: []ServiceReport{}, Notes: []string{}}
	d, err := xmppaddr.CanonicalDomain(domain)
	if err != nil {
		rep.Error = fmt.Sprintf("domain %q: %v", domain, err)
		return rep
	}
	rep.Domain = d
	svcs, err := verifyServices(services)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	resolver, err := v.resolver()
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	rep.Resolver = resolver
	if note := resolverNote(resolver); note != "" {
		rep.Notes = append(rep.Notes, note)
	}
	for _, pin := range slices.Concat(expect.Current, expect.Next) {
		if raw, err := hex.DecodeString(pin.Data); err != nil || pin.validate(len(raw)) != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("expected pin %q is malformed and can never be published correctly", pin.String()))
		}
	}
	deadline := v.Deadline
	if deadline <= 0 {
		deadline = DefaultVerifyDeadline
	}
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()

	rep.OK = true
	for _, svc := range svcs {
		sr := v.verifyService(ctx, resolver, d, svc, expect)
		rep.OK = rep.OK && sr.OK
		rep.Services = append(rep.Services, sr)
	}
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("the check ran out of time (deadline %v): some results are timeouts", deadline))
	}
	return rep
}

// verifyServices checks the services asked for.
func verifyServices(services []string) ([]xmppaddr.Service, error) {
	if len(services) == 0 {
		return []xmppaddr.Service{xmppaddr.ServiceClient, xmppaddr.ServiceServer}, nil
	}
	var out []xmppaddr.Service
	for _, s := range services {
		svc, err := xmppaddr.ParseService(s)
		if err != nil || (svc != xmppaddr.ServiceClient && svc != xmppaddr.ServiceServer) {
			return nil, fmt.Errorf("service %q: pin verify checks xmpp-client and xmpp-server", s)
		}
		if !slices.Contains(out, svc) {
			out = append(out, svc)
		}
	}
	return out, nil
}

func (v *Verifier) now() time.Time {
	if !v.CurrentTime.IsZero() {
		return v.CurrentTime
	}
	return time.Now()
}

func (v *Verifier) timeout() time.Duration {
	if v.Timeout > 0 {
		return v.Timeout
	}
	return DefaultVerifyTimeout
}

// resolver returns Verifier.Resolver or the system's first nameserver.
func (v *Verifier) resolver() (string, error) {
	if v.Resolver != "" {
		if _, _, err := net.SplitHostPort(v.Resolver); err != nil {
			return "", fmt.Errorf("resolver %q is not HOST:PORT (127.0.0.1:53, say)", v.Resolver)
		}
		return v.Resolver, nil
	}
	return resolverFrom(DefaultResolvConf)
}

// resolverFrom reads the first nameserver of a resolv.conf file.
func resolverFrom(path string) (string, error) {
	conf, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return "", fmt.Errorf("no resolver given and %s is unreadable (%v): name a DNSSEC-validating resolver as HOST:PORT", path, err)
	}
	if len(conf.Servers) == 0 {
		return "", fmt.Errorf("no resolver given and %s names none: name a DNSSEC-validating resolver as HOST:PORT", path)
	}
	return net.JoinHostPort(conf.Servers[0], "53"), nil
}

// resolverNote warns when the AD bit comes over a network path.
func resolverNote(resolver string) string {
	host, _, _ := net.SplitHostPort(resolver)
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return ""
	}
	return fmt.Sprintf("the resolver %s is not on this host: its AD bit (\"validated\") is only as trustworthy as the network path to it; run a validating resolver such as unbound on 127.0.0.1 for answers you can rely on", resolver)
}

// query asks the resolver, with the DO and AD bits set so that a
// validating resolver says whether it validated the answer, over UDP
// and, when the answer is truncated, TCP. NXDOMAIN is an answer (with no
// records), any other failure an error.
func (v *Verifier) query(ctx context.Context, resolver, name string, qtype uint16) (*dns.Msg, error) {
	r, err := exchangeDNSSEC(ctx, resolver, name, qtype, v.timeout(), false)
	what := dns.Fqdn(name) + " " + dns.TypeToString[qtype]
	if err != nil {
		return nil, fmt.Errorf("asking %s for %s: %v", resolver, what, err)
	}
	switch r.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
		return r, nil
	case dns.RcodeServerFailure:
		return nil, fmt.Errorf("%s answered SERVFAIL for %s: a validating resolver does so when DNSSEC validation fails (bogus signatures, a broken DS), and DANE peers then refuse to connect; check the zone's signatures", resolver, what)
	}
	return nil, fmt.Errorf("%s answered %s for %s", resolver, dns.RcodeToString[r.Rcode], what)
}

// exchangeDNSSEC sends one recursive query with the DO and AD bits (and
// CD, checking disabled, when cd) over UDP and, when the answer is
// truncated, TCP, within timeout. Its error is the exchange's; the
// answer's rcode is the caller's to judge.
func exchangeDNSSEC(ctx context.Context, resolver, name string, qtype uint16, timeout time.Duration, cd bool) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true
	m.CheckingDisabled = cd
	m.SetEdns0(4096, true)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &dns.Client{Net: "udp", UDPSize: 4096, Timeout: timeout}
	r, _, err := c.ExchangeContext(ctx, m, resolver)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, resolver)
	}
	return r, err
}

// answers returns the records of type T in an answer section (after any
// CNAME chain the resolver followed).
func answers[T dns.RR](m *dns.Msg) []T {
	var out []T
	for _, rr := range m.Answer {
		if t, ok := rr.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// target is one place to connect to for a service.
type target struct {
	host   string
	port   uint16
	direct bool
}

// verifyService checks one service: SRV, then every target, then POSH.
func (v *Verifier) verifyService(ctx context.Context, resolver, domain string, svc xmppaddr.Service, expect Expectation) ServiceReport {
	sr := ServiceReport{Service: svc, Targets: []TargetReport{}}
	var targets []target
	sr.SRV, targets = v.lookupSRV(ctx, resolver, domain, svc)
	if sr.SRV.Error != "" {
		return sr
	}

	// POSH does not depend on the targets: fetch it meanwhile.
	var posh POSHResult
	var poshDone chan struct{}
	if !v.NoPOSH {
		poshDone = make(chan struct{})
		go func() {
			defer close(poshDone)
			f := v.POSH
			if f == nil {
				f = &POSHFetcher{Timeout: v.timeout()}
			}
			posh = f.Fetch(ctx, domain, string(svc))
		}()
	}

	sr.Targets = make([]TargetReport, len(targets))
	var wg sync.WaitGroup
	sem := make(chan struct{}, verifyConcurrency)
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// The fallback target is the domain itself, not something an
			// unvalidated answer could have substituted.
			srvTrusted := sr.SRV.Validated || sr.SRV.Fallback
			sr.Targets[i] = v.verifyTarget(ctx, resolver, domain, svc, srvTrusted, t, expect)
		}()
	}
	wg.Wait()

	sr.OK = true
	for _, tr := range sr.Targets {
		sr.OK = sr.OK && tr.OK
	}
	if poshDone != nil {
		<-poshDone
		sr.POSH = poshReport(posh, sr.Targets)
		sr.OK = sr.OK && sr.POSH.OK
	}
	return sr
}

// Endpoints resolves the SRV records of domain's service through the
// Verifier's resolver as Verify does (XEP-0368: STARTTLS and direct TLS
// merged, "." meaning not offered) and returns where its TLSA records
// belong: every SRV target and port, or the domain on the fallback port
// when it has no SRV records. The report says what was found, including
// whether the answers were validated.
func (v *Verifier) Endpoints(ctx context.Context, domain string, svc xmppaddr.Service) ([]Endpoint, SRVReport, error) {
	resolver, err := v.resolver()
	if err != nil {
		return nil, SRVReport{}, err
	}
	rep, targets := v.lookupSRV(ctx, resolver, strings.TrimSuffix(dns.CanonicalName(domain), "."), svc)
	if rep.Error != "" {
		return nil, rep, fmt.Errorf("SRV records of %s for %s: %s", domain, svc, rep.Error)
	}
	out := []Endpoint{}
	for _, t := range targets {
		out = append(out, Endpoint{Target: t.host, Port: t.port})
	}
	return out, rep, nil
}

// lookupSRV resolves the STARTTLS and direct TLS SRV records of a service
// and returns the targets to check, in order.
func (v *Verifier) lookupSRV(ctx context.Context, resolver, domain string, svc xmppaddr.Service) (SRVReport, []target) {
	name := "_" + string(svc) + "._tcp." + domain + "."
	directName := "_" + strings.Replace(string(svc), "xmpp-", "xmpps-", 1) + "._tcp." + domain + "."
	rep := SRVReport{Names: []string{name, directName}, Records: []SRVRecord{}, Notes: []string{}, Validated: true}
	found, dots := 0, 0
	for _, q := range []struct {
		name   string
		direct bool
	}{{name, false}, {directName, true}} {
		m, err := v.query(ctx, resolver, q.name, dns.TypeSRV)
		if err != nil {
			rep.Error = err.Error()
			rep.Validated = false
			return rep, nil
		}
		rep.Validated = rep.Validated && m.AuthenticatedData
		srvs := answers[*dns.SRV](m)
		if len(srvs) > 0 {
			found++
		}
		if len(srvs) == 1 && srvs[0].Target == "." {
			dots++
			kind := "STARTTLS"
			if q.direct {
				kind = "direct TLS"
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s has the target \".\": %s is not offered (RFC 2782)", q.name, kind))
			continue
		}
		for _, s := range srvs {
			if s.Target == "." {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s mixes \".\" with other targets; \".\" is ignored", q.name))
				continue
			}
			rep.Records = append(rep.Records, SRVRecord{
				Name: dns.CanonicalName(s.Hdr.Name), Target: strings.TrimSuffix(dns.CanonicalName(s.Target), "."),
				Port: s.Port, Priority: s.Priority, Weight: s.Weight, DirectTLS: q.direct,
			})
		}
	}
	if !rep.Validated {
		rep.Notes = append(rep.Notes, "SRV answers not DNSSEC-validated: TLSA cannot be trusted (RFC 7673: DANE does not apply to targets found through unvalidated SRV records)")
	}
	switch {
	case found == 0:
		rep.Fallback = true
		port := v.fallbackPort(svc)
		rep.Notes = append(rep.Notes, fmt.Sprintf("no SRV records: checking %s on port %d with STARTTLS, as peers fall back to", domain, port))
		return rep, []target{{host: domain, port: port}}
	case dots == found && len(rep.Records) == 0:
		rep.NotOffered = true
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s is not offered at %s", svc, domain))
		return rep, nil
	}
	// XEP-0368: one order for both kinds of record. Weight is a random
	// choice among equals for a client; a report wants a stable order.
	slices.SortStableFunc(rep.Records, func(a, b SRVRecord) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(b.Weight, a.Weight))
	})
	var targets []target
	for _, r := range rep.Records {
		t := target{host: r.Target, port: r.Port, direct: r.DirectTLS}
		if slices.Contains(targets, t) {
			continue
		}
		if len(targets) == MaxVerifyTargets {
			rep.Notes = append(rep.Notes, fmt.Sprintf("more than %d SRV targets: the rest are not checked", MaxVerifyTargets))
			break
		}
		targets = append(targets, t)
	}
	return rep, targets
}

func (v *Verifier) fallbackPort(svc xmppaddr.Service) uint16 {
	if p, ok := v.Ports[svc]; ok && p != 0 {
		return p
	}
	if svc == xmppaddr.ServiceServer {
		return 5269
	}
	return 5222
}

// verifyTarget checks one target: its TLSA records, its addresses, what
// each presents, and how they compare.
func (v *Verifier) verifyTarget(ctx context.Context, resolver, domain string, svc xmppaddr.Service, srvValidated bool, t target, expect Expectation) TargetReport {
	ep := Endpoint{Target: t.host, Port: t.port}
	tr := TargetReport{
		Endpoint: ep, DirectTLS: t.direct, Owner: ep.Owner(),
		Addresses: []string{}, Connections: []Connection{}, Records: []RecordCheck{}, Matching: []TLSA{},
		Stale: []TLSA{}, MissingCurrent: []TLSA{}, MissingNext: []TLSA{}, Notes: []string{},
	}
	var published []TLSA
	tlsaErr := ""
	if m, err := v.query(ctx, resolver, tr.Owner, dns.TypeTLSA); err != nil {
		tlsaErr = err.Error()
	} else {
		tr.TLSAValidated = m.AuthenticatedData
		for _, rr := range answers[*dns.TLSA](m) {
			published = append(published, FromRR(rr))
		}
	}
	tr.DANEApplies = tlsaErr == "" && len(published) > 0 && srvValidated && tr.TLSAValidated

	addrs, addrErr, addrDNSErr := v.lookupAddrs(ctx, resolver, t.host, &tr)
	for _, a := range addrs {
		tr.Connections = append(tr.Connections, v.connect(ctx, net.JoinHostPort(a, strconv.Itoa(int(t.port))), domain, svc, t.direct))
	}

	evaluate(&tr, published, domain, t.host, svc, v.Roots, v.now(), expect)

	switch {
	case tlsaErr != "":
		tr.Status, tr.Error = StatusDNSError, tlsaErr
	case len(tr.Connections) == 0 && addrDNSErr:
		tr.Status, tr.Error = StatusDNSError, addrErr
	case len(tr.Connections) == 0:
		tr.Status, tr.Error = StatusUnreachable, addrErr
	case !slices.ContainsFunc(tr.Connections, func(c Connection) bool { return c.Failure != StatusUnreachable }):
		tr.Status = StatusUnreachable
	case !slices.ContainsFunc(tr.Connections, func(c Connection) bool { return c.Failure == "" }):
		tr.Status = StatusTLSError
	case len(published) == 0:
		tr.Status = StatusNoTLSA
	case !tr.DANEApplies:
		tr.Status = StatusUnvalidated
	case slices.ContainsFunc(tr.Connections, func(c Connection) bool { return c.Failure == "" && !c.Matched }):
		tr.Status = StatusNoMatch
	default:
		tr.Status = StatusMatch
	}

	if len(published) > 0 && !tr.TLSAValidated {
		tr.Notes = append(tr.Notes, "TLSA answer not DNSSEC-validated: TLSA cannot be trusted, and DANE peers ignore these records (RFC 7673); sign the zone of "+tr.Owner)
	}
	if len(published) > 0 && tr.TLSAValidated && !srvValidated {
		tr.Notes = append(tr.Notes, "the SRV answer that names this target is not DNSSEC-validated: TLSA cannot be trusted, and DANE peers ignore these records (RFC 7673); sign the domain's zone")
	}
	if tr.Status == StatusNoTLSA && len(expect.Current)+len(expect.Next) > 0 {
		tr.Notes = append(tr.Notes, "no TLSA records at "+tr.Owner+", but pins are expected there: publish them (xmppcert pin tlsa)")
	}

	allConnected := !slices.ContainsFunc(tr.Connections, func(c Connection) bool { return c.Failure != "" })
	statusOK := tr.Status == StatusMatch || tr.Status == StatusNoTLSA && len(expect.Current)+len(expect.Next) == 0
	tr.OK = statusOK && allConnected && len(tr.MissingCurrent) == 0 && len(tr.MissingNext) == 0 && !tr.RenewalWouldBreak
	return tr
}

// lookupAddrs resolves a target's A and AAAA records, at most
// MaxVerifyAddresses of them, and notes whether they were validated. It
// returns the addresses and, when there are none, why and whether it was
// for a DNS failure.
func (v *Verifier) lookupAddrs(ctx context.Context, resolver, host string, tr *TargetReport) ([]string, string, bool) {
	tr.AddressesValidated = true
	var addrs, errs []string
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m, err := v.query(ctx, resolver, host, qtype)
		if err != nil {
			errs = append(errs, err.Error())
			tr.AddressesValidated = false
			continue
		}
		tr.AddressesValidated = tr.AddressesValidated && m.AuthenticatedData
		for _, rr := range m.Answer {
			switch a := rr.(type) {
			case *dns.A:
				addrs = append(addrs, a.A.String())
			case *dns.AAAA:
				addrs = append(addrs, a.AAAA.String())
			}
		}
	}
	tr.Addresses = append(tr.Addresses, addrs...)
	if !tr.AddressesValidated && len(addrs) > 0 {
		tr.Notes = append(tr.Notes, "A/AAAA answers not DNSSEC-validated: an attacker on the path could send peers elsewhere")
	}
	if len(addrs) > MaxVerifyAddresses {
		tr.Notes = append(tr.Notes, fmt.Sprintf("%d addresses: only the first %d are connected to", len(addrs), MaxVerifyAddresses))
		addrs = addrs[:MaxVerifyAddresses]
	}
	if len(addrs) == 0 {
		if len(errs) > 0 {
			return nil, strings.Join(errs, "; "), true
		}
		return nil, fmt.Sprintf("%s has no A or AAAA records", host), false
	}
	return addrs, "", false
}

// connect gets the chain one address presents.
func (v *Verifier) connect(ctx context.Context, addr, domain string, svc xmppaddr.Service, direct bool) Connection {
	c := Connection{Address: addr, Chain: []CertInfo{}}
	cfg := xmpptls.Config{Domain: domain, Service: svc, DirectTLS: direct, Timeout: v.timeout(), Dial: v.Dial}
	if svc == xmppaddr.ServiceServer {
		cfg.From = v.From
	}
	res, err := xmpptls.Dial(ctx, addr, cfg)
	if err != nil {
		var de *xmpptls.DialError
		c.Failure = StatusTLSError
		if errors.As(err, &de) {
			c.Failure = StatusUnreachable
		}
		c.Error = err.Error()
		return c
	}
	c.chain = res.State.PeerCertificates
	if len(c.chain) == 0 {
		c.Failure, c.Error = StatusTLSError, "the server presented no certificate"
		return c
	}
	c.TLSVersion = tls.VersionName(res.State.Version)
	c.ALPN = res.State.NegotiatedProtocol
	for _, cert := range c.chain {
		c.Chain = append(c.Chain, certInfo(cert))
	}
	return c
}

func certInfo(c *x509.Certificate) CertInfo {
	d := DigestsOf(c)
	return CertInfo{
		Subject: c.Subject.String(), Issuer: c.Issuer.String(), NotAfter: c.NotAfter.UTC(),
		SHA256: Hex(d.CertSHA256), SPKISHA256: Hex(d.SPKISHA256),
	}
}

// evaluate compares the published records, the presented chains and the
// expectation, and fills in the target's record verdicts and lists.
func evaluate(tr *TargetReport, published []TLSA, domain, host string, svc xmppaddr.Service, roots *x509.CertPool, now time.Time, expect Expectation) {
	opts := xmppaddr.Options{Domain: domain, Service: svc, Roots: roots, CurrentTime: now}
	pkix := make([]*xmppaddr.Result, len(tr.Connections))
	chains := 0
	for i := range tr.Connections {
		c := &tr.Connections[i]
		if c.chain == nil {
			continue
		}
		chains++
		if res, err := xmppaddr.Verify(c.chain, opts); err == nil {
			pkix[i] = res
			c.PKIX = &PKIXCheck{Valid: res.Valid, Findings: []xmppaddr.Finding{}}
			for _, f := range res.Findings {
				if f.Severity >= xmppaddr.Warning {
					c.PKIX.Findings = append(c.PKIX.Findings, f)
				}
			}
		}
	}

	survives := false
	for _, r := range published {
		rc := RecordCheck{Record: r, Expected: expectedAs(r, expect)}
		if raw, err := hex.DecodeString(r.Data); err != nil || len(raw) == 0 || r.validate(len(raw)) != nil {
			rc.Note = "malformed record: it can never match"
			if err == nil && len(raw) > 0 {
				rc.Note = "malformed record (" + r.validate(len(raw)).Error() + "): it can never match"
			}
		} else {
			for i := range tr.Connections {
				c := &tr.Connections[i]
				if c.chain == nil {
					continue
				}
				ok, note := authenticates(r, c.chain, pkix[i], domain, host, svc, roots, now)
				if ok {
					rc.Matches, c.Matched = true, true
				} else if note != "" && rc.Note == "" {
					rc.Note = note
				}
			}
		}
		if rc.Matches {
			rc.Note = ""
			tr.Matching = append(tr.Matching, r)
		}
		if !rc.Matches && rc.Expected == "" && chains > 0 {
			rc.Stale = true
			tr.Stale = append(tr.Stale, r)
		}
		if slices.ContainsFunc(expect.Next, r.samePin) || rc.Matches && (r.Usage == UsagePKIXTA || r.Usage == UsageDANETA) {
			survives = true
		}
		tr.Records = append(tr.Records, rc)
	}
	if len(tr.Stale) > 0 {
		tr.Notes = append(tr.Notes, fmt.Sprintf("%d stale record(s): they match no presented certificate and are not an expected pin; remove them once no server presents their key", len(tr.Stale)))
	}
	if len(published) > 0 && chains == 0 {
		tr.Notes = append(tr.Notes, "no chain was presented, so which records are stale is unknown")
	}

	for _, p := range expect.Current {
		if !slices.ContainsFunc(published, p.samePin) {
			tr.MissingCurrent = append(tr.MissingCurrent, bare(p))
		}
	}
	for _, p := range expect.Next {
		if !slices.ContainsFunc(published, p.samePin) {
			tr.MissingNext = append(tr.MissingNext, bare(p))
		}
	}
	switch {
	case len(published) == 0:
	case len(expect.Next) == 0:
		tr.Notes = append(tr.Notes, "no next-key pin given: whether a renewal with a new key would break DANE is unknown")
	case !survives:
		tr.RenewalWouldBreak = true
		tr.Notes = append(tr.Notes, "renewal would break: no published record matches the next key; publish its pin (xmppcert pin tlsa) and wait at least the TTL before switching")
	}
}

// authenticates says whether r authenticates chain by the rules of its
// usage (RFC 7671, RFC 7673 for SRV), and when data that matches does not
// count, why.
func authenticates(r TLSA, chain []*x509.Certificate, pkix *xmppaddr.Result, domain, host string, svc xmppaddr.Service, roots *x509.CertPool, now time.Time) (bool, string) {
	switch r.Usage {
	case UsageDANEEE:
		// DANE-EE: the key alone; no name, no expiry.
		return r.MatchesChain(chain), ""
	case UsagePKIXEE, UsagePKIXTA:
		m := r.MatchesChain(chain)
		if !m && r.Usage == UsagePKIXTA && pkix != nil && pkix.Chain != nil {
			// The CA may be a root the server does not send.
			m = r.MatchesChain(pkix.Chain)
		}
		if !m {
			return false, ""
		}
		if pkix == nil || !pkix.Valid {
			return false, fmt.Sprintf("the data matches, but usage %d also requires PKIX validation for %s, which fails%s", r.Usage, domain, firstError(pkix))
		}
		return true, ""
	case UsageDANETA:
		// DANE-TA: the matched certificate is the trust anchor; the chain
		// below it must validate and name the service domain or, as RFC
		// 7673 allows, the SRV target host.
		var last string
		for _, ta := range chain[1:] {
			if !r.Matches(ta) {
				continue
			}
			pool := x509.NewCertPool()
			pool.AddCert(ta)
			res, err := xmppaddr.Verify(chain, xmppaddr.Options{Domain: domain, Service: svc, Roots: pool, CurrentTime: now})
			if err == nil && res.Valid {
				return true, ""
			}
			if host != domain {
				if alt, err := xmppaddr.Verify(chain, xmppaddr.Options{Domain: host, Service: xmppaddr.ServiceHTTPS, Roots: pool, CurrentTime: now}); err == nil && alt.Valid {
					return true, ""
				}
			}
			last = fmt.Sprintf("the data matches a CA certificate, but the chain does not validate to it for %s%s", domain, firstError(res))
		}
		return false, last
	}
	return false, fmt.Sprintf("usage %d is not defined", r.Usage)
}

// firstError is ": " and the first error finding of res, or "".
func firstError(res *xmppaddr.Result) string {
	if res == nil {
		return ""
	}
	for _, f := range res.Findings {
		if f.Severity == xmppaddr.Error {
			return ": " + f.Text
		}
	}
	return ""
}

// samePin says whether two records carry the same record data, owner
// names aside.
func (r TLSA) samePin(o TLSA) bool {
	return r.Usage == o.Usage && r.Selector == o.Selector && r.MatchingType == o.MatchingType && strings.EqualFold(r.Data, o.Data)
}

func bare(p TLSA) TLSA {
	p.Name = ""
	p.Data = strings.ToLower(p.Data)
	return p
}

// expectedAs names the expected pins r is.
func expectedAs(r TLSA, expect Expectation) string {
	cur, next := slices.ContainsFunc(expect.Current, r.samePin), slices.ContainsFunc(expect.Next, r.samePin)
	switch {
	case cur && next:
		return "current+next"
	case cur:
		return "current"
	case next:
		return "next"
	}
	return ""
}

// poshReport compares a fetched POSH document with the leaf of every
// connection that presented one.
func poshReport(res POSHResult, targets []TargetReport) *POSHReport {
	pr := &POSHReport{Document: res, Pins: []POSHPin{}, OK: true}
	switch res.Code {
	case POSHNotFound, POSHUnreachable, POSHHTTPError, POSHHTTPRedirect, POSHTLSError, POSHInvalidInput:
		// Not published (or no web server): nothing claims anything.
		return pr
	}
	if !res.Usable() {
		pr.OK = false
		return pr
	}
	for _, t := range targets {
		for _, c := range t.Connections {
			if len(c.chain) == 0 {
				continue
			}
			check := res.Match(c.chain[0])
			pr.Pins = append(pr.Pins, POSHPin{Target: t.Target, Port: t.Port, Address: c.Address, POSHPinCheck: check})
			if check.Code != POSHPinMatch {
				pr.OK = false
			}
		}
	}
	return pr
}
