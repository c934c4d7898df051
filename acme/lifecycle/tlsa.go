package lifecycle

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// TLSASpec says which TLSA records a lineage publishes: the record
// parameters, the endpoints (owner names and ports) and the TTL.
type TLSASpec struct {
	Usage, Selector, MatchingType uint8
	Endpoints                     []pinning.Endpoint
	TTL                           time.Duration
}

// PinnedRecord is a TLSA record with the key or certificate it pins.
type PinnedRecord struct {
	pinning.TLSA
	// Pins is "current", "next" or "ca".
	Pins string `json:"pins"`
}

// Records are the TLSA records of the lineage for every endpoint: for
// the end-entity usages the current and next key (a full-certificate
// selector pins the current certificate only), for the CA usages the
// top certificate of the chain. Notes say what the operator should know
// about the choice.
func (s TLSASpec) Records(l *acme.Lineage) ([]PinnedRecord, []string) {
	var pins []PinnedRecord
	var notes []string
	add := func(label string, t pinning.TLSA, err error) {
		if err == nil {
			pins = append(pins, PinnedRecord{TLSA: t, Pins: label})
		}
	}
	switch {
	case s.Usage == pinning.UsagePKIXTA || s.Usage == pinning.UsageDANETA:
		if len(l.Chain) < 2 {
			notes = append(notes, "the chain has no CA certificate to pin; pin the end entity (usage 3, DANE-EE)")
			break
		}
		t, err := pinning.NewTLSA(l.Chain[len(l.Chain)-1], s.Usage, s.Selector, s.MatchingType)
		add("ca", t, err)
		notes = append(notes, "a CA pin holds across key changes while the lineage's CA stays the same")
	case s.Selector == pinning.SelectorCert:
		t, err := pinning.NewTLSA(l.Chain[0], s.Usage, s.Selector, s.MatchingType)
		add("current", t, err)
		notes = append(notes, "a full-certificate pin (selector 0) changes at every renewal and cannot cover the next key; selector 1 pins the key")
	default:
		t, err := pinning.NewTLSA(l.Chain[0], s.Usage, s.Selector, s.MatchingType)
		add("current", t, err)
		if l.NextKey != nil {
			t, err := pinning.NewKeyTLSA(l.NextKey.Public(), s.Usage, s.MatchingType)
			add("next", t, err)
		} else {
			notes = append(notes, "this lineage version has no next key yet; the next renewal makes one")
		}
	}
	var out []PinnedRecord
	for _, p := range pins {
		for _, r := range pinning.Records(s.Endpoints, []pinning.TLSA{p.TLSA}) {
			out = append(out, PinnedRecord{TLSA: r, Pins: p.Pins})
		}
	}
	return out, notes
}

// PinnedKeys are the keys the records pin: the current and next key for
// SPKI records of the end-entity usages, none otherwise (a CA pin or a
// full-certificate pin does not hold a key in place).
func (s TLSASpec) PinnedKeys(l *acme.Lineage) []crypto.PublicKey {
	if s.Usage == pinning.UsagePKIXTA || s.Usage == pinning.UsageDANETA || s.Selector != pinning.SelectorSPKI {
		return nil
	}
	return LineageKeys(l)
}

// LineageKeys are the current and, when there is one, the next key.
func LineageKeys(l *acme.Lineage) []crypto.PublicKey {
	keys := []crypto.PublicKey{l.Key.Public()}
	if l.NextKey != nil {
		keys = append(keys, l.NextKey.Public())
	}
	return keys
}

// Expectation is what pin verification expects of a lineage: DANE-EE
// SPKI SHA-256 records (3 1 1) for the current certificate's key and,
// when there is one, for the next key, so that a check reports the
// records missing for either.
func Expectation(l *acme.Lineage) (pinning.Expectation, error) {
	var e pinning.Expectation
	cur, err := pinning.NewTLSA(l.Chain[0], pinning.UsageDANEEE, pinning.SelectorSPKI, pinning.MatchSHA256)
	if err != nil {
		return e, err
	}
	e.Current = []pinning.TLSA{cur}
	if l.NextKey != nil {
		next, err := pinning.NewKeyTLSA(l.NextKey.Public(), pinning.UsageDANEEE, pinning.MatchSHA256)
		if err != nil {
			return e, err
		}
		e.Next = []pinning.TLSA{next}
	}
	return e, nil
}

// Ports by service: STARTTLS, then direct TLS (XEP-0368).
var servicePorts = map[xmppaddr.Service][]uint16{
	xmppaddr.ServiceClient: {5222, 5223},
	xmppaddr.ServiceServer: {5269, 5270},
}

// Endpoints lists where TLSA records go: each target (by default each
// name of the lineage) with the given ports, or by default the ports of
// the services its role serves (every XMPP port for a given target).
func Endpoints(req acme.Request, targets []string, ports []uint16) []pinning.Endpoint {
	var out []pinning.Endpoint
	add := func(target string, ps []uint16) {
		for _, p := range ps {
			e := pinning.Endpoint{Target: target, Port: p}
			if !slices.Contains(out, e) {
				out = append(out, e)
			}
		}
	}
	if len(targets) > 0 {
		if len(ports) == 0 {
			ports = pinning.DefaultPorts
		}
		for _, t := range targets {
			add(t, ports)
		}
		return out
	}
	for _, n := range req.Names {
		ps := ports
		if len(ps) == 0 {
			for _, svc := range n.Role.Services() {
				ps = append(ps, servicePorts[svc]...)
			}
		}
		add(n.Domain, ps)
	}
	return out
}

// ErrNoService says that the SRV records of every name of a lineage
// say that no XMPP service is offered: there is nothing to pin.
var ErrNoService = errors.New("the SRV records say no XMPP service is offered; nothing to pin")

// SRVEndpoints are the SRV targets and ports of every service of every
// name of req, asked of resolver (HOST:PORT; empty for the system's), or
// a name itself on the fallback port when it has no SRV records.
func SRVEndpoints(ctx context.Context, resolver string, req acme.Request) ([]pinning.Endpoint, error) {
	v := &pinning.Verifier{Resolver: resolver}
	var out []pinning.Endpoint
	for _, n := range req.Names {
		for _, svc := range n.Role.Services() {
			eps, _, err := v.Endpoints(ctx, n.Domain, svc)
			if err != nil {
				return nil, err
			}
			for _, e := range eps {
				if !slices.Contains(out, e) {
					out = append(out, e)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w", strings.Join(req.Domains(), ", "), ErrNoService)
	}
	return out, nil
}

// PublishResult is what publishing a lineage's TLSA records did: the
// --json form of pin publish.
type PublishResult struct {
	Lineage string `json:"lineage"`
	DryRun  bool   `json:"dry_run"`
	// StaleRemoved says whether stale records were to be removed, and
	// StaleRule why or why not.
	StaleRemoved bool   `json:"stale_removed"`
	StaleRule    string `json:"stale_rule"`
	// Names is what changed at each owner name (records as "3 1 1 hex").
	Names []pinning.TLSANameReport `json:"names"`
	// SwitchAfter is when a renewal may move to the next key.
	SwitchAfter time.Time `json:"switch_after,omitzero"`
	// Report is the publisher's whole report, for text output.
	Report pinning.PublishReport `json:"-"`
}

// ErrNoRecords says that a TLSA specification gives no record for a
// lineage (a CA usage over a chain without a CA certificate).
var ErrNoRecords = errors.New("no TLSA records to publish with these parameters")

// PublishTLSA publishes the records spec asks for (current and next key)
// through pub, removes stale records when the stale rule says so
// (removeStale forces it), and marks the pinned keys published with
// hold, which starts the next key's hold time. An error before anything
// was sent comes with a result whose Lineage is empty; after that the
// result says what was done, and the error what failed. It holds the
// lineage's lock throughout, so that one process publishes at a time (on
// a cluster, the node holding the lineage); a lock held elsewhere is an
// *acme.LockedError.
func (e *Engine) PublishTLSA(ctx context.Context, l *acme.Lineage, spec TLSASpec, pub *pinning.TLSAPublisher, hold time.Duration, removeStale bool) (PublishResult, error) {
	unlock, err := e.Store.Lock(l.Name)
	if err != nil {
		return PublishResult{}, fmt.Errorf("publishing the TLSA records of %s: %w", l.Name, err)
	}
	defer unlock()
	records, _ := spec.Records(l)
	if len(records) == 0 {
		return PublishResult{}, fmt.Errorf("%s: %w", l.Name, ErrNoRecords)
	}
	var rrs []*dns.TLSA
	for _, r := range records {
		rrs = append(rrs, r.RR(uint32(spec.TTL/time.Second)))
	}
	remove, rule, err := e.staleRule(removeStale, l, spec, hold)
	if err != nil {
		return PublishResult{}, err
	}
	rep, perr := pub.Publish(ctx, pinning.TLSAByOwner(rrs), remove)
	out := PublishResult{Lineage: l.Name, DryRun: rep.DryRun, StaleRemoved: remove, StaleRule: rule, Names: rep.Names, Report: rep}
	if out.Names == nil {
		out.Names = []pinning.TLSANameReport{}
	}
	if perr == nil && !rep.DryRun {
		if keys := spec.PinnedKeys(l); len(keys) > 0 {
			if err := e.markPublished(l, keys, hold); err != nil {
				perr = fmt.Errorf("the records are published, but recording it failed: %w", err)
			} else if ps, err := e.Store.PinState(l.Name); err == nil && l.NextKey != nil {
				if since, ok := ps.PublishedFor(l.NextKey.Public()); ok {
					out.SwitchAfter = since.Add(ps.Hold()).UTC()
				}
			}
		}
		e.emit(Event{Name: EventTLSAPublished, Lineage: l.Name, Version: l.Version})
	}
	if perr != nil {
		return out, fmt.Errorf("publishing the TLSA records of %s: %w", l.Name, perr)
	}
	return out, nil
}

// staleRule decides whether this run removes stale records: when force;
// for key pins once the current key's records have been public for the
// hold time and its certificate is deployed; never otherwise (a CA or
// full-certificate pin is the operator's to retire).
func (e *Engine) staleRule(force bool, l *acme.Lineage, spec TLSASpec, hold time.Duration) (bool, string, error) {
	if force {
		return true, "removal of stale records was asked for", nil
	}
	if len(spec.PinnedKeys(l)) == 0 {
		return false, "stale records are kept for CA and full-certificate pins; they are removed only when asked for", nil
	}
	ps, err := e.Store.PinState(l.Name)
	if err != nil {
		return false, "", err
	}
	if hold <= 0 {
		hold = ps.Hold()
	}
	since, ok := ps.PublishedFor(l.Key.Public())
	if !ok {
		return false, "the current key's records were not published before; stale records go once they have been public for the hold time", nil
	}
	if until := since.Add(hold); e.now().Before(until) {
		return false, fmt.Sprintf("the current key's records are public since %s; stale records go after %s", stamp(since), stamp(until)), nil
	}
	cur, err := e.Store.Current(l.Name)
	if err != nil {
		return false, "", err
	}
	if cur.DeployPending() || cur.Version != l.Version {
		return false, "the current version is not deployed yet; stale records go once it is", nil
	}
	return true, fmt.Sprintf("the current key's records are public since %s, more than the %s hold", stamp(since), hold), nil
}

// MarkPublished takes the lineage's lock, re-reads it (a renewal may
// have switched keys meanwhile) and records that the pins of keys that
// are still its own are public from now on, with hold as the time the
// next key's pins must be public before a renewal switches to it.
func (e *Engine) MarkPublished(l *acme.Lineage, keys []crypto.PublicKey, hold time.Duration) error {
	unlock, err := e.Store.Lock(l.Name)
	if err != nil {
		return fmt.Errorf("marking the pins of %s published: %w", l.Name, err)
	}
	defer unlock()
	return e.markPublished(l, keys, hold)
}

// markPublished is MarkPublished under the lineage's lock.
func (e *Engine) markPublished(l *acme.Lineage, keys []crypto.PublicKey, hold time.Duration) error {
	now, err := e.Store.Load(l.Name)
	if err != nil {
		return err
	}
	if now.Version != l.Version {
		return fmt.Errorf("lineage %s changed to version %d while its pins were made; nothing was recorded", l.Name, now.Version)
	}
	_, err = acme.MarkPublished(e.Store, now, keys, hold, e.now())
	return err
}
