package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func probeCommand() *cli.Command {
	return &cli.Command{
		Name:      "probe",
		Usage:     "look at a live XMPP endpoint as a peer does, and grade it against the manifesto",
		ArgsUsage: "DOMAIN",
		Description: "Resolves the SRV records (XEP-0368: STARTTLS and direct TLS), connects to every target and address,\n" +
			"reads the stream features before and after TLS, negotiates STARTTLS (or direct TLS with ALPN, SNI the\n" +
			"domain) and reports the TLS version, cipher, key exchange, the chain and whether it authenticates the\n" +
			"domain for the service, SASL mechanisms, dialback, SASL EXTERNAL with --client-cert, and timings.\n" +
			"--full adds every protocol version (SSLv2 to TLS 1.3), the accepted TLS 1.2/1.3 suites and the\n" +
			"server's preference, and the certificate without SNI. The manifesto grade says pass, fail or\n" +
			"unknown per requirement (SSLv2 is unknown without --full).\n" +
			"Exit 0 when every endpoint was probed and the grade does not fail, 1 for a bad or unreachable\n" +
			"endpoint, 2 usage error.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "service", Value: string(xmppaddr.ServiceClient), Usage: "xmpp-client (c2s) or xmpp-server (s2s)"},
			&cli.StringFlag{Name: "connect", Usage: "HOST:PORT to probe instead of what the SRV records say"},
			&cli.BoolFlag{Name: "direct-tls", Usage: "direct TLS (XEP-0368) at --connect; without --connect, only the _xmpps-* targets"},
			&cli.BoolFlag{Name: "full", Usage: "every TLS version, the accepted cipher suites and their order, the certificate without SNI"},
			&cli.StringFlag{Name: "from", Usage: "own domain sent as the s2s stream's from (servers offer EXTERNAL and dialback by it)"},
			&cli.PathFlag{Name: "client-cert", Usage: "PEM certificate (chain) to present and try SASL EXTERNAL with"},
			&cli.PathFlag{Name: "client-key", Usage: "its PEM private key"},
			&cli.PathFlag{Name: "roots", Usage: "PEM roots the presented chain must lead to (default the system roots)"},
			&cli.StringFlag{Name: "resolver", Usage: "HOST:PORT of the DNS resolver (for --pins, a DNSSEC-validating one)"},
			&cli.StringFlag{Name: "via", Usage: "socks5://HOST:PORT proxy to connect through, to see the endpoints from its network (DNS stays here)"},
			&cli.BoolFlag{Name: "pins", Usage: "add the DANE (TLSA) and POSH verdicts"},
			&cli.StringFlag{Name: "profile", Value: string(xmppaddr.ProfileRFC9525), Usage: "identity rules: rfc9525 or rfc6125"},
			&cli.DurationFlag{Name: "timeout", Value: probe.DefaultTimeout, Usage: "bound on each phase (connect, stream, TLS, ...)"},
			&cli.DurationFlag{Name: "deadline", Usage: "bound on the whole probe (default 5s, 30s with --full)"},
			jsonFlag(),
		},
		OnUsageError: onUsageError,
		Action:       runProbe,
	}
}

func runProbe(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("probe needs exactly one DOMAIN, the XMPP domain to look at")
	}
	domain := c.Args().First()
	opts := probe.Options{
		Service: xmppaddr.Service(c.String("service")), Connect: c.String("connect"), DirectTLS: c.Bool("direct-tls"),
		From: c.String("from"), Resolver: c.String("resolver"), Via: c.String("via"), Pins: c.Bool("pins"),
		Profile: xmppaddr.Profile(c.String("profile")), Timeout: c.Duration("timeout"), Deadline: c.Duration("deadline"),
		Full: c.Bool("full"), FullScan: probe.TLSScan,
	}
	if opts.Timeout <= 0 || c.Duration("deadline") < 0 {
		return usagef("--timeout and --deadline must be positive")
	}
	if err := probe.Validate(domain, opts); err != nil {
		var ie *probe.InputError
		if errors.As(err, &ie) && ie.Field == "connect" {
			return usagef("--connect: %s", ie.Msg)
		}
		if errors.As(err, &ie) && ie.Field != "domain" {
			return usagef("--%s: %s", ie.Field, ie.Msg)
		}
		return usagef("%v", err)
	}
	cert, key := c.Path("client-cert"), c.Path("client-key")
	switch {
	case cert != "" && key != "":
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return usagef("--client-cert %s / --client-key %s: %v", cert, key, oneLineErr(err))
		}
		opts.ClientCert = &pair
	case cert != "" || key != "":
		return usagef("--client-cert and --client-key go together")
	}
	if f := c.Path("roots"); f != "" {
		pool, err := certfile.ReadPool(f, c.App.Reader)
		if err != nil {
			return usagef("--roots %v", err)
		}
		opts.Roots = pool
	}
	res := probe.Probe(c.Context, domain, opts)
	if flagAnywhere(c, "json") {
		if err := writeJSON(c.App.Writer, res); err != nil {
			return err
		}
	} else {
		printProbe(c.App.Writer, res)
	}
	if !res.OK || res.Grade.Verdict == probe.StatusFail {
		return errInvalid
	}
	return nil
}

func oneLineErr(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// printProbe is the text report, for reading at a glance: the verdict,
// then per endpoint what a peer negotiated and saw, then the grade.
func printProbe(w io.Writer, r probe.Result) {
	fmt.Fprintf(w, "%s %s: manifesto %s: %s\n", r.Domain, r.Service, strings.ToUpper(string(r.Grade.Verdict)), r.Grade.Summary)
	if r.Error != "" {
		fmt.Fprintf(w, "  %s: %s\n", r.Failure, r.Error)
	}
	if r.Resolution.Via != "" {
		fmt.Fprintf(w, "via %s\n", r.Resolution.Via)
	}
	for _, e := range r.Endpoints {
		how := "STARTTLS"
		if e.DirectTLS {
			how = "direct TLS"
		}
		where := net.JoinHostPort(e.Host, fmt.Sprint(e.Port))
		if e.Address != "" && e.Address != where {
			where += " [" + e.Address + "]"
		}
		fmt.Fprintf(w, "%s %s, %.0f ms\n", where, how, e.Timings.Total)
		if !e.OK && e.Failure != "" {
			fmt.Fprintf(w, "  FAILED      %s in %s: %s\n", e.Failure, e.Phase, e.Error)
		}
		if !e.DirectTLS {
			req := "optional"
			switch {
			case !e.StartTLS.Offered:
				req = "NOT OFFERED"
			case e.StartTLS.Required:
				req = "required"
			}
			fmt.Fprintf(w, "  starttls    %s\n", req)
		}
		if t := e.TLS; t != nil {
			fs := "forward secret"
			if !t.ForwardSecret {
				fs = "NOT forward secret"
			}
			group := t.Group
			if group == "" {
				group = "no key exchange group"
			}
			fmt.Fprintf(w, "  tls         %s, %s, %s, %s", t.Version, t.Cipher, group, fs)
			if e.DirectTLS {
				fmt.Fprintf(w, ", ALPN %q", t.ALPNNegotiated)
			}
			fmt.Fprintln(w)
			for i, cert := range t.Chain {
				label := "  chain"
				if i > 0 {
					label = "     "
				}
				fmt.Fprintf(w, "%s       %s  (issuer %s; %s %d bits; expires %s, %d days)\n",
					label, cert.Subject, cert.Issuer, cert.KeyType, cert.KeySize, cert.NotAfter.Format("2006-01-02"), cert.DaysLeft)
			}
			if len(t.Chain) > 0 {
				fmt.Fprintf(w, "  sha256      %s (SPKI %s)\n", t.Chain[0].SHA256, t.Chain[0].SPKISHA256)
			}
		}
		if v := e.Certificate; v != nil {
			verdict := "valid"
			if !v.Valid {
				verdict = "NOT VALID"
			}
			fmt.Fprintf(w, "  identity    %s for %s %s\n", verdict, r.Domain, r.Service)
			for _, f := range v.Findings {
				if f.Severity != xmppaddr.Info {
					fmt.Fprintf(w, "    %s: %s\n", f.Severity, f.Text)
				}
			}
		}
		if e.BeforeTLS != nil || e.AfterTLS != nil {
			fmt.Fprintf(w, "  sasl        before TLS: %s; after TLS: %s\n", mechs(e.BeforeTLS), mechs(e.AfterTLS))
		}
		if d := e.Dialback; d != nil {
			fmt.Fprintf(w, "  dialback    %s\n", dialbackText(d))
		}
		if x := e.External; x != nil {
			text := x.Result
			if x.Condition != "" {
				text += " (" + x.Condition + ")"
			}
			fmt.Fprintf(w, "  external    %s\n", text)
		}
		if d := e.DANE; d != nil {
			fmt.Fprintf(w, "  dane        %s at %s (applies: %v)\n", d.Status, d.Owner, d.Applies)
		}
		if p := e.POSH; p != nil {
			fmt.Fprintf(w, "  posh        %s: %s\n", p.Code, p.Text)
		}
		if f := e.Full; f != nil {
			printFull(w, f)
		}
		for _, f := range e.Findings {
			fmt.Fprintf(w, "  %-11s %s\n", f.Severity, f.Text)
		}
	}
	for _, q := range r.Grade.Requirements {
		mark := strings.ToUpper(string(q.Status))
		if !q.Mandatory {
			mark += " (advisory)"
		}
		fmt.Fprintf(w, "%-18s %s: %s\n", mark, q.ID, strings.Join(q.Evidence, "; "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func mechs(s *probe.Stream) string {
	if s == nil {
		return "-"
	}
	if len(s.Features.Mechanisms) == 0 {
		return "none"
	}
	return strings.Join(s.Features.Mechanisms, " ")
}

func dialbackText(d *probe.Dialback) string {
	var where []string
	if d.BeforeTLS {
		where = append(where, "before TLS")
	}
	if d.AfterTLS {
		where = append(where, "after TLS")
	}
	switch {
	case !d.Offered && d.StreamNamespace:
		return "namespace declared, feature not offered"
	case !d.Offered:
		return "not offered"
	}
	s := "offered " + strings.Join(where, " and ")
	if d.Errors {
		s += ", with <errors/>"
	}
	return s
}

// printFull writes the --full findings: versions, suites, preference.
func printFull(w io.Writer, f *probe.Full) {
	if s := f.Scan; s != nil {
		var on, off []string
		for _, v := range s.Versions {
			if v.Offered {
				on = append(on, v.Name)
			} else {
				off = append(off, v.Name)
			}
		}
		fmt.Fprintf(w, "  versions    offered %s; not offered %s\n", strings.Join(on, " "), strings.Join(off, " "))
		pref := "unknown"
		if s.ServerPreference != nil {
			pref = map[bool]string{true: "server's order", false: "client's order"}[*s.ServerPreference]
		}
		fmt.Fprintf(w, "  tls1.2      %d suites (%s)%s\n", len(s.TLS12Ciphers), pref, map[bool]string{true: ", SOME WITHOUT FORWARD SECRECY", false: ""}[s.NonForwardSecret])
		for _, ci := range s.TLS12Ciphers {
			fmt.Fprintf(w, "                %s\n", ci.Name)
		}
		if len(s.TLS13Ciphers) > 0 {
			var names []string
			for _, ci := range s.TLS13Ciphers {
				names = append(names, ci.Name)
			}
			fmt.Fprintf(w, "  tls1.3      %s\n", strings.Join(names, " "))
		}
		for _, e := range s.Errors {
			fmt.Fprintf(w, "  scan error  %s\n", e)
		}
	}
	if sni := f.SNI; sni != nil {
		switch {
		case sni.Error != "":
			fmt.Fprintf(w, "  no SNI      %s\n", sni.Error)
		case sni.Same:
			fmt.Fprintf(w, "  no SNI      the same certificate\n")
		default:
			fmt.Fprintf(w, "  no SNI      another certificate (%s), valid for the domain: %v\n", sni.WithoutSNI, sni.WithoutSNIValid)
		}
	}
	for _, n := range f.Notes {
		fmt.Fprintf(w, "  note        %s\n", n)
	}
}
