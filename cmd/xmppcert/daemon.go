package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/journal"
	"github.com/xmppcert/xmppcert/internal/safedir"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/daemon"
)

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "renew, probe, record and alert on a schedule; serve the dashboard, JSON API and /metrics",
		Description: "The daemon reads the configuration given with the global --config (TOML; see contrib/xmppcert.toml);\n" +
			"without one it runs on the state directory alone: it renews and deploys every lineage, watches the\n" +
			"c2s and s2s endpoints of every name in them (lineages issued meanwhile are picked up at the next\n" +
			"sweep), and serves the dashboard on loopback, every setting at its default.\n" +
			"It probes every watched endpoint each watch.interval (plus jitter) with bounded concurrency, records what\n" +
			"each showed in STATE_DIR/history.db, alerts on changes (log, webhooks, exec hooks), and once an hour\n" +
			"issues every [[host]] that has no lineage yet and renews every lineage that is due (the same code and\n" +
			"locks as 'xmppcert issue' and 'xmppcert renew'), publishes [host.pins.tlsa] records by RFC 2136 as\n" +
			"'xmppcert pin publish' does (the next key first, stale records after the hold) and writes the POSH\n" +
			"documents of [host.pins.posh] (into out_dir, else STATE_DIR/posh/DOMAIN). It serves the dashboard, the\n" +
			"JSON API, /metrics and those POSH documents (/.well-known/posh/, by Host) on\n" +
			"http.listen (--listen overrides it; an address that is not loopback needs http.token_file).\n" +
			"SIGHUP reloads the configuration (hosts included): a refused one is logged with its file:line and the\n" +
			"old one stays. SIGTERM or SIGINT finish the work in flight, flush queued alerts and\n" +
			"exit 0. The state directory is --state-dir or $XMPPCERT_STATE_DIR when given, else the file's state_dir,\n" +
			"else the default. Exit 2 for an invalid configuration (one line per problem), 1 when the daemon cannot\n" +
			"run (history locked by another daemon, address in use).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "HOST:PORT of the dashboard, API and /metrics (overrides http.listen)"},
			jsonFlag(), quietFlag(),
		},
		OnUsageError: onUsageError,
		Action:       runDaemon,
	}
}

// loadConfig reads --config (daemon, status, and the commands that use
// its [cluster]); without one it returns nil. A refused file is a usage
// error (exit 2) with each problem on its own line. The file is read
// once per command, however many steps ask for it.
func loadConfig(c *cli.Context) (*config.Config, error) {
	path := c.Path("config")
	if path == "" {
		return nil, nil
	}
	if cfg, ok := c.App.Metadata[configKey].(*config.Config); ok {
		return cfg, nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		var list config.ErrorList
		if errors.As(err, &list) {
			lines := make([]string, len(list))
			for i, e := range list {
				lines[i] = e.Error()
			}
			return nil, usagef("%s", strings.Join(lines, "\nxmppcert: "))
		}
		return nil, usagef("%v", err)
	}
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	c.App.Metadata[configKey] = cfg
	return cfg, nil
}

// configKey is where loadConfig keeps the file it read in the command's
// App.Metadata.
const configKey = "config"

// configStateDir decides the state directory: an explicit --state-dir
// (or $XMPPCERT_STATE_DIR), else the file's state_dir, else the default.
func configStateDir(c *cli.Context, cfg *config.Config) (string, error) {
	if cfg != nil && cfg.StateDir != "" && !c.IsSet("state-dir") {
		if err := safedir.Check(cfg.StateDir, acme.Layout); err != nil {
			return "", unsafeStateDir(cfg.StateDir, err)
		}
		return cfg.StateDir, nil
	}
	return stateDir(c)
}

// checkListen applies the configuration's rule to --listen: HOST:PORT,
// and a non-loopback host only with a token.
func checkListen(addr string, cfg *config.Config) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--listen %q is not HOST:PORT; give an address such as 127.0.0.1:8787", addr)
	}
	if (host == "" || !acmeca.IsLoopback(host)) && (cfg == nil || len(cfg.HTTP.Token) == 0) {
		return usagef("--listen %s is not a loopback address, so clients must send a bearer token: set %s in the configuration, or listen on 127.0.0.1", addr, config.KeyHTTPTokenFile)
	}
	return nil
}

func runDaemon(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("daemon takes no arguments; configure it with --config FILE")
	}
	if given := clusterFlagsGiven(c); len(given) > 0 {
		return usagef("%s: the daemon takes its cluster from its --config file, which SIGHUP reloads; the cluster flags are for the other commands", strings.Join(given, ", "))
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	if cfg == nil {
		// No file: the state directory says what to renew and watch.
		state, err := stateDir(c)
		if err != nil {
			return err
		}
		cfg = config.Defaults(state)
	}
	if l := c.String("listen"); l != "" {
		if err := checkListen(l, cfg); err != nil {
			return err
		}
		cfg.HTTP.Listen = l
	}
	state, err := configStateDir(c, cfg)
	if err != nil {
		return err
	}
	cfg.StateDir = state
	logger := newLogger(c.App.ErrWriter, flagAnywhere(c, "json"), flagAnywhere(c, "quiet"))
	roots, err := daemon.ProbeRoots(state, logger)
	if err != nil {
		return err
	}
	engine := lifecycle.OnDisk(state)
	if cfg.Cluster != nil {
		store, err := daemon.OpenCluster(c.Context, cfg.Cluster, logger)
		if err != nil {
			return fmt.Errorf("joining the cluster: %w", err)
		}
		defer store.Close()
		engine = lifecycle.OnCluster(state, store)
	}
	engine.Now = clock
	d, err := daemon.New(cfg, daemon.Deps{Engine: engine, Logger: logger, Roots: roots})
	if err != nil {
		return fmt.Errorf("starting the daemon: %w", err)
	}
	err = d.Run(c.Context)
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "listen" {
		return fmt.Errorf("%w; choose another address with --listen or %s", err, config.KeyHTTPListen)
	}
	return err
}

// newLogger logs text (or JSON with --json) to w; --quiet keeps warnings
// and errors only. Under systemd, whose journal reads standard error,
// each line carries its priority (internal/journal).
func newLogger(w io.Writer, asJSON, quiet bool) *slog.Logger {
	o := &slog.HandlerOptions{Level: slog.LevelInfo}
	if quiet {
		o.Level = slog.LevelWarn
	}
	handler := func(w io.Writer) slog.Handler {
		if asJSON {
			return slog.NewJSONHandler(w, o)
		}
		return slog.NewTextHandler(w, o)
	}
	if journal.Attached(os.Stderr) {
		return slog.New(journal.NewHandler(w, handler))
	}
	return slog.New(handler(w))
}
