package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/dnsupdate"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// The daemon's renewal run (Deps.Renew, hourly): for each [[host]] of
// the configuration in force, in file order, it issues the lineage when
// there is none, renews it when due, publishes its TLSA records and
// writes its POSH documents, each with the code of the command that does
// it by hand (issue, renew, pin publish, pin posh --out-dir) and under
// the same per-lineage locks; then it renews every other lineage of the
// state directory, as `xmppcert renew` does. A failure is logged with
// what to do and never stops the daemon: the next run tries again.

// daemonRenew is the daemon's renewal seam: one run over the hosts that
// hosts returns (the configuration in force, which a reload may change)
// and the lineages in state, logged as one record per action and a
// summary. It fails when anything failed for any lineage.
func daemonRenew(state string, hosts func() []config.Host, logger *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		return newDaemonRun(state, logger).run(ctx, hosts())
	}
}

// daemonRun is one renewal run of the daemon.
type daemonRun struct {
	r   *renewer
	log *slog.Logger
	// counts holds the number of lineages per renewal result, and of
	// lineages issued.
	counts map[string]int
	// failed holds the lineages something failed for.
	failed map[string]bool
}

// resultIssued counts the lineages a run issued.
const resultIssued = "issued"

// newDaemonRun starts a run over the lineages in state, logging to logger.
func newDaemonRun(state string, logger *slog.Logger) *daemonRun {
	return &daemonRun{
		r:      &renewer{store: acme.Store{Dir: state}, ariFailed: map[string]error{}, open: openIssuer},
		log:    logger,
		counts: map[string]int{},
		failed: map[string]bool{},
	}
}

// run does the work for hosts, then renews the lineages no host names.
func (w *daemonRun) run(ctx context.Context, hosts []config.Host) error {
	names, err := w.r.store.Names()
	if err != nil {
		return fmt.Errorf("listing the lineages in %s: %w", filepath.Join(w.r.store.Dir, "live"), err)
	}
	done := map[string]bool{}
	for _, h := range hosts {
		if ctx.Err() != nil {
			break
		}
		done[h.Domain] = true
		w.host(ctx, h, slices.Contains(names, h.Domain))
	}
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		if !done[name] {
			done[name] = true
			w.renew(ctx, name, nil)
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
func (w *daemonRun) fail(name, msg string, err error, attrs ...any) {
	w.failed[name] = true
	w.log.Error(msg, append([]any{"lineage", name, "error", err.Error()}, attrs...)...)
}

// host issues, renews and publishes the pins of one configured host.
func (w *daemonRun) host(ctx context.Context, h config.Host, exists bool) {
	req, err := h.Request()
	var targets []acme.Target
	if err == nil {
		targets, err = req.Targets()
	}
	if err != nil {
		w.fail(h.Domain, "host skipped", err, "next", fmt.Sprintf("fix the [[host]] at line %d of the configuration and reload (SIGHUP)", h.Line))
		return
	}
	if !exists && !w.issue(ctx, h, req, targets) {
		return
	}
	w.renew(ctx, h.Domain, targets)
	if h.TLSA != nil {
		w.publishTLSA(ctx, h.Domain, h.TLSA)
	}
	if h.POSH != nil {
		w.writePOSH(h.Domain, h.POSH, h.POSHRoot(w.r.store.Dir))
	}
}

// issue issues the host's first certificate, as `xmppcert issue` with
// the host's settings does, under the lineage's lock; it reports whether
// the lineage exists now.
func (w *daemonRun) issue(ctx context.Context, h config.Host, req acme.Request, targets []acme.Target) bool {
	name := req.Host()
	store := w.r.store
	unlock, err := store.Lock(name)
	var held *acme.LockedError
	if errors.As(err, &held) {
		w.log.Info("issuance skipped: another xmppcert process holds the lineage; the next run looks again", "lineage", name, "pid", held.PID)
		return false
	}
	if err != nil {
		w.fail(name, "issuance failed", fmt.Errorf("taking the lineage's lock: %w", err), "next", "retried at the next renewal run")
		return false
	}
	defer unlock()
	if _, err := store.Load(name); err == nil {
		return true // issued meanwhile by another process
	} else if !errors.Is(err, acme.ErrNoLineage) {
		w.fail(name, "issuance failed", err, "next", fmt.Sprintf("move the damaged lineage out of %s; the next run issues it afresh", filepath.Join(store.Dir, "live")))
		return false
	}
	plan := issuePlan{targets: targets, opts: issueOptions{AgreeTOS: h.AgreeTOS, EABHMAC: string(h.EABHMAC)}}
	if req.ACME != nil {
		plan.directory = req.CA
	}
	if err := checkAccount(store.Dir, plan); err != nil {
		w.fail(name, "issuance failed", err, "next", fmt.Sprintf("in the configuration that is agree_tos = true (and for ZeroSSL eab_kid and eab_hmac_file) in [host.acme] of the [[host]] at line %d; reload with SIGHUP", h.Line))
		return false
	}
	res, err := issueLocked(ctx, store, req, plan)
	if err != nil {
		w.fail(name, "issuance failed", err, "ca", req.CA, "next", "retried at the next renewal run; 'xmppcert issue' with the host's settings shows the whole report")
		return false
	}
	w.counts[resultIssued]++
	attrs := []any{"lineage", name, "version", res.Version, "issuer", res.Issuer, "not_after", res.NotAfter, "key", res.KeyChoice}
	var failed []string
	for _, d := range res.Deploy {
		if !d.OK {
			failed = append(failed, d.Target+": "+d.Error)
		}
	}
	switch {
	case !res.Valid:
		w.failed[name] = true
		w.log.Error("issued, but the certificate fails the check", append(attrs, "failures", checkFailures(res), "next", "see 'xmppcert check' or 'xmppcert issue' for the findings")...)
	case failed != nil:
		w.failed[name] = true
		w.log.Error("issued, but deploying failed", append(attrs, "deploy", failed, "next", "fix the target and run 'xmppcert issue' or wait for the next renewal")...)
	default:
		w.log.Info("issued", attrs...)
	}
	return true
}

// renew renews the lineage when it is due (renewer.lineage), deploying
// to its stored targets and to targets, and logs what it did.
func (w *daemonRun) renew(ctx context.Context, name string, targets []acme.Target) {
	w.r.targets = targets
	l := w.r.lineage(ctx, name)
	w.counts[l.Result]++
	switch l.Result {
	case resultFailed:
		w.failed[name] = true
		w.log.Error("renewal failed", "lineage", name, "error", l.Error)
	case resultNotDue:
	default:
		w.log.Info("renewal", "lineage", name, "result", l.Result, "version", l.Version, "reason", l.Reason)
	}
}

// publishTLSA publishes the lineage's TLSA records for the current and
// the next key as [host.pins.tlsa] says, as `xmppcert pin publish` does,
// and marks them published with the configured hold time.
func (w *daemonRun) publishTLSA(ctx context.Context, name string, t *config.TLSA) {
	const msg = "publishing TLSA records failed"
	next := "retried at the next renewal run"
	l, err := w.r.store.Load(name)
	if err != nil {
		w.fail(name, msg, err, "next", next)
		return
	}
	spec := tlsaSpec{usage: t.Usage, selector: t.Selector, mtype: t.MatchingType, ttl: t.TTL}
	if t.FromSRV {
		spec.endpoints, err = srvEndpoints(ctx, t.Resolver, l.Request)
	} else {
		spec.endpoints = endpoints(l.Request, t.Targets, t.Ports)
	}
	client := &dnsupdate.Client{Server: t.Server, KeyName: t.TSIGName, Algorithm: t.TSIGAlgorithm}
	if err == nil && t.TSIGSecretFile != "" {
		client.Secret, err = dnsupdate.LoadTSIGSecret(t.TSIGSecretFile)
	}
	if err != nil {
		w.fail(name, msg, err, "next", next)
		return
	}
	out, err := publishTLSA(ctx, w.r.store, l, spec, &pinning.TLSAPublisher{DNS: client, TTL: t.TTL, Zone: t.Zone}, t.Hold, false)
	var added, removed, kept, stale int
	for _, n := range out.Names {
		added, removed, kept, stale = added+len(n.Added), removed+len(n.Removed), kept+len(n.Kept), stale+len(n.StaleKept)
	}
	attrs := []any{"lineage", name, "server", t.Server, "added", added, "removed", removed, "kept", kept, "stale_kept", stale}
	if stale > 0 {
		attrs = append(attrs, "stale_rule", out.StaleRule)
	}
	if !out.SwitchAfter.IsZero() {
		attrs = append(attrs, "switch_after", out.SwitchAfter)
	}
	switch {
	case err != nil:
		w.fail(name, msg, err, append(attrs[2:], "next", next)...)
	case added+removed > 0:
		w.log.Info("TLSA records published", attrs...)
	default:
		w.log.Debug("TLSA records up to date", attrs...)
	}
}

// writePOSH writes the lineage's POSH documents into the web root dir
// (Host.POSHRoot), as `xmppcert pin posh --out-dir` does, unless they are
// written there already with these settings: issue and renew keep
// recorded documents up to date themselves, and rewriting them would
// restart the time a staged certificate waits for.
func (w *daemonRun) writePOSH(name string, p *config.POSH, dir string) {
	pins, err := w.r.store.PinState(name)
	if err != nil {
		w.fail(name, "writing POSH documents failed", err, "next", "retried at the next renewal run")
		return
	}
	pub := acme.POSHPublication{Dir: dir, ExpiresSeconds: int64(p.Expires / time.Second)}
	for _, s := range p.Services {
		pub.Services = append(pub.Services, string(s))
	}
	if cur := pins.POSH; cur != nil {
		pub.SHA512 = cur.SHA512 // set by pin posh --sha512; the file has no such key
		if cur.Dir == pub.Dir && cur.ExpiresSeconds == pub.ExpiresSeconds && slices.Equal(cur.Services, pub.Services) && poshWritten(pub) {
			return
		}
	}
	if p.OutDir == "" {
		// The web root in the state directory is ours to make.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			w.fail(name, "writing POSH documents failed", err, "dir", dir, "next", "retried at the next renewal run")
			return
		}
	}
	err = publishPOSH(w.r.store, name, pub)
	var held *acme.LockedError
	switch {
	case errors.As(err, &held):
		w.log.Info("writing POSH documents skipped: another xmppcert process holds the lineage; the next run writes them", "lineage", name, "pid", held.PID)
	case err != nil:
		w.fail(name, "writing POSH documents failed", err, "dir", pub.Dir, "next", "retried at the next renewal run")
	default:
		w.log.Info("POSH documents written", "lineage", name, "dir", pub.Dir, "services", pub.Services, "expires", p.Expires.String())
	}
}

// poshWritten reports whether every document of pub is in its web root.
func poshWritten(pub acme.POSHPublication) bool {
	for _, svc := range pub.Services {
		rel, err := pinning.POSHPath(svc)
		if err != nil {
			return false
		}
		if _, err := os.Stat(filepath.Join(pub.Dir, filepath.FromSlash(rel))); err != nil {
			return false
		}
	}
	return true
}
