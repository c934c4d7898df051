package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "say whether FILE proves --domain for --service, and what each XMPP peer will do with it",
		ArgsUsage: "FILE|-",
		Description: "FILE is PEM, leaf first, then intermediates (or DER). The chain is validated against --roots\n" +
			"(default: the system roots) at --at (default: now), the identities are matched per RFC 6120 §13.7\n" +
			"with RFC 9525 (or --profile rfc6125), and the EKU policy of the service is applied.\n" +
			"Exit 0 valid, 1 not valid (also for a certificate that crypto/x509 cannot parse), 2 bad usage or\n" +
			"input that holds no certificate.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "domain", Aliases: []string{"d"}, Usage: "the XMPP domain a peer wants to reach (not an SRV target)"},
			&cli.StringFlag{Name: "service", Aliases: []string{"s"}, Value: string(xmppaddr.ServiceClient), Usage: "xmpp-client, xmpp-server or https"},
			&cli.PathFlag{Name: "roots", Usage: "PEM file of trusted roots (default: the system roots)"},
			&cli.StringFlag{Name: "at", Usage: "validate at this time: RFC 3339 (2026-05-01T12:00:00Z) or a date (2026-05-01)"},
			&cli.StringFlag{Name: "profile", Value: string(xmppaddr.ProfileRFC9525), Usage: "rfc9525 (never the CN) or rfc6125 (CN when no SAN)"},
			jsonFlag(), quietFlag(),
		},
		OnUsageError: onUsageError,
		Action:       runCheck,
	}
}

// checked is the --json form of a check.
type checked struct {
	File string `json:"file"`
	*xmppaddr.Result
	Chain []certSummary `json:"chain"`
}

func runCheck(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("check needs exactly one FILE (or - for stdin); see 'xmppcert check --help'")
	}
	opts, err := checkOptions(c)
	if err != nil {
		return err
	}
	file := c.Args().First()
	certs, err := certfile.Read(file, c.App.Reader)
	var unparseable *certfile.UnparseableError
	var res *xmppaddr.Result
	switch {
	case errors.As(err, &unparseable):
		// A certificate Go refuses is a verdict, not unreadable input.
		res, err = xmppaddr.Unparseable(unparseable.Index, unparseable.Count, unparseable.Err, opts)
	case err != nil:
		return usageError{err.Error()}
	default:
		res, err = xmppaddr.Verify(certs, opts)
	}
	if err != nil {
		return usagef("check: %v", err)
	}
	shown := res.Chain
	if shown == nil {
		shown = certs
	}
	out := checked{File: file, Result: res, Chain: make([]certSummary, len(shown))}
	for i, cert := range shown {
		out.Chain[i] = summarize(cert)
	}
	switch {
	case flagAnywhere(c, "json"):
		if err := writeJSON(c.App.Writer, out); err != nil {
			return err
		}
	case !flagAnywhere(c, "quiet"):
		printCheck(c.App.Writer, out)
	}
	if !res.Valid {
		return errInvalid
	}
	return nil
}

func checkOptions(c *cli.Context) (xmppaddr.Options, error) {
	if c.String("domain") == "" {
		return xmppaddr.Options{}, usagef("check needs --domain DOMAIN, the XMPP domain a peer wants to reach; see 'xmppcert check --help'")
	}
	svc, err := xmppaddr.ParseService(c.String("service"))
	if err != nil {
		return xmppaddr.Options{}, usagef("check --service: %v", err)
	}
	profile, err := xmppaddr.ParseProfile(c.String("profile"))
	if err != nil {
		return xmppaddr.Options{}, usagef("check --profile: %v", err)
	}
	if _, err := xmppaddr.References(c.String("domain"), svc); err != nil {
		return xmppaddr.Options{}, usagef("check --domain: %v", err)
	}
	opts := xmppaddr.Options{Domain: c.String("domain"), Service: svc, Profile: profile, CurrentTime: clock()}
	if at := c.String("at"); at != "" {
		if opts.CurrentTime, err = parseTime(at); err != nil {
			return opts, usagef("check --at: %v", err)
		}
	}
	if roots := c.Path("roots"); roots != "" {
		if opts.Roots, opts.Anchors, err = certfile.ReadAnchors(roots, c.App.Reader); err != nil {
			return opts, usagef("check --roots %v", err)
		}
	}
	return opts, nil
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, time.DateOnly} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-05-01T12:00:00Z) or a date (2026-05-01)", s)
}

func printCheck(w io.Writer, out checked) {
	verdict := "NOT VALID"
	if out.Valid {
		verdict = "valid"
	}
	fmt.Fprintf(w, "%s: %s for %s (%s, %s)\n", out.File, verdict, out.Domain, out.Service, out.Profile)
	for _, m := range out.Matched {
		fmt.Fprintf(w, "  matched  %s %s through %s %q\n", m.ReferenceType, m.Reference, m.Type, m.Presented)
	}
	for i, cert := range out.Chain {
		arrow := "chain   "
		if i == 0 {
			arrow = "leaf    "
		}
		fmt.Fprintf(w, "  %s %s (issuer %s, until %s)\n", arrow, cert.Subject, cert.Issuer, cert.NotAfter.Format(time.DateOnly))
	}
	for _, f := range out.Findings {
		fmt.Fprintf(w, "  %-8s %s: %s\n", f.Severity, f.Code, f.Text)
	}
	if len(out.Peers) > 0 {
		fmt.Fprintln(w, "peers:")
	}
	width := 0
	for _, p := range out.Peers {
		width = max(width, len(p.Peer))
	}
	for _, p := range out.Peers {
		mark := "ok  "
		if !p.Accepts {
			mark = "FAIL"
		}
		differs := ""
		if p.Differs {
			differs = "  [differs from the RFC verdict]"
		}
		fmt.Fprintf(w, "  %s %-*s %s%s\n", mark, width, p.Peer, p.Reason, differs)
	}
}
