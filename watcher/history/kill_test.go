//go:build unix

package history

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/watcher"
)

const helperEnv = "XMPPCERT_HISTORY_HELPER_DB"

// killEndpoints is the size of the helper's sweeps: large enough that a
// commit writes many pages, so a kill often lands inside one.
const killEndpoints = 2000

// TestKillHelper is not a test: run by TestKillMidRecordAll as a child
// process, it records sweeps into the file named by $XMPPCERT_HISTORY_HELPER_DB
// until it is killed. Every sweep changes a quarter of the endpoints and
// carries one time for all, so a torn commit would show as endpoints
// whose last-seen times differ.
func TestKillHelper(t *testing.T) {
	path := os.Getenv(helperEnv)
	if path == "" {
		t.Skip("helper process for TestKillMidRecordAll")
	}
	s, err := Open(path, Options{Timeout: 5 * time.Second})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(3)
	}
	sweep := make([]watcher.Observation, killEndpoints)
	for n := 0; ; n++ {
		at := time.Now()
		for i := range sweep {
			v := 0
			if i%4 == n%4 {
				v = n
			}
			sweep[i] = obs(i, v, at)
		}
		if _, err := s.RecordAll(sweep); err != nil {
			fmt.Println("error:", err)
			os.Exit(3)
		}
		if n == 0 {
			fmt.Println("ready")
		}
	}
}

// TestKillMidRecordAll kills (SIGKILL) a child process that is writing
// sweeps, several times at random moments, and checks after each kill
// that the file opens, passes bbolt's check and this package's, that the
// last sweep is there whole or not at all, and that every history is
// consistent.
func TestKillMidRecordAll(t *testing.T) {
	if os.Getenv(helperEnv) != "" {
		t.Skip("in the helper")
	}
	path := filepath.Join(t.TempDir(), "history.db")
	rounds := 5
	if testing.Short() {
		rounds = 2
	}
	rounds = testtool.Rounds(t, rounds)
	rng := rand.New(rand.NewPCG(testtool.Seed(t), 0))
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: helper said %q", round, line)
		}
		time.Sleep(time.Duration(20+rng.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		s, err := Open(path, Options{Timeout: time.Second})
		if err != nil {
			t.Fatalf("round %d: reopening after kill: %v", round, err)
		}
		if err := s.Check(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		eps, err := s.Endpoints()
		if err != nil || len(eps) != killEndpoints {
			t.Fatalf("round %d: %d endpoints, %v", round, len(eps), err)
		}
		var last time.Time
		entries := 0
		for i, k := range eps {
			h, err := s.History(k, 0)
			if err != nil || len(h) == 0 {
				t.Fatalf("round %d: %s: %d entries, %v", round, k, len(h), err)
			}
			entries += len(h)
			if i == 0 {
				last = h[0].LastSeen
			} else if !h[0].LastSeen.Equal(last) {
				t.Fatalf("round %d: %s last seen %v, another endpoint %v: a sweep was stored in part", round, k, h[0].LastSeen, last)
			}
			for j := 1; j < len(h); j++ {
				newer, older := h[j-1], h[j]
				if newer.Seq != older.Seq+1 || newer.Observation.Equal(older.Observation) || older.LastSeen.After(newer.FirstSeen) {
					t.Fatalf("round %d: %s: entries %d and %d inconsistent: %+v / %+v", round, k, older.Seq, newer.Seq, older, newer)
				}
			}
		}
		t.Logf("round %d: reopened %v after the last whole sweep; %d endpoints, %d entries, last sweep at %v", round, time.Since(last).Round(time.Millisecond), len(eps), entries, last.Format(time.RFC3339Nano))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	fi, _ := os.Stat(path)
	t.Logf("file %s bytes", strconv.FormatInt(fi.Size(), 10))
}
