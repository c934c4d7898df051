package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/xmppsim"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// The scale benchmark's budgets (README, "Watching 10,000 endpoints").
// The sweep's is about six times the quiet figure (7.7-9.2 s), so that a
// loaded machine does not miss it while a regression does; memory and
// history growth do not depend on load.
const (
	budgetSweep = 60 * time.Second
	budgetRSS   = 300_000_000
	budgetGrow  = 200.0
)

// scaleConfig says how runScale sweeps.
type scaleConfig struct {
	// N endpoints (domains; odd ones c2s, even ones s2s with dialback).
	N int
	// Concurrency is watch.concurrency.
	Concurrency int
	// Unchanged is how many unchanged sweeps follow the first.
	Unchanged int
	// Log receives the figures.
	Log func(format string, args ...any)
}

// scaleFigures are runScale's measurements.
type scaleFigures struct {
	First, Changed             time.Duration
	Unchanged                  []time.Duration
	ChangedEndpoints           int
	FileBytesPerObs, HWMPerObs float64
	DaemonPeakRSS, SimPeakRSS  int64
	FirstAlerts, ChangedAlerts int
	HistoryFile, HistoryHWM    int64
}

// runScale is the daemon at scale: a simulator child serving cfg.N
// domains, a configuration watching every one of them as a peer
// (connect = the simulator), and daemon.SweepOnce, which probes, records
// in one history commit, classifies and dispatches to the log sink, run
// for a first sweep, cfg.Unchanged unchanged sweeps, and a sweep after 1%
// of the domains were rekeyed and 1% renewed. It checks that every probe
// succeeded and that the history and classification saw exactly the
// changes made.
func runScale(t testing.TB, cfg scaleConfig) scaleFigures {
	var fig scaleFigures
	sim := xmppsim.StartProcess(t, true)
	begin := time.Now()
	domains := sim.Do(t, fmt.Sprintf("prepare %d", cfg.N))
	if len(domains) != cfg.N {
		t.Fatalf("simulator prepared %d domains, want %d", len(domains), cfg.N)
	}
	cfg.Log("prepare: %d certificates issued by the simulator in %v (excluded from the sweeps)", cfg.N, time.Since(begin).Round(time.Millisecond))

	dir := t.TempDir()
	var file strings.Builder
	fmt.Fprintf(&file, "state_dir = %q\n[watch]\ninterval = \"1h\"\ntimeout = \"20s\"\nconcurrency = %d\nown_hosts = false\nfrom = \"watcher.example\"\n", filepath.Join(dir, "state"), cfg.Concurrency)
	for i, d := range domains {
		svc := "xmpp-client"
		if i%2 == 1 {
			svc = "xmpp-server"
		}
		fmt.Fprintf(&file, "[[watch.peer]]\ndomain = %q\nservice = %q\nconnect = %q\n", d, svc, sim.Addr)
	}
	path := filepath.Join(dir, "xmppcert.toml")
	if err := os.WriteFile(path, []byte(file.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(c, Deps{Roots: sim.Roots, Logger: slog.New(slog.DiscardHandler), NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close(context.Background())
	// size is the history file's size and bbolt's high-water mark (what
	// a consistent copy of the file writes).
	size := func() (fileBytes, hwm int64) {
		fi, err := os.Stat(d.Store().Path())
		if err != nil {
			t.Fatal(err)
		}
		hwm, err = d.Store().Backup(io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size(), hwm
	}
	sweep := func(name string, wantChanged int) (time.Duration, int) {
		res, err := d.SweepOnce(context.Background())
		if err != nil {
			t.Fatalf("%s sweep: %v", name, err)
		}
		if len(res.Failed) > 0 || res.Observations != cfg.N {
			t.Fatalf("%s sweep: %d observations of %d endpoints; failed: %.5q", name, res.Observations, cfg.N, res.Failed)
		}
		if res.Changed != wantChanged {
			t.Errorf("%s sweep: %d observations changed, want %d", name, res.Changed, wantChanged)
		}
		if want := (cfg.N + 23) / 24; res.FullScans != want { // watch.full_interval 24h, interval 1h
			t.Errorf("%s sweep: %d full scans, want %d (each sweep's share of the default watch.full_interval)", name, res.FullScans, want)
		}
		cfg.Log("%-10s sweep: %6d endpoints in %8v (%d full scans), %d changed, %d alerts", name, res.Observations, res.Duration.Round(time.Millisecond), res.FullScans, res.Changed, res.Alerts)
		return res.Duration, res.Alerts
	}

	fig.First, fig.FirstAlerts = sweep("first", cfg.N)
	if fig.FirstAlerts != cfg.N {
		t.Errorf("first sweep: %d alerts, want one first-seen per endpoint (%d)", fig.FirstAlerts, cfg.N)
	}
	file0, hwm0 := size()
	for i := range cfg.Unchanged {
		dur, alerts := sweep(fmt.Sprintf("unchanged%d", i+1), 0)
		if alerts != 0 {
			t.Errorf("unchanged sweep %d: %d alerts", i+1, alerts)
		}
		fig.Unchanged = append(fig.Unchanged, dur)
		f, h := size()
		cfg.Log("history after unchanged%d: file %d bytes, bbolt high-water mark %d bytes (+%d since the first sweep)", i+1, f, h, h-hwm0)
	}
	file1, hwm1 := size()
	if n := float64(cfg.N * cfg.Unchanged); n > 0 {
		fig.FileBytesPerObs = float64(file1-file0) / n
		fig.HWMPerObs = float64(hwm1-hwm0) / n
	}
	cfg.Log("history: file %d -> %d bytes, bbolt high-water mark %d -> %d bytes over %d unchanged observations: %.2f / %.2f bytes each",
		file0, file1, hwm0, hwm1, cfg.N*cfg.Unchanged, fig.FileBytesPerObs, fig.HWMPerObs)

	// 1% rekeyed (an unexpected key change for a peer), 1% renewed with
	// the same key.
	step := 100
	if cfg.N < 200 {
		step = 4
	}
	for i := 0; i < cfg.N; i += step {
		sim.Do(t, "rekey "+domains[i])
		fig.ChangedEndpoints++
		if i+1 < cfg.N {
			sim.Do(t, "renew "+domains[i+1])
			fig.ChangedEndpoints++
		}
	}
	fig.Changed, fig.ChangedAlerts = sweep("changed", fig.ChangedEndpoints)
	if fig.ChangedAlerts != fig.ChangedEndpoints {
		t.Errorf("changed sweep: %d alerts, want one per changed endpoint (%d)", fig.ChangedAlerts, fig.ChangedEndpoints)
	}
	fig.HistoryFile, fig.HistoryHWM = size()
	if err := d.Store().Check(); err != nil {
		t.Fatal(err)
	}
	fig.DaemonPeakRSS = testtool.PeakRSS(t, "self")
	fig.SimPeakRSS = testtool.PeakRSS(t, strconv.Itoa(sim.Pid()))
	cfg.Log("peak RSS (VmHWM): daemon process %.1f MiB; simulator process (%d certificates) %.1f MiB",
		float64(fig.DaemonPeakRSS)/(1<<20), cfg.N+fig.ChangedEndpoints, float64(fig.SimPeakRSS)/(1<<20))
	return fig
}

// TestSweepSmall runs the scale machinery on a few endpoints (fit for
// -race): every probe succeeds, and the history and the alerts see
// exactly the changes made.
func TestSweepSmall(t *testing.T) {
	runScale(t, scaleConfig{N: 48, Concurrency: 8, Unchanged: 2, Log: t.Logf})
}

// TestSweepScale is the scale benchmark (README, "Watching 10,000
// endpoints"), run by bench/sweep.sh:
// $XMPPCERT_SWEEP endpoints (10000 there) watched by the daemon and swept
// with SweepOnce against a simulator in another process. It fails when a
// sweep takes 60 s or more, the daemon process's peak RSS reaches 300 MB,
// or history grows by 200 bytes or more per unchanged observation.
// Knobs: XMPPCERT_SWEEP_CONCURRENCY (64), XMPPCERT_SWEEP_UNCHANGED (3).
func TestSweepScale(t *testing.T) {
	n := envInt(t, "XMPPCERT_SWEEP", 0)
	if n == 0 {
		t.Skip("set XMPPCERT_SWEEP=10000 (bench/sweep.sh does)")
	}
	cfg := scaleConfig{
		N:           n,
		Concurrency: envInt(t, "XMPPCERT_SWEEP_CONCURRENCY", 64),
		Unchanged:   envInt(t, "XMPPCERT_SWEEP_UNCHANGED", 3),
		Log: func(format string, args ...any) {
			fmt.Printf("sweep: "+format+"\n", args...)
		},
	}
	cfg.Log("%d endpoints (half c2s, half s2s), concurrency %d, GOMAXPROCS %d, %d CPUs", n, cfg.Concurrency, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fig := runScale(t, cfg)
	worst := max(fig.First, fig.Changed)
	for _, d := range fig.Unchanged {
		worst = max(worst, d)
	}
	fmt.Printf("FIGURES endpoints=%d first_sweep_s=%.2f unchanged_sweep_median_s=%.2f changed_sweep_s=%.2f changed_endpoints=%d daemon_peak_rss_mib=%.1f sim_peak_rss_mib=%.1f file_bytes_per_unchanged_obs=%.2f bbolt_bytes_per_unchanged_obs=%.2f history_file_bytes=%d\n",
		n, fig.First.Seconds(), median(fig.Unchanged).Seconds(), fig.Changed.Seconds(), fig.ChangedEndpoints,
		float64(fig.DaemonPeakRSS)/(1<<20), float64(fig.SimPeakRSS)/(1<<20), fig.FileBytesPerObs, fig.HWMPerObs, fig.HistoryFile)
	if worst >= budgetSweep {
		t.Errorf("slowest sweep took %v; budget %v; %s", worst, budgetSweep, testtool.LoadAverage())
	}
	if fig.DaemonPeakRSS >= budgetRSS {
		t.Errorf("daemon peak RSS %.1f MiB; budget %d MB", float64(fig.DaemonPeakRSS)/(1<<20), budgetRSS/1_000_000)
	}
	if fig.FileBytesPerObs >= budgetGrow || fig.HWMPerObs >= budgetGrow {
		t.Errorf("history grew %.2f (file) / %.2f (bbolt) bytes per unchanged observation; budget %.0f", fig.FileBytesPerObs, fig.HWMPerObs, budgetGrow)
	}
}

// median of ds (0 for none).
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// envInt reads a non-negative integer from the environment.
func envInt(t testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a number", name, v)
	}
	return n
}
