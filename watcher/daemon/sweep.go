package daemon

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// pruneEvery is how often a sweep also prunes the history.
const pruneEvery = time.Hour

// lastReachableDepth bounds how far back a sweep looks for the last
// reachable observation of an endpoint that was unreachable.
const lastReachableDepth = 32

// SweepOnce probes every target of the configuration in force, records
// the observations in one history commit, classifies each against the
// endpoint's previous observation and reports the changes to the alert
// sinks. Unreachable endpoints are observations like any other; an error
// is returned only when the history could not be written (nothing of the
// sweep is then recorded or alerted).
func (d *Daemon) SweepOnce(ctx context.Context) (SweepResult, error) {
	d.sweepMu.Lock()
	defer d.sweepMu.Unlock()
	res, err := d.sweep(ctx)
	d.health.sweepDone(res.Duration, err, d.deps.Now())
	return res, err
}

// sweep is SweepOnce under its lock.
func (d *Daemon) sweep(ctx context.Context) (SweepResult, error) {
	start := time.Now()
	if d.Config().File == "" {
		d.refreshLineageHosts() // lineages issued since the last sweep
	}
	d.mu.Lock()
	cfg, disp := d.cfg, d.disp
	d.mu.Unlock()

	targets := d.share(cfg, cfg.Targets())
	res := SweepResult{Targets: len(targets)}
	expect := d.expectations(cfg)
	d.mu.Lock()
	d.expect = expect
	d.mu.Unlock()

	jobs := make([]probe.Job, len(targets))
	now := d.deps.Now()
	roots := d.roots(cfg)
	var full map[int]bool
	if scanned, err := d.store.ScanTimes(); err != nil {
		d.log.Error("reading when targets were last scanned; no full scan this sweep", "error", err.Error())
	} else {
		full = fullScanDue(cfg.Watch, targets, scanned, now)
	}
	ours := d.ourCertificate(cfg)
	for i, t := range targets {
		o := d.probeOptions(cfg, roots, t.Service, t.DirectTLS, t.Own)
		o.Connect, o.Now = t.Connect, now
		if o.From != "" && !t.Own {
			o.ClientCert = ours
		}
		if full[i] {
			o.Full, o.FullScan, o.FullDeadline = true, probe.TLSScan, probe.DefaultFullDeadline
		}
		jobs[i] = probe.Job{Domain: t.Domain, Options: o}
	}
	vjobs, vnames := vantageJobs(cfg, targets, jobs)
	jobs = append(jobs, vjobs...)
	views := vantageViews{}
	// Each result is reduced as soon as it is complete, so that a sweep
	// holds the observations and not every probe's whole result.
	perJob := make([][]watcher.Observation, len(jobs))
	probes := make(map[string]*probe.Endpoint, len(jobs))
	scans := scanRecord{targets: map[string]time.Time{}, endpoints: map[string]history.Scan{}}
	probe.ProbeEach(ctx, jobs, cfg.Watch.Concurrency, func(i int, r probe.Result) {
		if i >= len(targets) {
			views.add(vnames[i-len(targets)], r)
			return
		}
		if jobs[i].Options.Full {
			scans.targets[targetKey(targets[i])] = now
			res.FullScans++
		}
		eps := watcher.Observations(r)
		if len(eps) == 0 {
			msg := r.Error
			if msg == "" {
				msg = string(r.Failure)
			}
			res.Failed = append(res.Failed, fmt.Sprintf("%s %s: %s", r.Domain, r.Service, msg))
			d.log.Warn("probe found no endpoint", "domain", r.Domain, "service", string(r.Service), "failure", string(r.Failure), "error", r.Error)
			return
		}
		for k, o := range eps {
			key := o.Endpoint.String()
			e := &r.Endpoints[k]
			if jobs[i].Options.Full {
				scans.add(key, e, now)
			} else {
				d.gradeWithLastScan(key, e, r.Service)
			}
			probes[key] = verdicts(*e)
		}
		perJob[i] = eps
	})
	var obs []watcher.Observation
	for _, eps := range perJob[:len(targets)] {
		obs = append(obs, eps...)
	}
	shared := d.sharedWatchOf(cfg)
	var fresh []bool
	if shared != nil {
		fresh = d.freshInShare(targets, perJob)
	}
	perJob = nil
	res.Observations = len(obs)
	if len(obs) == 0 {
		// Scans of targets that reached no endpoint still take their turn.
		if err := d.store.RecordScans(scans.targets, nil); err != nil {
			d.log.Error("recording the full scans; they run again next sweep", "error", err.Error())
		}
	}
	d.mu.Lock()
	for k, v := range probes {
		d.probes[k] = v
	}
	d.mu.Unlock()
	if len(obs) == 0 {
		res.Duration = time.Since(start)
		return res, nil
	}

	recorded, err := d.store.RecordAll(obs)
	if err != nil {
		res.Duration = time.Since(start)
		return res, fmt.Errorf("recording %d observations: %w", len(obs), err)
	}
	if err := d.store.RecordScans(scans.targets, scans.endpoints); err != nil {
		d.log.Error("recording the full scans; they run again next sweep", "error", err.Error())
	}
	judged := now
	own := d.ownLineages(cfg)
	var there map[string]*watcher.Observation
	var changed []watcher.Observation
	if shared != nil {
		// Not watched here in the last sweep: another member may have
		// since (a share handed over), whose later look counts.
		var moved []string
		for i, o := range obs {
			if recorded[i].Prev == nil || fresh[i] {
				moved = append(moved, o.Endpoint.String())
			}
		}
		there = d.handedOver(shared, moved)
	}
	for i, o := range obs {
		rec := recorded[i]
		cctx := expect[o.Endpoint.Domain]
		cctx.Now = judged
		prev := rec.Prev
		if t := there[o.Endpoint.String()]; t != nil && (prev == nil || t.At.After(prev.At)) {
			prev, rec.Changed = t, !t.Equal(o)
		}
		switch {
		case rec.Changed:
			res.Changed++
			if shared != nil {
				changed = append(changed, o)
			}
		default:
			// Unchanged: only conditions (expiry) are judged.
			same := o
			prev = &same
		}
		if prev != nil && !prev.Reachable {
			cctx.LastReachable = d.lastReachable(o.Endpoint.String())
		}
		cs := changes.Classify(prev, o, cctx)
		cs = append(cs, own.served(o, judged)...)
		cs = append(cs, views.conditions(o, own)...)
		res.Alerts += disp.Report(o.Endpoint, o.At, cs)
	}
	if shared != nil {
		d.handOver(shared, changed)
	}
	if cfg.History.Retention > 0 && judged.Sub(d.lastPrune) >= pruneEvery {
		d.lastPrune = judged
		if n, err := d.store.Prune(judged.Add(-cfg.History.Retention)); err != nil {
			d.log.Error("pruning the history", "error", err.Error())
		} else if n > 0 {
			d.log.Info("history pruned", "entries", n, "retention", cfg.History.Retention.String())
		}
	}
	res.Duration = time.Since(start)
	d.log.Info("sweep done", "targets", res.Targets, "full_scans", res.FullScans, "observations", res.Observations, "changed", res.Changed,
		"alerts", res.Alerts, "failed", len(res.Failed), "took", res.Duration.Round(time.Millisecond).String())
	return res, nil
}

// probeOptions are the options every probe of the daemon's runs with:
// the configured resolver, deadline and trust roots, and for s2s the
// configured from, except towards our own servers when it is one of our
// names (they refuse a stream from a domain they serve: Prosody's
// "Attempt to connect from a host we serve").
func (d *Daemon) probeOptions(cfg *config.Config, roots *x509.CertPool, svc xmppaddr.Service, directTLS, ownTarget bool) probe.Options {
	o := probe.Options{
		Service:   svc,
		DirectTLS: directTLS,
		Resolver:  cfg.Watch.Resolver,
		Deadline:  cfg.Watch.Timeout,
		Roots:     roots,
		Dial:      d.deps.Dial,
	}
	if d.deps.Resolver != "" {
		o.Resolver = d.deps.Resolver
	}
	if svc == xmppaddr.ServiceServer && !(ownTarget && ownName(cfg, cfg.Watch.From)) {
		o.From = cfg.Watch.From
	}
	return o
}

// ownName reports whether domain is a host or component of cfg.
func ownName(cfg *config.Config, domain string) bool {
	for _, h := range cfg.Hosts {
		if h.Domain == domain || slices.Contains(h.Components, domain) {
			return true
		}
	}
	return false
}

// ProbeNow probes domain for the service now with the sweeps' options,
// for the web API's /probe; nothing is recorded in the history.
func (d *Daemon) ProbeNow(ctx context.Context, domain string, svc xmppaddr.Service, directTLS bool) probe.Result {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	return probe.Probe(ctx, domain, d.probeOptions(cfg, d.roots(cfg), svc, directTLS, ownName(cfg, domain)))
}

// ProbeRoots is the pool the daemon's probes trust before the
// configuration's own roots: the system's, and the root of the embedded
// CA in the state directory state (our own hosts' certificates). Without
// system roots it holds the CA's alone, and says so through log.
func ProbeRoots(state string, log *slog.Logger) (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		log.Warn("no system roots; probes trust the embedded CA and the configured roots only", "error", err.Error())
		roots = x509.NewCertPool()
	}
	dir := lifecycle.CADir(state)
	rootPEM, err := localca.RootPEM(dir)
	switch {
	case errors.Is(err, localca.ErrNotInitialized):
	case err != nil:
		return nil, fmt.Errorf("reading the embedded CA's root: %w", err)
	case !roots.AppendCertsFromPEM(rootPEM):
		return nil, fmt.Errorf("the embedded CA's root in %s holds no certificate; check the state directory", dir)
	}
	return roots, nil
}

// roots is the pool the sweep's probes judge certificates against:
// Deps.Roots (nil: the system roots) plus the configuration's
// watch.trust_roots.
func (d *Daemon) roots(cfg *config.Config) *x509.CertPool {
	if len(cfg.Watch.TrustRoots) == 0 {
		return d.deps.Roots
	}
	pool := x509.NewCertPool()
	if d.deps.Roots != nil {
		pool = d.deps.Roots.Clone()
	} else if sys, err := x509.SystemCertPool(); err == nil {
		pool = sys
	} else {
		d.log.Warn("no system roots; trusting the configured roots alone", "error", err.Error())
	}
	for _, c := range cfg.Watch.TrustRoots {
		pool.AddCert(c)
	}
	return pool
}

// verdicts keeps of a probed endpoint what the dashboard and /metrics
// show beside its observation (the manifesto grade, the DANE and POSH
// verdicts, the probe's duration), and drops the rest: the daemon holds
// one per watched endpoint.
func verdicts(ep probe.Endpoint) *probe.Endpoint {
	return &probe.Endpoint{Grade: ep.Grade, DANE: ep.DANE, POSH: ep.POSH, Timings: probe.Timings{Total: ep.Timings.Total}}
}

// lastReachable is the newest reachable entry of the endpoint, looking
// back a bounded number of entries; nil when there is none.
func (d *Daemon) lastReachable(key string) *watcher.Observation {
	hist, err := d.store.History(key, lastReachableDepth)
	if err != nil {
		return nil
	}
	for _, e := range hist {
		if e.Reachable {
			o := e.Observation
			return &o
		}
	}
	return nil
}

// expectations builds, for every domain of the configured hosts, what the
// operator expects to see: the lineage's current and next keys (and the
// next keys a few versions before it announced), the certificates we
// issued (the current version, a few before it and a staged one) and the
// keys whose pins are published. A host without a
// lineage yet expects nothing.
func (d *Daemon) expectations(cfg *config.Config) map[string]changes.Context {
	out := map[string]changes.Context{}
	store := d.engineFor(cfg).Store
	for _, h := range cfg.Hosts {
		c, err := lineageContext(store, h.Domain)
		if err != nil {
			if !errors.Is(err, errNoLineage) {
				d.log.Warn("reading the lineage for expected keys", "lineage", h.Domain, "error", err.Error())
			}
		}
		out[h.Domain] = c
		for _, comp := range h.Components {
			out[comp] = c
		}
	}
	return out
}

var errNoLineage = errors.New("no lineage")

// lineageContext reads one lineage into a changes.Context.
func lineageContext(store acme.Store, name string) (changes.Context, error) {
	var c changes.Context
	l, err := store.Load(name)
	if err != nil {
		if names, nerr := store.Names(); nerr == nil && !contains(names, name) {
			return c, errNoLineage
		}
		return c, err
	}
	addCert := func(l *acme.Lineage) {
		if len(l.Chain) > 0 {
			sum := sha256.Sum256(l.Chain[0].Raw)
			c.IssuedCerts = append(c.IssuedCerts, hex.EncodeToString(sum[:]))
		}
	}
	if len(l.Chain) > 0 {
		c.CurrentSPKI = append(c.CurrentSPKI, acme.SPKIDigest(l.Chain[0].PublicKey))
	}
	if l.NextKey != nil {
		c.NextSPKI = append(c.NextSPKI, acme.SPKIDigest(l.NextKey.Public()))
	}
	addCert(l)
	for n := l.Version - 1; n >= 1 && n >= l.Version-3; n-- {
		if old, err := store.LoadVersion(name, n); err == nil {
			addCert(old)
			// The key an earlier version announced as its next one
			// (usually the current key, since a renewal moves to it)
			// stays pre-announced: seeing it arrive is that rotation.
			if old.NextKey != nil {
				c.NextSPKI = append(c.NextSPKI, acme.SPKIDigest(old.NextKey.Public()))
			}
		}
	}
	if ps, err := store.PinState(name); err == nil {
		for spki := range ps.Published {
			c.PinnedSPKI = append(c.PinnedSPKI, spki)
		}
		if n, ok := ps.StagedFor(l.Version); ok {
			if st, err := store.LoadVersion(name, n); err == nil {
				addCert(st)
				if len(st.Chain) > 0 {
					c.NextSPKI = append(c.NextSPKI, acme.SPKIDigest(st.Chain[0].PublicKey))
				}
			}
		}
	}
	return c, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
