package pinning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/dnsupdate"
)

// DefaultCAATTL is the TTL of the CAA records CAAPublisher adds when its
// TTL is zero.
const DefaultCAATTL = time.Hour

// CAAPublisher publishes CAA records by DNS dynamic update (RFC 2136,
// signed with TSIG), as TLSAPublisher does TLSA records: for each name,
// the wanted issue property is added, and the issue and issuewild
// properties that name the same CA otherwise (without our account, or
// for other methods) are removed in the same update, since any of them
// would let that CA issue to someone else. Properties naming other CAs,
// and iodef, are kept and reported: whether those CAs are still used is
// the operator's to say.
type CAAPublisher struct {
	// DNS is the dynamic-update client for the zones' primary server;
	// required.
	DNS *dnsupdate.Client
	// TTL of the records added; DefaultCAATTL when zero.
	TTL time.Duration
	// Zone is the zone holding every name, when set; otherwise each
	// name's zone is found by asking DNS.Server for its SOA.
	Zone string
	// DryRun computes the report from what the server holds and sends
	// no update.
	DryRun bool
}

// CAANameReport is what CAAPublisher did (or would do) at one name.
type CAANameReport struct {
	// Name is the owner name, fully qualified; Zone the zone holding it.
	Name string `json:"name"`
	Zone string `json:"zone"`
	// Added, Removed and Kept are our CA's records (zone-file data)
	// added, removed as another form of it, and already there.
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Kept    []string `json:"kept"`
	// Others are the properties of other CAs and iodef, kept.
	Others []string `json:"others"`
	// Updated is true when the server accepted an update of this name.
	Updated bool `json:"updated"`

	removed []*dns.CAA
}

// Changed reports whether the name has records to add or remove.
func (r CAANameReport) Changed() bool { return len(r.Added)+len(r.Removed) > 0 }

// Publish makes each wanted record present at its owner name (one record
// per name, CAARecords' form; the headers' TTL and class come from p).
// Names are grouped by zone, each zone gets at most one update, sent
// only when something changes, and each changed name is read back from
// the primary afterwards. A refusal by the server is a
// *dnsupdate.UpdateError.
func (p *CAAPublisher) Publish(ctx context.Context, want []*dns.CAA) ([]CAANameReport, error) {
	if p.DNS == nil {
		return nil, errors.New("publishing CAA: no DNS update client configured")
	}
	if err := p.DNS.Validate(); err != nil {
		return nil, fmt.Errorf("publishing CAA: %w", err)
	}
	ttl := uint32(DefaultCAATTL / time.Second)
	if p.TTL > 0 {
		ttl = uint32(p.TTL / time.Second)
	}
	var reports []CAANameReport
	wanted := map[string]*dns.CAA{}
	for _, w := range want {
		name := dns.CanonicalName(w.Hdr.Name)
		v, err := ParseCAAValue(w.Value)
		if err != nil || v.Issuer == "" || !strings.EqualFold(w.Tag, CAAIssue) {
			return nil, fmt.Errorf("publishing CAA at %s: %s is not an issue property naming a CA", name, caaData(w))
		}
		if _, dup := wanted[name]; dup {
			return nil, fmt.Errorf("publishing CAA: two records wanted at %s", name)
		}
		c := *w
		c.Hdr = dns.RR_Header{Name: name, Rrtype: dns.TypeCAA, Class: dns.ClassINET, Ttl: ttl}
		wanted[name] = &c
		zone := dns.CanonicalName(p.Zone)
		if p.Zone == "" {
			if zone, err = p.DNS.Zone(ctx, name); err != nil {
				return nil, fmt.Errorf("publishing CAA at %s: %w", name, err)
			}
		} else if !dns.IsSubDomain(zone, name) {
			return nil, fmt.Errorf("publishing CAA: %s is not inside zone %s: check the zone or the names", name, zone)
		}
		have, err := p.current(ctx, name)
		if err != nil {
			return nil, err
		}
		reports = append(reports, caaDiff(name, zone, &c, v.Issuer, have))
	}
	slices.SortFunc(reports, func(a, b CAANameReport) int { return strings.Compare(a.Name, b.Name) })
	if p.DryRun {
		return reports, nil
	}
	byZone := map[string][]int{}
	var zones []string
	for i, r := range reports {
		if r.Changed() {
			if _, ok := byZone[r.Zone]; !ok {
				zones = append(zones, r.Zone)
			}
			byZone[r.Zone] = append(byZone[r.Zone], i)
		}
	}
	slices.Sort(zones)
	for _, zone := range zones {
		var insert, remove []dns.RR
		var names []string
		for _, i := range byZone[zone] {
			r := reports[i]
			names = append(names, r.Name)
			if len(r.Added) > 0 {
				insert = append(insert, wanted[r.Name])
			}
			for _, rr := range r.removed {
				remove = append(remove, rr)
			}
		}
		if err := sendUpdate(ctx, p.DNS, zone, insert, remove, "CAA", names); err != nil {
			return reports, err
		}
		for _, i := range byZone[zone] {
			reports[i].Updated = true
			have, err := p.current(ctx, reports[i].Name)
			if err != nil {
				return reports, err
			}
			if !slices.ContainsFunc(have, func(rr *dns.CAA) bool { return caaData(rr) == caaData(wanted[reports[i].Name]) }) {
				return reports, fmt.Errorf("publishing CAA: the update of zone %s was accepted, yet %s lacks CAA %s: check that nothing else rewrites the zone on %s", zone, reports[i].Name, caaData(wanted[reports[i].Name]), p.DNS.Server)
			}
		}
	}
	return reports, nil
}

// current returns the CAA records the primary holds at name.
func (p *CAAPublisher) current(ctx context.Context, name string) ([]*dns.CAA, error) {
	rrs, err := p.DNS.Query(ctx, name, dns.TypeCAA)
	if err != nil {
		return nil, fmt.Errorf("publishing CAA: reading the current records: %w", err)
	}
	var out []*dns.CAA
	for _, rr := range rrs {
		if c, ok := rr.(*dns.CAA); ok {
			out = append(out, c)
		}
	}
	return out, nil
}

// caaDiff sorts the records present at name against the wanted one.
func caaDiff(name, zone string, want *dns.CAA, issuer string, have []*dns.CAA) CAANameReport {
	r := CAANameReport{Name: name, Zone: zone, Added: []string{}, Removed: []string{}, Kept: []string{}, Others: []string{}}
	found := false
	for _, h := range have {
		switch {
		case caaData(h) == caaData(want):
			found = true
			r.Kept = append(r.Kept, caaData(h))
		case strings.EqualFold(h.Tag, CAAIssue) || strings.EqualFold(h.Tag, CAAIssueWild):
			if v, err := ParseCAAValue(h.Value); err == nil && v.Issuer == issuer {
				r.Removed = append(r.Removed, caaData(h))
				r.removed = append(r.removed, h)
				continue
			}
			r.Others = append(r.Others, caaData(h))
		default:
			r.Others = append(r.Others, caaData(h))
		}
	}
	if !found {
		r.Added = append(r.Added, caaData(want))
	}
	return r
}
