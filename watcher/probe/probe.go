package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// Probe looks at domain's service as a peer does and reports what every
// endpoint showed, with the manifesto grade. It never returns an error:
// everything, including invalid input (CodeInvalidInput), is in the
// Result. It returns within Options.Deadline (plus a little to close
// connections), whatever the servers do.
func Probe(ctx context.Context, domain string, opts Options) Result {
	begin := time.Now()
	res := Result{
		Domain: domain, Service: opts.Service, CheckedAt: opts.now(),
		Endpoints: []Endpoint{}, Notes: []string{},
		Resolution: Resolution{Targets: []Target{}},
	}
	d, svc, err := opts.check(domain)
	if err != nil {
		res.Failure, res.Error = CodeInvalidInput, err.Error()
		res.Grade = combine(nil)
		return res
	}
	res.Domain, res.Service = d, svc
	opts.Service = svc
	if opts.Via != "" {
		u, _ := ParseVia(opts.Via) // checked above
		opts.Dial = viaDialer(u, opts.Dial)
		res.Resolution.Via = u.Redacted()
	}
	if svc == xmppaddr.ServiceServer {
		res.From = opts.From
	}
	outer := ctx
	ctx, cancel := context.WithTimeout(ctx, opts.deadline())
	defer cancel()
	p := &prober{opts: opts, domain: d, svc: svc, begin: begin, outer: outer}

	// Pins do not depend on this probe's connections: verify them
	// meanwhile.
	var pins *pinning.ServiceReport
	var pinsDone chan struct{}
	if opts.Pins {
		pinsDone = make(chan struct{})
		go func() {
			defer close(pinsDone)
			pins = p.verifyPins(ctx)
		}()
	}

	targets := p.resolve(ctx, &res)
	var eps []*Endpoint
	for _, t := range targets {
		if len(t.Addresses) == 0 {
			eps = append(eps, p.unresolved(t, res.Resolution.DurationMS))
			continue
		}
		for _, a := range t.Addresses {
			e := p.newEndpoint(t, net.JoinHostPort(a, strconv.Itoa(int(t.Port))))
			e.Timings.DNS = res.Resolution.DurationMS + t.DurationMS
			eps = append(eps, e)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, endpointConcurrency)
	for _, e := range eps {
		if e.Failure != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			p.probeEndpoint(ctx, e)
		}()
	}
	wg.Wait()

	if pinsDone != nil {
		<-pinsDone
		res.Pins = pins
		unmatched := false
		for _, e := range eps {
			attachPins(e, pins)
			unmatched = unmatched || e.DANE == nil && e.Encrypted
		}
		if unmatched {
			res.Notes = append(res.Notes, "DANE verdicts belong to SRV targets and ports: an endpoint that is not one of them (an address connected to instead) has none")
		}
	}
	for _, e := range eps {
		e.Grade = gradeEndpoint(e, svc)
		res.Endpoints = append(res.Endpoints, *e)
	}
	res.Grade = combine(res.Endpoints)

	res.OK = len(res.Endpoints) > 0 && res.Failure == ""
	for _, e := range res.Endpoints {
		if !e.OK {
			res.OK = false
			if res.Failure == "" {
				res.Failure = e.Failure
			}
		}
	}
	if !res.OK && res.Failure == "" {
		res.Failure = CodeNotOffered
		if res.Error == "" {
			res.Error = "no endpoint to probe"
		}
	}
	if svc == xmppaddr.ServiceServer && opts.From == "" {
		res.Notes = append(res.Notes, "no from domain given: s2s servers decide on SASL EXTERNAL and dialback by it, so what they offer here may be less than peers see")
	}
	if ctx.Err() != nil && !errors.Is(context.Cause(ctx), context.Canceled) && (opts.FullDeadline == 0 || timedOut(res.Endpoints)) {
		res.Notes = append(res.Notes, fmt.Sprintf("the probe ran out of time (deadline %v): endpoints still running were cut off", opts.deadline()))
	}
	res.DurationMS = ms(time.Since(begin))
	return res
}

// Job is one probe for ProbeAll: a domain and how to probe it.
type Job struct {
	// Domain is the XMPP domain to probe.
	Domain string
	// Options say how; each job has its own.
	Options Options
}

// ProbeAll probes every job, at most concurrency at a time
// (DefaultConcurrency when zero or less), and returns the results in the
// order of jobs. Each probe keeps its own deadline; cancelling ctx ends
// them all.
func ProbeAll(ctx context.Context, jobs []Job, concurrency int) []Result {
	out := make([]Result, len(jobs))
	ProbeEach(ctx, jobs, concurrency, func(i int, r Result) { out[i] = r })
	return out
}

// ProbeEach probes every job as ProbeAll does, but hands each result to
// fn (with the job's index) as soon as it is complete, instead of keeping
// them all: a sweep of many endpoints then holds at most concurrency
// results at a time. Calls of fn never overlap; a slow fn holds up the
// probes that have finished, not those in flight. ProbeEach returns when
// every job has been handed over.
func ProbeEach(ctx context.Context, jobs []Job, concurrency int, fn func(i int, r Result)) {
	if concurrency <= 0 {
		concurrency = DefaultConcurrency
	}
	sem := make(chan struct{}, concurrency)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r := Probe(ctx, j.Domain, j.Options)
			mu.Lock()
			defer mu.Unlock()
			fn(i, r)
		}()
	}
	wg.Wait()
}

// prober is one Probe in progress.
type prober struct {
	opts   Options
	domain string
	svc    xmppaddr.Service
	begin  time.Time
	outer  context.Context // the caller's, without the deadline (Options.FullDeadline)
}

// resolve finds the targets to probe and their addresses, filling in
// res.Resolution (and res.Failure when nothing can be probed).
func (p *prober) resolve(ctx context.Context, res *Result) []Target {
	r := &res.Resolution
	r.Resolver = p.opts.Resolver
	var targets []Target
	if p.opts.Connect != "" {
		r.Connect = p.opts.Connect
		host, port, _ := net.SplitHostPort(p.opts.Connect)
		n, _ := strconv.ParseUint(port, 10, 16)
		targets = []Target{{Host: strings.TrimSuffix(strings.ToLower(host), "."), Port: uint16(n), DirectTLS: p.opts.DirectTLS, Source: "connect"}}
	} else {
		start := time.Now()
		v := &pinning.Verifier{Resolver: p.opts.Resolver, Timeout: p.opts.timeout()}
		_, srv, err := v.Endpoints(ctx, p.domain, p.svc)
		r.DurationMS = ms(time.Since(start))
		if srv.Names == nil && err != nil {
			// No resolver at all: nothing was asked.
			r.Error = err.Error()
			res.Failure, res.Error = CodeDNSError, err.Error()
			return nil
		}
		r.SRV = &srv
		if err != nil {
			r.Error = srv.Error
			res.Failure, res.Error = CodeDNSError, err.Error()
			return nil
		}
		switch {
		case srv.NotOffered:
			res.Failure, res.Error = CodeNotOffered, fmt.Sprintf("the SRV records say %s is not offered at %s (target \".\")", p.svc, p.domain)
			return nil
		case srv.Fallback:
			port := uint16(5222)
			if p.svc == xmppaddr.ServiceServer {
				port = 5269
			}
			if p.opts.DirectTLS {
				res.Failure, res.Error = CodeNotOffered, fmt.Sprintf("no SRV records for %s at %s, and direct TLS has no fallback (XEP-0368)", p.svc, p.domain)
				return nil
			}
			targets = []Target{{Host: p.domain, Port: port, Source: "fallback"}}
		default:
			for _, rec := range srv.Records {
				if p.opts.DirectTLS && !rec.DirectTLS {
					continue
				}
				t := Target{Host: rec.Target, Port: rec.Port, DirectTLS: rec.DirectTLS, Source: "srv"}
				if slices.ContainsFunc(targets, func(o Target) bool { return o.Host == t.Host && o.Port == t.Port && o.DirectTLS == t.DirectTLS }) {
					continue
				}
				if len(targets) == MaxTargets {
					res.Notes = append(res.Notes, fmt.Sprintf("more than %d SRV targets: the rest are not probed", MaxTargets))
					break
				}
				targets = append(targets, t)
			}
			if len(targets) == 0 {
				res.Failure, res.Error = CodeNotOffered, fmt.Sprintf("no _xmpps-* SRV record: %s offers no direct TLS for %s", p.domain, p.svc)
				return nil
			}
		}
	}
	notes := make([]string, len(targets))
	var wg sync.WaitGroup
	for i := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			notes[i] = p.lookupAddrs(ctx, &targets[i])
		}()
	}
	wg.Wait()
	for _, n := range notes {
		if n != "" {
			res.Notes = append(res.Notes, n)
		}
	}
	r.Targets = targets
	return targets
}

// lookupAddrs resolves a target's addresses (an IP literal is its own),
// at most MaxAddresses of them, and returns a note when it left some out.
func (p *prober) lookupAddrs(ctx context.Context, t *Target) string {
	t.Addresses = []string{}
	if ip := net.ParseIP(t.Host); ip != nil {
		t.Addresses = append(t.Addresses, ip.String())
		return ""
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, p.opts.timeout())
	defer cancel()
	ips, err := p.resolver().LookupIPAddr(ctx, t.Host)
	t.DurationMS = ms(time.Since(start))
	if err != nil {
		t.Error = fmt.Sprintf("looking up the addresses of %s: %v", t.Host, err)
		return ""
	}
	for _, ip := range ips {
		if len(t.Addresses) < MaxAddresses {
			t.Addresses = append(t.Addresses, ip.IP.String())
		}
	}
	if len(t.Addresses) == 0 {
		t.Error = fmt.Sprintf("%s has no A or AAAA records", t.Host)
	}
	if len(ips) > MaxAddresses {
		return fmt.Sprintf("%s has %d addresses: only the first %d are probed", t.Host, len(ips), MaxAddresses)
	}
	return ""
}

// resolver is the address resolver: Options.Resolver through Go's own
// resolver, or the system's.
func (p *prober) resolver() *net.Resolver {
	if p.opts.Resolver == "" {
		return net.DefaultResolver
	}
	addr := p.opts.Resolver
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// newEndpoint starts the report of one address of a target.
func (p *prober) newEndpoint(t Target, addr string) *Endpoint {
	e := &Endpoint{
		Host: t.Host, Port: t.Port, Address: addr, DirectTLS: t.DirectTLS, Source: t.Source,
		Encryption: EncryptionNone, Findings: []xmppaddr.Finding{},
	}
	if p.svc == xmppaddr.ServiceServer {
		e.Dialback = &Dialback{}
	}
	if p.opts.ClientCert != nil {
		e.External = &External{Result: "not-reached"}
	}
	return e
}

// unresolved is the endpoint of a target without addresses.
func (p *prober) unresolved(t Target, srvMS float64) *Endpoint {
	e := p.newEndpoint(t, net.JoinHostPort(t.Host, strconv.Itoa(int(t.Port))))
	e.Failure, e.Error, e.Phase = CodeDNSError, t.Error, "dns"
	e.Timings.DNS = srvMS + t.DurationMS
	e.Timings.Total = ms(time.Since(p.begin))
	return e
}

// ms is a duration in milliseconds, to the microsecond.
func ms(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// timedOut says whether any endpoint was cut off by a timeout.
func timedOut(eps []Endpoint) bool {
	for _, e := range eps {
		if e.Failure == CodeTimeout {
			return true
		}
	}
	return false
}
