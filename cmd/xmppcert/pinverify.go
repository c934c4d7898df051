package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func pinVerifyCommand() *cli.Command {
	return &cli.Command{
		Name: "verify", Usage: "check what DNS (TLSA, through a validating resolver) and HTTPS (POSH) publish against what the servers present",
		ArgsUsage: "DOMAIN",
		Description: "Resolves the SRV records of each service (XEP-0368: STARTTLS and direct TLS), fetches TLSA\n" +
			"for every target and port with DNSSEC (the resolver's AD bit; an answer that is not validated is\n" +
			"said to be), fetches POSH, connects to every address and compares the presented chain with every\n" +
			"pin. With a lineage (--lineage, or the lineage named DOMAIN) it also reports records missing for\n" +
			"the current or the next key, and whether a renewal now would leave DANE peers without a match.\n" +
			"Exit 0 when everything matches, 1 when something does not, 2 usage error.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "service", Usage: "xmpp-client or xmpp-server (repeatable; default both)"},
			&cli.StringFlag{Name: "resolver", Usage: "HOST:PORT of a DNSSEC-validating resolver (default: the first nameserver of /etc/resolv.conf)"},
			&cli.StringFlag{Name: "lineage", Usage: "the lineage whose current and next key are expected (default: the lineage named DOMAIN, if any)"},
			&cli.StringFlag{Name: "from", Usage: "own domain sent as the s2s stream's from"},
			&cli.PathFlag{Name: "roots", Usage: "PEM roots for PKIX validation of the XMPP servers (TLSA usages 0 and 1) and of the POSH web server (default the system roots)"},
			&cli.DurationFlag{Name: "timeout", Value: pinning.DefaultVerifyTimeout, Usage: "bound on each query and connection"},
			&cli.BoolFlag{Name: "no-posh", Usage: "do not fetch POSH documents"},
			&cli.StringFlag{Name: "posh-connect", Usage: "HOST:PORT to fetch the POSH documents from, instead of port 443 of DOMAIN (a web server not yet in DNS, or the daemon's [http.https])"},
			jsonFlag(),
		},
		OnUsageError: onUsageError,
		Action:       runPinVerify,
	}
}

func runPinVerify(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("pin verify needs exactly one DOMAIN, the XMPP domain to check")
	}
	domain, err := acme.CanonicalName(c.Args().First())
	if err != nil {
		return usagef("DOMAIN: %v", err)
	}
	services := c.StringSlice("service")
	if len(services) == 0 {
		services = []string{string(xmppaddr.ServiceClient), string(xmppaddr.ServiceServer)}
	}
	for _, s := range services {
		if s != string(xmppaddr.ServiceClient) && s != string(xmppaddr.ServiceServer) {
			return usagef("--service %q: use xmpp-client or xmpp-server", s)
		}
	}
	if r := c.String("resolver"); r != "" {
		if !validHostPort(r) {
			return usagef("--resolver %q: give HOST:PORT of a validating resolver", r)
		}
	}
	if c.Duration("timeout") <= 0 {
		return usagef("--timeout must be positive")
	}
	poshAddr := c.String("posh-connect")
	if poshAddr != "" && !validHostPort(poshAddr) {
		return usagef("--posh-connect %q: give HOST:PORT of the web server", poshAddr)
	}
	expect, lineage, err := expectation(c, domain)
	if err != nil {
		return err
	}
	v := &pinning.Verifier{Resolver: c.String("resolver"), Timeout: c.Duration("timeout"), From: c.String("from"), NoPOSH: c.Bool("no-posh"), CurrentTime: clock()}
	if f := c.Path("roots"); f != "" {
		if v.Roots, err = certfile.ReadPool(f, c.App.Reader); err != nil {
			return usagef("--roots %v", err)
		}
	}
	v.POSH = &pinning.POSHFetcher{RootCAs: v.Roots, Timeout: v.Timeout}
	if poshAddr != "" {
		// The URL, the Host and the name checked stay DOMAIN's.
		v.POSH.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, poshAddr)
		}
	}
	rep := v.Verify(c.Context, domain, services, expect)
	if lineage != "" {
		rep.Notes = append(rep.Notes, "expected pins: the current and the next key of lineage "+lineage)
	}
	if flagAnywhere(c, "json") {
		if err := writeJSON(c.App.Writer, rep); err != nil {
			return err
		}
	} else {
		printVerify(c.App.Writer, rep)
	}
	if !rep.OK {
		return errInvalid
	}
	return nil
}

// validHostPort reports whether s is HOST:PORT with a host and a port
// from 1 to 65535 ("[::1]:53" for IPv6), as --resolver takes it.
func validHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return false
	}
	_, err = parsePort(port)
	return err == nil
}

// expectation reads the expected 3 1 1 pins of --lineage, or of the
// lineage named domain when there is one.
func expectation(c *cli.Context, domain string) (pinning.Expectation, string, error) {
	var e pinning.Expectation
	name := c.String("lineage")
	explicit := name != ""
	if !explicit {
		name = domain
	}
	state, err := stateDir(c)
	if err != nil {
		if explicit {
			return e, "", err
		}
		return e, "", nil
	}
	l, err := acme.DiskStore{Dir: state}.Load(name)
	switch {
	case err != nil && explicit && errors.Is(err, acme.ErrNoLineage):
		return e, "", usagef("--lineage %s: no such lineage in %s/live", name, state)
	case err != nil && explicit:
		return e, "", usagef("--lineage %s: %v", name, err)
	case err != nil:
		return e, "", nil
	}
	e, err = lifecycle.Expectation(l)
	return e, l.Name, err
}

// printVerify is the text report: per service its SRV answer, per target
// the verdict, the records and what is missing, then POSH.
func printVerify(w io.Writer, r pinning.Report) {
	verdict := "OK"
	if !r.OK {
		verdict = "PROBLEMS"
	}
	fmt.Fprintf(w, "%s: %s (resolver %s, %s)\n", r.Domain, verdict, r.Resolver, r.CheckedAt.UTC().Format(time.RFC3339))
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", r.Error)
	}
	for _, s := range r.Services {
		srv := "SRV validated"
		if !s.SRV.Validated {
			srv = "SRV NOT DNSSEC-validated"
		}
		fmt.Fprintf(w, "%s: %s\n", s.Service, srv)
		if s.SRV.Error != "" {
			fmt.Fprintf(w, "  SRV error: %s\n", s.SRV.Error)
		}
		for _, n := range s.SRV.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		for _, t := range s.Targets {
			how := "STARTTLS"
			if t.DirectTLS {
				how = "direct TLS"
			}
			fmt.Fprintf(w, "  %s:%d (%s): %s", t.Target, t.Port, how, t.Status)
			if t.RenewalWouldBreak {
				fmt.Fprint(w, ", A RENEWAL NOW WOULD BREAK DANE")
			}
			fmt.Fprintln(w)
			for _, rc := range t.Records {
				mark := "no match"
				switch {
				case rc.Matches:
					mark = "matches"
				case rc.Stale:
					mark = "stale: pins neither the presented key nor an expected one"
				case rc.Expected == "next":
					mark = "published ahead"
				}
				if rc.Expected != "" {
					mark += ", " + rc.Expected + " key"
				}
				fmt.Fprintf(w, "    %s  (%s)\n", rc.Record, mark)
			}
			for _, m := range t.MissingCurrent {
				fmt.Fprintf(w, "    missing %s  (the current key)\n", m)
			}
			for _, m := range t.MissingNext {
				fmt.Fprintf(w, "    missing %s  (the next key: publish it before the renewal)\n", m)
			}
			for _, cn := range t.Connections {
				if cn.Failure != "" {
					fmt.Fprintf(w, "    %s: %s: %s\n", cn.Address, cn.Failure, cn.Error)
				}
			}
			if t.Error != "" {
				fmt.Fprintf(w, "    error: %s\n", t.Error)
			}
			for _, n := range t.Notes {
				fmt.Fprintf(w, "    note: %s\n", n)
			}
		}
		if p := s.POSH; p != nil {
			fmt.Fprintf(w, "  POSH %s: %s\n", p.Document.Code, p.Document.Text)
			for _, pin := range p.Pins {
				fmt.Fprintf(w, "    %s: %s\n", pin.Code, pin.Text)
			}
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
