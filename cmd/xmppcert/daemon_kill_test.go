package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/xmppsim"
	"github.com/xmppcert/xmppcert/watcher/daemon"
	"github.com/xmppcert/xmppcert/watcher/history"
)

// killedDaemon is what the history held after one kill.
type killedDaemon struct {
	endpoints int
	entries   int
	lastSeen  time.Time // the newest last-seen time of any endpoint
}

// checkKilledHistory opens the history read-only, as `status` does when
// no daemon answers, and fails the test unless it opens (the killed
// daemon's lock is gone and bbolt's meta pages are intact) and passes
// bbolt's and the history's consistency check; it returns what the
// history holds.
func checkKilledHistory(t *testing.T, path string) killedDaemon {
	t.Helper()
	s, err := history.Open(path, history.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("opening the history after kill -9: %v", err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("after kill -9: %v", err)
	}
	keys, err := s.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	k := killedDaemon{endpoints: len(keys)}
	for _, key := range keys {
		h, err := s.History(key, 0)
		if err != nil {
			t.Fatal(err)
		}
		k.entries += len(h)
		if len(h) > 0 && h[0].LastSeen.After(k.lastSeen) {
			k.lastSeen = h[0].LastSeen
		}
	}
	return k
}

// firstSweep matches the end of the daemon's first sweep in its text log:
// when it was logged and how long it took.
var firstSweep = regexp.MustCompile(`time=(\S+) level=INFO msg="sweep done" .* took=(\S+)`)

// waitWrite polls the file until its modification time or size differs
// from what they were at the call, for at most limit; it reports whether
// it saw a write. The daemon writes its history only to commit a sweep,
// so the first write it sees is a commit starting.
func waitWrite(t *testing.T, path string, limit time.Duration) bool {
	t.Helper()
	base, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(200 * time.Microsecond) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if !fi.ModTime().Equal(base.ModTime()) || fi.Size() != base.Size() {
			return true
		}
	}
	return false
}

// TestDaemonKill9 runs the built `xmppcert daemon` (a separate process)
// watching 150 domains of a simulator whose keys change all the time, so
// that every sweep writes new history entries, and kills it with SIGKILL
// eight times during its second sweep, restarting it each time: in even
// rounds at a random moment of the sweep, in odd rounds 0-2 ms after the
// history file is first written, that is inside the commit. After each
// kill the history opens, passes bbolt's and the history's check, holds
// every endpoint, and its newest last-seen time is later than after the
// kill before: the restarted daemon went on recording. `xmppcert status`
// reads it read-only (no daemon answers) and lists every endpoint. A
// last daemon stops cleanly on SIGTERM. The log says how many kills cut
// a commit short (its sweep is then missing from the history).
func TestDaemonKill9(t *testing.T) {
	begin := time.Now()
	bin := buildXmppcert(t)
	sim, err := xmppsim.New(xmppsim.Config{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	const n = 150
	rounds := testtool.Rounds(t, 8)
	const interval = time.Second
	domains := make([]string, n)
	var peers strings.Builder
	for i := range domains {
		domains[i] = sim.Domain(i + 1)
		fmt.Fprintf(&peers, "[[watch.peer]]\ndomain = %q\nservice = \"xmpp-client\"\nconnect = %q\n", domains[i], sim.Addr())
	}
	if err := sim.Prepare(context.Background(), domains, 0); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cfgFile := filepath.Join(dir, "xmppcert.toml")
	cfg := fmt.Sprintf("[watch]\ninterval = %q\njitter = 0\ntimeout = \"1s\"\nconcurrency = 32\nown_hosts = false\n%s", interval, peers.String())
	writeFile(t, cfgFile, []byte(cfg), 0o600)
	listen := freeAddr(t)
	path := filepath.Join(state, daemon.HistoryFile)

	// Churn: a few new keys every 100 ms, so that each sweep finds about
	// half of the endpoints changed.
	seed := testtool.Seed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	stopChurn := make(chan struct{})
	var churn sync.WaitGroup
	churn.Add(1)
	go func() {
		defer churn.Done()
		r := rand.New(rand.NewPCG(seed, 2))
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopChurn:
				return
			case <-tick.C:
			}
			for range n / 20 {
				if err := sim.Rekey(domains[r.IntN(n)]); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	defer func() {
		close(stopChurn)
		churn.Wait()
	}()

	// start starts a daemon and waits for its first sweep; it returns the
	// daemon, when the first sweep was logged done and how long it took.
	start := func() (*daemonProc, time.Time, time.Duration) {
		t.Helper()
		d := startDaemonProc(t, bin, daemonOptions{listen: listen}, "--state-dir", state, "--config", cfgFile, "daemon")
		m := d.waitLog(t, firstSweep)
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			t.Fatal(err)
		}
		took, err := time.ParseDuration(m[2])
		if err != nil {
			t.Fatal(err)
		}
		return d, at, took
	}

	var prev killedDaemon
	torn, wrote := 0, 0
	for round := range rounds {
		d, first, took := start()
		// The second sweep starts an interval after the first ended.
		how := "at random in the sweep"
		if round%2 == 0 {
			time.Sleep(interval + time.Duration(rng.Int64N(int64(took)+1)))
		} else {
			how = "inside the commit"
			if !waitWrite(t, path, interval+3*took) {
				t.Fatalf("round %d: the second sweep wrote nothing to the history", round)
			}
			wrote++
			time.Sleep(time.Duration(rng.Int64N(int64(2 * time.Millisecond))))
		}
		killed := time.Since(first)
		d.kill(t)
		done := strings.Count(d.logs.String(), `msg="sweep done"`)

		k := checkKilledHistory(t, path)
		if k.endpoints != n {
			t.Fatalf("round %d: history holds %d endpoints; want %d", round, k.endpoints, n)
		}
		if round > 0 && (!k.lastSeen.After(prev.lastSeen) || k.entries <= prev.entries) {
			t.Fatalf("round %d: newest last seen %v (before: %v), %d entries (before: %d): the restarted daemon recorded nothing",
				round, k.lastSeen, prev.lastSeen, k.entries, prev.entries)
		}
		// The second sweep's observations are later than the first's end.
		lost := ""
		if how == "inside the commit" && k.lastSeen.Before(first) {
			torn++
			lost = ", the commit cut short"
		}
		t.Logf("round %d: killed %s, %v after the first sweep (took %v) ended, %d sweeps logged done%s; history: %d endpoints, %d entries",
			round, how, killed.Round(time.Millisecond), took, done, lost, k.endpoints, k.entries)
		prev = k

		r := runBin(t, bin, "--state-dir", state, "status", "--json", "--listen", listen)
		var rep statusReport
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || !strings.HasPrefix(rep.Source, "history ") || len(rep.Endpoints) != n {
			t.Fatalf("round %d: status after kill -9: exit %d, source %q, %d endpoints; want exit 0 from the history with %d\n%s", round, r.code, rep.Source, len(rep.Endpoints), n, r.stderr)
		}
	}

	d, _, _ := start()
	d.stop(t)
	k := checkKilledHistory(t, path)
	if !k.lastSeen.After(prev.lastSeen) {
		t.Errorf("the last daemon recorded nothing after the kills")
	}
	t.Logf("%d kills, %d at a history write, %d of which cut the commit short; %v in all", rounds, wrote, torn, time.Since(begin).Round(time.Millisecond))
}
