package daemon

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// The full scans of a large configuration spread over
// watch.full_interval: each sweep scans its share (rounded up), never
// scanned first, then those scanned longest ago; a target scanned less
// than an interval ago waits; "never" scans nothing.
func TestFullScanDue(t *testing.T) {
	var targets []config.Target
	for i := range 100 {
		targets = append(targets, config.Target{Domain: fmt.Sprintf("d%03d.example", i), Service: xmppaddr.ServiceServer})
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	w := config.Watch{Interval: time.Hour, FullInterval: 24 * time.Hour}

	last := map[string]time.Time{}
	seen := map[int]bool{}
	for sweep := range 24 {
		due := fullScanDue(w, targets, last, now)
		if want := 5; len(due) != want && sweep < 20 { // ceil(100/24)
			t.Fatalf("sweep %d scans %d targets, want %d", sweep, len(due), want)
		}
		for i := range due {
			if seen[i] {
				t.Fatalf("sweep %d scans target %d again before every other was scanned", sweep, i)
			}
			seen[i] = true
			last[targetKey(targets[i])] = now
		}
		now = now.Add(time.Hour)
	}
	if len(seen) != len(targets) {
		t.Fatalf("%d of %d targets scanned over one full interval", len(seen), len(targets))
	}
	// A full interval after the first scans, only targets scanned that
	// long ago are due.
	due := fullScanDue(w, targets, last, now)
	for i := range due {
		if now.Sub(last[targetKey(targets[i])]) < w.FullInterval {
			t.Errorf("target %s scanned %v ago is due", targets[i].Domain, now.Sub(last[targetKey(targets[i])]))
		}
	}
	if len(due) == 0 {
		t.Errorf("nothing due a full interval after the first scans")
	}

	if due := fullScanDue(config.Watch{Interval: time.Hour, FullInterval: time.Minute}, targets, nil, now); len(due) != len(targets) {
		t.Errorf("full_interval shorter than the interval scans %d targets, want all %d", len(due), len(targets))
	}
	if due := fullScanDue(config.Watch{Interval: time.Hour, FullInterval: -1}, targets, nil, now); len(due) != 0 {
		t.Errorf("full_interval never scans %d targets", len(due))
	}
}

// A healthy endpoint grades PASS after its full scan, and stays PASS on
// the sweeps between two scans and after the daemon restarts, from the
// scan kept in the history; the evidence says when that scan ran.
func TestFullScanGrade(t *testing.T) {
	f := newFixture(t)
	cfg := strings.Replace(f.config("1s"), "[[watch.peer]]", "full_interval = \"1h\"\n[[watch.peer]]", 1)
	if err := os.WriteFile(f.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs testtool.LockedBuffer
	ctx := context.Background()
	grade := func(d *Daemon) probe.Grade {
		t.Helper()
		eps := endpoints(t, d.Handler())
		if len(eps) != 1 || eps[0].Grade == nil {
			t.Fatalf("endpoints %+v; want one with a grade", eps)
		}
		return *eps[0].Grade
	}
	requirement := func(g probe.Grade, id string) probe.Requirement {
		for _, r := range g.Requirements {
			if r.ID == id {
				return r
			}
		}
		t.Fatalf("grade %+v has no %s", g, id)
		return probe.Requirement{}
	}

	d := f.newDaemon(t, &logs, true)
	res, err := d.SweepOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.FullScans != 1 {
		t.Fatalf("first sweep: %+v; want the target's full scan", res)
	}
	if g := grade(d); g.Verdict != probe.StatusPass {
		t.Fatalf("after the full scan: %s\n%s", g.Summary, logs.String())
	}
	res, err = d.SweepOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.FullScans != 0 {
		t.Fatalf("second sweep: %+v; want no scan an hour before the next is due", res)
	}
	g := grade(d)
	ssl2 := requirement(g, probe.RequirementNoSSLv2)
	if g.Verdict != probe.StatusPass || ssl2.Status != probe.StatusPass || !strings.Contains(strings.Join(ssl2.Evidence, " "), "(full scan of ") {
		t.Fatalf("between scans: %s, no-sslv2 %+v; want pass from the kept scan, saying when it ran", g.Summary, ssl2)
	}
	d.Close(ctx)

	d = f.newDaemon(t, &logs, true)
	defer d.Close(ctx)
	if res, err = d.SweepOnce(ctx); err != nil || res.FullScans != 0 {
		t.Fatalf("sweep after a restart: %+v, %v; want no scan", res, err)
	}
	if g := grade(d); g.Verdict != probe.StatusPass {
		t.Errorf("after a restart: %s; want pass from the scan in the history", g.Summary)
	}
}
