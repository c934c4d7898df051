package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/web"
)

// OpenCluster joins the cluster of c: it connects to etcd with the
// node's client certificate, opens the node's session and returns the
// lineage store the node's lifecycle engine uses in place of its state
// directory's; the etcd client's warnings go to log. The caller closes
// it. While the node has no session (etcd lost its quorum, or the node
// was cut off past its lease) the store is unavailable, and opens a new
// session once etcd grants one.
func OpenCluster(ctx context.Context, c *config.Cluster, log *slog.Logger) (*etcdstore.Store, error) {
	var tc *tls.Config
	if c.TLSCertFile != "" || c.TLSCAFile != "" {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLSCertFile != "" {
			pair, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("cluster: the node's etcd client certificate %s / %s: %w", c.TLSCertFile, c.TLSKeyFile, err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		if c.TLSCAFile != "" {
			certs, err := certfile.Read(c.TLSCAFile, nil)
			if err != nil {
				return nil, fmt.Errorf("cluster: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			for _, cert := range certs {
				tc.RootCAs.AddCert(cert)
			}
		}
	}
	return etcdstore.Open(ctx, etcdstore.Connection{Endpoints: c.Endpoints, TLS: tc, LeaseTTL: c.LeaseTTL,
		Logger: zap.New(slogCore{log.With("component", "etcd")})},
		etcdstore.Options{Prefix: c.Prefix, Key: c.Key, Node: c.NodeID, OrderSlots: c.MaxOrders})
}

// storeUnavailable is the engine's store's unavailability: nil but for
// a cluster's store that cannot reach a quorum of etcd.
func (d *Daemon) storeUnavailable() error {
	if d.deps.Engine == nil {
		return nil
	}
	if u, ok := d.deps.Engine.Store.(interface{ Unavailable() error }); ok {
		return u.Unavailable()
	}
	return nil
}

// clusterDown reports a cluster store that cannot reach a quorum of
// etcd before a renewal run, which then renews and writes nothing: the
// first time in an outage it logs it and raises cluster-unavailable
// (warning, critical within 7 days of the earliest expiry), naming the
// earliest expiry among the lineages this node deploys; when the store
// answers again it logs that renewals resume.
func (d *Daemon) clusterDown(cfg *config.Config) error {
	err := d.storeUnavailable()
	d.mu.Lock()
	was := d.clusterLost
	var ue *etcdstore.UnavailableError
	switch {
	case err == nil:
		d.clusterLost = time.Time{}
	case errors.As(err, &ue):
		d.clusterLost = ue.Since
	}
	d.mu.Unlock()
	switch {
	case err == nil && !was.IsZero():
		d.log.Info("the cluster store answers again: renewals resume", "unavailable_for", time.Since(was).Round(time.Second).String())
		return nil
	case err == nil, ue == nil || ue.Since.Equal(was):
		return err
	}
	node := ""
	if cfg.Cluster != nil {
		node = cfg.Cluster.NodeID
	}
	name, notAfter, found := earliestExpiry(acme.DiskStore{Dir: cfg.StateDir})
	text := "the cluster store (etcd) is unavailable since " + ue.Since.UTC().Format(time.DateTime) + " UTC: node " + node + " renews nothing until it answers"
	sev := changes.Warning
	if found {
		left := notAfter.Sub(d.deps.Now())
		text += fmt.Sprintf("; the earliest expiry is lineage %s on %s UTC (in %.1f days)", name, notAfter.UTC().Format(time.DateTime), left.Hours()/24)
		if left < 7*24*time.Hour {
			sev = changes.Critical
		}
	}
	d.log.Error("renewals paused", "error", err.Error(), "earliest_expiry", name, "not_after", notAfter)
	d.disp.Dispatch(alert.Alert{
		Endpoint: watcher.EndpointKey{Domain: name, Service: "cluster", Host: node},
		Change: changes.Change{Kind: changes.ClusterUnavailable, Severity: sev, Text: text, New: name,
			Key: "cluster|unavailable|" + node + "|" + strconv.FormatInt(ue.Since.Unix(), 10)},
		At: ue.Since,
	})
	return err
}

// earliestExpiry is the lineage of store whose current certificate
// expires first; found is false when none can be read.
func earliestExpiry(store acme.Store) (name string, notAfter time.Time, found bool) {
	names, _ := store.Names()
	for _, n := range names {
		cur, err := store.Current(n)
		if err != nil {
			continue
		}
		if !found || cur.Leaf.NotAfter.Before(notAfter) {
			name, notAfter, found = n, cur.Leaf.NotAfter, true
		}
	}
	return name, notAfter, found
}

// changesOf is the cluster store's feed of what calls for a run
// (etcdstore.Store.Changes) until ctx is done, for n receivers: one
// watch, and a channel for each that holds one signal, closed with the
// feed. Without a cluster the channels are nil.
func (d *Daemon) changesOf(ctx context.Context, n int) []<-chan struct{} {
	outs := make([]<-chan struct{}, n)
	if d.deps.Engine == nil {
		return outs
	}
	w, ok := d.deps.Engine.Store.(interface {
		Changes(context.Context) <-chan struct{}
	})
	if !ok {
		return outs
	}
	feed := w.Changes(ctx)
	chans := make([]chan struct{}, n)
	for i := range chans {
		chans[i] = make(chan struct{}, 1)
		outs[i] = chans[i]
	}
	go func() {
		for range feed {
			for _, c := range chans {
				select {
				case c <- struct{}{}:
				default:
				}
			}
		}
		for _, c := range chans {
			close(c)
		}
	}()
	return outs
}

// followLoop, on a cluster node, writes every version another node
// commits into this node's layout and deploys it as soon as it is
// committed, while the renewal loop may be busy with this node's own
// renewals; it returns when ctx is done. work is the context the deploys
// run with.
func (d *Daemon) followLoop(ctx, work context.Context, changed <-chan struct{}) {
	if changed == nil {
		return
	}
	left := map[string]bool{}
	for {
		// A lineage left because it was held is tried again a second
		// later, whoever held it: the holder may have had no version of
		// its own to deploy.
		var retry <-chan time.Time
		if len(left) > 0 {
			retry = time.After(time.Second)
		}
		select {
		case _, ok := <-changed:
			if !ok {
				return
			}
		case <-retry:
		}
		d.follow(work, left)
	}
}

// follow writes the cluster's lineages into this node's layout and
// deploys each lineage the layout took a version of, and each one in
// left, to its targets behind it. A lineage that another process or
// node holds is kept in left for the next pass.
func (d *Daemon) follow(ctx context.Context, left map[string]bool) {
	if d.storeUnavailable() != nil {
		return
	}
	changed, held := d.mirror(d.Config())
	for _, name := range append(changed, held...) {
		left[name] = true
	}
	var locked *acme.LockedError
	for name := range left {
		rep, err := d.deps.Engine.Deploy(ctx, name, false)
		switch {
		case errors.As(err, &locked):
			continue
		case errors.Is(err, acme.ErrNoLineage):
		case err != nil:
			d.log.Error("deploying a version committed by another node", "lineage", name, "error", err.Error())
		case !rep.UpToDate:
			d.log.Info("version committed by another node deployed", "lineage", name, "version", rep.Version, "ok", rep.Deployed())
			// The renewal loop may have found the lineage taken meanwhile.
			select {
			case d.rerun <- struct{}{}:
			default:
			}
		}
		delete(left, name)
	}
}

// mirror writes the cluster's lineages into this node's certbot layout,
// for its servers, hooks and `prosodyctl cert import`, and returns those
// it changed, and those it found locked there (by this node's other
// loop, or a command) and left for now.
func (d *Daemon) mirror(cfg *config.Config) (changed, held []string) {
	changed, err := lifecycle.Mirror(d.deps.Engine.Store, acme.DiskStore{Dir: cfg.StateDir})
	for _, name := range changed {
		d.log.Info("lineage written to this node's state directory from the cluster", "lineage", name)
	}
	var locked *acme.LockedError
	var me *lifecycle.MirrorError
	for _, e := range unjoin(err) {
		if errors.As(e, &locked) && errors.As(e, &me) {
			held = append(held, me.Name)
			d.log.Debug("lineage left to the loop that is writing it", "error", e.Error())
		} else {
			d.log.Error("writing a cluster lineage into this node's state directory", "error", e.Error())
		}
	}
	return changed, held
}

// unjoin splits an errors.Join error into its parts.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err != nil {
		return []error{err}
	}
	return nil
}

// merge forwards the signals of a and b to one channel (coalesced, as
// theirs are) until ctx is done or a is closed.
func merge(ctx context.Context, a, b <-chan struct{}) <-chan struct{} {
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-a:
				if !ok {
					return
				}
			case <-b:
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}

// memberDirectory is what the cluster's dashboard and /metrics need of
// the cluster's store (acme/etcdstore): the live members with the URL
// each advertises, and this node's own to advertise.
type memberDirectory interface {
	MemberURLs() ([]etcdstore.Member, error)
	Advertise(url string) error
}

// memberDirectoryOf is the cluster's store when cfg has [cluster] and
// the engine's store is one; nil otherwise.
func (d *Daemon) memberDirectoryOf(cfg *config.Config) memberDirectory {
	if cfg.Cluster == nil || d.deps.Engine == nil {
		return nil
	}
	md, _ := d.deps.Engine.Store.(memberDirectory)
	return md
}

// webCluster is what the web server of a cluster node shows the whole
// cluster with; nil without a cluster.
func (d *Daemon) webCluster(cfg *config.Config) *web.Cluster {
	md := d.memberDirectoryOf(cfg)
	if md == nil {
		return nil
	}
	return &web.Cluster{Node: cfg.Cluster.NodeID, Members: func() ([]web.Member, error) {
		ms, err := md.MemberURLs()
		out := make([]web.Member, 0, len(ms))
		for _, m := range ms {
			out = append(out, web.Member{Node: m.Node, URL: m.URL})
		}
		return out, err
	}}
}

// advertiseURL is the base URL of this node's API for the other members:
// the configured one, else http:// and the configured listen host with
// the port bound, when that host is not every address ("" then).
func advertiseURL(cfg *config.Config, bound net.Addr) string {
	if cfg.Cluster.AdvertiseURL != "" {
		return cfg.Cluster.AdvertiseURL
	}
	host, _, err := net.SplitHostPort(cfg.HTTP.Listen)
	if ip := net.ParseIP(host); err != nil || host == "" || ip != nil && ip.IsUnspecified() {
		return ""
	}
	_, port, err := net.SplitHostPort(bound.String())
	if err != nil {
		return ""
	}
	return "http://" + net.JoinHostPort(host, port)
}

// advertise, on a cluster node, has its member value name the URL of its
// API, its listener being bound to bound; a node that listens on every
// address and was given no URL advertises none, and says so.
func (d *Daemon) advertise(bound net.Addr) {
	cfg := d.Config()
	md := d.memberDirectoryOf(cfg)
	if md == nil {
		return
	}
	u := advertiseURL(cfg, bound)
	if u == "" {
		d.log.Warn("this node listens on every address and advertises no URL of its API: the other members' dashboards and /metrics name it as not answering", "listen", cfg.HTTP.Listen)
		return
	}
	if err := md.Advertise(u); err != nil {
		d.log.Warn("advertising this node's API to the cluster", "url", u, "error", err.Error())
		return
	}
	d.log.Info("this node's API advertised to the cluster", "url", u)
}

// caElection is what electing the node that issues from the embedded CA
// needs of a cluster's store (acme/etcdstore).
type caElection interface {
	Serve(ctx context.Context, r etcdstore.Role) error
	Leader(role string) (etcdstore.Candidate, error)
}

// caElectionOf is the cluster's store when cfg has [cluster] and the
// engine's store is one; nil otherwise.
func (d *Daemon) caElectionOf(cfg *config.Config) caElection {
	if cfg.Cluster == nil || d.deps.Engine == nil {
		return nil
	}
	el, _ := d.deps.Engine.Store.(caElection)
	return el
}

// localCALead is the engine's LocalCALead on a cluster node: whether
// this node leads the embedded CA's issuance, else who does.
func (d *Daemon) localCALead(el caElection) func() (bool, string) {
	return func() (bool, string) {
		if d.leadsLocalCA.Load() {
			return true, ""
		}
		c, err := el.Leader(etcdstore.RoleLocalCA)
		if err != nil {
			return false, ""
		}
		return false, c.Node
	}
}

// awaitLocalCALeader waits, for at most a lease TTL, until some node
// leads the embedded CA's issuance (this one, or another), so that the
// first renewal run does not skip what the elected node would issue.
func (d *Daemon) awaitLocalCALeader(ctx context.Context, el caElection) {
	cfg := d.Config()
	deadline := time.Now().Add(cfg.Cluster.LeaseTTL)
	for !d.leadsLocalCA.Load() && time.Now().Before(deadline) {
		if c, err := el.Leader(etcdstore.RoleLocalCA); err == nil && c.Node != cfg.Cluster.NodeID {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// leadLocalCA campaigns, while ctx lasts, for this node to renew and
// issue the lineages the embedded CA signs (one node at a time: README,
// "Cluster mode"), again whenever its lead ends with its session; it
// resigns when ctx ends, handing over at once.
func (d *Daemon) leadLocalCA(ctx context.Context, el caElection) {
	el.Serve(ctx, etcdstore.Role{Name: etcdstore.RoleLocalCA,
		Lead: func(ctx context.Context) error {
			d.leadsLocalCA.Store(true)
			defer d.leadsLocalCA.Store(false)
			d.log.Info("this node leads the embedded CA's issuance")
			select {
			case d.rerun <- struct{}{}: // what waited for a leader
			default:
			}
			<-ctx.Done()
			return nil
		},
		Lost: func() {
			d.log.Warn("this node no longer leads the embedded CA's issuance: its etcd session ended")
		},
	})
}
