package probe

import (
	"context"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/pinning"
)

// verifyPins runs pinning.Verifier for the service: the SRV targets'
// TLSA records through Options.Resolver, what every target presents to
// it, and the domain's POSH document. It makes its own connections, in
// parallel with the probe's, under the probe's deadline.
func (p *prober) verifyPins(ctx context.Context) *pinning.ServiceReport {
	deadline := p.opts.deadline()
	if d, ok := ctx.Deadline(); ok {
		deadline = time.Until(d)
	}
	posh := p.opts.POSH
	if posh == nil {
		posh = &pinning.POSHFetcher{Timeout: p.opts.timeout()}
	}
	v := &pinning.Verifier{
		Resolver: p.opts.Resolver, Timeout: p.opts.timeout(), Deadline: deadline,
		From: p.opts.From, Roots: p.opts.Roots, CurrentTime: p.opts.Now, Dial: p.opts.Dial, POSH: posh,
	}
	rep := v.Verify(ctx, p.domain, []string{string(p.svc)}, pinning.Expectation{})
	if len(rep.Services) == 0 {
		// Nothing could be checked (no resolver): say so in the shape of
		// a service report.
		return &pinning.ServiceReport{
			Service: p.svc, Targets: []pinning.TargetReport{},
			SRV: pinning.SRVReport{Names: []string{}, Records: []pinning.SRVRecord{}, Notes: []string{}, Error: rep.Error},
		}
	}
	return &rep.Services[0]
}

// attachPins gives an endpoint the DANE verdict of its target and
// address, and the POSH verdict on the certificate it presented.
func attachPins(e *Endpoint, sr *pinning.ServiceReport) {
	if sr == nil {
		return
	}
	host := strings.TrimSuffix(strings.ToLower(e.Host), ".")
	for _, t := range sr.Targets {
		if strings.TrimSuffix(strings.ToLower(t.Target), ".") != host || t.Port != e.Port || t.DirectTLS != e.DirectTLS {
			continue
		}
		d := &DANE{
			Owner: t.Owner, Status: t.Status, Applies: t.DANEApplies, TLSAValidated: t.TLSAValidated,
			Records: append([]pinning.RecordCheck{}, t.Records...), Notes: append([]string{}, t.Notes...),
		}
		for _, c := range t.Connections {
			if c.Address == e.Address {
				d.Matched = c.Matched
			}
		}
		e.DANE = d
		break
	}
	if sr.POSH != nil && e.leaf != nil {
		check := sr.POSH.Document.Match(e.leaf)
		e.POSH = &check
	}
}
