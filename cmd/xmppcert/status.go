package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/daemon"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/web"
)

// statusLockTimeout bounds the wait for the history's lock when no
// daemon answers.
const statusLockTimeout = time.Second

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "what the daemon knows: endpoints, unacknowledged changes, lineages",
		Description: "status asks the running daemon's JSON API (GET /api/endpoints on --listen, else the configuration's\n" +
			"http.listen, else 127.0.0.1:8787, with the configured token). When no daemon answers it reads\n" +
			"STATE_DIR/history.db itself, read-only, and says so (acknowledgements are kept in the same file, so\n" +
			"both ways show the same unacknowledged changes). It also lists the lineages in the state directory\n" +
			"with what needs the operator in each.\n" +
			"Exit 0 (also when there is nothing to show yet), 1 when the history or the state directory cannot be\n" +
			"read (an empty list would pass for a healthy one), 2 for an invalid configuration or flags.\n" +
			"--check answers as a monitoring plugin (Nagios, Icinga, Sensu) instead: one line, then one per\n" +
			"problem, and the exit codes of that convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (anything\n" +
			"that stops the check, an invalid flag included).",
		Flags: []cli.Flag{
			listenFlag(),
			&cli.BoolFlag{Name: "check", Usage: "answer as a monitoring plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN"},
			jsonFlag(), quietFlag(),
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			rep, err := statusOf(c)
			if c.Bool("check") {
				return monitoringCheck(c.App.Writer, rep, err)
			}
			if err != nil {
				return err
			}
			if flagAnywhere(c, "json") {
				return writeJSON(c.App.Writer, rep)
			}
			if !flagAnywhere(c, "quiet") {
				return writeText(c.App.Writer, func(w io.Writer) { printStatus(w, rep) })
			}
			return nil
		},
	}
}

// statusReport is the --json form of status.
type statusReport struct {
	// Source says where the endpoints come from: "daemon http://ADDR" or
	// "history FILE (no daemon answered ...)"; Note says why there are
	// none.
	Source    string               `json:"source"`
	Note      string               `json:"note,omitempty"`
	Endpoints []web.EndpointStatus `json:"endpoints"`
	Lineages  []lineageStatus      `json:"lineages"`
	// noDaemon is set when the endpoints come from the history because
	// no daemon answered, although a configuration says there is one.
	noDaemon bool
}

// lineageStatus is one lineage in status.
type lineageStatus struct {
	Name     string              `json:"name"`
	Version  int                 `json:"version"`
	NotAfter time.Time           `json:"not_after,omitzero"`
	DaysLeft float64             `json:"days_left"`
	Problems []lifecycle.Problem `json:"problems,omitempty"`
	Error    string              `json:"error,omitempty"`
}

// statusOf gathers what status shows.
func statusOf(c *cli.Context) (statusReport, error) {
	rep := statusReport{Endpoints: []web.EndpointStatus{}, Lineages: []lineageStatus{}}
	if c.NArg() != 0 {
		return rep, usagef("status takes no arguments")
	}
	client, cfg, err := daemonClient(c)
	if err != nil {
		return rep, err
	}
	state, err := configStateDir(c, cfg)
	if err != nil {
		return rep, err
	}
	eps, apiErr := client.Endpoints(c.Context)
	if apiErr == nil {
		rep.Source, rep.Endpoints = "daemon "+client.URL(), eps
	} else {
		path := filepath.Join(state, daemon.HistoryFile)
		rep.Source = fmt.Sprintf("history %s (%v)", path, apiErr)
		rep.noDaemon = cfg != nil
		eps, err := web.HistoryStatuses(path, statusLockTimeout)
		switch {
		case errors.Is(err, os.ErrNotExist):
			rep.Note = "no history yet: start 'xmppcert daemon' to watch endpoints"
		case errors.Is(err, history.ErrLocked):
			return rep, fmt.Errorf("%s is held by a daemon that did not answer at %s (%v): give its API address with --listen", path, client.URL(), apiErr)
		case err != nil:
			return rep, fmt.Errorf("reading the history: %w", err)
		default:
			rep.Endpoints = eps
		}
	}
	engine, done, err := newEngine(c, state, false)
	if err != nil {
		return rep, err
	}
	defer done()
	rep.Lineages, err = lineages(c.Context, engine)
	return rep, err
}

// daemonClient is the client of the daemon's API at --listen, else the
// configuration's http.listen with its token, else the default address;
// it returns the configuration too (nil without --config).
func daemonClient(c *cli.Context) (*web.Client, *config.Config, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, nil, err
	}
	client := &web.Client{Addr: config.DefaultListen}
	if cfg != nil {
		client.Addr, client.Token = cfg.HTTP.Listen, string(cfg.HTTP.Token)
	}
	if l := c.String("listen"); l != "" {
		if _, _, err := net.SplitHostPort(l); err != nil {
			return nil, nil, usagef("--listen %q is not HOST:PORT", l)
		}
		client.Addr = l
	}
	return client, cfg, nil
}

// listenFlag is the daemon API address of status, ack and sweep.
func listenFlag() cli.Flag {
	return &cli.StringFlag{Name: "listen", Usage: "HOST:PORT of the daemon's API (default: the configuration's http.listen)"}
}

// lineages reads the lineages of the state directory with what needs the
// operator in each; a store that cannot be read is an error, not an
// empty list, and so is an interruption.
func lineages(ctx context.Context, engine *lifecycle.Engine) ([]lineageStatus, error) {
	names, err := engine.Store.Names()
	if err != nil {
		return nil, fmt.Errorf("listing the lineages in %s: %w", filepath.Join(engine.StateDir, "live"), err)
	}
	out := make([]lineageStatus, 0, len(names))
	for st, err := range engine.Statuses(ctx, names) {
		l := lineageStatus{Name: st.Name}
		if err != nil {
			l.Error = err.Error()
		} else {
			l.Version, l.NotAfter = st.Version, st.NotAfter.UTC()
			l.DaysLeft = st.NotAfter.Sub(clock()).Hours() / 24
			l.Problems = st.Problems(clock())
		}
		out = append(out, l)
	}
	if len(out) < len(names) {
		return out, fmt.Errorf("interrupted: %d of %d lineages not read", len(names)-len(out), len(names))
	}
	return out, nil
}

// problemSeverity is a lineage problem's severity, in the words the
// endpoints' changes use.
func problemSeverity(p lifecycle.Problem) changes.Severity {
	if p.Critical {
		return changes.Critical
	}
	return changes.Warning
}

// Monitoring plugin states (status --check), the exception to the exit
// codes every other command uses.
const (
	checkOK       = 0
	checkWarning  = 1
	checkCritical = 2
	checkUnknown  = 3
)

// checkExit ends a command with a monitoring plugin's exit code; the
// command has printed its answer.
type checkExit struct{ code int }

func (e checkExit) Error() string { return fmt.Sprintf("check state %d", e.code) }

// monitoringCheck prints status --check's answer for rep, or for err that
// stopped gathering it, and returns its state as a checkExit: CRITICAL
// for a critical unacknowledged change or condition of an endpoint or a
// critical problem of a lineage, WARNING for a warning, a lineage that
// cannot be read or a configured daemon that did not answer, UNKNOWN
// when the check could not be made.
func monitoringCheck(w io.Writer, rep statusReport, err error) error {
	if err != nil {
		fmt.Fprintf(w, "XMPPCERT UNKNOWN - %s\n", clipLines(strings.ReplaceAll(err.Error(), "\n", "; ")))
		return checkExit{checkUnknown}
	}
	var critical, warning []string
	note := func(sev changes.Severity, text string) {
		switch sev {
		case changes.Critical:
			critical = append(critical, text)
		case changes.Warning:
			warning = append(warning, text)
		}
	}
	if rep.noDaemon {
		warning = append(warning, "the daemon: "+strings.TrimPrefix(rep.Source, "history "))
	}
	for _, e := range rep.Endpoints {
		if e.NeverReachable {
			note(changes.Warning, fmt.Sprintf("%s: never reachable: %s", e.Key, e.Latest.Failure))
		}
		for _, ch := range e.Unacknowledged {
			note(ch.Severity, fmt.Sprintf("%s: %s: %s", e.Key, ch.Kind, ch.Text))
		}
		for _, ch := range e.Conditions {
			note(ch.Severity, fmt.Sprintf("%s: %s: %s", e.Key, ch.Kind, ch.Text))
		}
	}
	for _, l := range rep.Lineages {
		if l.Error != "" {
			warning = append(warning, "lineage "+l.Name+": "+l.Error)
		}
		for _, p := range l.Problems {
			note(problemSeverity(p), "lineage "+l.Name+": "+p.Text)
		}
	}
	state, code := "OK", checkOK
	switch {
	case len(critical) > 0:
		state, code = "CRITICAL", checkCritical
	case len(warning) > 0:
		state, code = "WARNING", checkWarning
	}
	summary := fmt.Sprintf("%d endpoints, %d lineages", len(rep.Endpoints), len(rep.Lineages))
	if code != checkOK {
		summary = fmt.Sprintf("%d critical, %d warning: %s", len(critical), len(warning), slices.Concat(critical, warning)[0])
	}
	fmt.Fprintf(w, "XMPPCERT %s - %s | endpoints=%d lineages=%d critical=%d warning=%d\n", state, summary,
		len(rep.Endpoints), len(rep.Lineages), len(critical), len(warning))
	for _, line := range slices.Concat(critical, warning) {
		fmt.Fprintln(w, line)
	}
	return checkExit{code}
}

func printStatus(w io.Writer, rep statusReport) {
	fmt.Fprintf(w, "endpoints from %s\n", rep.Source)
	if rep.Note != "" {
		fmt.Fprintf(w, "%s\n", rep.Note)
	}
	if len(rep.Endpoints) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ENDPOINT\tENCRYPTED\tTLS\tCIPHER\tSUBJECT\tEXPIRES\tGRADE\tCHANGES")
		for _, e := range rep.Endpoints {
			leaf := e.Leaf()
			subject, days := dash(leaf.Subject), "-"
			if e.CertDaysLeft != nil {
				days = fmt.Sprintf("%.0fd", *e.CertDaysLeft)
			}
			grade := "-"
			if e.Grade != nil {
				grade = string(e.Grade.Verdict)
			}
			ch := "none"
			if n := len(e.Unacknowledged) + len(e.Conditions); n > 0 {
				ch = fmt.Sprintf("%d %s", n, e.Severity())
			} else if e.NeverReachable {
				ch = "never reachable"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Key, dash(e.Encryption), dash(e.Latest.TLSVersion),
				dash(e.Latest.Cipher), subject, days, grade, ch)
		}
		tw.Flush()
		for _, e := range rep.Endpoints {
			for _, c := range e.Unacknowledged {
				fmt.Fprintf(w, "  %s: %s %s: %s\n", e.Key, c.Severity, c.Kind, c.Text)
			}
		}
	} else if rep.Note == "" {
		fmt.Fprintln(w, "no endpoints recorded yet")
	}
	if len(rep.Lineages) == 0 {
		fmt.Fprintln(w, "no lineages")
		return
	}
	fmt.Fprintln(w, "lineages:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tEXPIRES\tDAYS LEFT")
	for _, l := range rep.Lineages {
		if l.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t-\t%s\n", l.Name, l.Error)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.0f\n", l.Name, l.Version, stamp(l.NotAfter), l.DaysLeft)
	}
	tw.Flush()
	for _, l := range rep.Lineages {
		for _, p := range l.Problems {
			fmt.Fprintf(w, "  %s: %s: %s\n", l.Name, problemSeverity(p), p.Text)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
