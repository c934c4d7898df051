package daemon

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/alert"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/ct"
)

// ctLoop runs a CT round at start and every [ct] interval until ctx is
// done; work is the context the rounds run with. Without [ct] it looks
// again every minute, for a reload that adds it.
func (d *Daemon) ctLoop(ctx, work context.Context) {
	every(ctx, nil, func(bool) time.Duration {
		d.CTOnce(work)
		if c := d.Config().CT; c != nil {
			return c.Interval
		}
		return time.Minute
	})
}

// CTOnce reads the entries every [ct] log took in since the last round
// (a log met for the first time is followed from its current size on),
// and raises a ct-unexpected alert (critical) for every certificate or
// precertificate of our names that no lineage holds. A log that fails
// is logged and retried next round from where it stopped; the others go
// on. It returns the number of alerts raised.
func (d *Daemon) CTOnce(ctx context.Context) int {
	cfg := d.Config()
	if cfg.CT == nil {
		return 0
	}
	m, err := ct.LineageMatcher(d.engineFor(cfg).Store)
	if err != nil {
		d.log.Error("CT: reading the lineages; no round", "error", err.Error())
		return 0
	}
	logs := d.ctLogs(ctx, cfg.CT)
	f := &ct.Follower{Logs: logs, Positions: d.store}
	alerts := 0
	rounds := f.Round(ctx, m, func(l ct.Log, mt ct.Match) {
		if mt.Ours != "" {
			d.log.Debug("CT: our own certificate logged", "log", l.Name, "index", mt.Entry.Index, "lineage", mt.Ours)
			return
		}
		text := mt.Describe(l.Name)
		d.log.Warn("CT: a certificate xmppcert did not issue", "log", l.Name, "index", mt.Entry.Index, "names", mt.Names)
		a := alert.Alert{
			Endpoint: watcher.EndpointKey{Domain: mt.Names[0], Service: "ct", Host: l.URL},
			Change: changes.Change{Kind: changes.CTUnexpected, Severity: changes.Critical, Text: text,
				New: hex.EncodeToString(mt.Entry.Cert.SerialNumber.Bytes()), Key: "ct|" + hex.EncodeToString(mt.Entry.TBSHash[:])},
			At: mt.Entry.Timestamp,
		}
		if d.disp.Dispatch(a) {
			alerts++
		}
	})
	for _, r := range rounds {
		switch {
		case r.Err != nil:
			d.log.Warn("CT: reading the log failed; retried next round", "log", r.Log.Name, "at", r.To, "error", r.Err.Error())
		case r.Started:
			d.log.Info("CT: following a new log from its current size", "log", r.Log.Name, "size", r.To)
		default:
			d.log.Debug("CT: log read", "log", r.Log.Name, "from", r.From, "to", r.To)
		}
	}
	return alerts
}

// ctLogs are the logs of [ct]: those of the log list, and each URL as
// what it turns out to be (found once and remembered).
func (d *Daemon) ctLogs(ctx context.Context, c *config.CT) []ct.Log {
	logs := append([]ct.Log(nil), c.Logs...)
	for _, u := range c.URLs {
		d.mu.Lock()
		l, ok := d.ctDetected[u]
		d.mu.Unlock()
		if !ok {
			var err error
			if l, err = ct.Detect(ctx, u, nil); err != nil {
				d.log.Warn("CT: not a log; tried again next round", "url", u, "error", err.Error())
				continue
			}
			d.mu.Lock()
			d.ctDetected[u] = l
			d.mu.Unlock()
		}
		logs = append(logs, l)
	}
	return logs
}
