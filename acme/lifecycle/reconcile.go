package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/dnsupdate"
	"github.com/xmppcert/xmppcert/pinning"
)

// Host is the desired state of one host that a front (the daemon's
// configuration) asks the engine to keep: its request, how to register
// with its CA, and its pin publication.
type Host struct {
	// Request is what to certify, with its deploy targets and hooks.
	Request acme.Request
	// Options are what registering an ACME account needs.
	Options IssueOptions
	// TLSA publishes TLSA records by RFC 2136; nil when not wanted.
	TLSA *TLSAPublication
	// POSH writes POSH documents; nil when not wanted.
	POSH *POSHPublication
	// Source says where the host is configured ("FILE:LINE"), for logs.
	Source string
	// Hint, when set, is the front's advice in its own terms for a
	// failure of the host's issuance or renewal: an account that may
	// not be registered (an *AccountError of CheckAccount), a setting
	// an ACME CA's failure names (acmeca.Error's Remedy); "" when it has
	// none. It is logged as the failure's "next".
	Hint func(error) string
}

// TLSAPublication is how a host's TLSA records are published.
type TLSAPublication struct {
	// Spec gives the record parameters and TTL; its Endpoints are
	// filled in at each run from Targets and Ports, or from SRV.
	Spec TLSASpec
	// Targets and Ports choose the endpoints (Endpoints); FromSRV takes
	// them from the names' SRV records through Resolver instead.
	Targets  []string
	Ports    []uint16
	FromSRV  bool
	Resolver string
	// DNS is the RFC 2136 primary with its TSIG key name and algorithm;
	// its secret is read from SecretFile at each run.
	DNS        dnsupdate.Client
	SecretFile string
	// Zone holds the records; empty means asked of the server by SOA.
	Zone string
	// Hold is how long the next key's records must be public before a
	// renewal switches to it.
	Hold time.Duration
}

// POSHPublication is where and how a host's POSH documents are written.
type POSHPublication struct {
	// Dir is the web root the documents are written into.
	Dir string
	// CreateDir makes a missing Dir (0700): the engine's own web root
	// in the state directory, not an operator's.
	CreateDir bool
	// Expires is how long clients may cache a document.
	Expires time.Duration
	// Services are the documents written ("xmpp-client", "xmpp-server").
	Services []string
}

// Reconcile is one renewal run over the desired hosts, in order, then
// over every other lineage of the store: a host without a lineage is
// issued, every lineage that is due (every one with force) is renewed
// and deployed, and each host's TLSA records and POSH documents are
// published, under the same per-lineage locks as the CLI. Each action is
// logged as one record and the run as a summary. A failure for one
// lineage never stops the run; the error counts the lineages something
// failed for.
func (e *Engine) Reconcile(ctx context.Context, hosts []Host, force bool, log *slog.Logger) error {
	w := &reconcileRun{e: e, r: e.NewRenewRun(RenewOptions{Force: force}), log: log, counts: map[string]int{}, failed: map[string]bool{}}
	return w.run(ctx, hosts)
}

// reconcileRun is one Reconcile.
type reconcileRun struct {
	e   *Engine
	r   *RenewRun
	log *slog.Logger
	// counts holds the number of lineages per renewal result, and of
	// lineages issued.
	counts map[string]int
	// failed holds the lineages something failed for.
	failed map[string]bool
}

// retry is the log's "next" for a failure the next run retries.
const retry = "retried at the next renewal run"

// run does the work for hosts, then renews the lineages no host names.
func (w *reconcileRun) run(ctx context.Context, hosts []Host) error {
	names, err := w.e.Store.Names()
	if err != nil {
		return fmt.Errorf("listing the lineages: %w", err)
	}
	done := map[string]bool{}
	for _, h := range hosts {
		if ctx.Err() != nil {
			break
		}
		name := h.Request.Host()
		done[name] = true
		w.host(ctx, h, slices.Contains(names, name))
	}
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		if !done[name] {
			done[name] = true
			w.renew(ctx, name, nil, Host{})
		}
	}
	attrs := []any{"lineages", len(done), "hosts", len(hosts)}
	for k, v := range w.counts {
		attrs = append(attrs, k, v)
	}
	w.log.Info("renew run finished", attrs...)
	if n := len(w.failed); n > 0 {
		return fmt.Errorf("%d of %d lineages failed", n, len(done))
	}
	return nil
}

// fail logs an action that failed for a lineage and counts the lineage
// as failed.
func (w *reconcileRun) fail(name, msg string, err error, attrs ...any) {
	w.failed[name] = true
	w.log.Error(msg, append([]any{"lineage", name, "error", err.Error()}, attrs...)...)
}

// hint is the front's advice for err (Hint), else fallback.
func (h Host) hint(err error, fallback string) string {
	if h.Hint != nil {
		if s := h.Hint(err); s != "" {
			return s
		}
	}
	return fallback
}

// host issues, renews and publishes the pins of one desired host.
func (w *reconcileRun) host(ctx context.Context, h Host, exists bool) {
	name := h.Request.Host()
	targets, err := h.Request.Targets()
	if err != nil {
		w.fail(name, "host skipped", err, "host", h.Source, "next", "fix the host's settings and reload")
		return
	}
	if !exists && !w.issue(ctx, h, targets) {
		return
	}
	if exists {
		w.reissueChanged(ctx, h, targets)
	}
	w.renew(ctx, name, targets, h)
	if h.TLSA != nil {
		w.publishTLSA(ctx, name, h.TLSA)
	}
	if h.POSH != nil {
		w.writePOSH(name, h.POSH)
	}
}

// issue issues the host's first certificate under the lineage's lock;
// it reports whether the lineage exists now.
func (w *reconcileRun) issue(ctx context.Context, h Host, targets []acme.Target) bool {
	req := h.Request
	name := req.Host()
	if why, elsewhere := w.e.issuesElsewhere(req); elsewhere {
		w.log.Info("issuance left to another node", "lineage", name, "reason", why)
		return false
	}
	store := w.e.Store
	unlock, err := store.Lock(name)
	var held *acme.LockedError
	if errors.As(err, &held) {
		w.log.Info("issuance skipped: another xmppcert process or cluster node holds the lineage; the next run looks again", "lineage", name, "pid", held.PID, "node", held.Node)
		return false
	}
	if err != nil {
		w.fail(name, "issuance failed", fmt.Errorf("taking the lineage's lock: %w", err), "next", retry)
		return false
	}
	defer unlock()
	if _, err := store.Load(name); err == nil {
		return true // issued meanwhile by another process
	} else if !errors.Is(err, acme.ErrNoLineage) {
		w.fail(name, "issuance failed", err, "next", "delete the damaged lineage; the next run issues it afresh")
		return false
	}
	if err := w.e.CheckAccount(req, h.Options); err != nil {
		next := h.hint(err, "allow the account's registration in the host's settings")
		w.fail(name, "issuance failed", err, "host", h.Source, "next", next)
		return false
	}
	res, err := w.e.issueLocked(ctx, req, h.Options, targets)
	if err != nil {
		w.fail(name, "issuance failed", err, "ca", req.CA, "next", h.hint(err, retry))
		return false
	}
	w.counts[ResultIssued]++
	attrs := []any{"lineage", name, "version", res.Version, "issuer", res.Issuer, "not_after", res.NotAfter, "key", res.KeyChoice}
	switch failed := deployFailures(res.Deploy); {
	case !res.Valid:
		w.failed[name] = true
		w.log.Error("issued, but the certificate fails the check", append(attrs, "failures", res.Failures(), "next", "the check's findings say what the certificate lacks")...)
	case failed != "":
		w.failed[name] = true
		w.log.Error("issued, but deploying failed", append(attrs, "deploy", failed, "next", "fix the target; the next run deploys again")...)
	default:
		w.log.Info("issued", attrs...)
	}
	return true
}

// reissueChanged issues the host anew when its names, their roles or its
// CA differ from the lineage's stored request: the host's settings are
// its desired state. The difference is logged.
func (w *reconcileRun) reissueChanged(ctx context.Context, h Host, targets []acme.Target) {
	name := h.Request.Host()
	changed := func() (RequestChanges, bool) {
		cur, err := w.e.Store.Current(name)
		if err != nil {
			return RequestChanges{}, false // renewal reports an unreadable lineage
		}
		_, ch, err := Merge(cur.Request, h.Request, ReplacePolicy{ReplaceNames: true, NoDeploy: true, NoHooks: true})
		return ch, err == nil
	}
	if _, ok := changed(); !ok {
		return
	}
	if why, elsewhere := w.e.issuesElsewhere(h.Request); elsewhere {
		w.log.Info("re-issuance for the changed host left to another node", "lineage", name, "reason", why)
		return
	}
	unlock, err := w.e.Store.Lock(name)
	var held *acme.LockedError
	if errors.As(err, &held) {
		w.log.Info("re-issuance skipped: another xmppcert process or cluster node holds the lineage; the next run looks again", "lineage", name, "pid", held.PID, "node", held.Node)
		return
	}
	if err != nil {
		w.fail(name, "re-issuance failed", fmt.Errorf("taking the lineage's lock: %w", err), "next", retry)
		return
	}
	defer unlock()
	ch, ok := changed()
	if !ok {
		return // changed meanwhile by another process
	}
	res, err := w.e.issueLocked(ctx, h.Request, h.Options, targets)
	if err != nil {
		w.fail(name, "re-issuance for the changed host failed", err, "changes", ch.IdentityString(), "host", h.Source, "next", retry)
		return
	}
	w.counts[ResultReissued]++
	attrs := []any{"lineage", name, "version", res.Version, "changes", ch.IdentityString(), "host", h.Source}
	if failed := deployFailures(res.Deploy); !res.Valid || failed != "" {
		w.failed[name] = true
		w.log.Error("re-issued for the changed host, but the check or a deploy failed", append(attrs, "failures", res.Failures(), "deploy", failed)...)
		return
	}
	w.log.Info("re-issued: the host's names or CA changed", attrs...)
}

// renew renews the lineage when it is due (RenewRun.Lineage), deploying
// to its stored targets and to targets, and logs what it did, with h's
// hint for a failure.
func (w *reconcileRun) renew(ctx context.Context, name string, targets []acme.Target, h Host) {
	w.r.opts.Targets, w.r.opts.Timeout = targets, h.Options.Timeout
	l := w.r.Lineage(ctx, name)
	w.counts[l.Result]++
	switch l.Result {
	case ResultFailed:
		w.failed[name] = true
		w.log.Error("renewal failed", "lineage", name, "error", l.Error, "next", h.hint(l.Err, retry))
	case ResultNotDue:
	default:
		w.log.Info("renewal", "lineage", name, "result", l.Result, "version", l.Version, "reason", l.Reason)
	}
}

// publishTLSA publishes the lineage's TLSA records for the current and
// the next key, and marks them published with the configured hold.
func (w *reconcileRun) publishTLSA(ctx context.Context, name string, t *TLSAPublication) {
	const msg = "publishing TLSA records failed"
	l, err := w.e.Store.Load(name)
	if err != nil {
		w.fail(name, msg, err, "next", retry)
		return
	}
	spec := t.Spec
	if t.FromSRV {
		spec.Endpoints, err = SRVEndpoints(ctx, t.Resolver, l.Request)
	} else {
		spec.Endpoints = Endpoints(l.Request, t.Targets, t.Ports)
	}
	client := t.DNS
	if err == nil && t.SecretFile != "" {
		client.Secret, err = dnsupdate.LoadTSIGSecret(t.SecretFile)
	}
	if err != nil {
		w.fail(name, msg, err, "next", retry)
		return
	}
	out, err := w.e.PublishTLSA(ctx, l, spec, &pinning.TLSAPublisher{DNS: &client, TTL: spec.TTL, Zone: t.Zone}, t.Hold, false)
	var held *acme.LockedError
	if errors.As(err, &held) {
		w.log.Info("TLSA publishing skipped: another xmppcert process or cluster node holds the lineage; the next run publishes", "lineage", name, "pid", held.PID, "node", held.Node)
		return
	}
	var added, removed, kept, stale int
	for _, n := range out.Names {
		added, removed, kept, stale = added+len(n.Added), removed+len(n.Removed), kept+len(n.Kept), stale+len(n.StaleKept)
	}
	attrs := []any{"lineage", name, "server", client.Server, "added", added, "removed", removed, "kept", kept, "stale_kept", stale}
	if stale > 0 {
		attrs = append(attrs, "stale_rule", out.StaleRule)
	}
	if !out.SwitchAfter.IsZero() {
		attrs = append(attrs, "switch_after", out.SwitchAfter)
	}
	switch {
	case err != nil:
		w.fail(name, msg, err, append(attrs[2:], "next", retry)...)
	case added+removed > 0:
		w.log.Info("TLSA records published", attrs...)
	default:
		w.log.Debug("TLSA records up to date", attrs...)
	}
}

// writePOSH writes the lineage's POSH documents into p.Dir, unless they
// are written there already with these settings: issuance and renewal
// keep recorded documents up to date themselves, and rewriting them
// would restart the time a staged certificate waits for.
func (w *reconcileRun) writePOSH(name string, p *POSHPublication) {
	pins, err := w.e.Store.PinState(name)
	if err != nil {
		w.fail(name, "writing POSH documents failed", err, "next", retry)
		return
	}
	if p.CreateDir {
		if err := os.MkdirAll(p.Dir, 0o700); err != nil {
			w.fail(name, "writing POSH documents failed", err, "dir", p.Dir, "next", retry)
			return
		}
	}
	pub := acme.POSHPublication{Dir: p.Dir, ExpiresSeconds: int64(p.Expires / time.Second), Services: slices.Clone(p.Services)}
	if cur := pins.POSH; cur != nil {
		pub.SHA512 = cur.SHA512 // set by hand (pin posh); the daemon has no such setting
		same := cur.ExpiresSeconds == pub.ExpiresSeconds && slices.Equal(cur.Services, pub.Services)
		switch {
		case same && w.e.POSHNodes != nil:
			// On a cluster each node writes its own web root, which
			// follows the cluster's documents (another node's renewal
			// may have staged a certificate).
			switch wrote, err := w.e.SyncPOSH(name, pub.Dir); {
			case err != nil:
				w.fail(name, "writing POSH documents failed", err, "dir", pub.Dir, "next", retry)
			case wrote:
				w.log.Info("POSH documents written as the cluster's list them", "lineage", name, "dir", pub.Dir, "services", pub.Services)
			}
			return
		case same && cur.Dir == pub.Dir && poshWritten(pub.Dir, pub.Services):
			return
		}
	}
	err = w.e.PublishPOSH(name, pub)
	var held *acme.LockedError
	switch {
	case errors.As(err, &held):
		w.log.Info("writing POSH documents skipped: another xmppcert process or cluster node holds the lineage; the next run writes them", "lineage", name, "pid", held.PID, "node", held.Node)
	case err != nil:
		w.fail(name, "writing POSH documents failed", err, "dir", pub.Dir, "next", retry)
	default:
		w.log.Info("POSH documents written", "lineage", name, "dir", pub.Dir, "services", pub.Services, "expires", p.Expires.String())
	}
}
