package main

import (
	"context"
	"fmt"
	"time"

	"github.com/miekg/dns"
	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/dnsupdate"
	"github.com/xmppcert/xmppcert/pinning"
)

func pinPublishCommand() *cli.Command {
	return &cli.Command{
		Name: "publish", Usage: "publish a lineage's TLSA records by RFC 2136 dynamic update (TSIG)",
		ArgsUsage: "LINEAGE",
		Description: "Adds the records of the current and the next key at every endpoint, in one update per zone.\n" +
			"Records for other keys (a key the lineage moved away from) are stale: they are removed in the\n" +
			"same update only once the current key's records have been public for the hold time and the\n" +
			"current certificate is deployed, so that no moment leaves the deployed key without a record.\n" +
			"Publishing marks the keys published: renewal switches to the next key after the hold time.",
		Flags: append(append(tlsaFlags(), markFlags()[1:]...),
			&cli.StringFlag{Name: "dns-rfc2136-server", Usage: "primary server HOST[:PORT] taking RFC 2136 dynamic updates (required)"},
			&cli.StringFlag{Name: "dns-zone", Usage: "the zone holding the records (default: asked of the server by SOA)"},
			&cli.StringFlag{Name: "dns-tsig-name", Usage: "TSIG key name for the updates"},
			&cli.StringFlag{Name: "dns-tsig-alg", Usage: "TSIG algorithm (hmac-sha256 by default)"},
			&cli.PathFlag{Name: "dns-tsig-secret-file", Usage: "file holding the TSIG secret"},
			&cli.BoolFlag{Name: "remove-stale", Usage: "remove stale records now, even before the hold time"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would change; send no update, record nothing"},
			jsonFlag(),
		),
		OnUsageError: onUsageError,
		Action:       runPinPublish,
	}
}

// publishOutput is the --json form of pin publish.
type publishOutput struct {
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

	report pinning.PublishReport
}

func runPinPublish(c *cli.Context) error {
	store, l, err := pinLineage(c)
	if err != nil {
		return err
	}
	spec, err := tlsaSpecFrom(c, l)
	if err != nil {
		return err
	}
	client, err := dnsClient(c)
	if err != nil {
		return err
	}
	if z := c.String("dns-zone"); z != "" {
		if _, ok := dns.IsDomainName(z); !ok {
			return usagef("--dns-zone %q is not a domain name", z)
		}
	}
	pub := &pinning.TLSAPublisher{DNS: client, TTL: spec.ttl, Zone: c.String("dns-zone"), DryRun: c.Bool("dry-run")}
	out, perr := publishTLSA(c.Context, store, l, spec, pub, holdTime(c), c.Bool("remove-stale"))
	if out.Lineage == "" {
		return perr
	}
	if flagAnywhere(c, "json") {
		if err := writeJSON(c.App.Writer, out); err != nil {
			return err
		}
	} else {
		printPublish(c, out)
	}
	return perr
}

// publishTLSA is pin publish without its command line: it publishes the
// records spec asks for (current and next key) through pub, removes
// stale records when staleRule says so (removeStale forces it), and
// marks the pinned keys published with hold, which starts the next
// key's hold time. An error before anything was sent comes with an
// output whose Lineage is empty; after that the output says what was
// done, and the error what failed.
func publishTLSA(ctx context.Context, store acme.Store, l *acme.Lineage, spec tlsaSpec, pub *pinning.TLSAPublisher, hold time.Duration, removeStale bool) (publishOutput, error) {
	records, _ := spec.records(l)
	if len(records) == 0 {
		return publishOutput{}, usagef("no TLSA records to publish for %s with these parameters; see 'xmppcert pin tlsa %s'", l.Name, l.Name)
	}
	var rrs []*dns.TLSA
	for _, r := range records {
		rrs = append(rrs, r.RR(uint32(spec.ttl/time.Second)))
	}
	remove, rule, err := staleRule(removeStale, store, l, spec, hold)
	if err != nil {
		return publishOutput{}, err
	}
	rep, perr := pub.Publish(ctx, pinning.TLSAByOwner(rrs), remove)
	out := publishOutput{Lineage: l.Name, DryRun: rep.DryRun, StaleRemoved: remove, StaleRule: rule, Names: rep.Names, report: rep}
	if out.Names == nil {
		out.Names = []pinning.TLSANameReport{}
	}
	if perr == nil && !rep.DryRun {
		if keys := spec.pinnedKeys(l); len(keys) > 0 {
			if err := markPublished(store, l, keys, hold); err != nil {
				perr = fmt.Errorf("the records are published, but recording it failed: %w", err)
			} else if ps, err := store.PinState(l.Name); err == nil && l.NextKey != nil {
				if since, ok := ps.PublishedFor(l.NextKey.Public()); ok {
					out.SwitchAfter = since.Add(ps.Hold()).UTC()
				}
			}
		}
	}
	if perr != nil {
		return out, fmt.Errorf("publishing the TLSA records of %s: %w", l.Name, perr)
	}
	return out, nil
}

// dnsClient reads the RFC 2136 flags; the TSIG secret is read from its
// file now, and a bad file is a usage error.
func dnsClient(c *cli.Context) (*dnsupdate.Client, error) {
	cl := &dnsupdate.Client{Server: c.String("dns-rfc2136-server"), KeyName: c.String("dns-tsig-name"), Algorithm: c.String("dns-tsig-alg")}
	if cl.Server == "" {
		return nil, usagef("pin publish needs --dns-rfc2136-server, the primary that takes the updates")
	}
	if f := c.Path("dns-tsig-secret-file"); f != "" {
		secret, err := dnsupdate.LoadTSIGSecret(f)
		if err != nil {
			return nil, usagef("--dns-tsig-secret-file %s: %v", f, err)
		}
		cl.Secret = secret
		if cl.KeyName == "" {
			return nil, usagef("--dns-tsig-secret-file needs --dns-tsig-name, the key's name on the server")
		}
	} else if cl.KeyName != "" {
		return nil, usagef("--dns-tsig-name %s needs --dns-tsig-secret-file, the file holding its secret", cl.KeyName)
	}
	if err := cl.Validate(); err != nil {
		return nil, usagef("%v", err)
	}
	return cl, nil
}

// staleRule decides whether this run removes stale records: when force
// (--remove-stale); for key pins once the current key's records have been
// public for the hold time and its certificate is deployed; never
// otherwise (a CA or full-certificate pin is the operator's to retire).
func staleRule(force bool, store acme.Store, l *acme.Lineage, spec tlsaSpec, hold time.Duration) (bool, string, error) {
	if force {
		return true, "--remove-stale", nil
	}
	if len(spec.pinnedKeys(l)) == 0 {
		return false, "stale records are kept for CA and full-certificate pins; remove them with --remove-stale", nil
	}
	ps, err := store.PinState(l.Name)
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
	if until := since.Add(hold); time.Now().Before(until) {
		return false, fmt.Sprintf("the current key's records are public since %s; stale records go after %s", stamp(since), stamp(until)), nil
	}
	cur, err := store.Current(l.Name)
	if err != nil {
		return false, "", err
	}
	if cur.DeployPending() || cur.Version != l.Version {
		return false, "the current version is not deployed yet; stale records go once it is", nil
	}
	return true, fmt.Sprintf("the current key's records are public since %s, more than the %s hold", stamp(since), hold), nil
}

func printPublish(c *cli.Context, out publishOutput) {
	w := c.App.Writer
	fmt.Fprint(w, out.report.String())
	fmt.Fprintf(w, "stale records: %s\n", out.StaleRule)
	if !out.SwitchAfter.IsZero() {
		fmt.Fprintf(w, "renewal may switch %s to its next key after %s\n", out.Lineage, stamp(out.SwitchAfter))
	}
}
