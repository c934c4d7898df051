package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/watcher/ct"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func ctCommand() *cli.Command {
	return &cli.Command{
		Name: "ct", Usage: "Certificate Transparency: search logs for certificates of a domain",
		Subcommands: []*cli.Command{{
			Name: "check", Usage: "search CT logs once for certificates and precertificates of DOMAIN, ours and not",
			ArgsUsage: "DOMAIN",
			Description: "Reads the last --count entries of each --log (a static-ct-api monitoring prefix or an RFC 6962\n" +
				"base URL), or --count entries from --from, and lists every certificate and precertificate whose\n" +
				"names cover DOMAIN (a wildcard over it included): those of a lineage in the state directory\n" +
				"(matched by their TBSCertificate, so a precertificate matches its certificate) as ours, the rest\n" +
				"with issuer, serial, not-before and whether issuer and key are ours. The daemon does this for\n" +
				"every new entry with [ct]. Exit 0 when every match is ours, 1 when one is not (or a log cannot be\n" +
				"read), 2 usage error.",
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "log", Usage: "log URL (repeatable, required)"},
				&cli.Uint64Flag{Name: "from", Usage: "first entry to read (default: the last --count entries)"},
				&cli.Uint64Flag{Name: "count", Value: 10000, Usage: "how many entries to read of each log"},
				jsonFlag(),
			},
			OnUsageError: onUsageError,
			Action:       runCTCheck,
		}},
	}
}

// ctFinding is one match of ct check.
type ctFinding struct {
	Log     string   `json:"log"`
	Index   uint64   `json:"index"`
	Precert bool     `json:"precertificate"`
	Names   []string `json:"names"`
	// Lineage is the lineage it is a version of; empty when xmppcert did
	// not issue it.
	Lineage string `json:"lineage,omitempty"`
	Text    string `json:"text"`
}

func runCTCheck(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("ct check needs exactly one DOMAIN")
	}
	domain, err := xmppaddr.CanonicalDomain(c.Args().First())
	if err != nil {
		return usagef("DOMAIN: %v", err)
	}
	urls := c.StringSlice("log")
	if len(urls) == 0 {
		return usagef("ct check needs --log URL, a CT log to search (repeatable)")
	}
	if c.Uint64("count") == 0 {
		return usagef("--count must be at least 1")
	}
	state, err := stateDir(c)
	if err != nil {
		return err
	}
	m, err := ct.LineageMatcher(acme.DiskStore{Dir: state}, domain)
	if err != nil {
		return err
	}
	var from *uint64
	if c.IsSet("from") {
		v := c.Uint64("from")
		from = &v
	}
	var findings []ctFinding
	errs := ct.Search(c.Context, urls, from, c.Uint64("count"), m, func(l ct.Log, mt ct.Match) {
		fd := ctFinding{Log: l.URL, Index: mt.Entry.Index, Precert: mt.Entry.Precert, Names: mt.Names, Lineage: mt.Ours}
		if mt.Ours != "" {
			what := "certificate"
			if mt.Entry.Precert {
				what = "precertificate"
			}
			fd.Text = fmt.Sprintf("CT log %s entry %d: a %s for %s issued by xmppcert (lineage %s)", l.URL, mt.Entry.Index, what, strings.Join(mt.Names, ", "), mt.Ours)
		} else {
			fd.Text = mt.Describe(l.URL)
		}
		findings = append(findings, fd)
	})
	failed := []string{}
	for _, err := range errs {
		failed = append(failed, err.Error())
	}
	unexpected := 0
	for _, f := range findings {
		if f.Lineage == "" {
			unexpected++
		}
	}
	if flagAnywhere(c, "json") {
		if findings == nil {
			findings = []ctFinding{}
		}
		if err := writeJSON(c.App.Writer, struct {
			Findings []ctFinding `json:"findings"`
			Errors   []string    `json:"errors"`
		}{findings, failed}); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			fmt.Fprintln(c.App.Writer, f.Text)
		}
		for _, e := range failed {
			fmt.Fprintf(c.App.ErrWriter, "xmppcert: %s\n", e)
		}
		fmt.Fprintf(c.App.Writer, "%d matches for %s, %d not issued by xmppcert\n", len(findings), domain, unexpected)
	}
	if unexpected > 0 || len(failed) > 0 {
		return errInvalid
	}
	return nil
}
