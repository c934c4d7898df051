package main

import (
	"errors"
	"fmt"

	"github.com/miekg/dns"
	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme/lifecycle"
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

func runPinPublish(c *cli.Context) error {
	engine, l, err := pinLineage(c)
	if err != nil {
		return err
	}
	spec, err := tlsaSpecFrom(c, l)
	if err != nil {
		return err
	}
	client, err := dnsClient(c, "pin publish")
	if err != nil {
		return err
	}
	if z := c.String("dns-zone"); z != "" {
		if _, ok := dns.IsDomainName(z); !ok {
			return usagef("--dns-zone %q is not a domain name", z)
		}
	}
	pub := &pinning.TLSAPublisher{DNS: client, TTL: spec.TTL, Zone: c.String("dns-zone"), DryRun: c.Bool("dry-run")}
	out, perr := engine.PublishTLSA(c.Context, l, spec, pub, holdTime(c), c.Bool("remove-stale"))
	if errors.Is(perr, lifecycle.ErrNoRecords) {
		return usagef("no TLSA records to publish for %s with these parameters; see 'xmppcert pin tlsa %s'", l.Name, l.Name)
	}
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

// dnsClient reads the RFC 2136 flags; the TSIG secret is read from its
// file now, and a bad file is a usage error.
func dnsClient(c *cli.Context, command string) (*dnsupdate.Client, error) {
	cl := &dnsupdate.Client{Server: c.String("dns-rfc2136-server"), KeyName: c.String("dns-tsig-name"), Algorithm: c.String("dns-tsig-alg")}
	if cl.Server == "" {
		return nil, usagef("%s needs --dns-rfc2136-server, the primary that takes the updates", command)
	}
	if f := c.Path("dns-tsig-secret-file"); f != "" {
		secret, err := dnsupdate.LoadTSIGSecret(f)
		if err != nil {
			return nil, usagef("--dns-tsig-secret-file %s: %v", f, err)
		}
		warnExposed(c, "dns-tsig-secret-file", f)
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

func printPublish(c *cli.Context, out lifecycle.PublishResult) {
	w := c.App.Writer
	fmt.Fprint(w, out.Report.String())
	fmt.Fprintf(w, "stale records: %s\n", out.StaleRule)
	if !out.SwitchAfter.IsZero() {
		fmt.Fprintf(w, "renewal may switch %s to its next key after %s\n", out.Lineage, stamp(out.SwitchAfter))
	}
}
