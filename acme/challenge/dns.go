package challenge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/dnsupdate"
)

const (
	defaultPropagationTimeout = 2 * time.Minute
	defaultPollInterval       = 2 * time.Second
	defaultQueryTimeout       = 5 * time.Second
	defaultCleanUpTimeout     = 30 * time.Second
)

// Propagation says where and for how long the dns-01 solvers' Wait looks
// for the TXT record before the CA is told to validate. The zero value
// polls the zone's authoritative servers, found through the system
// resolver, for up to 2 minutes.
type Propagation struct {
	// Nameservers are authoritative servers to poll, as "host" or
	// "host:port" (port 53 when absent). For RFC2136 they are polled in
	// addition to its Server (list the secondaries of a hidden primary).
	// For DNSHook they replace the NS lookup, unless Resolver is set too.
	Nameservers []string
	// Resolver is a recursive resolver ("host" or "host:port") through
	// which the zone and its NS records (and their addresses) are looked
	// up; every server found is then polled directly. DNSHook uses the
	// first nameserver of /etc/resolv.conf when Resolver and Nameservers
	// are both empty; RFC2136 looks up NS records only when Resolver is
	// set.
	Resolver string
	// Timeout bounds the whole wait: 2 minutes when zero. A negative
	// Timeout turns the check off: Wait returns at once.
	Timeout time.Duration
	// Interval is the pause between two rounds of queries: 2 s when zero.
	Interval time.Duration
	// QueryTimeout bounds each DNS query: 5 s when zero.
	QueryTimeout time.Duration

	// nsPort is the port used for servers found by NS lookup: 53 unless a
	// test points it at a server on loopback.
	nsPort string
}

func (p Propagation) timeout() time.Duration {
	if p.Timeout == 0 {
		return defaultPropagationTimeout
	}
	return p.Timeout
}

func (p Propagation) interval() time.Duration {
	if p.Interval <= 0 {
		return defaultPollInterval
	}
	return p.Interval
}

func (p Propagation) queryTimeout() time.Duration {
	if p.QueryTimeout <= 0 {
		return defaultQueryTimeout
	}
	return p.QueryTimeout
}

// validate checks the addresses without touching the network.
func (p Propagation) validate() error {
	for _, ns := range p.Nameservers {
		if _, err := dnsupdate.HostPort(ns); err != nil {
			return fmt.Errorf("authoritative server: %w", err)
		}
	}
	if p.Resolver != "" {
		if _, err := dnsupdate.HostPort(p.Resolver); err != nil {
			return fmt.Errorf("resolver: %w", err)
		}
	}
	return nil
}

// nameserver is one server to poll: a label for messages and the
// addresses ("ip:port" or "host:port") under which it answers. It counts
// as seeing the record when one of its addresses answers with it.
type nameserver struct {
	label string
	addrs []string
}

// wait polls every server in fixed, plus the zone's NS found through
// the resolver when discover is true, until each of them answers the
// TXT query for fqdn with value, or the timeout passes. zone may be ""
// (looked up through the resolver). hint ends the timeout message with
// what the operator should check.
func (p Propagation) wait(ctx context.Context, fqdn, value, zone string, fixed []nameserver, discover bool, hint string) error {
	if p.Timeout < 0 {
		return nil
	}
	timeout := p.timeout()
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	servers := slices.Clone(fixed)
	for _, ns := range p.Nameservers {
		addr, err := dnsupdate.HostPort(ns)
		if err != nil {
			return fmt.Errorf("dns-01: authoritative server: %w", err)
		}
		servers = append(servers, nameserver{label: addr, addrs: []string{addr}})
	}
	if discover {
		found, err := p.discover(wctx, fqdn, zone)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("dns-01: waiting for %s: %w", fqdn, ctx.Err())
			}
			return err
		}
		servers = append(servers, found...)
	}
	if len(servers) == 0 {
		return fmt.Errorf("dns-01: no authoritative server to check %s on", fqdn)
	}

	pending := servers
	last := make(map[string]string, len(servers))
	for {
		var still []nameserver
		for _, s := range pending {
			ok, detail := p.sees(wctx, s, fqdn, value)
			if !ok {
				// A query cut short by our own deadline says less
				// than the answer before it.
				if _, seen := last[s.label]; !seen || wctx.Err() == nil {
					last[s.label] = detail
				}
				still = append(still, s)
			}
		}
		pending = still
		if len(pending) == 0 {
			return nil
		}
		t := time.NewTimer(p.interval())
		select {
		case <-wctx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return fmt.Errorf("dns-01: waiting for %s: %w", fqdn, ctx.Err())
			}
			var parts []string
			for _, s := range pending {
				parts = append(parts, s.label+": "+last[s.label])
			}
			return fmt.Errorf("dns-01: TXT record %s %q not visible after %s on %s; %s",
				fqdn, value, timeout, strings.Join(parts, "; "), hint)
		case <-t.C:
		}
	}
}

// sees reports whether one of s's addresses answers the TXT query for
// fqdn with value, and otherwise what it answered.
func (p Propagation) sees(ctx context.Context, s nameserver, fqdn, value string) (bool, string) {
	detail := "no answer"
	for _, addr := range s.addrs {
		if ctx.Err() != nil {
			return false, detail
		}
		m := new(dns.Msg)
		m.SetQuestion(fqdn, dns.TypeTXT)
		m.RecursionDesired = false
		r, err := dnsupdate.Exchange(ctx, m, addr, p.queryTimeout())
		if err != nil {
			detail = err.Error()
			continue
		}
		if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
			detail = fmt.Sprintf("answered %s", dnsupdate.RcodeName(r.Rcode))
			continue
		}
		var others []string
		for _, rr := range r.Answer {
			txt, ok := rr.(*dns.TXT)
			if !ok || !strings.EqualFold(txt.Hdr.Name, fqdn) {
				continue
			}
			v := strings.Join(txt.Txt, "")
			if v == value {
				return true, ""
			}
			others = append(others, strconv.Quote(v))
		}
		if len(others) > 0 {
			detail = "only other values: " + strings.Join(others, " ")
		} else {
			detail = "no TXT record"
		}
		return false, detail
	}
	return false, detail
}

// discover finds the zone of fqdn (unless given) and the addresses of
// its NS through the resolver.
func (p Propagation) discover(ctx context.Context, fqdn, zone string) ([]nameserver, error) {
	resolver, err := p.resolver()
	if err != nil {
		return nil, err
	}
	qt := p.queryTimeout()
	if zone == "" {
		zone, err = dnsupdate.FindZone(ctx, resolver, fqdn, true, qt)
		if err != nil {
			return nil, zoneErr(err)
		}
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(zone), dns.TypeNS)
	r, err := dnsupdate.Exchange(ctx, m, resolver, qt)
	if err != nil {
		return nil, fmt.Errorf("dns-01: looking up the NS of %s through %s: %w", zone, resolver, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("dns-01: looking up the NS of %s through %s: %s", zone, resolver, dnsupdate.RcodeName(r.Rcode))
	}
	port := p.nsPort
	if port == "" {
		port = "53"
	}
	var out []nameserver
	for _, rr := range r.Answer {
		ns, ok := rr.(*dns.NS)
		if !ok || !strings.EqualFold(ns.Hdr.Name, dns.Fqdn(zone)) {
			continue
		}
		ips := glue(r, ns.Ns)
		if len(ips) == 0 {
			ips, err = lookupAddrs(ctx, resolver, ns.Ns, qt)
			if err != nil {
				return nil, err
			}
		}
		s := nameserver{label: strings.TrimSuffix(ns.Ns, ".")}
		for _, ip := range ips {
			s.addrs = append(s.addrs, net.JoinHostPort(ip, port))
		}
		if len(s.addrs) == 0 {
			return nil, fmt.Errorf("dns-01: nameserver %s of %s has no address", s.label, zone)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dns-01: %s has no NS records according to %s", zone, resolver)
	}
	return out, nil
}

func (p Propagation) resolver() (string, error) {
	if p.Resolver != "" {
		return dnsupdate.HostPort(p.Resolver)
	}
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil || len(conf.Servers) == 0 {
		return "", errors.New("dns-01: no resolver to find the zone's nameservers: /etc/resolv.conf lists none; give a resolver or the authoritative servers")
	}
	return net.JoinHostPort(conf.Servers[0], conf.Port), nil
}

// glue returns the addresses of host in r's additional section.
func glue(r *dns.Msg, host string) []string {
	var ips []string
	for _, rr := range r.Extra {
		switch a := rr.(type) {
		case *dns.A:
			if strings.EqualFold(a.Hdr.Name, host) {
				ips = append(ips, a.A.String())
			}
		case *dns.AAAA:
			if strings.EqualFold(a.Hdr.Name, host) {
				ips = append(ips, a.AAAA.String())
			}
		}
	}
	return ips
}

// lookupAddrs resolves host's A and AAAA records through the resolver,
// IPv4 first.
func lookupAddrs(ctx context.Context, resolver, host string, qt time.Duration) ([]string, error) {
	var ips []string
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(host), t)
		r, err := dnsupdate.Exchange(ctx, m, resolver, qt)
		if err != nil {
			return nil, fmt.Errorf("dns-01: resolving nameserver %s through %s: %w", host, resolver, err)
		}
		for _, rr := range r.Answer {
			switch a := rr.(type) {
			case *dns.A:
				ips = append(ips, a.A.String())
			case *dns.AAAA:
				ips = append(ips, a.AAAA.String())
			}
		}
	}
	return ips, nil
}
