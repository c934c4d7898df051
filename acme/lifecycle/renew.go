package lifecycle

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/acme"
)

// Results of one lineage in a renewal run, as LineageResult.Result
// names them.
const (
	ResultNotDue      = "not-due"
	ResultRenewed     = "renewed"
	ResultDeployed    = "deployed" // an earlier renewal's deploy, finished
	ResultWouldRenew  = "would-renew"
	ResultWouldDeploy = "would-deploy"
	ResultSkipped     = "skipped" // another process holds or just renewed it
	ResultStaged      = "staged"  // a new version waits for POSH to list it (posh.go)
	ResultFailed      = "failed"
	// ResultIssued counts the lineages a reconciliation issued afresh,
	// ResultReissued those it issued anew because their host changed.
	ResultIssued   = "issued"
	ResultReissued = "reissued"
)

// LineageResult is what a renewal run did with one lineage. It is the
// --json form of one lineage in the renew command's output.
type LineageResult struct {
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
	Key    string         `json:"key,omitempty"`
	Deploy []DeployResult `json:"deploy"`
	// Served is what the lineage's endpoints present after a deploy.
	Served []ServedResult `json:"served,omitempty"`
	Notes  []string       `json:"notes,omitempty"`
	Error  string         `json:"error,omitempty"`
	// Err is the failure behind Error, for errors.As: a *WaitingError,
	// an *acme.LockedError, a CA's error.
	Err error `json:"-"`
}

func (l *LineageResult) fail(err error) LineageResult {
	l.Result, l.Error, l.Err = ResultFailed, err.Error(), err
	return *l
}

// WaitingError says that a due lineage was left alone because its CA
// asked not to be asked again before Until (a rate limit), and the run
// was not forced.
type WaitingError struct{ Until time.Time }

func (e *WaitingError) Error() string {
	return fmt.Sprintf("due, but the CA asked not to be asked again before %s (a rate limit)", stamp(e.Until))
}

// RenewOptions shape a renewal run.
type RenewOptions struct {
	// Force makes every lineage due.
	Force bool
	// DryRun decides and reports, and changes nothing: no lock, no
	// issuance, no cached renewal window.
	DryRun bool
	// Targets are deploy targets for every renewed lineage, beside
	// those stored with it.
	Targets []acme.Target
	// Timeout bounds each renewal by an ACME CA, retries included
	// (acmeca.DefaultTimeout when zero).
	Timeout time.Duration
}

// RenewRun renews lineages one at a time. It remembers, for the length
// of the run, which CAs failed to answer for a renewal window, so that
// many lineages at one unreachable CA do not each wait for a timeout.
type RenewRun struct {
	e    *Engine
	opts RenewOptions
	// ariFailed holds, per CA, the error of a question for a renewal
	// window that failed in this run.
	ariFailed map[string]error
}

// NewRenewRun starts a renewal run.
func (e *Engine) NewRenewRun(o RenewOptions) *RenewRun {
	return &RenewRun{e: e, opts: o, ariFailed: map[string]error{}}
}

// lineageTargets are the targets a renewal deploys to: the ones stored
// with the lineage at issuance, then those given to this run that are
// not among them.
func (r *RenewRun) lineageTargets(l *acme.Lineage) ([]acme.Target, error) {
	stored, err := l.Request.Targets()
	if err != nil {
		return nil, fmt.Errorf("the deploy targets stored with the lineage: %w", err)
	}
	seen := map[string]bool{}
	for _, t := range stored {
		seen[t.String()] = true
	}
	for _, t := range r.opts.Targets {
		if !seen[t.String()] {
			stored = append(stored, t)
		}
	}
	return stored, nil
}

// Lineage decides about one lineage and, when it is due, renews and
// deploys it. The decision is made without the lock, from files that are
// replaced atomically, so that a run where nothing is due writes nothing;
// a lineage that is due is locked and read again, and if another process
// renewed it meanwhile it is left alone.
func (r *RenewRun) Lineage(ctx context.Context, name string) LineageResult {
	cur, err := r.e.Store.Current(name)
	return r.lineageFrom(ctx, name, cur, err)
}

// Lineages does what Lineage does for each of names, in their order, and
// yields each result; it stops when ctx ends or yield returns false. What
// each decision reads (acme.Store's Current) is read ahead (ahead): with
// nothing due, a run over thousands of lineages is mostly the system
// calls that read each one's files (or etcd's round trips), and the
// readers spread them over the CPUs. Locking, issuance and deploys stay
// one lineage at a time.
func (r *RenewRun) Lineages(ctx context.Context, names []string) iter.Seq[LineageResult] {
	type current struct {
		cur *acme.Current
		err error
	}
	return func(yield func(LineageResult) bool) {
		ahead(ctx, names, func(name string) current {
			cur, err := r.e.Store.Current(name)
			return current{cur, err}
		}, func(i int, c current) bool {
			return yield(r.lineageFrom(ctx, names[i], c.cur, c.err))
		})
	}
}

// lineageFrom decides about lineage name from cur, what the store's
// Current returned for it (or err), and renews and deploys it when due.
func (r *RenewRun) lineageFrom(ctx context.Context, name string, cur *acme.Current, err error) LineageResult {
	res := r.lineage(ctx, name, cur, err)
	if res.Result == ResultFailed {
		r.e.emit(Event{Name: EventRenewFailed, Lineage: name, Version: res.Version, Err: res.Err})
	}
	return res
}

// revokedDecision is the decision for a lineage whose current
// certificate was revoked: due at once, since the revocation. ok is
// false when the current certificate is not revoked.
func revokedDecision(cur *acme.Current) (d acme.Decision, ok bool) {
	rv := cur.State.Revoked
	if !rv.Of(cur.Leaf) {
		return d, false
	}
	return acme.Decision{Due: true, At: rv.At, Rule: acme.RuleRevoked,
		Reason: fmt.Sprintf("version %d was revoked (%s) at %s", cur.Version, acme.ReasonName(rv.Reason), stamp(rv.At))}, true
}

func (r *RenewRun) lineage(ctx context.Context, name string, cur *acme.Current, err error) LineageResult {
	store := r.e.Store
	rep := LineageResult{Name: name, Deploy: []DeployResult{}}
	if err != nil {
		return rep.fail(err)
	}
	rep.Version, rep.NotAfter = cur.Version, cur.Leaf.NotAfter.UTC()
	now := r.e.now()
	pending := cur.DeployPending()
	if pending {
		rep.Due, rep.Reason = true, fmt.Sprintf("version %d was renewed by an earlier run that did not finish deploying it", cur.Version)
	} else {
		d, revoked := revokedDecision(cur)
		if !revoked {
			d = r.decide(ctx, cur, now, &rep)
		}
		rep.Due, rep.Rule, rep.Reason, rep.DueAt = d.Due, d.Rule, d.Reason, d.At.UTC()
		switch {
		case !d.Due:
			behind, err := r.e.storedBehind(cur)
			if err != nil {
				rep.Notes = append(rep.Notes, fmt.Sprintf("reading what the deploy targets hold: %v", err))
			}
			if len(behind) == 0 {
				rep.Result = ResultNotDue
				return rep
			}
			pending = true
			rep.Reason = fmt.Sprintf("not due, but %s hold%s no good deploy of version %d", targetNames(behind), plural(len(behind), "s", ""), cur.Version)
		case r.waiting(cur, now):
			return r.waitFailure(cur, rep)
		}
	}
	if r.opts.DryRun {
		rep.Result = ResultWouldRenew
		if pending {
			rep.Result = ResultWouldDeploy
		}
		return rep
	}
	if why, elsewhere := r.e.issuesElsewhere(cur.Request); elsewhere && !pending {
		rep.Result, rep.Reason = ResultSkipped, why
		return rep
	}
	unlock, err := store.Lock(name)
	var held *acme.LockedError
	if errors.As(err, &held) {
		rep.Result, rep.Reason = ResultSkipped, "being renewed or issued by another xmppcert process"
		if held.PID > 0 {
			rep.Reason = fmt.Sprintf("being renewed or issued by pid %d", held.PID)
		}
		return rep
	}
	if err != nil {
		return rep.fail(fmt.Errorf("taking the lineage's lock: %w; nothing was done", err))
	}
	defer unlock()
	again, err := store.Current(name)
	if err != nil {
		return rep.fail(err)
	}
	switch {
	case again.Version != cur.Version:
		rep.Version, rep.NotAfter = again.Version, again.Leaf.NotAfter.UTC()
		rep.Result, rep.Reason = ResultSkipped, fmt.Sprintf("renewed meanwhile by another process; version %d is current", again.Version)
		return rep
	case again.DeployPending():
		return r.finishDeploy(ctx, again, rep)
	case pending && !rep.Due:
		return r.redeploy(ctx, again, rep)
	case pending:
		rep.Result, rep.Reason = ResultSkipped, fmt.Sprintf("version %d was deployed meanwhile by another process", again.Version)
		return rep
	case r.waiting(again, now): // another run was refused meanwhile
		return r.waitFailure(again, rep)
	}
	return r.renew(ctx, again, rep)
}

// storedBehind are the lineage's stored deploy targets that do not hold
// its current version by its deploy record: a deploy that failed or a
// server that was not reloaded. A lineage without stored targets costs
// no file read.
func (e *Engine) storedBehind(cur *acme.Current) ([]acme.Target, error) {
	if len(cur.Request.Deploy)+len(cur.Request.Hooks) == 0 {
		return nil, nil
	}
	targets, err := cur.Request.Targets()
	if err != nil {
		return nil, err
	}
	behind, recorded, err := e.behind(cur.Name, cur.Version, targets)
	if !recorded {
		return nil, err
	}
	return behind, err
}

// redeploy deploys the current version to the stored targets that do
// not hold it, under the lineage's lock, without issuing anything.
func (r *RenewRun) redeploy(ctx context.Context, cur *acme.Current, rep LineageResult) LineageResult {
	behind, err := r.e.storedBehind(cur)
	if err != nil {
		return rep.fail(err)
	}
	if len(behind) == 0 {
		rep.Result, rep.Reason = ResultSkipped, fmt.Sprintf("version %d was deployed meanwhile by another process", cur.Version)
		return rep
	}
	l, err := r.e.Store.Load(cur.Name)
	if err != nil {
		return rep.fail(err)
	}
	rep.Result = ResultDeployed
	var notes []string
	rep.Deploy, rep.Served, notes = r.e.deployChecked(ctx, l, versionEvent(l), behind)
	rep.Notes = append(rep.Notes, notes...)
	if failed := deployFailures(rep.Deploy); failed != "" {
		return rep.fail(fmt.Errorf("version %d is current, but deploying it failed again (the next run deploys it again): %s", l.Version, failed))
	}
	if failed := servedFailures(rep.Served); failed != "" {
		return rep.fail(fmt.Errorf("version %d is deployed, but %s (the next run deploys it again)", l.Version, failed))
	}
	return rep
}

// versionEvent is the hook event of the issuance that made l's version:
// a deploy done again tells hooks what it deploys, as the first did.
func versionEvent(l *acme.Lineage) string {
	if l.Version > 1 {
		return acme.EventRenewed
	}
	return acme.EventIssued
}

// targetNames lists targets for a message: "prosody /etc/prosody/certs,
// hook reload-it".
func targetNames(targets []acme.Target) string {
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.String()
	}
	return strings.Join(names, ", ")
}

// plural is one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// waiting reports whether the lineage's CA asked not to be asked again
// before a time still to come, and the run is not forced.
func (r *RenewRun) waiting(cur *acme.Current, now time.Time) bool {
	return !r.opts.Force && now.Before(cur.State.RetryAfter)
}

// waitFailure reports a due lineage left alone because of its CA's
// Retry-After: a failure, since its certificate is not renewed.
func (r *RenewRun) waitFailure(cur *acme.Current, rep LineageResult) LineageResult {
	rep.RetryAfter = cur.State.RetryAfter.UTC()
	return rep.fail(&WaitingError{Until: rep.RetryAfter})
}

// decide applies the renewal policy, asking the lineage's CA for its
// renewal window when it may offer one. An expired certificate is not
// asked about (RFC 9773 §4.3), and a CA that failed to answer is not
// asked again in this run: with many lineages at one unreachable CA, each
// question would wait for its timeout.
func (r *RenewRun) decide(ctx context.Context, cur *acme.Current, now time.Time, rep *LineageResult) acme.Decision {
	var w *acme.RenewalWindow
	if !LocalCA(cur.Request) && now.Before(cur.Leaf.NotAfter) {
		err, failed := r.ariFailed[cur.Request.CA]
		if !failed {
			w, err = acme.RenewalWindowFor(ctx, r.e.Store, cur, issuerAdvisor{r.e, cur.Request}, now, !r.opts.DryRun)
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
	return acme.Decide(cur.Leaf, now, w, r.opts.Force)
}

// issuerAdvisor asks a lineage's CA for its renewal window, opening the
// Issuer only for the question.
type issuerAdvisor struct {
	e   *Engine
	req acme.Request
}

// RenewalWindow implements acme.RenewalAdvisor.
func (a issuerAdvisor) RenewalWindow(ctx context.Context, leaf *x509.Certificate) (acme.RenewalWindow, error) {
	iss, _, release, err := a.e.open(a.req, IssueOptions{})
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
func (r *RenewRun) renew(ctx context.Context, cur *acme.Current, rep LineageResult) LineageResult {
	store := r.e.Store
	pins, err := store.PinState(cur.Name)
	if err != nil {
		return rep.fail(err)
	}
	if v, ok := pins.StagedFor(cur.Version); ok && !cur.State.Revoked.Of(cur.Leaf) {
		return r.promoteStaged(ctx, cur, pins, v, rep)
	}
	req := cur.Request
	req.Replaces = cur.Leaf
	revoked := cur.State.Revoked
	if revoked.Of(cur.Leaf) {
		// A revoked certificate is replaced at once, never staged; a
		// compromised key is never used again.
		req.KeyCompromised = revoked.Reason == acme.ReasonKeyCompromise
		pins.POSH = nil
	} else {
		revoked = acme.Revocation{}
	}
	req.Stage = pins.POSH != nil
	if err := store.SaveRenewState(cur.Name, acme.RenewState{RenewingFrom: cur.Version, Revoked: revoked}); err != nil {
		return rep.fail(fmt.Errorf("recording the renewal: %w; nothing was issued", err))
	}
	iss, roots, release, err := r.e.open(req, IssueOptions{Timeout: r.opts.Timeout})
	if err != nil {
		r.recordFailure(cur, err, &rep)
		return rep.fail(fmt.Errorf("%w; the deployed certificate is unchanged", err))
	}
	got, err := acme.ObtainAt(ctx, store, iss, req, r.e.now())
	if acme.AlreadyReplaced(err) {
		// Another node of a cluster renewed it: no second order when
		// its version is stored. When none is (a node that ordered and
		// died before storing it), order again without "replaces".
		if again, cerr := store.Current(cur.Name); cerr == nil && again.Version != cur.Version {
			release()
			r.recordFailure(cur, err, &rep)
			rep.Result, rep.Reason = ResultSkipped, fmt.Sprintf("renewed meanwhile by another node; version %d is current", again.Version)
			return rep
		}
		rep.Notes = append(rep.Notes, "the CA says the certificate was replaced already, yet no newer version is stored (a node or client that ordered and did not keep the result): ordered again without replaces")
		req.Replaces = nil
		got, err = acme.ObtainAt(ctx, store, iss, req, r.e.now())
	}
	release() // the local CA's database is free before deploy hooks run
	if err != nil {
		r.recordFailure(cur, err, &rep)
		return rep.fail(fmt.Errorf("%w; the deployed certificate is unchanged", err))
	}
	rep.Result, rep.Key = ResultRenewed, string(got.KeyChoice)
	if got.KeyNote != "" {
		rep.Notes = append(rep.Notes, "key "+string(got.KeyChoice)+": "+got.KeyNote)
	}
	if revoked.Serial != "" {
		// Not staged: POSH must list the replacement now.
		if note := r.e.reissuedPOSH(got.Lineage); note != "" {
			rep.Notes = append(rep.Notes, note)
		}
	}
	if req.Stage {
		r.e.emit(Event{Name: EventStaged, Lineage: cur.Name, Version: got.Version})
		return r.staged(cur, got.Lineage, pins, rep)
	}
	r.e.emit(Event{Name: EventRenewed, Lineage: cur.Name, Version: got.Version})
	return r.checkAndDeploy(ctx, got.Lineage, roots, rep)
}

// recordFailure updates the renewal record after a failed issuance: the
// CA's Retry-After, if any, is kept; the renewal mark is dropped unless
// a new version went live after all (Obtain failing to make the switch
// durable), which the next run then deploys.
func (r *RenewRun) recordFailure(cur *acme.Current, err error, rep *LineageResult) {
	store := r.e.Store
	var st acme.RenewState
	if now, cerr := store.Current(cur.Name); cerr != nil || now.Version != cur.Version {
		st.RenewingFrom = cur.Version
	} else {
		st.Revoked = cur.State.Revoked // still current, still revoked
	}
	if wait, ok := acme.RetryAfter(err); ok && wait.After(r.e.now()) {
		st.RetryAfter = wait
		rep.RetryAfter = wait.UTC()
	}
	if serr := store.SaveRenewState(cur.Name, st); serr != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("updating the renewal record: %v", serr))
	}
}

// finishDeploy deploys a version an earlier renewal made current but did
// not finish deploying.
func (r *RenewRun) finishDeploy(ctx context.Context, cur *acme.Current, rep LineageResult) LineageResult {
	l, err := r.e.Store.Load(cur.Name)
	if err != nil {
		return rep.fail(err)
	}
	_, roots, release, err := r.e.open(l.Request, IssueOptions{})
	if err != nil {
		return rep.fail(fmt.Errorf("%w; version %d is not deployed yet", err, l.Version))
	}
	release()
	rep.Result = ResultDeployed
	return r.checkAndDeploy(ctx, l, roots, rep)
}

// checkAndDeploy checks a new version for every service of every name,
// as issuance does, and deploys it when the check passes. The renewal
// record is cleared once every target has it; a version that fails the
// check is not deployed, and one whose deploy failed is deployed again
// by the next run.
func (r *RenewRun) checkAndDeploy(ctx context.Context, l *acme.Lineage, roots *x509.CertPool, rep LineageResult) LineageResult {
	now := r.e.now()
	leaf := l.Chain[0]
	rep.Version, rep.NotAfter = l.Version, leaf.NotAfter.UTC()
	rep.DueAt = acme.Decide(leaf, now, nil, false).At.UTC()
	res := Check(&acme.Obtained{Lineage: l}, roots, now)
	if !res.Valid {
		return rep.fail(fmt.Errorf("version %d is current but was not deployed: it fails the check for %s; the next run checks it again",
			l.Version, res.Failures()))
	}
	targets, err := r.lineageTargets(l)
	if err != nil {
		return rep.fail(err)
	}
	// Targets that took this version already (a run before this one
	// deployed it in part) are not run again.
	if behind, _, err := r.e.behind(l.Name, l.Version, targets); err == nil {
		targets = behind
	}
	var notes []string
	rep.Deploy, rep.Served, notes = r.e.deployChecked(ctx, l, acme.EventRenewed, targets)
	rep.Notes = append(rep.Notes, notes...)
	if failed := deployFailures(rep.Deploy); failed != "" {
		return rep.fail(fmt.Errorf("version %d is current, but deploying it failed (the next run deploys it again): %s", l.Version, failed))
	}
	if failed := servedFailures(rep.Served); failed != "" {
		return rep.fail(fmt.Errorf("version %d is deployed, but %s (the next run deploys it again)", l.Version, failed))
	}
	if err := r.e.Store.SaveRenewState(l.Name, acme.RenewState{}); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("clearing the renewal record: %v; the next run deploys version %d again", err, l.Version))
	}
	return rep
}

// deployFailures lists the failed targets of ds with their errors, "; "
// between them; empty when all succeeded.
func deployFailures(ds []DeployResult) string {
	s := ""
	for _, d := range ds {
		if !d.OK {
			if s != "" {
				s += "; "
			}
			s += d.Target + ": " + d.Error
		}
	}
	return s
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }
