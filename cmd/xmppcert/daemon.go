package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/daemon"
)

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "renew, probe, record and alert on a schedule; serve the dashboard, JSON API and /metrics",
		Description: "The daemon reads the configuration given with the global --config (TOML; see contrib/xmppcert.toml),\n" +
			"probes every watched endpoint each watch.interval (plus jitter) with bounded concurrency, records what\n" +
			"each showed in STATE_DIR/history.db, alerts on changes (log, webhooks, exec hooks), renews every\n" +
			"lineage that is due once an hour with the same code and locks as 'xmppcert renew', and serves the\n" +
			"dashboard, the JSON API and /metrics on http.listen (--listen overrides it; an address that is not\n" +
			"loopback needs http.token_file). SIGHUP reloads the configuration: a refused one is logged with its\n" +
			"file:line and the old one stays. SIGTERM or SIGINT finish the work in flight, flush queued alerts and\n" +
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

// loadConfig reads --config for daemon and status. A refused file is a
// usage error (exit 2) with each problem on its own line.
func loadConfig(c *cli.Context, required bool) (*config.Config, error) {
	path := c.Path("config")
	if path == "" {
		if required {
			return nil, usagef("no configuration: give --config FILE (a commented example is contrib/xmppcert.toml)")
		}
		return nil, nil
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
	return cfg, nil
}

// configStateDir decides the state directory: an explicit --state-dir
// (or $XMPPCERT_STATE_DIR), else the file's state_dir, else the default.
func configStateDir(c *cli.Context, cfg *config.Config) (string, error) {
	if cfg != nil && cfg.StateDir != "" && !c.IsSet("state-dir") {
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
		return usagef("--listen %s is not a loopback address, so clients must send a bearer token: set http.token_file in the configuration, or listen on 127.0.0.1", addr)
	}
	return nil
}

func runDaemon(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("daemon takes no arguments; configure it with --config FILE")
	}
	cfg, err := loadConfig(c, true)
	if err != nil {
		return err
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
	d, err := daemon.New(cfg, daemon.Deps{Renew: daemonRenew(state, logger), Logger: logger})
	if err != nil {
		return fmt.Errorf("starting the daemon: %w", err)
	}
	return d.Run(c.Context)
}

// newLogger logs text (or JSON with --json) to w; --quiet keeps warnings
// and errors only.
func newLogger(w io.Writer, asJSON, quiet bool) *slog.Logger {
	o := &slog.HandlerOptions{Level: slog.LevelInfo}
	if quiet {
		o.Level = slog.LevelWarn
	}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// daemonRenew is the daemon's renewal seam: one `xmppcert renew` run over
// every lineage in state (renewer.lineage, with its locks, deploys, hooks
// and pin rollover), logged as one record per lineage that did something
// and a summary. It fails when any lineage failed.
func daemonRenew(state string, logger *slog.Logger) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		r := &renewer{store: acme.Store{Dir: state}, ariFailed: map[string]error{}, open: openIssuer}
		names, err := r.store.Names()
		if err != nil {
			return fmt.Errorf("listing the lineages in %s: %w", filepath.Join(state, "live"), err)
		}
		counts := map[string]int{}
		for _, name := range names {
			if ctx.Err() != nil {
				break
			}
			l := r.lineage(ctx, name)
			counts[l.Result]++
			switch l.Result {
			case resultFailed:
				logger.Error("renewal failed", "lineage", name, "error", l.Error)
			case resultNotDue:
			default:
				logger.Info("renewal", "lineage", name, "result", l.Result, "version", l.Version, "reason", l.Reason)
			}
		}
		attrs := []any{"lineages", len(names)}
		for k, v := range counts {
			attrs = append(attrs, k, v)
		}
		logger.Info("renew run finished", attrs...)
		if n := counts[resultFailed]; n > 0 {
			return fmt.Errorf("%d of %d lineages failed", n, len(names))
		}
		return nil
	}
}
