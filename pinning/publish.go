package pinning

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/dnsupdate"
)

// DefaultTLSATTL is the TTL of the TLSA records TLSAPublisher adds when
// its TTL is zero: long enough to keep resolver traffic low, short
// enough that a record published one TTL before a key switch (the
// rollover rule of RFC 7671 §8.1) is everywhere within the hour.
const DefaultTLSATTL = time.Hour

// TLSAPublisher publishes DANE TLSA records into the zones that hold
// them by DNS dynamic update (RFC 2136, signed with TSIG): the way a
// renewal puts the next key's record into DNS before switching to it,
// and takes the old one out afterwards.
//
// Publish never leaves a moment in which a wanted record is missing: for
// each zone it sends one UPDATE message that adds what is missing and
// (when asked) deletes what is stale, which the server applies
// atomically. Records that are neither wanted nor asked to be removed
// are left alone and reported, so that a rollover can first add the new
// record and remove the old one only once the new key is in use.
type TLSAPublisher struct {
	// DNS is the dynamic-update client for the zones' primary server;
	// required.
	DNS *dnsupdate.Client
	// TTL of the records added: DefaultTLSATTL when zero. It is rounded
	// down to whole seconds. Records already published keep their TTL.
	TTL time.Duration
	// Zone is the zone holding every name, when set. Otherwise each
	// name's zone is found by asking DNS.Server for its SOA.
	Zone string
	// DryRun computes the report from what the server holds and sends
	// no update.
	DryRun bool
}

// PublishReport is what Publish did, or in a dry run would do, name by
// name.
type PublishReport struct {
	// DryRun is true when nothing was sent.
	DryRun bool `json:"dry_run"`
	// Names has one entry per owner name, sorted by name.
	Names []TLSANameReport `json:"names"`
}

// TLSANameReport is Publish's outcome at one owner name. Each record
// present or wanted there is in exactly one of the four lists.
type TLSANameReport struct {
	// Name is the owner name, fully qualified, lower case.
	Name string
	// Zone is the zone that holds Name.
	Zone string
	// Added are the wanted records that were missing (and are now
	// published, unless DryRun).
	Added []*dns.TLSA
	// Removed are the records that were published but not wanted, and
	// were deleted because stale records were to be removed.
	Removed []*dns.TLSA
	// Kept are the wanted records that were already published.
	Kept []*dns.TLSA
	// StaleKept are the records that are published but not wanted,
	// left in place because stale records were not to be removed: the
	// old key's record during a rollover.
	StaleKept []*dns.TLSA
	// Updated is true when the server accepted an update that changed
	// this name.
	Updated bool
}

// MarshalJSON writes the records as their data in zone-file syntax
// ("3 1 1 hex"), the form operators and other tools compare.
func (r TLSANameReport) MarshalJSON() ([]byte, error) {
	data := func(rrs []*dns.TLSA) []string {
		out := make([]string, 0, len(rrs))
		for _, rr := range rrs {
			out = append(out, tlsaData(rr))
		}
		return out
	}
	return json.Marshal(struct {
		Name      string   `json:"name"`
		Zone      string   `json:"zone"`
		Added     []string `json:"added"`
		Removed   []string `json:"removed"`
		Kept      []string `json:"kept"`
		StaleKept []string `json:"stale_kept"`
		Updated   bool     `json:"updated"`
	}{r.Name, r.Zone, data(r.Added), data(r.Removed), data(r.Kept), data(r.StaleKept), r.Updated})
}

// Changed reports whether the report has records to add or remove.
func (r TLSANameReport) Changed() bool { return len(r.Added)+len(r.Removed) > 0 }

// Changed reports whether any name has records to add or remove.
func (r PublishReport) Changed() bool {
	for _, n := range r.Names {
		if n.Changed() {
			return true
		}
	}
	return false
}

// String is the report for people: one line per record, marked "+"
// (added), "-" (removed), "=" (kept) or "stale" (published, not wanted,
// kept), each with "would" prefixed in a dry run.
func (r PublishReport) String() string {
	var b strings.Builder
	would := ""
	if r.DryRun {
		would = "would "
	}
	for _, n := range r.Names {
		for _, l := range []struct {
			verb string
			rrs  []*dns.TLSA
		}{{would + "add", n.Added}, {would + "remove", n.Removed}, {"keep", n.Kept}, {"keep stale", n.StaleKept}} {
			for _, rr := range l.rrs {
				fmt.Fprintf(&b, "%s: %s TLSA %s\n", l.verb, n.Name, tlsaData(rr))
			}
		}
	}
	return b.String()
}

// TLSAByOwner groups records by their owner names (canonical), the form
// Publish takes.
func TLSAByOwner(rrs []*dns.TLSA) map[string][]*dns.TLSA {
	out := make(map[string][]*dns.TLSA)
	for _, rr := range rrs {
		name := dns.CanonicalName(rr.Hdr.Name)
		out[name] = append(out[name], rr)
	}
	return out
}

// Publish makes the TLSA record set at each owner name of want hold the
// wanted records: it reads the set from the primary server, adds the
// wanted records that are missing and, when removeStale is true,
// deletes the records that are not wanted; otherwise those are kept and
// reported as StaleKept. The headers of the wanted records are ignored:
// the owner is the map key, TTL and class come from p; records are
// compared by usage, selector, matching type and data. Names are grouped
// by zone and each zone gets at most one update message, sent only when
// something changes; after it, the primary is read again to confirm
// every wanted record is there.
//
// An empty record list for a name is refused: removing every TLSA
// record of an endpoint turns DANE off there, which is never what a
// renewal wants. When an update fails, the returned report still covers
// every name and Updated says which names the server did change (those
// of zones updated before). A refusal by the server is a
// *dnsupdate.UpdateError naming the server, zone and key and what to
// check.
func (p *TLSAPublisher) Publish(ctx context.Context, want map[string][]*dns.TLSA, removeStale bool) (PublishReport, error) {
	report := PublishReport{DryRun: p.DryRun}
	if p.DNS == nil {
		return report, errors.New("publishing TLSA: no DNS update client configured")
	}
	if err := p.DNS.Validate(); err != nil {
		return report, fmt.Errorf("publishing TLSA: %w", err)
	}
	if p.Zone != "" {
		if _, ok := dns.IsDomainName(p.Zone); !ok {
			return report, fmt.Errorf("publishing TLSA: zone %q is not a domain name", p.Zone)
		}
	}
	wanted, err := p.wanted(want)
	if err != nil {
		return report, err
	}
	names := make([]string, 0, len(wanted))
	for name := range wanted {
		names = append(names, name)
	}
	slices.Sort(names)

	// What is there now, and what to change.
	for _, name := range names {
		zone, err := p.zone(ctx, name)
		if err != nil {
			return report, err
		}
		have, err := p.current(ctx, name)
		if err != nil {
			return report, err
		}
		report.Names = append(report.Names, publishDiff(name, zone, wanted[name], have, removeStale))
	}
	if p.DryRun {
		return report, nil
	}

	// One update per zone, in zone order.
	var zones []string
	for _, n := range report.Names {
		if n.Changed() && !slices.Contains(zones, n.Zone) {
			zones = append(zones, n.Zone)
		}
	}
	slices.Sort(zones)
	for _, zone := range zones {
		var insert, remove []dns.RR
		var changed []int
		var changedNames []string
		for i, n := range report.Names {
			if n.Zone != zone || !n.Changed() {
				continue
			}
			changed = append(changed, i)
			changedNames = append(changedNames, n.Name)
			for _, rr := range n.Added {
				insert = append(insert, rr)
			}
			for _, rr := range n.Removed {
				remove = append(remove, rr)
			}
		}
		if err := sendUpdate(ctx, p.DNS, zone, insert, remove, "TLSA", changedNames); err != nil {
			return report, err
		}
		for _, i := range changed {
			report.Names[i].Updated = true
		}
		for _, i := range changed {
			if err := p.confirm(ctx, report.Names[i], wanted[report.Names[i].Name]); err != nil {
				return report, err
			}
		}
	}
	return report, nil
}

func (p *TLSAPublisher) ttl() uint32 {
	if p.TTL <= 0 {
		return uint32(DefaultTLSATTL / time.Second)
	}
	return uint32(p.TTL / time.Second)
}

// wanted checks and normalizes want: canonical owner names, headers
// from p, lower-case data, no duplicates.
func (p *TLSAPublisher) wanted(want map[string][]*dns.TLSA) (map[string][]*dns.TLSA, error) {
	if len(want) == 0 {
		return nil, errors.New("publishing TLSA: no records to publish")
	}
	out := make(map[string][]*dns.TLSA, len(want))
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		name := dns.CanonicalName(key)
		if _, ok := dns.IsDomainName(name); !ok || name == "." {
			return nil, fmt.Errorf("publishing TLSA: owner name %q is not a domain name", key)
		}
		if p.Zone != "" && !dns.IsSubDomain(dns.CanonicalName(p.Zone), name) {
			return nil, fmt.Errorf("publishing TLSA: %s is not inside zone %s: check the zone or the names", name, dns.CanonicalName(p.Zone))
		}
		if len(want[key]) == 0 {
			return nil, fmt.Errorf("publishing TLSA: no record wanted at %s: refusing to remove every TLSA record of the endpoint (that turns DANE off); give the records to keep", name)
		}
		for _, rr := range want[key] {
			if rr == nil {
				return nil, fmt.Errorf("publishing TLSA at %s: a nil record", name)
			}
			if err := publishCheck(rr); err != nil {
				return nil, fmt.Errorf("publishing TLSA at %s: record %s: %w", name, publishShort(rr), err)
			}
			c := &dns.TLSA{
				Hdr:          dns.RR_Header{Name: name, Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: p.ttl()},
				Usage:        rr.Usage,
				Selector:     rr.Selector,
				MatchingType: rr.MatchingType,
				Certificate:  strings.ToLower(rr.Certificate),
			}
			if !slices.ContainsFunc(out[name], func(o *dns.TLSA) bool { return tlsaData(o) == tlsaData(c) }) {
				out[name] = append(out[name], c)
			}
		}
	}
	return out, nil
}

// publishCheck refuses record data that no DANE client can use, before
// anything is sent.
func publishCheck(rr *dns.TLSA) error {
	if rr.Usage > 3 {
		return fmt.Errorf("usage %d is not 0 (PKIX-TA), 1 (PKIX-EE), 2 (DANE-TA) or 3 (DANE-EE)", rr.Usage)
	}
	if rr.Selector > 1 {
		return fmt.Errorf("selector %d is not 0 (certificate) or 1 (SPKI)", rr.Selector)
	}
	b, err := hex.DecodeString(rr.Certificate)
	if err != nil || len(b) == 0 {
		return errors.New("the association data is not hex")
	}
	switch rr.MatchingType {
	case 0:
	case 1:
		if len(b) != 32 {
			return fmt.Errorf("a SHA-256 digest has 32 bytes, not %d", len(b))
		}
	case 2:
		if len(b) != 64 {
			return fmt.Errorf("a SHA-512 digest has 64 bytes, not %d", len(b))
		}
	default:
		return fmt.Errorf("matching type %d is not 0 (full), 1 (SHA-256) or 2 (SHA-512)", rr.MatchingType)
	}
	return nil
}

// zone returns the zone that holds name.
func (p *TLSAPublisher) zone(ctx context.Context, name string) (string, error) {
	if p.Zone != "" {
		return dns.CanonicalName(p.Zone), nil
	}
	zone, err := p.DNS.Zone(ctx, name)
	if err != nil {
		return "", fmt.Errorf("publishing TLSA at %s: %w", name, err)
	}
	return zone, nil
}

// current returns the TLSA records the primary holds at name.
func (p *TLSAPublisher) current(ctx context.Context, name string) ([]*dns.TLSA, error) {
	rrs, err := p.DNS.Query(ctx, name, dns.TypeTLSA)
	if err != nil {
		return nil, fmt.Errorf("publishing TLSA: reading the current records: %w", err)
	}
	out := make([]*dns.TLSA, 0, len(rrs))
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TLSA); ok {
			out = append(out, t)
		}
	}
	return out, nil
}

// publishDiff sorts the wanted and present records of one name into the
// report's lists.
func publishDiff(name, zone string, want, have []*dns.TLSA, removeStale bool) TLSANameReport {
	r := TLSANameReport{Name: name, Zone: zone}
	has := func(set []*dns.TLSA, rr *dns.TLSA) bool {
		return slices.ContainsFunc(set, func(o *dns.TLSA) bool { return tlsaData(o) == tlsaData(rr) })
	}
	for _, w := range want {
		if has(have, w) {
			r.Kept = append(r.Kept, w)
		} else {
			r.Added = append(r.Added, w)
		}
	}
	for _, h := range have {
		if has(want, h) {
			continue
		}
		if removeStale {
			r.Removed = append(r.Removed, h)
		} else {
			r.StaleKept = append(r.StaleKept, h)
		}
	}
	return r
}

// confirm reads the name back from the primary: every wanted record
// must be there, and no removed one.
func (p *TLSAPublisher) confirm(ctx context.Context, n TLSANameReport, want []*dns.TLSA) error {
	have, err := p.current(ctx, n.Name)
	if err != nil {
		return err
	}
	has := func(rr *dns.TLSA) bool {
		return slices.ContainsFunc(have, func(o *dns.TLSA) bool { return tlsaData(o) == tlsaData(rr) })
	}
	for _, w := range want {
		if !has(w) {
			return fmt.Errorf("publishing TLSA: the update of zone %s was accepted, yet %s lacks TLSA %s: check that nothing else (a zone reload, a signer) rewrites the zone on %s", n.Zone, n.Name, tlsaData(w), p.DNS.Server)
		}
	}
	for _, r := range n.Removed {
		if has(r) {
			return fmt.Errorf("publishing TLSA: the update of zone %s was accepted, yet %s still has TLSA %s: check that nothing else rewrites the zone on %s", n.Zone, n.Name, tlsaData(r), p.DNS.Server)
		}
	}
	return nil
}

// tlsaData is a record's data as a zone file writes it: "3 1 1 hex",
// hex in lower case; equal data means the same record.
func tlsaData(rr *dns.TLSA) string {
	return fmt.Sprintf("%d %d %d %s", rr.Usage, rr.Selector, rr.MatchingType, strings.ToLower(rr.Certificate))
}

// sendUpdate sends one zone's dynamic update of records of type rtype
// at names; a refusal is the *dnsupdate.UpdateError saying so.
func sendUpdate(ctx context.Context, c *dnsupdate.Client, zone string, insert, remove []dns.RR, rtype string, names []string) error {
	err := c.Update(ctx, zone, insert, remove)
	var ue *dnsupdate.UpdateError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ue):
		ue.What = "publishing " + rtype + " records at " + publishNames(names)
		return err
	}
	return fmt.Errorf("publishing %s in zone %s: %w", rtype, zone, err)
}

// publishNames lists names for a message, at most three.
func publishNames(names []string) string {
	if len(names) <= 3 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more names", strings.Join(names[:2], ", "), len(names)-2)
}

// publishShort is tlsaData with long data cut, for messages.
func publishShort(rr *dns.TLSA) string {
	c := rr.Certificate
	if len(c) > 16 {
		c = c[:16] + "..."
	}
	return fmt.Sprintf("%d %d %d %q", rr.Usage, rr.Selector, rr.MatchingType, c)
}
