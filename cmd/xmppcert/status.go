package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/daemon"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/web"
)

// statusAPITimeout bounds the question to the daemon's API, and
// statusLockTimeout the wait for the history's lock when no daemon
// answers.
const (
	statusAPITimeout  = 3 * time.Second
	statusLockTimeout = time.Second
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "what the daemon knows: endpoints, unacknowledged changes, lineages",
		Description: "status asks the running daemon's JSON API (GET /api/endpoints on --listen, else the configuration's\n" +
			"http.listen, else 127.0.0.1:8787, with the configured token). When no daemon answers it reads\n" +
			"STATE_DIR/history.db itself, read-only, and says so (acknowledgements are kept in the same file, so\n" +
			"both ways show the same unacknowledged changes). It also lists the lineages in the state directory.\n" +
			"Exit 0 (also when there is nothing to show yet), 1 when the history or the state directory cannot be\n" +
			"read (an empty list would pass for a healthy one), 2 for an invalid configuration or flags.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "HOST:PORT of the daemon's API (default: the configuration's http.listen)"},
			jsonFlag(), quietFlag(),
		},
		OnUsageError: onUsageError,
		Action:       runStatus,
	}
}

// statusReport is the --json form of status.
type statusReport struct {
	// Source says where the endpoints come from: "daemon http://ADDR" or
	// "history FILE (no daemon answered)"; Note says why there are none.
	Source    string               `json:"source"`
	Note      string               `json:"note,omitempty"`
	Endpoints []web.EndpointStatus `json:"endpoints"`
	Lineages  []lineageStatus      `json:"lineages"`
}

// lineageStatus is one lineage in status.
type lineageStatus struct {
	Name     string    `json:"name"`
	Version  int       `json:"version"`
	NotAfter time.Time `json:"not_after,omitzero"`
	DaysLeft float64   `json:"days_left"`
	Error    string    `json:"error,omitempty"`
}

func runStatus(c *cli.Context) error {
	if c.NArg() != 0 {
		return usagef("status takes no arguments")
	}
	cfg, err := loadConfig(c)
	if err != nil {
		return err
	}
	addr := config.DefaultListen
	var token string
	if cfg != nil {
		addr, token = cfg.HTTP.Listen, string(cfg.HTTP.Token)
	}
	if l := c.String("listen"); l != "" {
		if _, _, err := net.SplitHostPort(l); err != nil {
			return usagef("--listen %q is not HOST:PORT", l)
		}
		addr = l
	}
	state, err := configStateDir(c, cfg)
	if err != nil {
		return err
	}
	rep := statusReport{Endpoints: []web.EndpointStatus{}, Lineages: []lineageStatus{}}
	eps, apiErr := askDaemon(c.Context, addr, token)
	if apiErr == nil {
		rep.Source, rep.Endpoints = "daemon http://"+dialAddr(addr), eps
	} else {
		path := filepath.Join(state, daemon.HistoryFile)
		rep.Source = fmt.Sprintf("history %s (no daemon answered at %s: %v)", path, dialAddr(addr), apiErr)
		eps, err := readHistory(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			rep.Note = "no history yet: start 'xmppcert daemon' to watch endpoints"
		case errors.Is(err, history.ErrLocked):
			return fmt.Errorf("%s is held by a daemon that did not answer at %s (%v): give its API address with --listen", path, dialAddr(addr), apiErr)
		case err != nil:
			return fmt.Errorf("reading the history: %w", err)
		default:
			rep.Endpoints = eps
		}
	}
	if rep.Lineages, err = lineages(state); err != nil {
		return err
	}
	if flagAnywhere(c, "json") {
		return writeJSON(c.App.Writer, rep)
	}
	if !flagAnywhere(c, "quiet") {
		printStatus(c.App.Writer, rep)
	}
	return nil
}

// dialAddr turns a listen address into one to connect to: an unspecified
// host (every address) is reached on loopback.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// askDaemon is GET /api/endpoints on the daemon.
func askDaemon(ctx context.Context, addr, token string) ([]web.EndpointStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, statusAPITimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+dialAddr(addr)+"/api/endpoints", nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, errors.New("not reachable")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("it answered %s", resp.Status)
	}
	return decodeEndpoints(resp.Body)
}

func decodeEndpoints(r io.Reader) ([]web.EndpointStatus, error) {
	var body struct {
		Endpoints []web.EndpointStatus `json:"endpoints"`
	}
	if err := json.NewDecoder(io.LimitReader(r, 64<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("reading the daemon's answer: %w", err)
	}
	if body.Endpoints == nil {
		body.Endpoints = []web.EndpointStatus{}
	}
	return body.Endpoints, nil
}

// readHistory opens the history read-only, briefly, and renders the same
// statuses the daemon's API would, through watcher/web in-process.
func readHistory(path string) ([]web.EndpointStatus, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	st, err := history.Open(path, history.Options{ReadOnly: true, Timeout: statusLockTimeout})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	srv, err := web.New(web.Options{Store: st, Acks: st, Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	req := httptest.NewRequest(http.MethodGet, "http://localhost/api/endpoints", nil)
	req.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("reading %s: %s", path, strings.TrimSpace(rec.Body.String()))
	}
	return decodeEndpoints(rec.Body)
}

// lineages lists the lineages of the state directory; a directory that
// cannot be read is an error, not an empty list.
func lineages(state string) ([]lineageStatus, error) {
	out := []lineageStatus{}
	store := acme.DiskStore{Dir: state}
	names, err := store.Names()
	if err != nil {
		return nil, fmt.Errorf("listing the lineages in %s: %w", filepath.Join(state, "live"), err)
	}
	for _, n := range names {
		l := lineageStatus{Name: n}
		cur, err := store.Current(n)
		if err != nil {
			l.Error = err.Error()
		} else {
			l.Version, l.NotAfter = cur.Version, cur.Leaf.NotAfter.UTC()
			l.DaysLeft = cur.Leaf.NotAfter.Sub(clock()).Hours() / 24
		}
		out = append(out, l)
	}
	return out, nil
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
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
