package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/httpserve"
	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/ct"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/watcher/web"
)

// HistoryFile is the name of the history file in the state directory.
const HistoryFile = "history.db"

// Defaults for the zero values of Deps.
const (
	// DefaultRenewInterval is how often Deps.Renew runs.
	DefaultRenewInterval = time.Hour
	// DefaultShutdownGrace bounds the work in flight at shutdown and the
	// flushing of alert queues.
	DefaultShutdownGrace = 20 * time.Second
	// DefaultHistoryTimeout is how long New waits for the history's lock
	// (another daemon holding it).
	DefaultHistoryTimeout = 10 * time.Second
)

// Deps is what the daemon gets from its caller: the lifecycle engine
// over the state directory, the logger, the clock, and hooks for tests.
// Every field may be left zero.
type Deps struct {
	// Engine issues, renews, deploys and publishes the pins of the
	// configured hosts and every other lineage, as the issue, renew and
	// pin commands do. Nil disables renewal.
	Engine *lifecycle.Engine
	// RenewInterval is how often the engine runs (DefaultRenewInterval).
	RenewInterval time.Duration
	// HTTPSRenewCheck is how often certmagic looks at the HTTPS front's
	// certificates for renewal (certmagic's default, ten minutes, when
	// zero).
	HTTPSRenewCheck time.Duration
	// Logger receives the daemon's records; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Dial replaces the probes' TCP dialer (tests send every connection
	// to a fake server).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Resolver is the DNS resolver the probes ask, HOST:PORT; empty means
	// the configuration's watch.resolver.
	Resolver string
	// Roots are the trust anchors certificates are judged against, to
	// which each sweep adds the configuration's watch.trust_roots; nil
	// means the system roots.
	Roots *x509.CertPool
	// Registry is where /metrics collectors are registered; nil means a
	// new registry.
	Registry *prometheus.Registry
	// ShutdownGrace bounds the work in flight and the alert flush at
	// shutdown (DefaultShutdownGrace).
	ShutdownGrace time.Duration
	// HistoryTimeout bounds the wait for the history's lock
	// (DefaultHistoryTimeout).
	HistoryTimeout time.Duration
	// NoSignals keeps Run from handling SIGHUP itself (the caller then
	// calls Reload).
	NoSignals bool
}

// Daemon watches, records, alerts, renews and serves. Create it with New,
// run it with Run.
type Daemon struct {
	deps  Deps
	log   *slog.Logger
	store *history.Store
	web   *web.Server

	mu        sync.Mutex
	cfg       *config.Config
	disp      *alert.Dispatcher
	expect    map[string]changes.Context // by domain, from the last sweep
	probes    map[string]*probe.Endpoint // by endpoint key, from the last sweep
	lastPrune time.Time
	// ctDetected remembers what each [ct] URL turned out to be.
	ctDetected map[string]ct.Log
	// clusterLost is when the cluster store became unavailable, as last
	// reported; zero while it answers.
	clusterLost time.Time
	// members are the cluster's live members as last read (share).
	members []string
	// lastShare holds the keys of the targets the last sweep watched.
	lastShare map[string]bool
	// leadsLocalCA is set while this cluster node leads the embedded
	// CA's issuance (leadLocalCA).
	leadsLocalCA atomic.Bool
	// rerun wakes the renewal loop of a cluster node after its follow
	// loop held a lineage's lock, which a renewal may have found taken.
	rerun chan struct{}

	health         *health
	lineageMetrics *lineageMetrics
	https          *httpsFront // nil without [http.https]
	sweepMu        sync.Mutex  // one sweep at a time
	closed         sync.Once
}

// SweepResult says what one sweep did. POST /api/sweep answers it as
// JSON.
type SweepResult struct {
	// Targets is how many (domain, service) pairs were probed.
	Targets int `json:"targets"`
	// Observations is how many endpoints were observed and recorded.
	Observations int `json:"observations"`
	// FullScans is how many targets had their full TLS scan
	// (watch.full_interval) in this sweep.
	FullScans int `json:"full_scans"`
	// Changed is how many observations differed from their endpoint's
	// previous one (new endpoints included).
	Changed int `json:"changed"`
	// Alerts is how many alerts the dispatcher sent.
	Alerts int `json:"alerts"`
	// Failed lists the targets whose probe found no endpoint at all
	// (DNS failures), as "DOMAIN SERVICE: ERROR"; they are not recorded.
	Failed []string `json:"failed,omitempty"`
	// Duration is how long the sweep took (in JSON, nanoseconds).
	Duration time.Duration `json:"duration_ns"`
}

// New checks cfg, opens the history (StateDir/HistoryFile, created 0600),
// builds the alert sinks and the HTTP handler. The caller must call Run
// or Close. cfg.StateDir must be set.
func New(cfg *config.Config, deps Deps) (*Daemon, error) {
	if cfg == nil {
		return nil, errors.New("daemon: no configuration")
	}
	if cfg.StateDir == "" {
		return nil, errors.New("daemon: no state directory")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.RenewInterval <= 0 {
		deps.RenewInterval = DefaultRenewInterval
	}
	if deps.ShutdownGrace <= 0 {
		deps.ShutdownGrace = DefaultShutdownGrace
	}
	if deps.HistoryTimeout == 0 {
		deps.HistoryTimeout = DefaultHistoryTimeout
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	d := &Daemon{deps: deps, log: deps.Logger, cfg: cfg, expect: map[string]changes.Context{}, probes: map[string]*probe.Endpoint{}, ctDetected: map[string]ct.Log{},
		rerun: make(chan struct{}, 1)}
	h, err := newHealth(deps.Registry)
	if err != nil {
		return nil, err
	}
	d.health = h
	d.lineageMetrics = &lineageMetrics{d: d, renewed: map[string]bool{}}
	if err := deps.Registry.Register(d.lineageMetrics); err != nil {
		return nil, fmt.Errorf("daemon: registering metrics: %w", err)
	}
	d.logWarnings(cfg)
	if cfg.File == "" {
		d.refreshLineageHosts()
	}
	if deps.Engine != nil {
		// The engine's events feed /metrics and the log; the caller's
		// engine is left as it was.
		e := *deps.Engine
		prev := e.Events
		e.Events = func(ev lifecycle.Event) {
			d.lifecycleEvent(ev)
			if prev != nil {
				prev(ev)
			}
		}
		d.deps.Engine = &e
	}
	disp, err := d.dispatcher(cfg)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.StateDir, HistoryFile)
	store, err := history.Open(path, history.Options{Timeout: deps.HistoryTimeout})
	if err != nil {
		closeDispatcher(disp, time.Second)
		return nil, err
	}
	var allowed []string
	if cfg.HTTP.HTTPS != nil {
		if d.https, err = d.newHTTPSFront(cfg); err != nil {
			store.Close()
			closeDispatcher(disp, time.Second)
			return nil, err
		}
		allowed = cfg.HTTP.HTTPS.Names
	}
	srv, err := web.New(web.Options{
		AllowedHosts: allowed,
		Store:        store,
		Context:      d.contextFor,
		Probe:        d.probeFor,
		Acks:         store, // acknowledgements survive a restart
		Token:        string(cfg.HTTP.Token),
		Registry:     deps.Registry,
		Logger:       d.log,
		Now:          deps.Now,
		Sweep:        func(ctx context.Context) (any, error) { return d.SweepOnce(ctx) },
		ProbeNow:     d.ProbeNow,
		POSHRoot:     d.poshRoot,
		Health:       d.health.check,
		Lineages:     d.lineages,
		CRL:          localca.CRLHandler(filepath.Join(cfg.StateDir, "ca")),
		Cluster:      d.webCluster(cfg),
	})
	if err != nil {
		store.Close()
		closeDispatcher(disp, time.Second)
		if d.https != nil {
			d.https.stop()
		}
		return nil, err
	}
	d.store, d.web, d.disp = store, srv, disp
	return d, nil
}

// dispatcher builds the sinks of cfg.Alert behind a new Dispatcher.
func (d *Daemon) dispatcher(cfg *config.Config) (*alert.Dispatcher, error) {
	sinks := []alert.Sink{alert.MinSeverity(alert.NewLog(d.log), cfg.Alert.MinSeverity)}
	for _, w := range cfg.Alert.Webhooks {
		o := w.Options()
		o.Logger = d.log
		q, err := alert.NewWebhookSink(o)
		if err != nil {
			closeSinks(sinks)
			return nil, fmt.Errorf("alert webhook: %w", err)
		}
		sinks = append(sinks, alert.MinSeverity(q, w.MinSeverity))
	}
	for _, e := range cfg.Alert.Execs {
		o := e.Options()
		o.Logger = d.log
		q, err := alert.NewExecSink(o)
		if err != nil {
			closeSinks(sinks)
			return nil, fmt.Errorf("alert exec hook: %w", err)
		}
		sinks = append(sinks, alert.MinSeverity(q, e.MinSeverity))
	}
	for _, x := range cfg.Alert.XMPP {
		o := x.Options()
		o.RootCAs, o.Logger = d.roots(cfg), d.log
		s, err := alert.NewXMPPSink(o)
		if err != nil {
			closeSinks(sinks)
			return nil, fmt.Errorf("alert XMPP account: %w", err)
		}
		sinks = append(sinks, alert.MinSeverity(s, x.MinSeverity))
	}
	return alert.NewDispatcher(alert.DispatcherOptions{ResendInterval: cfg.Alert.ResendInterval, Now: d.deps.Now, Logger: d.log}, sinks...), nil
}

func closeSinks(sinks []alert.Sink) {
	for _, s := range sinks {
		s.Close(context.Background())
	}
}

func closeDispatcher(disp *alert.Dispatcher, grace time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	return disp.Close(ctx)
}

// Handler is the dashboard, API, /metrics and POSH handler that Run
// serves; tests may serve it themselves.
func (d *Daemon) Handler() http.Handler { return d.web }

// Store is the history the daemon records into.
func (d *Daemon) Store() *history.Store { return d.store }

// Config is the configuration in force.
func (d *Daemon) Config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

func (d *Daemon) contextFor(k watcher.EndpointKey) changes.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.expect[k.Domain]
}

// poshRoot is the web root of the POSH documents served for host: that
// of the configured [[host]] whose domain or component host is, when it
// publishes POSH (config.Host.POSHRoot).
func (d *Daemon) poshRoot(host string) string {
	cfg := d.Config()
	for _, h := range cfg.Hosts {
		if h.Domain == host || slices.Contains(h.Components, host) {
			return h.POSHRoot(cfg.StateDir)
		}
	}
	return ""
}

func (d *Daemon) probeFor(key string) *probe.Endpoint {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.probes[key]
}

// Reload reads the configuration file again. On error it logs every
// problem with its file:line, keeps the configuration in force and returns
// the error; on success it applies the new one (see the package
// documentation for what a reload can change).
func (d *Daemon) Reload() error {
	old := d.Config()
	if old.File == "" {
		// No file: the state directory is the configuration.
		d.refreshLineageHosts()
		d.log.Info("no configuration file; hosts taken from the lineages again", "hosts", len(d.Config().Hosts))
		return nil
	}
	cfg, err := config.Load(old.File)
	if err != nil {
		var list config.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				d.log.Error("configuration refused; keeping the old one", "problem", e.Error())
			}
		} else {
			d.log.Error("configuration refused; keeping the old one", "problem", err.Error())
		}
		return err
	}
	d.logWarnings(cfg)
	if cfg.StateDir == "" {
		cfg.StateDir = old.StateDir
	} else if cfg.StateDir != old.StateDir {
		d.log.Warn(config.KeyStateDir+" changed; restart the daemon to use it", "old", old.StateDir, "new", cfg.StateDir)
		cfg.StateDir = old.StateDir
	}
	// The listener and token stay; old.HTTP.Listen may also be a
	// --listen override, so only a token change is worth a warning.
	if cfg.HTTP.TokenFile != old.HTTP.TokenFile || string(cfg.HTTP.Token) != string(old.HTTP.Token) {
		d.log.Warn("the API token (" + config.KeyHTTPTokenFile + ") changed; restart the daemon to apply it")
	}
	if !reflect.DeepEqual(cfg.HTTP.HTTPS, old.HTTP.HTTPS) {
		d.log.Warn(config.KeyHTTPS + " changed; restart the daemon to apply it")
	}
	cfg.HTTP = old.HTTP
	var oldDisp *alert.Dispatcher
	if !reflect.DeepEqual(cfg.Alert, old.Alert) {
		disp, err := d.dispatcher(cfg)
		if err != nil {
			d.log.Error("alert sinks refused; keeping the old configuration", "error", err.Error())
			return err
		}
		d.mu.Lock()
		oldDisp, d.disp = d.disp, disp
		d.mu.Unlock()
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	if oldDisp != nil {
		go func() {
			// A sweep in flight still reports to the old dispatcher.
			d.sweepMu.Lock()
			d.sweepMu.Unlock()
			if err := closeDispatcher(oldDisp, d.deps.ShutdownGrace); err != nil {
				d.log.Warn("old alert sinks did not drain", "error", err.Error())
			}
		}()
	}
	d.log.Info("configuration reloaded", "file", cfg.File, "targets", len(cfg.Targets()), "interval", cfg.Watch.Interval.String())
	return nil
}

// Run serves HTTP on the configured address and sweeps and renews on
// schedule until ctx is cancelled; then it shuts down (see the package
// documentation) and returns nil. It returns an error only when it cannot
// start (the address is taken). Run closes the Daemon.
func (d *Daemon) Run(ctx context.Context) error {
	cfg := d.Config()
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		d.Close(context.Background())
		return fmt.Errorf("listening on %s: %w", cfg.HTTP.Listen, err)
	}
	// A name such as x.localhost passes the configuration's loopback
	// check but may resolve elsewhere: what counts is the address bound.
	if a, ok := ln.Addr().(*net.TCPAddr); len(cfg.HTTP.Token) == 0 && (!ok || !a.IP.IsLoopback()) {
		ln.Close()
		d.Close(context.Background())
		return fmt.Errorf("%s is bound to %s, which is not a loopback address, and no token is configured: set %s, or listen on 127.0.0.1", cfg.HTTP.Listen, ln.Addr(), config.KeyHTTPTokenFile)
	}
	return d.serve(ctx, ln)
}

// serve is Run with a listener.
func (d *Daemon) serve(ctx context.Context, ln net.Listener) error {
	// POST /api/sweep answers when its sweep ends: the write bound
	// leaves room for a long one.
	limits := httpserve.Limits{Write: 5 * time.Minute}
	handler := http.Handler(d.web)
	var tlsSrv *httpserve.Server
	if d.https != nil {
		handler = d.https.plain(d.web)
		tln, err := d.https.listen(ctx)
		if err != nil {
			ln.Close()
			d.Close(context.Background())
			return err
		}
		tlsSrv = httpserve.New(d.web, limits, slog.NewLogLogger(d.log.Handler(), slog.LevelWarn))
		tlsSrv.TLSConfig = d.https.tlsConfig()
		go func() {
			if err := tlsSrv.ServeTLS(tln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("HTTPS server stopped", "error", err.Error())
			}
		}()
		d.log.Info("https: serving", "listen", tln.Addr().String(), "names", d.https.cfg.Names)
	}
	srv := httpserve.New(handler, limits, slog.NewLogLogger(d.log.Handler(), slog.LevelWarn))
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("HTTP server stopped", "error", err.Error())
		}
	}()
	d.advertise(ln.Addr())
	cfg := d.Config()
	d.log.Info("daemon started", "listen", ln.Addr().String(), "history", d.store.Path(), "targets", len(cfg.Targets()), "interval", cfg.Watch.Interval.String())
	d.notify(sddaemon.SdNotifyReady + "\nSTATUS=" + d.statusLine())
	stopWatchdog := d.watchdog()
	defer stopWatchdog()

	// work is cancelled ShutdownGrace after ctx: in-flight work finishes,
	// bounded.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopGrace := context.AfterFunc(ctx, func() {
		t := time.NewTimer(d.deps.ShutdownGrace)
		defer t.Stop()
		select {
		case <-t.C:
			cancelWork()
		case <-work.Done():
		}
	})
	defer stopGrace()

	var hup chan os.Signal
	if !d.deps.NoSignals {
		hup = make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}

	var wg sync.WaitGroup
	if el := d.caElectionOf(d.Config()); el != nil {
		// Set before any loop reads the engine.
		d.deps.Engine.LocalCALead = d.localCALead(el)
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.leadLocalCA(ctx, el)
		}()
		d.awaitLocalCALeader(ctx, el)
	}
	// One watch of the cluster's changes wakes both the renewal and the
	// follow loop.
	changes := d.changesOf(ctx, 2)
	if d.deps.Engine != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.renewLoop(ctx, work, changes[0])
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.ctLoop(ctx, work)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.followLoop(ctx, work, changes[1])
	}()

	timer := time.NewTimer(d.firstDelay())
	defer timer.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hup:
			d.log.Info("SIGHUP: reloading the configuration")
			d.notify(sddaemon.SdNotifyReloading + "\n" + sddaemon.SdNotifyMonotonicUsec())
			if d.Reload() == nil {
				timer.Reset(d.nextDelay())
			}
			d.notify(sddaemon.SdNotifyReady + "\nSTATUS=" + d.statusLine())
		case <-timer.C:
			if _, err := d.SweepOnce(work); err != nil {
				d.log.Error("sweep failed; the next one runs on schedule", "error", err.Error())
			}
			timer.Reset(d.nextDelay())
		}
	}
	d.log.Info("shutting down")
	d.notify(sddaemon.SdNotifyStopping)
	wg.Wait()
	shut, cancel := context.WithTimeout(context.Background(), d.deps.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		srv.Close()
	}
	if tlsSrv != nil {
		if err := tlsSrv.Shutdown(shut); err != nil {
			tlsSrv.Close()
		}
	}
	<-served
	d.Close(shut)
	d.log.Info("daemon stopped")
	return nil
}

// logWarnings logs what the configuration accepted but should not hold
// (config.Config.Warnings), at start and on every reload.
func (d *Daemon) logWarnings(cfg *config.Config) {
	for _, w := range cfg.Warnings {
		d.log.Warn("configuration", "warning", w.Error())
	}
}

// firstDelay is how long the first sweep waits: at once, except on a
// cluster's node, which waits one lease TTL so that the members started
// with it (a cluster's cold start) have joined and share the first
// sweep, instead of each probing every endpoint alone (README, "Cluster
// mode").
func (d *Daemon) firstDelay() time.Duration {
	cfg := d.Config()
	if d.sharedWatchOf(cfg) == nil {
		return 0
	}
	return cfg.Cluster.LeaseTTL
}

// nextDelay is the interval plus a random jitter.
func (d *Daemon) nextDelay() time.Duration {
	cfg := d.Config()
	iv := cfg.Watch.Interval
	if m := cfg.Watch.Jitter.Max(iv); m > 0 {
		iv += rand.N(m)
	}
	return iv
}

// renewLoop runs the engine (renew) at start and every RenewInterval until ctx is
// done; work is the context the renewal itself runs with. In a cluster,
// wake (changesOf) signals another node's new version or lock release,
// or this node's session ending or coming back: a run starts at once.
func (d *Daemon) renewLoop(ctx, work context.Context, wake <-chan struct{}) {
	if wake != nil {
		wake = merge(ctx, wake, d.rerun)
	}
	every(ctx, wake, func(woken bool) time.Duration {
		if woken {
			d.log.Info("a lineage changed in the cluster: renewal run", "reason", "cluster change")
		}
		return d.renewRun(work)
	})
}

// renewRun is one run of the engine, logged and counted in the health;
// it returns when the next scheduled run is due.
func (d *Daemon) renewRun(work context.Context) time.Duration {
	start := time.Now()
	err := d.renew(work)
	d.health.renewDone(err, d.deps.Now())
	if errors.Is(err, etcdstore.ErrUnavailable) {
		// Looked at again within a lease, so that renewals resume soon
		// after the store answers.
		if c := d.Config().Cluster; c != nil {
			return min(d.deps.RenewInterval, c.LeaseTTL)
		}
	}
	if err != nil {
		d.log.Error("renewal failed; retried on schedule", "error", err.Error(), "next_in", d.deps.RenewInterval.String())
	} else {
		d.log.Debug("renewal run finished", "took", time.Since(start).String())
	}
	return d.deps.RenewInterval
}

// every runs run at once, and again after the delay it returns or as
// soon as wake signals (woken is then true; the delay starts over),
// until ctx is done. A nil or closed wake is never signalled.
func every(ctx context.Context, wake <-chan struct{}, run func(woken bool) time.Duration) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		woken := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case _, ok := <-wake:
			if !ok {
				wake = nil
				continue
			}
			woken = true
		}
		t.Reset(run(woken)) // re-arms a running timer too (Go 1.23 timers)
	}
}

// Close flushes the alert queues (until ctx is done) and closes the
// history. Run calls it; call it yourself only after New without Run.
func (d *Daemon) Close(ctx context.Context) error {
	var err error
	d.closed.Do(func() {
		d.sweepMu.Lock()
		defer d.sweepMu.Unlock()
		d.mu.Lock()
		disp := d.disp
		d.mu.Unlock()
		if e := disp.Close(ctx); e != nil {
			d.log.Warn("alerts not delivered before shutdown", "error", e.Error())
			err = e
		}
		if e := d.store.Close(); e != nil {
			d.log.Error("closing the history", "error", e.Error())
			err = errors.Join(err, e)
		}
		if d.https != nil {
			d.https.stop()
		}
	})
	return err
}
