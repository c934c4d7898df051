package xmppsim

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// The budgets for the scale benchmark.
const (
	budgetSweep = 60 * time.Second
	budgetRSS   = 300_000_000
	budgetGrow  = 200.0
)

// sweepConfig says how to run the sweeps.
type sweepConfig struct {
	// N endpoints (domains; odd ones c2s, even ones s2s).
	N int
	// Concurrency of probe.ProbeAll.
	Concurrency int
	// Chunk is how many jobs one ProbeAll call gets: the results of a
	// chunk are reduced to observations and dropped before the next, so
	// that memory does not grow with N.
	Chunk int
	// Unchanged is how many unchanged sweeps follow the first.
	Unchanged int
	// Prepare issues every certificate before the first sweep (excluded
	// from its time); otherwise the first sweep issues them on first use.
	Prepare bool
	// Log receives the figures.
	Log func(format string, args ...any)
}

// sweepFigures are the measurements.
type sweepFigures struct {
	Prepare                 time.Duration
	First, Changed          sweepTime
	Unchanged               []sweepTime
	ChangedEndpoints        int
	FileBytesPerObs         float64
	UsedBytesPerObs         float64
	FileSize, UsedSize      int64
	PeakRSS                 int64
	Failures                int
	UnexpectedChangeResults int
}

// sweepTime is one sweep: probing all, then recording all.
type sweepTime struct {
	Probe, Record time.Duration
	Changed       int
}

// Total is the sweep's wall time.
func (s sweepTime) Total() time.Duration { return s.Probe + s.Record }

// envInt reads a positive integer from the environment.
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

// vmHWM is the process's peak resident set size (VmHWM), in bytes.
func vmHWM(t testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// runSweeps starts a simulator, sweeps cfg.N endpoints into a fresh
// history: a first sweep, cfg.Unchanged unchanged sweeps, and a sweep
// after 1% of the domains were rekeyed and 1% renewed. It checks that
// every probe succeeded and that history saw exactly the changes made.
func runSweeps(t testing.TB, cfg sweepConfig) sweepFigures {
	var fig sweepFigures
	sim, err := New(Config{Dialback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ctx := context.Background()

	jobs := make([]probe.Job, cfg.N)
	domains := make([]string, cfg.N)
	for i := range jobs {
		domains[i] = sim.Domain(i + 1)
		o := probe.Options{Connect: sim.Addr(), Roots: sim.Roots(), Timeout: 10 * time.Second, Deadline: 20 * time.Second, Service: xmppaddr.ServiceClient}
		if i%2 == 1 {
			o.Service, o.From = xmppaddr.ServiceServer, "watcher.example"
		}
		jobs[i] = probe.Job{Domain: domains[i], Options: o}
	}
	if cfg.Prepare {
		begin := time.Now()
		if err := sim.Prepare(ctx, domains, 0); err != nil {
			t.Fatal(err)
		}
		fig.Prepare = time.Since(begin)
		cfg.Log("prepare: %d certificates issued in %v (excluded from the sweeps)", sim.Issued(), fig.Prepare.Round(time.Millisecond))
	}

	path := filepath.Join(t.TempDir(), "history.db")
	store, err := history.Open(path, history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { store.Close() }()
	// size closes the store to read bbolt's high-water mark (tx.Size) and
	// the file size, then reopens it.
	size := func() (file, used int64) {
		if err := store.Close(); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
		db.Close()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if store, err = history.Open(path, history.Options{}); err != nil {
			t.Fatal(err)
		}
		return fi.Size(), used
	}

	obs := make([]watcher.Observation, 0, cfg.N)
	sweep := func(name string) sweepTime {
		var st sweepTime
		obs = obs[:0]
		begin := time.Now()
		for lo := 0; lo < len(jobs); lo += cfg.Chunk {
			hi := min(lo+cfg.Chunk, len(jobs))
			for i, r := range probe.ProbeAll(ctx, jobs[lo:hi], cfg.Concurrency) {
				if !r.OK {
					fig.Failures++
					if fig.Failures <= 5 {
						t.Errorf("%s: %s: %s %s", name, jobs[lo+i].Domain, r.Failure, r.Error)
					}
				}
				obs = append(obs, watcher.Observations(r)...)
			}
		}
		st.Probe = time.Since(begin)
		begin = time.Now()
		rs, err := store.RecordAll(obs)
		if err != nil {
			t.Fatal(err)
		}
		st.Record = time.Since(begin)
		for _, r := range rs {
			if r.Changed {
				st.Changed++
			}
		}
		cfg.Log("%-10s sweep: %6d endpoints in %8v (probe %v, record %v), %d recorded as changed",
			name, len(obs), st.Total().Round(time.Millisecond), st.Probe.Round(time.Millisecond), st.Record.Round(time.Millisecond), st.Changed)
		return st
	}

	fig.First = sweep("first")
	if fig.First.Changed != cfg.N {
		t.Errorf("first sweep: %d new entries, want %d", fig.First.Changed, cfg.N)
	}
	file0, used0 := size()
	for i := range cfg.Unchanged {
		st := sweep(fmt.Sprintf("unchanged%d", i+1))
		if st.Changed != 0 {
			t.Errorf("unchanged sweep %d: %d entries changed", i+1, st.Changed)
			fig.UnexpectedChangeResults += st.Changed
		}
		fig.Unchanged = append(fig.Unchanged, st)
		// Per sweep, to tell a one-off step (bbolt's copy-on-write of
		// the pages an update touches is allocated before the old ones
		// are freed) from growth that goes on.
		f, u := size()
		cfg.Log("history after %s: file %d bytes, bbolt high-water mark %d bytes (+%d since the first sweep)", fmt.Sprintf("unchanged%d", i+1), f, u, u-used0)
	}
	file1, used1 := size()
	if n := float64(cfg.N * cfg.Unchanged); n > 0 {
		fig.FileBytesPerObs = float64(file1-file0) / n
		fig.UsedBytesPerObs = float64(used1-used0) / n
	}
	cfg.Log("history: file %d -> %d bytes, bbolt high-water mark %d -> %d bytes over %d unchanged observations: %.2f / %.2f bytes each",
		file0, file1, used0, used1, cfg.N*cfg.Unchanged, fig.FileBytesPerObs, fig.UsedBytesPerObs)

	// 1% rekeyed, 1% renewed with the same key.
	step := 100
	if cfg.N < 200 {
		step = 4
	}
	for i := 0; i < cfg.N; i += step {
		if err := sim.Rekey(domains[i]); err != nil {
			t.Fatal(err)
		}
		fig.ChangedEndpoints++
		if i+1 < cfg.N {
			if err := sim.Renew(domains[i+1]); err != nil {
				t.Fatal(err)
			}
			fig.ChangedEndpoints++
		}
	}
	fig.Changed = sweep("changed")
	if fig.Changed.Changed != fig.ChangedEndpoints {
		t.Errorf("changed sweep: %d entries changed, want %d", fig.Changed.Changed, fig.ChangedEndpoints)
	}
	fig.FileSize, fig.UsedSize = size()
	if err := store.Check(); err != nil {
		t.Fatal(err)
	}
	fig.PeakRSS = vmHWM(t)
	cfg.Log("peak RSS (VmHWM of the whole process: simulator, %d certificates, prober, history): %.1f MiB; %d connections accepted",
		sim.Issued(), float64(fig.PeakRSS)/(1<<20), sim.Accepted())
	return fig
}

// TestSweepSmall runs the sweep machinery on a few endpoints (fit for
// -race): every probe succeeds and history sees exactly the changes.
func TestSweepSmall(t *testing.T) {
	runSweeps(t, sweepConfig{N: 48, Concurrency: 8, Chunk: 20, Unchanged: 2, Prepare: true, Log: t.Logf})
}

// TestSweepScale is the scale benchmark, run by bench/sweep.sh:
// XMPPSIM_SWEEP endpoints (10000 there) swept by probe.ProbeAll against
// the simulator and recorded into a fresh history. It fails when a sweep
// takes 60 s or more, the process's peak RSS reaches 300 MB, or history
// grows by 200 bytes or more per unchanged observation. Knobs:
// XMPPSIM_CONCURRENCY (64), XMPPSIM_CHUNK (2000), XMPPSIM_UNCHANGED (3),
// XMPPSIM_PREPARE (1: issue certificates before the first sweep).
func TestSweepScale(t *testing.T) {
	n := envInt(t, "XMPPSIM_SWEEP", 0)
	if n == 0 {
		t.Skip("set XMPPSIM_SWEEP=10000 (bench/sweep.sh does)")
	}
	cfg := sweepConfig{
		N:           n,
		Concurrency: envInt(t, "XMPPSIM_CONCURRENCY", 64),
		Chunk:       envInt(t, "XMPPSIM_CHUNK", 2000),
		Unchanged:   envInt(t, "XMPPSIM_UNCHANGED", 3),
		Prepare:     envInt(t, "XMPPSIM_PREPARE", 1) != 0,
		Log: func(format string, args ...any) {
			fmt.Printf("xmppsim: "+format+"\n", args...)
		},
	}
	if cfg.Chunk == 0 {
		cfg.Chunk = n
	}
	cfg.Log("%d endpoints (half c2s, half s2s), concurrency %d, chunks of %d, GOMAXPROCS %d, %d CPUs", n, cfg.Concurrency, cfg.Chunk, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fig := runSweeps(t, cfg)

	worst := fig.First.Total()
	for _, s := range append(fig.Unchanged, fig.Changed) {
		worst = max(worst, s.Total())
	}
	var unchanged time.Duration
	for _, s := range fig.Unchanged {
		unchanged += s.Total()
	}
	if len(fig.Unchanged) > 0 {
		unchanged /= time.Duration(len(fig.Unchanged))
	}
	fmt.Printf("FIGURES endpoints=%d first_sweep_s=%.2f unchanged_sweep_s=%.2f changed_sweep_s=%.2f changed_endpoints=%d peak_rss_mib=%.1f file_bytes_per_unchanged_obs=%.2f bbolt_bytes_per_unchanged_obs=%.2f history_file_bytes=%d failures=%d\n",
		n, fig.First.Total().Seconds(), unchanged.Seconds(), fig.Changed.Total().Seconds(), fig.ChangedEndpoints,
		float64(fig.PeakRSS)/(1<<20), fig.FileBytesPerObs, fig.UsedBytesPerObs, fig.FileSize, fig.Failures)
	if worst >= budgetSweep {
		t.Errorf("slowest sweep took %v; budget %v", worst, budgetSweep)
	}
	if fig.PeakRSS >= budgetRSS {
		t.Errorf("peak RSS %.1f MiB; budget %d MB", float64(fig.PeakRSS)/(1<<20), budgetRSS/1_000_000)
	}
	if fig.FileBytesPerObs >= budgetGrow || fig.UsedBytesPerObs >= budgetGrow {
		t.Errorf("history grew %.2f (file) / %.2f (bbolt) bytes per unchanged observation; budget %.0f", fig.FileBytesPerObs, fig.UsedBytesPerObs, budgetGrow)
	}
}
