package daemon

import (
	"cmp"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// targetKey names a target in the history's record of full scans.
func targetKey(t config.Target) string {
	return t.Domain + " " + string(t.Service) + " " + t.Connect + " " + strconv.FormatBool(t.DirectTLS)
}

// fullScanDue picks the targets whose full TLS scan runs in this sweep
// (watch.full_interval): those never scanned and those scanned a whole
// interval ago, at most each sweep's share of all targets (targets times
// watch.interval over watch.full_interval, rounded up), the ones scanned
// longest ago first and, among targets never scanned, in an order hashed
// from their names, so that the scans of a large configuration spread
// over the interval instead of landing on one sweep. last is the time of
// each target's last scan, by targetKey.
func fullScanDue(w config.Watch, targets []config.Target, last map[string]time.Time, now time.Time) map[int]bool {
	if w.FullInterval <= 0 || len(targets) == 0 {
		return nil
	}
	type cand struct {
		i    int
		last time.Time
		hash uint64
	}
	var due []cand
	for i, t := range targets {
		k := targetKey(t)
		at, ok := last[k]
		if ok && now.Sub(at) < w.FullInterval {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(k))
		due = append(due, cand{i, at, h.Sum64()})
	}
	budget := len(targets)
	if w.Interval > 0 && w.Interval < w.FullInterval {
		budget = int(math.Ceil(float64(len(targets)) * float64(w.Interval) / float64(w.FullInterval)))
	}
	slices.SortFunc(due, func(a, b cand) int {
		if c := a.last.Compare(b.last); c != 0 {
			return c
		}
		return cmp.Compare(a.hash, b.hash)
	})
	out := map[int]bool{}
	for _, c := range due[:min(budget, len(due))] {
		out[c.i] = true
	}
	return out
}

// scanRecord collects a sweep's full scans for history.RecordScans.
type scanRecord struct {
	targets   map[string]time.Time    // by targetKey
	endpoints map[string]history.Scan // by endpoint key
}

// add keeps the scan of an endpoint probed with Options.Full, if the
// probe reached one.
func (s scanRecord) add(key string, e *probe.Endpoint, at time.Time) {
	if e.Full != nil && e.Full.Scan != nil {
		s.endpoints[key] = history.Scan{At: at, Report: *e.Full.Scan}
	}
}

// gradeWithLastScan regrades an endpoint probed without the full scan
// with its last one from the history, if it has one.
func (d *Daemon) gradeWithLastScan(key string, e *probe.Endpoint, svc xmppaddr.Service) {
	sc, err := d.store.Scan(key)
	if err != nil {
		d.log.Warn("reading the endpoint's last full scan", "endpoint", key, "error", err.Error())
		return
	}
	if sc != nil {
		e.Grade = probe.GradeWithScan(e, svc, &sc.Report, sc.At)
	}
}
