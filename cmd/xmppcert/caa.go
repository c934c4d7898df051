package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/preflight"
	"github.com/xmppcert/xmppcert/pinning"
)

func caaCommand() *cli.Command {
	return &cli.Command{
		Name: "caa", Usage: "CAA records that bind a lineage's names to its CA, our ACME account and our challenge (RFC 8659, RFC 8657)",
		ArgsUsage: "LINEAGE",
		Description: "Prints, for every name of the lineage, the issue record naming the CA (its directory's CAA\n" +
			"identity, or --caa-identity given at issuance) with accounturi, the ACME account kept in the state\n" +
			"directory, and validationmethods, the challenges configured: another account at the same CA, even\n" +
			"one that passes validation, then gets no certificate. --publish adds them by RFC 2136 and removes\n" +
			"the same CA's other issue records in the same update; other CAs' records and iodef are kept.\n" +
			"The embedded CA checks no CAA: nothing to print. Exit 0, 1 when publishing fails, 2 usage error.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "publish", Usage: "publish the records by RFC 2136 dynamic update"},
			&cli.StringFlag{Name: "dns-rfc2136-server", Usage: "with --publish: primary server HOST[:PORT] taking the updates"},
			&cli.StringFlag{Name: "dns-zone", Usage: "with --publish: the zone holding the names (default: asked of the server by SOA)"},
			&cli.StringFlag{Name: "dns-tsig-name", Usage: "with --publish: TSIG key name"},
			&cli.StringFlag{Name: "dns-tsig-alg", Usage: "with --publish: TSIG algorithm (hmac-sha256 by default)"},
			&cli.PathFlag{Name: "dns-tsig-secret-file", Usage: "with --publish: file holding the TSIG secret"},
			&cli.DurationFlag{Name: "ttl", Value: pinning.DefaultCAATTL, Usage: "TTL of the records"},
			&cli.BoolFlag{Name: "dry-run", Usage: "with --publish: say what would change, send nothing"},
			jsonFlag(),
		},
		Subcommands:  []*cli.Command{caaVerifyCommand()},
		OnUsageError: onUsageError,
		Action:       runCAA,
	}
}

func caaVerifyCommand() *cli.Command {
	return &cli.Command{
		Name: "verify", Usage: "check what DNS serves: may the lineage's CA issue to our account by our challenge?",
		ArgsUsage: "LINEAGE",
		Description: "For every name of the lineage, finds the CAA record set that applies as a CA does (the name, a\n" +
			"CNAME target, then each parent) through the resolver, which should validate DNSSEC, and judges the\n" +
			"next order by it. Exit 0 when every name permits it, 1 when one does not (or DNSSEC is bogus), 2\n" +
			"usage error.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "resolver", Usage: "HOST:PORT of the resolver (default: the lineage's pre-flight resolver, else the system's)"},
			jsonFlag(),
		},
		OnUsageError: onUsageError,
		Action:       runCAAVerify,
	}
}

func preflightCommand() *cli.Command {
	return &cli.Command{
		Name: "preflight", Usage: "check, without ordering, what would make the CA refuse an order",
		ArgsUsage: "LINEAGE | DOMAIN --ca CA [issue's flags]",
		Description: "Runs the checks issue, renew and the daemon run before every order to a public CA (or one given\n" +
			"--caa-identity): CAA permits this CA, this account and a configured challenge for every name;\n" +
			"DNSSEC is not bogus; for http-01/tls-alpn-01 every name has an address and a standalone\n" +
			"responder's address is free; for dns-01 by RFC 2136 the primary accepts the key. For a lineage its\n" +
			"stored request is checked; for a DOMAIN not issued yet, the request issue's flags describe. Exit 0\n" +
			"when the order would go out, 1 when it would be refused, 2 usage error.",
		Flags: append(issueCommand().Flags,
			&cli.StringFlag{Name: "resolver", Usage: "HOST:PORT of the resolver (default: the pre-flight resolver stored or given, else the system's)"}),
		OnUsageError: onUsageError,
		Action:       runPreflight,
	}
}

// caaLineage loads an ACME lineage for command and applies --resolver.
func caaLineage(c *cli.Context, command string) (string, *acme.Lineage, error) {
	engine, l, err := loadLineage(c, command)
	if err != nil {
		return "", nil, err
	}
	if lifecycle.LocalCA(l.Request) {
		return "", nil, usagef("lineage %s is issued by the embedded CA, which checks no CAA records: nothing to %s", l.Name, strings.TrimPrefix(command, "caa "))
	}
	if r := c.String("resolver"); r != "" {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return "", nil, usagef("--resolver %q is not HOST:PORT (127.0.0.1:53, say)", r)
		}
		a := *l.Request.ACME
		a.Resolver = r
		l.Request.ACME = &a
	}
	return engine.StateDir, l, nil
}

// caaIssuer is the lineage's CAAIssuer, with its errors phrased.
func caaIssuer(c *cli.Context, state string, l *acme.Lineage) (pinning.CAAIssuer, error) {
	iss, err := lifecycle.CAAIssuer(c.Context, state, l.Request)
	if errors.Is(err, lifecycle.ErrNoCAAIdentity) {
		return iss, usagef("lineage %s: %v; give it when issuing with --caa-identity (the CA's documentation names it)", l.Name, err)
	}
	return iss, err
}

func runCAA(c *cli.Context) error {
	state, l, err := caaLineage(c, "caa")
	if err != nil {
		return err
	}
	if c.Duration("ttl") < time.Second {
		return usagef("--ttl %s: give at least 1s", c.Duration("ttl"))
	}
	iss, err := caaIssuer(c, state, l)
	if err != nil {
		return err
	}
	records := pinning.CAARecords(l.Request.Domains(), iss, uint32(c.Duration("ttl").Seconds()))
	var notes []string
	if iss.AccountURI == "" {
		notes = append(notes, "no ACME account of ours at this CA yet: the records carry no accounturi; run this again after the first issuance")
	}
	out := struct {
		Lineage   string                  `json:"lineage"`
		Issuer    pinning.CAAIssuer       `json:"issuer"`
		Records   []string                `json:"records"`
		Published []pinning.CAANameReport `json:"published"`
		Notes     []string                `json:"notes"`
	}{Lineage: l.Name, Issuer: iss, Records: []string{}, Published: []pinning.CAANameReport{}, Notes: notes}
	for _, rr := range records {
		out.Records = append(out.Records, rr.String())
	}
	var perr error
	if c.Bool("publish") {
		client, err := dnsClient(c, "caa --publish")
		if err != nil {
			return err
		}
		if z := c.String("dns-zone"); z != "" {
			if _, ok := dns.IsDomainName(z); !ok {
				return usagef("--dns-zone %q is not a domain name", z)
			}
		}
		p := &pinning.CAAPublisher{DNS: client, TTL: c.Duration("ttl"), Zone: c.String("dns-zone"), DryRun: c.Bool("dry-run")}
		out.Published, perr = p.Publish(c.Context, records)
	}
	if flagAnywhere(c, "json") {
		if err := writeJSON(c.App.Writer, out); err != nil {
			return err
		}
		return perr
	}
	w := c.App.Writer
	if !c.Bool("publish") {
		for _, r := range out.Records {
			fmt.Fprintln(w, r)
		}
	}
	would := ""
	if c.Bool("dry-run") {
		would = "would "
	}
	for _, n := range out.Published {
		for _, l := range []struct {
			verb string
			data []string
		}{{would + "add", n.Added}, {would + "remove", n.Removed}, {"keep", n.Kept}, {"keep (other CA or iodef)", n.Others}} {
			for _, d := range l.data {
				fmt.Fprintf(w, "%s: %s CAA %s\n", l.verb, n.Name, d)
			}
		}
	}
	for _, n := range notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return perr
}

func runCAAVerify(c *cli.Context) error {
	state, l, err := caaLineage(c, "caa verify")
	if err != nil {
		return err
	}
	iss, err := caaIssuer(c, state, l)
	if err != nil {
		return err
	}
	checker := &pinning.CAAChecker{Resolver: l.Request.ACME.Resolver}
	var decisions []pinning.CAADecision
	failed := false
	for _, name := range l.Request.Domains() {
		d, err := checker.Check(c.Context, name, iss)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		failed = failed || !d.Permitted
		decisions = append(decisions, d)
	}
	if flagAnywhere(c, "json") {
		if err := writeJSON(c.App.Writer, decisions); err != nil {
			return err
		}
	} else {
		for _, d := range decisions {
			printCAADecision(c.App.Writer, d)
		}
	}
	if failed {
		return errInvalid
	}
	return nil
}

// printCAADecision is one name's verdict and the records behind it.
func printCAADecision(w io.Writer, d pinning.CAADecision) {
	verdict := "permitted"
	if !d.Permitted {
		verdict = "REFUSED"
	}
	fmt.Fprintf(w, "%s: %s (%s): %s\n", strings.TrimSuffix(d.Name, "."), verdict, d.Reason, d.Detail)
	for _, r := range d.Records {
		fmt.Fprintf(w, "  %s CAA %s\n", d.Owner, r)
	}
}

func runPreflight(c *cli.Context) error {
	state, req, err := preflightRequest(c)
	if err != nil {
		return err
	}
	r, err := lifecycle.PreflightLineage(c.Context, state, req)
	var refused *preflight.RefusedError
	if err != nil && !errors.As(err, &refused) {
		return err
	}
	if flagAnywhere(c, "json") {
		if err := writeJSON(c.App.Writer, r); err != nil {
			return err
		}
	} else {
		w := c.App.Writer
		for _, f := range r.Findings {
			mark := "ok  "
			if !f.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "%s %-10s %s %s\n", mark, f.Check, f.Name, f.Detail)
		}
		if refused == nil {
			fmt.Fprintf(w, "the order may go out, validated by %s\n", strings.Join(r.Methods, ", "))
		} else {
			fmt.Fprintln(w, "the CA would refuse the order: fix what FAIL names, then issue or renew")
		}
	}
	if refused != nil {
		return errInvalid
	}
	return nil
}

// preflightRequest is the request preflight checks: the stored one of
// the LINEAGE argument, or, given --ca, the one issue's flags describe
// for a DOMAIN.
func preflightRequest(c *cli.Context) (string, acme.Request, error) {
	if !c.IsSet("ca") {
		state, l, err := caaLineage(c, "preflight")
		if err != nil {
			return "", acme.Request{}, err
		}
		return state, l.Request, nil
	}
	if c.NArg() != 1 {
		return "", acme.Request{}, usagef("preflight needs exactly one DOMAIN with --ca")
	}
	state, err := stateDir(c)
	if err != nil {
		return "", acme.Request{}, err
	}
	plan, err := issueRequest(c)
	if err != nil {
		return "", acme.Request{}, err
	}
	req := plan.reqs[0]
	if lifecycle.LocalCA(req) {
		return "", acme.Request{}, usagef("the embedded CA checks no CAA records and needs no pre-flight; give --ca with an ACME CA")
	}
	if r := c.String("resolver"); r != "" {
		if _, _, err := net.SplitHostPort(r); err != nil {
			return "", acme.Request{}, usagef("--resolver %q is not HOST:PORT (127.0.0.1:53, say)", r)
		}
		req.ACME.Resolver = r
	}
	return state, req, nil
}
