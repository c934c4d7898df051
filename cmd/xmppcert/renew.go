package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
)

func renewCommand() *cli.Command {
	return &cli.Command{
		Name:  "renew",
		Usage: "renew every lineage that is due, deploy it, run hooks; safe to run from cron beside the daemon",
		Description: "A lineage is due when its CA's renewal window (ACME ARI, RFC 9773) says so, else when a third of\n" +
			"its certificate's lifetime is left; --force makes every lineage due. Renewal repeats the lineage's\n" +
			"request (names, roles, key type, --reuse-key, CA, days) and checks the new certificate as issue\n" +
			"does; one that passes goes to the deploy targets and hooks given to issue (stored with the\n" +
			"lineage) and to this run's --deploy and --hook (certbot's environment, XMPPCERT_EVENT=renewed). A lineage that is not due costs a few file reads: the embedded CA is\n" +
			"opened only for a lineage that is due, and an ACME CA is asked for its renewal window no more\n" +
			"often than its Retry-After allows.\n" +
			"Each renewal holds the lineage's lock: a lineage another process (cron, the daemon, issue) is\n" +
			"renewing is skipped, not waited for and not failed. A renewal killed before its deploy finished,\n" +
			"or whose deploy failed, is deployed by the next run. A CA's Retry-After (a rate limit) that the CA\n" +
			"client did not wait for is reported and kept: the CA is not asked again for that lineage before\n" +
			"then, unless --force.\n" +
			"Keys follow the next-key rollover of 'xmppcert pin': a renewal moves to the pre-published next key\n" +
			"only after its pins have been public for the hold time. A lineage whose POSH documents xmppcert\n" +
			"writes is staged: the new certificate is listed in POSH first and deployed by a later run.\n" +
			"Exit 0 when nothing failed (nothing due is success), 1 when any lineage failed (a failed issuance\n" +
			"leaves the deployed certificate unchanged), 2 usage error. --dry-run changes nothing, takes no lock.",
		Flags: append(append([]cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "renew every selected lineage, due or not"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would be renewed and why; change nothing"},
			&cli.StringSliceFlag{Name: "lineage", Usage: "only this lineage (repeatable); default every lineage"},
			&cli.DurationFlag{Name: "timeout", Value: acmeca.DefaultTimeout, Usage: "ACME: give up a lineage's renewal after this long, retries included"},
		}, deployFlags("shell command to run after each renewal, with certbot's environment (repeatable)")...),
			jsonFlag(), quietFlag(),
		),
		OnUsageError: onUsageError,
		Action:       runRenew,
	}
}

// renewReport is the --json form of renew.
type renewReport struct {
	DryRun   bool                      `json:"dry_run"`
	Lineages []lifecycle.LineageResult `json:"lineages"`
	// Counts is the number of lineages per result.
	Counts map[string]int `json:"counts"`
}

func runRenew(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("renew takes no arguments; choose lineages with --lineage NAME")
	}
	if c.Duration("timeout") <= 0 {
		return usagef("--timeout %s: give a positive duration such as 10m", c.Duration("timeout"))
	}
	targets, err := deployTargets(c)
	if err != nil {
		return err
	}
	state, err := stateDir(c)
	if err != nil {
		return err
	}
	engine, done, err := newEngine(c, state, !c.Bool("dry-run"))
	if err != nil {
		return err
	}
	defer done()
	dryRun := c.Bool("dry-run")
	r := engine.NewRenewRun(lifecycle.RenewOptions{Force: c.Bool("force"), DryRun: dryRun, Targets: targets, Timeout: c.Duration("timeout")})
	names, err := lineagesNamed(engine, c.StringSlice("lineage"), "--lineage")
	if err != nil {
		return err
	}
	rep := renewReport{DryRun: dryRun, Lineages: make([]lifecycle.LineageResult, 0, len(names)), Counts: map[string]int{}}
	for l := range r.Lineages(c.Context, names) {
		name := l.Name
		rep.Lineages = append(rep.Lineages, l)
		rep.Counts[l.Result]++
		if l.Result == lifecycle.ResultFailed {
			fmt.Fprintf(c.App.ErrWriter, "xmppcert: %s: %s\n", name, renewError(l))
		}
	}
	out := c.App.Writer
	switch {
	case flagAnywhere(c, "json"):
		if err := writeJSON(out, rep); err != nil {
			return err
		}
	case !flagAnywhere(c, "quiet"):
		if err := writeText(out, func(w io.Writer) { printRenew(w, rep, state) }); err != nil {
			return err
		}
	}
	if left := len(names) - len(rep.Lineages); left > 0 {
		return fmt.Errorf("interrupted: %d of %d lineages not looked at", left, len(names))
	}
	if n := rep.Counts[lifecycle.ResultFailed]; n > 0 {
		return fmt.Errorf("%d of %d lineages failed", n, len(names))
	}
	return nil
}

// deployFlags are the flags that choose deploy targets and hooks (issue
// and renew).
func deployFlags(hookUsage string) []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "deploy", Usage: "prosody[:CERTDIR] or ejabberd[:FILE] (repeatable)"},
		&cli.StringSliceFlag{Name: "hook", Usage: hookUsage},
		&cli.PathFlag{Name: "prosody-config", Usage: "Prosody's configuration file, for the prosody target's 'prosodyctl --config FILE status|reload'"},
		&cli.PathFlag{Name: "ejabberd-ctl-config", Usage: "ejabberdctl.cfg, for the ejabberd target's 'ejabberdctl --ctl-config FILE status|reload_config'"},
		serveGraceFlag(),
	}
}

// serveGraceFlag is how long the served check after a deploy waits.
func serveGraceFlag() cli.Flag {
	return &cli.DurationFlag{Name: "serve-grace", Value: lifecycle.DefaultServeGrace, Usage: "how long the check after a deploy waits for the --serve-check endpoints to present the new version"}
}

// newEngine is the lifecycle engine over state with the command's
// --serve-grace. With --config naming a [cluster], the lineages are the
// cluster's (etcd) instead of the state directory's, as in the daemon;
// done then writes them into the state directory's certbot layout
// (lifecycle.Mirror) when mirror is true (the command changed them) and
// leaves the cluster. Call done when the command's work is over.
func newEngine(c *cli.Context, state string, mirror bool) (engine *lifecycle.Engine, done func(), err error) {
	grace := c.Duration("serve-grace")
	if grace < 0 {
		return nil, nil, usagef("--serve-grace %s: give a duration of 0 or more", grace)
	}
	store, err := clusterStore(c)
	if err != nil {
		return nil, nil, err
	}
	if store == nil {
		engine = lifecycle.OnDisk(state)
		engine.Now, engine.ServeGrace = clock, grace
		return engine, func() {}, nil
	}
	engine = lifecycle.OnCluster(state, store)
	engine.Now, engine.ServeGrace = clock, grace
	return engine, func() {
		if mirror {
			if _, err := lifecycle.Mirror(store, acme.DiskStore{Dir: state}); err != nil {
				fmt.Fprintf(c.App.ErrWriter, "xmppcert: writing the cluster's lineages into %s: %v\n", state, err)
			}
		}
		store.Close()
	}, nil
}

// deployRequest reads --deploy, --hook, --prosody-config and
// --ejabberd-ctl-config into the request fields that store them, and
// checks them.
func deployRequest(c *cli.Context) (acme.Request, error) {
	r := acme.Request{Deploy: c.StringSlice("deploy"), Hooks: c.StringSlice("hook")}
	for _, spec := range r.Deploy {
		if _, err := acme.ParseTarget(spec); err != nil {
			return r, usagef("--deploy: %v", err)
		}
	}
	for _, h := range r.Hooks {
		if strings.TrimSpace(h) == "" {
			return r, usagef("--hook is empty; give a shell command")
		}
	}
	for _, f := range []struct {
		flag string
		dst  *string
	}{{"prosody-config", &r.ProsodyConfig}, {"ejabberd-ctl-config", &r.EjabberdCtlConfig}} {
		path := c.Path(f.flag)
		if path == "" {
			continue
		}
		abs, err := filepath.Abs(path)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return r, usagef("--%s %s: %v", f.flag, path, err)
		}
		*f.dst = abs
	}
	return r, nil
}

// deployTargets are the targets --deploy and --hook give (renew).
func deployTargets(c *cli.Context) ([]acme.Target, error) {
	r, err := deployRequest(c)
	if err != nil {
		return nil, err
	}
	return r.Targets()
}

// renewError is a failed lineage's error with the hint the command
// line adds: what the operator can do about it.
func renewError(l lifecycle.LineageResult) string {
	var wait *lifecycle.WaitingError
	if errors.As(l.Err, &wait) {
		return l.Error + "; renew waits until then, or try now with --force"
	}
	var ae *acmeca.Error
	if errors.As(l.Err, &ae) && ae.Remedy() == acmeca.RemedyTimeout {
		return l.Error + " (xmppcert renew --timeout)"
	}
	return l.Error + remedyHint(l.Err)
}

// printRenew writes the text summary: a line per lineage, the deploy
// results under it, and the counts.
func printRenew(w io.Writer, rep renewReport, state string) {
	if len(rep.Lineages) == 0 {
		fmt.Fprintf(w, "No lineages in %s/live; 'xmppcert issue DOMAIN' creates one.\n", state)
		return
	}
	for _, l := range rep.Lineages {
		switch l.Result {
		case lifecycle.ResultNotDue:
			fmt.Fprintf(w, "%s: not due before %s, %s\n", l.Name, stamp(l.DueAt), l.Reason)
		case lifecycle.ResultRenewed, lifecycle.ResultDeployed:
			fmt.Fprintf(w, "%s: %s version %d (valid until %s, next due %s): %s\n", l.Name, l.Result, l.Version, stamp(l.NotAfter), stamp(l.DueAt), l.Reason)
		case lifecycle.ResultWouldRenew:
			fmt.Fprintf(w, "%s: would renew: %s\n", l.Name, l.Reason)
		case lifecycle.ResultWouldDeploy:
			fmt.Fprintf(w, "%s: would deploy: %s\n", l.Name, l.Reason)
		case lifecycle.ResultSkipped:
			fmt.Fprintf(w, "%s: skipped: %s\n", l.Name, l.Reason)
		case lifecycle.ResultStaged:
			fmt.Fprintf(w, "%s: staged: %s\n", l.Name, l.Reason)
		case lifecycle.ResultFailed:
			fmt.Fprintf(w, "%s: FAILED: %s\n", l.Name, renewError(l))
		}
		printDeployResults(w, l.Deploy)
		printServed(w, l.Served)
		for _, n := range l.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
	var counts []string
	for _, res := range []string{lifecycle.ResultRenewed, lifecycle.ResultDeployed, lifecycle.ResultStaged, lifecycle.ResultWouldRenew, lifecycle.ResultWouldDeploy, lifecycle.ResultNotDue, lifecycle.ResultSkipped, lifecycle.ResultFailed} {
		if n := rep.Counts[res]; n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, strings.ReplaceAll(res, "-", " ")))
		}
	}
	suffix := ""
	if rep.DryRun {
		suffix = "; dry run, nothing was changed"
	}
	noun := "lineages"
	if len(rep.Lineages) == 1 {
		noun = "lineage"
	}
	fmt.Fprintf(w, "%d %s: %s%s\n", len(rep.Lineages), noun, strings.Join(counts, ", "), suffix)
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }
