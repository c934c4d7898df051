package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
)

func certificatesCommand() *cli.Command {
	return &cli.Command{
		Name:      "certificates",
		Usage:     "list lineages with what is desired, issued, deployed and served (like certbot certificates)",
		ArgsUsage: "[LINEAGE]...",
		Description: "For each lineage (those named, default all): its names and roles, CA, key, the current version and\n" +
			"its validity, a staged version, when it renews and by which rule (the CA's last renewal window, or\n" +
			"a third of the lifetime left), each stored deploy target with the version it holds and whether its\n" +
			"server was reloaded, and what the --serve-check endpoints presented at the last check. It reads the\n" +
			"state directory only: no CA and no endpoint is asked. Exit 0, 1 when a lineage cannot be read, 2\n" +
			"usage error (an unknown lineage).",
		Flags:        []cli.Flag{jsonFlag()},
		OnUsageError: onUsageError,
		Action:       runCertificates,
	}
}

// certificatesOutput is the --json form of certificates.
type certificatesOutput struct {
	Lineages []lifecycle.LineageStatus `json:"lineages"`
}

func runCertificates(c *cli.Context) error {
	engine, names, done, err := engineFor(c, false)
	if err != nil {
		return err
	}
	defer done()
	state := engine.StateDir
	out := certificatesOutput{Lineages: []lifecycle.LineageStatus{}}
	failed, read := 0, 0
	for st, err := range engine.Statuses(c.Context, names) {
		read++
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "xmppcert: %s: %v\n", st.Name, err)
			failed++
			continue
		}
		out.Lineages = append(out.Lineages, st)
	}
	if read < len(names) {
		return fmt.Errorf("interrupted: %d of %d lineages not read", len(names)-read, len(names))
	}
	if flagAnywhere(c, "json") {
		if err := writeJSON(c.App.Writer, out); err != nil {
			return err
		}
	} else {
		if err := writeText(c.App.Writer, func(w io.Writer) { printCertificates(w, out, state, clock()) }); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d lineages could not be read", failed, len(names))
	}
	return nil
}

// printCertificates writes a block per lineage.
func printCertificates(w io.Writer, out certificatesOutput, state string, now time.Time) {
	if len(out.Lineages) == 0 {
		fmt.Fprintf(w, "No lineages in %s/live; 'xmppcert issue DOMAIN' creates one.\n", state)
	}
	for i, l := range out.Lineages {
		if i > 0 {
			fmt.Fprintln(w)
		}
		ca := l.CA
		if ca == "local" {
			ca = "the embedded CA"
		}
		fmt.Fprintf(w, "%s: version %d, %s, from %s\n", l.Name, l.Version, l.Key, ca)
		var names []string
		for _, n := range l.Names {
			names = append(names, fmt.Sprintf("%s (%s)", n.Domain, n.Role))
		}
		fmt.Fprintf(w, "  names     %s\n", strings.Join(names, ", "))
		left := l.NotAfter.Sub(now)
		valid := fmt.Sprintf("%d days left", int(left.Hours()/24))
		if left <= 0 {
			valid = "EXPIRED"
		}
		fmt.Fprintf(w, "  valid     %s to %s (%s)\n", stamp(l.NotBefore), stamp(l.NotAfter), valid)
		rule := "a third of its lifetime left"
		switch {
		case l.Revoked != nil:
			rule = "revoked: " + acme.ReasonName(l.Revoked.Reason)
		case l.Rule == acme.RuleARI:
			rule = "the CA's renewal window"
		}
		due := ""
		if l.Due {
			due = ", due now"
		}
		fmt.Fprintf(w, "  renews    %s (%s%s)\n", stamp(l.RenewAt), rule, due)
		if l.Staged > 0 {
			fmt.Fprintf(w, "  staged    version %d, waiting for POSH\n", l.Staged)
		}
		if !l.RetryAfter.IsZero() && l.RetryAfter.After(now) {
			fmt.Fprintf(w, "  waiting   the CA asked not to be asked again before %s\n", stamp(l.RetryAfter))
		}
		if len(l.Targets) == 0 {
			fmt.Fprintf(w, "  deploy    no targets or hooks stored\n")
		}
		for _, t := range l.Targets {
			fmt.Fprintf(w, "  deploy    %s: %s\n", t.Target, targetState(t, l.Version))
		}
		for _, s := range l.Served {
			fmt.Fprintf(w, "  served    %s (checked %s)\n", s.Detail, stamp(s.At))
		}
	}
}

// targetState says what a target holds, in words.
func targetState(t lifecycle.TargetStatus, current int) string {
	r := t.Record
	switch {
	case r == nil && t.Holds:
		return fmt.Sprintf("version %d (deployed before deploy records were kept)", current)
	case r == nil:
		return "NOT DEPLOYED yet"
	case r.Failed > 0:
		s := fmt.Sprintf("FAILED at version %d: %s", r.Failed, r.Error)
		if r.Version > 0 {
			s += fmt.Sprintf("; holds version %d", r.Version)
		}
		return s
	case r.Version < current:
		return fmt.Sprintf("BEHIND: holds version %d", r.Version)
	case r.Reloaded:
		return fmt.Sprintf("version %d, reloaded %s", r.Version, stamp(r.At))
	}
	return fmt.Sprintf("version %d, %s", r.Version, stamp(r.At))
}
