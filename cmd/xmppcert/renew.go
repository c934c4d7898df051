package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/xmppaddr"
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
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "renew every selected lineage, due or not"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would be renewed and why; change nothing"},
			&cli.StringSliceFlag{Name: "lineage", Usage: "only this lineage (repeatable); default every lineage"},
			&cli.StringSliceFlag{Name: "deploy", Usage: "prosody[:CERTDIR] or ejabberd[:FILE] (repeatable)"},
			&cli.StringSliceFlag{Name: "hook", Usage: "shell command to run after each renewal, with certbot's environment (repeatable)"},
			jsonFlag(), quietFlag(),
		},
		OnUsageError: onUsageError,
		Action:       runRenew,
	}
}

// Results of one lineage in a renew run.
const (
	resultNotDue      = "not-due"
	resultRenewed     = "renewed"
	resultDeployed    = "deployed" // an earlier renewal's deploy, finished
	resultWouldRenew  = "would-renew"
	resultWouldDeploy = "would-deploy"
	resultSkipped     = "skipped" // another process holds or just renewed it
	resultStaged      = "staged"  // a new version waits for POSH to list it (renewposh.go)
	resultFailed      = "failed"
)

// renewReport is the --json form of renew.
type renewReport struct {
	DryRun   bool            `json:"dry_run"`
	Lineages []lineageReport `json:"lineages"`
	// Counts is the number of lineages per result.
	Counts map[string]int `json:"counts"`
}

// lineageReport is what renew did with one lineage.
type lineageReport struct {
	Name   string `json:"name"`
	Result string `json:"result"`
	Due    bool   `json:"due"`
	// Rule is the renewal rule that decided (acme.Rule*).
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason,omitempty"`
	// DueAt is when the current certificate is due; for a renewed
	// lineage, when the new one is due by the lifetime rule.
	DueAt time.Time `json:"due_at,omitzero"`
	// Version and NotAfter describe the current version after the run.
	Version  int       `json:"version,omitempty"`
	NotAfter time.Time `json:"not_after,omitzero"`
	// RetryAfter is when the CA asked to be asked again.
	RetryAfter time.Time `json:"retry_after,omitzero"`
	// Key is which key a renewal used (acme.Key*: new, reused, next,
	// held); a note says why when it was held.
	Key    string        `json:"key,omitempty"`
	Deploy []deployState `json:"deploy"`
	Notes  []string      `json:"notes,omitempty"`
	Error  string        `json:"error,omitempty"`
}

func (l *lineageReport) fail(err error) lineageReport {
	l.Result, l.Error = resultFailed, err.Error()
	return *l
}

// renewer renews lineages one at a time.
type renewer struct {
	store   acme.Store
	force   bool
	dryRun  bool
	targets []acme.Target
	// ariFailed holds, per CA, the error of a question for a renewal
	// window that failed in this run.
	ariFailed map[string]error
	// open is openIssuer; tests put CAs that fail or advise in its place.
	open func(state string, req acme.Request) (acme.Issuer, *x509.CertPool, func(), error)
}

func runRenew(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("renew takes no arguments; choose lineages with --lineage NAME")
	}
	targets, err := deployTargets(c)
	if err != nil {
		return err
	}
	state, err := stateDir(c)
	if err != nil {
		return err
	}
	r := &renewer{store: acme.Store{Dir: state}, force: c.Bool("force"), dryRun: c.Bool("dry-run"),
		targets: targets, ariFailed: map[string]error{}, open: openIssuer}
	names, err := r.store.Names()
	if err != nil {
		return fmt.Errorf("listing the lineages in %s: %w", state, err)
	}
	if sel := c.StringSlice("lineage"); len(sel) > 0 {
		for _, n := range sel {
			if !slices.Contains(names, n) {
				return usagef("--lineage %s: no such lineage in %s/live; 'ls %s/live' lists them", n, state, state)
			}
		}
		slices.Sort(sel)
		names = slices.Compact(sel)
	}
	rep := renewReport{DryRun: r.dryRun, Lineages: []lineageReport{}, Counts: map[string]int{}}
	for _, name := range names {
		if c.Context.Err() != nil {
			break
		}
		l := r.lineage(c.Context, name)
		rep.Lineages = append(rep.Lineages, l)
		rep.Counts[l.Result]++
		if l.Result == resultFailed {
			fmt.Fprintf(c.App.ErrWriter, "xmppcert: %s: %s\n", name, l.Error)
		}
	}
	out := c.App.Writer
	switch {
	case flagAnywhere(c, "json"):
		if err := writeJSON(out, rep); err != nil {
			return err
		}
	case !flagAnywhere(c, "quiet"):
		printRenew(out, rep, state)
	}
	if left := len(names) - len(rep.Lineages); left > 0 {
		return fmt.Errorf("interrupted: %d of %d lineages not looked at", left, len(names))
	}
	if n := rep.Counts[resultFailed]; n > 0 {
		return fmt.Errorf("%d of %d lineages failed", n, len(names))
	}
	return nil
}

// deployTargets reads --deploy and --hook (issue and renew).
func deployTargets(c *cli.Context) ([]acme.Target, error) {
	for _, spec := range c.StringSlice("deploy") {
		if _, err := acme.ParseTarget(spec); err != nil {
			return nil, usagef("--deploy: %v", err)
		}
	}
	for _, h := range c.StringSlice("hook") {
		if strings.TrimSpace(h) == "" {
			return nil, usagef("--hook is empty; give a shell command")
		}
	}
	return acme.Request{Deploy: c.StringSlice("deploy"), Hooks: c.StringSlice("hook")}.Targets()
}

// lineageTargets are the targets a renewal deploys to: the ones stored
// with the lineage at issuance, then those given to this run that are
// not among them.
func (r *renewer) lineageTargets(l *acme.Lineage) ([]acme.Target, error) {
	stored, err := l.Request.Targets()
	if err != nil {
		return nil, fmt.Errorf("the deploy targets stored with the lineage: %w", err)
	}
	seen := map[string]bool{}
	for _, t := range stored {
		seen[t.String()] = true
	}
	for _, t := range r.targets {
		if !seen[t.String()] {
			stored = append(stored, t)
		}
	}
	return stored, nil
}

// lineage decides about one lineage and, when it is due, renews and
// deploys it. The decision is made without the lock, from files that are
// replaced atomically, so that a run where nothing is due writes nothing;
// a lineage that is due is locked and read again, and if another process
// renewed it meanwhile it is left alone.
func (r *renewer) lineage(ctx context.Context, name string) lineageReport {
	rep := lineageReport{Name: name, Deploy: []deployState{}}
	cur, err := r.store.Current(name)
	if err != nil {
		return rep.fail(err)
	}
	rep.Version, rep.NotAfter = cur.Version, cur.Leaf.NotAfter.UTC()
	now := time.Now()
	pending := cur.DeployPending()
	if pending {
		rep.Due, rep.Reason = true, fmt.Sprintf("version %d was renewed by an earlier run that did not finish deploying it", cur.Version)
	} else {
		d := r.decide(ctx, cur, now, &rep)
		rep.Due, rep.Rule, rep.Reason, rep.DueAt = d.Due, d.Rule, d.Reason, d.At.UTC()
		if !d.Due {
			rep.Result = resultNotDue
			return rep
		}
		if r.waiting(cur, now) {
			return r.waitFailure(cur, rep)
		}
	}
	if r.dryRun {
		rep.Result = resultWouldRenew
		if pending {
			rep.Result = resultWouldDeploy
		}
		return rep
	}
	unlock, err := r.store.Lock(name)
	var held *acme.LockedError
	if errors.As(err, &held) {
		rep.Result, rep.Reason = resultSkipped, "being renewed or issued by another xmppcert process"
		if held.PID > 0 {
			rep.Reason = fmt.Sprintf("being renewed or issued by pid %d", held.PID)
		}
		return rep
	}
	if err != nil {
		return rep.fail(fmt.Errorf("taking the lineage's lock: %w; nothing was done", err))
	}
	defer unlock()
	again, err := r.store.Current(name)
	if err != nil {
		return rep.fail(err)
	}
	switch {
	case again.Version != cur.Version:
		rep.Version, rep.NotAfter = again.Version, again.Leaf.NotAfter.UTC()
		rep.Result, rep.Reason = resultSkipped, fmt.Sprintf("renewed meanwhile by another process; version %d is current", again.Version)
		return rep
	case again.DeployPending():
		return r.finishDeploy(ctx, again, rep)
	case pending:
		rep.Result, rep.Reason = resultSkipped, fmt.Sprintf("version %d was deployed meanwhile by another process", again.Version)
		return rep
	case r.waiting(again, now): // another run was refused meanwhile
		return r.waitFailure(again, rep)
	}
	return r.renew(ctx, again, rep)
}

// waiting reports whether the lineage's CA asked not to be asked again
// before a time still to come, and the run is not forced.
func (r *renewer) waiting(cur *acme.Current, now time.Time) bool {
	return !r.force && now.Before(cur.State.RetryAfter)
}

// waitFailure reports a due lineage left alone because of its CA's
// Retry-After: a failure, since its certificate is not renewed.
func (r *renewer) waitFailure(cur *acme.Current, rep lineageReport) lineageReport {
	rep.RetryAfter = cur.State.RetryAfter.UTC()
	return rep.fail(fmt.Errorf("due, but the CA asked not to be asked again before %s (a rate limit); renew waits until then, or try now with --force", stamp(rep.RetryAfter)))
}

// decide applies the renewal policy, asking the lineage's CA for its
// renewal window when it may offer one. An expired certificate is not
// asked about (RFC 9773 §4.3), and a CA that failed to answer is not
// asked again in this run: with many lineages at one unreachable CA, each
// question would wait for its timeout.
func (r *renewer) decide(ctx context.Context, cur *acme.Current, now time.Time, rep *lineageReport) acme.Decision {
	var w *acme.RenewalWindow
	if !localCA(cur.Request) && now.Before(cur.Leaf.NotAfter) {
		err, failed := r.ariFailed[cur.Request.CA]
		if !failed {
			w, err = r.store.RenewalWindow(ctx, cur, issuerAdvisor{r, cur.Request}, now, !r.dryRun)
			if err != nil && w == nil {
				r.ariFailed[cur.Request.CA] = err
			}
		}
		if err != nil {
			how := "decided by the certificate's lifetime"
			if w != nil {
				how = "its answer is used but was not kept for the next run"
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("asking the CA for its renewal window: %v; %s", err, how))
		}
	}
	return acme.Decide(cur.Leaf, now, w, r.force)
}

// localCA reports whether the embedded CA signs for req. It offers no
// renewal window (RFC 9773 is for ACME servers), so its lineages are
// decided without opening it: opening costs about 20 ms and takes its
// database, which 'ca serve' or another run may hold.
func localCA(req acme.Request) bool { return req.CA == "local" || req.CA == "" }

// issuerAdvisor asks a lineage's CA for its renewal window, opening the
// Issuer only for the question.
type issuerAdvisor struct {
	r   *renewer
	req acme.Request
}

// RenewalWindow implements acme.RenewalAdvisor.
func (a issuerAdvisor) RenewalWindow(ctx context.Context, leaf *x509.Certificate) (acme.RenewalWindow, error) {
	iss, _, release, err := a.r.open(a.r.store.Dir, a.req)
	if err != nil {
		return acme.RenewalWindow{}, err
	}
	defer release()
	adv, ok := iss.(acme.RenewalAdvisor)
	if !ok {
		return acme.RenewalWindow{}, acme.ErrNoRenewalInfo
	}
	return adv.RenewalWindow(ctx, leaf)
}

// renew issues the next version of a due lineage under its lock, then
// checks and deploys it. The renewal is recorded before anything is
// issued, so that a run killed before its deploy finished leaves the
// deploy to the next run. Retries within the issuance are the Issuer's
// (the ACME client retries an unreachable CA and 5xx answers, and waits
// for a short Retry-After); a failure here is final for this run, and a
// Retry-After it carries is kept for the next runs.
func (r *renewer) renew(ctx context.Context, cur *acme.Current, rep lineageReport) lineageReport {
	pins, err := r.store.PinState(cur.Name)
	if err != nil {
		return rep.fail(err)
	}
	if v, ok := pins.StagedFor(cur.Version); ok {
		return r.promoteStaged(ctx, cur, pins, v, rep)
	}
	req := cur.Request
	req.Replaces = cur.Leaf
	req.Stage = pins.POSH != nil
	if err := r.store.SaveRenewState(cur.Name, acme.RenewState{RenewingFrom: cur.Version}); err != nil {
		return rep.fail(fmt.Errorf("recording the renewal: %w; nothing was issued", err))
	}
	iss, roots, release, err := r.open(r.store.Dir, req)
	if err != nil {
		r.recordFailure(cur, err, &rep)
		return rep.fail(fmt.Errorf("%w; the deployed certificate is unchanged", err))
	}
	got, err := acme.Obtain(ctx, r.store, iss, req)
	release() // the local CA's database is free before deploy hooks run
	if err != nil {
		r.recordFailure(cur, err, &rep)
		return rep.fail(fmt.Errorf("%w; the deployed certificate is unchanged", err))
	}
	rep.Result, rep.Key = resultRenewed, string(got.KeyChoice)
	if got.KeyNote != "" {
		rep.Notes = append(rep.Notes, "key "+string(got.KeyChoice)+": "+got.KeyNote)
	}
	if req.Stage {
		return r.staged(cur, got.Lineage, pins, rep)
	}
	return r.checkAndDeploy(ctx, got.Lineage, roots, rep)
}

// recordFailure updates the renewal record after a failed issuance: the
// CA's Retry-After, if any, is kept; the renewal mark is dropped unless
// a new version went live after all (Obtain failing to make the switch
// durable), which the next run then deploys.
func (r *renewer) recordFailure(cur *acme.Current, err error, rep *lineageReport) {
	var st acme.RenewState
	if now, cerr := r.store.Current(cur.Name); cerr != nil || now.Version != cur.Version {
		st.RenewingFrom = cur.Version
	}
	if wait, ok := acme.RetryAfter(err); ok && wait.After(time.Now()) {
		st.RetryAfter = wait
		rep.RetryAfter = wait.UTC()
	}
	if serr := r.store.SaveRenewState(cur.Name, st); serr != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("updating the renewal record: %v", serr))
	}
}

// finishDeploy deploys a version an earlier renewal made current but did
// not finish deploying.
func (r *renewer) finishDeploy(ctx context.Context, cur *acme.Current, rep lineageReport) lineageReport {
	l, err := r.store.Load(cur.Name)
	if err != nil {
		return rep.fail(err)
	}
	_, roots, release, err := r.open(r.store.Dir, l.Request)
	if err != nil {
		return rep.fail(fmt.Errorf("%w; version %d is not deployed yet", err, l.Version))
	}
	release()
	rep.Result = resultDeployed
	return r.checkAndDeploy(ctx, l, roots, rep)
}

// checkAndDeploy checks a new version for every service of every name,
// as issue does, and deploys it when the check passes. The renewal
// record is cleared once every target has it; a version that fails the
// check is not deployed, and one whose deploy failed is deployed again
// by the next run.
func (r *renewer) checkAndDeploy(ctx context.Context, l *acme.Lineage, roots *x509.CertPool, rep lineageReport) lineageReport {
	now := time.Now()
	leaf := l.Chain[0]
	rep.Version, rep.NotAfter = l.Version, leaf.NotAfter.UTC()
	rep.DueAt = acme.Decide(leaf, now, nil, false).At.UTC()
	res := describeIssued(&acme.Obtained{Lineage: l}, roots, now)
	if !res.Valid {
		return rep.fail(fmt.Errorf("version %d is current but was not deployed: it fails the check for %s; the next run checks it again",
			l.Version, checkFailures(res)))
	}
	targets, err := r.lineageTargets(l)
	if err != nil {
		return rep.fail(err)
	}
	rep.Deploy = deploy(ctx, l, acme.EventRenewed, targets)
	var failed []string
	for _, d := range rep.Deploy {
		if !d.OK {
			failed = append(failed, d.Target+": "+d.Error)
		}
	}
	if failed != nil {
		return rep.fail(fmt.Errorf("version %d is current, but deploying it failed (the next run deploys it again): %s", l.Version, strings.Join(failed, "; ")))
	}
	if err := r.store.SaveRenewState(l.Name, acme.RenewState{}); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("clearing the renewal record: %v; the next run deploys version %d again", err, l.Version))
	}
	return rep
}

// checkFailures names the names and services a certificate failed for,
// with the first error finding of each.
func checkFailures(res issueResult) string {
	var out []string
	for _, n := range res.Names {
		for _, v := range n.Checks {
			if v.Valid {
				continue
			}
			s := n.Domain + " " + string(v.Service)
			for _, f := range v.Findings {
				if f.Severity == xmppaddr.Error {
					s += " (" + f.Text + ")"
					break
				}
			}
			out = append(out, s)
		}
	}
	return strings.Join(out, ", ")
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
		case resultNotDue:
			fmt.Fprintf(w, "%s: not due before %s, %s\n", l.Name, stamp(l.DueAt), l.Reason)
		case resultRenewed, resultDeployed:
			fmt.Fprintf(w, "%s: %s version %d (valid until %s, next due %s): %s\n", l.Name, l.Result, l.Version, stamp(l.NotAfter), stamp(l.DueAt), l.Reason)
		case resultWouldRenew:
			fmt.Fprintf(w, "%s: would renew: %s\n", l.Name, l.Reason)
		case resultWouldDeploy:
			fmt.Fprintf(w, "%s: would deploy: %s\n", l.Name, l.Reason)
		case resultSkipped:
			fmt.Fprintf(w, "%s: skipped: %s\n", l.Name, l.Reason)
		case resultStaged:
			fmt.Fprintf(w, "%s: staged: %s\n", l.Name, l.Reason)
		case resultFailed:
			fmt.Fprintf(w, "%s: FAILED: %s\n", l.Name, l.Error)
		}
		for _, d := range l.Deploy {
			if d.OK {
				fmt.Fprintf(w, "  deployed  %s\n", d.Target)
			} else {
				fmt.Fprintf(w, "  FAILED    %s: %s\n", d.Target, d.Error)
			}
		}
		for _, n := range l.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
	var counts []string
	for _, res := range []string{resultRenewed, resultDeployed, resultStaged, resultWouldRenew, resultWouldDeploy, resultNotDue, resultSkipped, resultFailed} {
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
