package daemon

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/dnsupdate"
	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/web"
)

// renew is one renewal run of the lifecycle engine over the
// configuration in force: its [[host]] tables are the desired hosts,
// and every other lineage of the state directory is renewed as the
// renew command does. A host whose settings cannot be turned into a
// request is logged and counts as failed.
func (d *Daemon) renew(ctx context.Context) error {
	cfg := d.Config()
	if err := d.clusterDown(cfg); err != nil {
		return err
	}
	var hosts []lifecycle.Host
	skipped := 0
	for _, h := range cfg.Hosts {
		if h.FromLineage {
			continue // the engine renews every lineage anyway
		}
		dh, err := DesiredHost(cfg, h)
		if err != nil {
			skipped++
			d.log.Error("host skipped", "lineage", h.Domain, "error", err.Error(), "next",
				fmt.Sprintf("fix the %s at %s and reload (SIGHUP)", config.KeyHost, hostSource(cfg, h)))
			continue
		}
		hosts = append(hosts, dh)
	}
	err := d.deps.Engine.Reconcile(ctx, hosts, false, d.log)
	if cfg.Cluster != nil {
		d.mirror(cfg)
	}
	caDir := filepath.Join(cfg.StateDir, "ca")
	if refreshed, cerr := localca.MaintainCRL(caDir, d.deps.Now()); cerr != nil {
		d.log.Error("signing the embedded CA's CRL again failed", "dir", caDir, "error", cerr.Error())
	} else if refreshed {
		d.log.Info("the embedded CA's CRL was signed again", "file", filepath.Join(caDir, localca.CRLFile))
	}
	if skipped > 0 && err == nil {
		err = fmt.Errorf("%d hosts skipped", skipped)
	}
	return err
}

// hostSource is where a [[host]] is configured, FILE:LINE.
func hostSource(cfg *config.Config, h config.Host) string {
	return fmt.Sprintf("%s:%d", cfg.File, h.Line)
}

// DesiredHost is the lifecycle engine's desired state of one [[host]]
// of cfg: what each renewal run of the daemon asks the engine to keep.
func DesiredHost(cfg *config.Config, h config.Host) (lifecycle.Host, error) {
	req, err := h.Request()
	if err != nil {
		return lifecycle.Host{}, err
	}
	out := lifecycle.Host{
		Request: req,
		Options: lifecycle.IssueOptions{AgreeTOS: h.AgreeTOS, EABHMAC: string(h.EABHMAC), Timeout: h.Timeout},
		Source:  hostSource(cfg, h),
		Hint: func(err error) string {
			var account *lifecycle.AccountError
			var ca *acmeca.Error
			switch {
			case errors.As(err, &account):
				return h.AccountHint() + "; reload with SIGHUP"
			case errors.As(err, &ca):
				if hint := h.RemedyHint(ca.Remedy()); hint != "" {
					return hint + "; reload with SIGHUP"
				}
			}
			return ""
		},
	}
	if t := h.TLSA; t != nil {
		out.TLSA = &lifecycle.TLSAPublication{
			Spec:       lifecycle.TLSASpec{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, TTL: t.TTL},
			Targets:    t.Targets,
			Ports:      t.Ports,
			FromSRV:    t.FromSRV,
			Resolver:   t.Resolver,
			DNS:        dnsupdate.Client{Server: t.Server, KeyName: t.TSIGName, Algorithm: t.TSIGAlgorithm},
			SecretFile: t.TSIGSecretFile,
			Zone:       t.Zone,
			Hold:       t.Hold,
		}
	}
	if p := h.POSH; p != nil {
		pub := &lifecycle.POSHPublication{Dir: h.POSHRoot(cfg.StateDir), CreateDir: p.OutDir == "", Expires: p.Expires}
		for _, s := range p.Services {
			pub.Services = append(pub.Services, string(s))
		}
		if pub.Expires < time.Second {
			pub.Expires = time.Second
		}
		out.POSH = pub
	}
	return out, nil
}

// DesiredHosts is DesiredHost for every [[host]] of cfg, in file order;
// it stops at the first host whose settings make no request.
func DesiredHosts(cfg *config.Config) ([]lifecycle.Host, error) {
	var out []lifecycle.Host
	for _, h := range cfg.Hosts {
		dh, err := DesiredHost(cfg, h)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", hostSource(cfg, h), err)
		}
		out = append(out, dh)
	}
	return out, nil
}

// lifecycleEvent counts an event of the lifecycle engine in /metrics
// and logs the failures among them with what failed.
func (d *Daemon) lifecycleEvent(ev lifecycle.Event) {
	d.health.lifecycleEvents.WithLabelValues(ev.Name).Inc()
	d.lineageMetrics.event(ev)
	if ev.Name == lifecycle.EventDeployFailed && ev.Err != nil {
		d.log.Warn("deploy failed", "lineage", ev.Lineage, "version", ev.Version, "target", ev.Target, "error", ev.Err.Error())
	}
}

// refreshLineageHosts takes the hosts of a daemon without a
// configuration file from the lineages in the state directory
// (config.HostFromRequest): they are watched as our own, and renewed as
// every lineage is, but state no desired state. A lineage that cannot be
// read is logged and left out.
func (d *Daemon) refreshLineageHosts() {
	cfg := *d.Config()
	store := d.engineFor(&cfg).Store
	names, err := store.Names()
	if err != nil {
		d.log.Error("listing the lineages", "dir", cfg.StateDir, "error", err.Error())
		return
	}
	cfg.Hosts = nil
	for _, name := range names {
		cur, err := store.Current(name)
		if err != nil {
			d.log.Warn("lineage left out of the watched hosts", "lineage", name, "error", err.Error())
			continue
		}
		cfg.Hosts = append(cfg.Hosts, config.HostFromRequest(cur.Request))
	}
	if len(cfg.Hosts) > 0 && cfg.Watch.From == "" {
		cfg.Watch.From = cfg.Hosts[0].Domain
	}
	d.mu.Lock()
	d.cfg = &cfg
	d.mu.Unlock()
}

// engineFor is the lifecycle engine the daemon reads lineages through:
// the daemon's; without one (renewal disabled), or while a cluster's
// store is unavailable, one over cfg's state directory, where a cluster
// node keeps its copy of the lineages it deploys, so that probing,
// alerting and the dashboard go on without etcd.
func (d *Daemon) engineFor(cfg *config.Config) *lifecycle.Engine {
	if d.deps.Engine == nil || d.storeUnavailable() != nil {
		return lifecycle.OnDisk(cfg.StateDir)
	}
	return d.deps.Engine
}

// lineages is what the dashboard shows of every lineage in the state
// directory (lifecycle.Engine.Status), read at each request.
func (d *Daemon) lineages() []web.Lineage {
	e := d.engineFor(d.Config())
	names, err := e.Store.Names()
	if err != nil {
		d.log.Warn("listing the lineages for the dashboard", "error", err.Error())
		return nil
	}
	var out []web.Lineage
	for st, err := range e.Statuses(context.Background(), names) {
		name := st.Name
		if err != nil {
			out = append(out, web.Lineage{Name: name, Problems: []string{err.Error()}})
			continue
		}
		l := web.Lineage{Name: name, Version: st.Version, NotAfter: st.NotAfter, RenewAt: st.RenewAt, Rule: st.Rule}
		for _, n := range st.Names {
			l.Names = append(l.Names, fmt.Sprintf("%s (%s)", n.Domain, n.Role))
		}
		for _, t := range st.Targets {
			line := t.Target + ": "
			switch r := t.Record; {
			case t.Holds && r != nil && r.Reloaded:
				line += fmt.Sprintf("version %d, reloaded", r.Version)
			case t.Holds && r != nil:
				line += fmt.Sprintf("version %d", r.Version)
			case t.Holds:
				line += "deployed before deploy records were kept"
			case r != nil && r.Error != "":
				line += "FAILED: " + r.Error
			default:
				line += "behind the current version"
			}
			l.Deploy = append(l.Deploy, line)
		}
		for _, s := range st.Served {
			l.Served = append(l.Served, s.Detail)
		}
		for _, p := range st.Problems(d.deps.Now()) {
			l.Problems = append(l.Problems, p.Text)
		}
		out = append(out, l)
	}
	return out
}

// servedStaleGrace is how long after a lineage's current version went
// out one of our endpoints may still present an older one before that is
// a served-stale condition: a reload, or a deploy on another node, may
// be under way.
const servedStaleGrace = 15 * time.Minute

// ownLineages maps our hosts' names to their lineages and reads the
// lineage.ServedIndex once per sweep, when the first observation of our
// own needs it.
type ownLineages struct {
	d      *Daemon
	cfg    *config.Config
	of     map[string]string // host or component -> lineage
	ix     *lifecycle.ServedIndex
	failed bool
}

func (d *Daemon) ownLineages(cfg *config.Config) *ownLineages {
	of := map[string]string{}
	for _, h := range cfg.Hosts {
		of[h.Domain] = h.Domain
		for _, c := range h.Components {
			of[c] = h.Domain
		}
	}
	return &ownLineages{d: d, cfg: cfg, of: of}
}

// lineage returns the lineage domain belongs to and the index, or false
// when domain is none of our hosts' names, its lineage is not issued
// yet, or the lineages cannot be read (logged once).
func (l *ownLineages) lineage(domain string) (string, *lifecycle.ServedIndex, bool) {
	name, own := l.of[domain]
	if !own || l.failed {
		return "", nil, false
	}
	if l.ix == nil {
		var err error
		if l.ix, err = l.d.engineFor(l.cfg).NewServedIndex(); err != nil {
			l.failed = true
			l.d.log.Error("reading the lineages to compare what our endpoints serve", "error", err.Error())
			return "", nil, false
		}
	}
	return name, l.ix, l.ix.Has(name)
}

// served compares an observation of our own hosts' endpoints with the
// lineage it should serve (lifecycle.ServedIndex): conditions
// served-foreign (critical), served-mismatch and, after
// servedStaleGrace, served-stale (warnings).
func (l *ownLineages) served(o watcher.Observation, now time.Time) []changes.Change {
	if !o.Reachable || len(o.Chain) == 0 {
		return nil
	}
	name, ix, ok := l.lineage(o.Endpoint.Domain)
	if !ok {
		return nil
	}
	leaf := o.Chain[0]
	status, version, other := ix.Classify(name, leaf.SHA256, leaf.SPKISHA256)
	ep := o.Endpoint.String()
	change := func(kind changes.Kind, sev changes.Severity, text string) []changes.Change {
		return []changes.Change{{Kind: kind, Severity: sev, Text: text, New: leaf.SHA256, Key: ep + "|" + string(kind) + "|" + leaf.SHA256}}
	}
	switch status {
	case lifecycle.ServedForeign:
		return change(changes.ServedForeign, changes.Critical, fmt.Sprintf("serves a certificate whose key belongs to no lineage (%s, SHA-256 %s) instead of lineage %s", leaf.Subject, leaf.SHA256, name))
	case lifecycle.ServedMismatch:
		return change(changes.ServedMismatch, changes.Warning, fmt.Sprintf("serves a certificate of lineage %s instead of lineage %s", other, name))
	case lifecycle.ServedStale:
		if since := ix.Since(name); now.Sub(since) >= servedStaleGrace {
			return change(changes.ServedStale, changes.Warning, fmt.Sprintf("still serves version %d of lineage %s; the current version went out %s: the reload did not take", version, name, since.UTC().Format("2006-01-02 15:04 MST")))
		}
	}
	return nil
}
