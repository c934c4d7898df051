package main

import (
	"cmp"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
)

func deployCommand() *cli.Command {
	return &cli.Command{
		Name:      "deploy",
		Usage:     "deploy lineages' current versions to their stored targets that do not hold them yet",
		ArgsUsage: "[LINEAGE]...",
		Description: "Each lineage records what its deploy targets and hooks hold (STATE/deploy/NAME.json). deploy runs,\n" +
			"for every lineage named (default all), the stored targets that do not hold the current version: a\n" +
			"deploy or hook that failed, or a lineage issued before the target was added. --all runs every\n" +
			"stored target again. Nothing is issued. renew and the daemon do the same for every lineage at\n" +
			"every run, due or not. Exit 0 when every target holds its lineage's version, 1 when a target\n" +
			"failed, 2 usage error (an unknown lineage).",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "all", Usage: "run every stored target again, not only those behind"},
			serveGraceFlag(),
			jsonFlag(), quietFlag(),
		},
		OnUsageError: onUsageError,
		Action:       runDeploy,
	}
}

// deployOutput is the --json form of deploy.
type deployOutput struct {
	Lineages []lifecycle.DeployReport `json:"lineages"`
}

func runDeploy(c *cli.Context) error {
	engine, names, done, err := engineFor(c, true)
	if err != nil {
		return err
	}
	defer done()
	state := engine.StateDir
	out := deployOutput{Lineages: []lifecycle.DeployReport{}}
	failed, seen := 0, 0
	for rep, err := range engine.Deploys(c.Context, names, c.Bool("all")) {
		name := names[seen]
		seen++
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "xmppcert: %s: %v\n", name, err)
			failed++
			continue
		}
		if !rep.Deployed() {
			failed++
		}
		out.Lineages = append(out.Lineages, rep)
	}
	if seen < len(names) {
		return fmt.Errorf("interrupted: %d of %d lineages not looked at", len(names)-seen, len(names))
	}
	switch {
	case flagAnywhere(c, "json"):
		if err := writeJSON(c.App.Writer, out); err != nil {
			return err
		}
	case !flagAnywhere(c, "quiet"):
		if err := writeText(c.App.Writer, func(w io.Writer) { printDeploy(w, out, state) }); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d lineages not fully deployed", failed, len(names))
	}
	return nil
}

// engineFor is the lifecycle engine over --state-dir (with the command's
// --serve-grace; the cluster's lineages with --config's [cluster]: see
// newEngine) and the lineages the arguments name, all without arguments
// (lineageArgs). Call done when the command's work is over.
func engineFor(c *cli.Context, mirror bool) (engine *lifecycle.Engine, names []string, done func(), err error) {
	state, err := stateDir(c)
	if err != nil {
		return nil, nil, nil, err
	}
	engine, done, err = newEngine(c, state, mirror)
	if err != nil {
		return nil, nil, nil, err
	}
	if names, err = lineagesNamed(engine, c.Args().Slice(), ""); err != nil {
		done()
		return nil, nil, nil, err
	}
	return engine, names, done, nil
}

// lineagesNamed are the lineages args name, canonical and sorted, or
// every lineage of the store without args. A name that is not one, or an
// unknown lineage, is a usage error naming flag, the flag args come from
// ("" for the command's arguments).
func lineagesNamed(engine *lifecycle.Engine, args []string, flag string) ([]string, error) {
	all, err := engine.Store.Names()
	if err != nil {
		return nil, fmt.Errorf("listing the lineages in %s: %w", filepath.Join(engine.StateDir, "live"), err)
	}
	if len(args) == 0 {
		return all, nil
	}
	var names []string
	for _, a := range args {
		name, err := acme.CanonicalName(a)
		if err != nil {
			return nil, usagef("%s: %v", cmp.Or(flag, "LINEAGE"), err)
		}
		if !slices.Contains(all, name) {
			msg := fmt.Sprintf("no lineage %s in %s; 'xmppcert certificates' lists them", name, filepath.Join(engine.StateDir, "live"))
			if flag != "" {
				msg = flag + ": " + msg
			}
			return nil, usagef("%s", msg)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// printDeploy writes a line per lineage and one per target deployed.
func printDeploy(w io.Writer, out deployOutput, state string) {
	if len(out.Lineages) == 0 {
		fmt.Fprintf(w, "No lineages in %s/live; 'xmppcert issue DOMAIN' creates one.\n", state)
	}
	for _, l := range out.Lineages {
		if l.UpToDate {
			fmt.Fprintf(w, "%s: version %d: every target holds it\n", l.Lineage, l.Version)
			continue
		}
		fmt.Fprintf(w, "%s: version %d\n", l.Lineage, l.Version)
		printDeployResults(w, l.Deploy)
		printServed(w, l.Served)
		for _, n := range l.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
}

// printDeployResults writes a line per target: deployed (and reloaded,
// for a server), or FAILED with the reason ("not reloaded: ...").
func printDeployResults(w io.Writer, ds []lifecycle.DeployResult) {
	for _, d := range ds {
		switch {
		case d.OK && d.Reloaded:
			fmt.Fprintf(w, "  deployed  %s: reloaded\n", d.Target)
		case d.OK:
			fmt.Fprintf(w, "  deployed  %s\n", d.Target)
		default:
			fmt.Fprintf(w, "  FAILED    %s: %s\n", d.Target, d.Error)
		}
	}
}

// printServed writes a line per endpoint checked after a deploy: served
// with the version, or what it presents instead.
func printServed(w io.Writer, rs []lifecycle.ServedResult) {
	for _, r := range rs {
		if r.OK() {
			fmt.Fprintf(w, "  served    %s: version %d\n", r.Endpoint, r.Version)
			continue
		}
		fmt.Fprintf(w, "  %-9s %s\n", strings.ToUpper(r.Status), r)
	}
}
