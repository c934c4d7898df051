package history

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// obs is endpoint i's observation showing certificate variant v at t.
func obs(i, v int, t time.Time) watcher.Observation {
	return watcher.Observation{
		Endpoint: watcher.EndpointKey{
			Domain: fmt.Sprintf("d%05d.example", i), Service: xmppaddr.ServiceServer,
			Host: fmt.Sprintf("xmpp.d%05d.example", i), Port: 5269, Address: "192.0.2.1:5269",
		},
		At:        t,
		Reachable: true,
		Chain: []watcher.CertSummary{
			{SHA256: fmt.Sprintf("%064x", v), SPKISHA256: strings.Repeat("ab", 32), Subject: fmt.Sprintf("CN=xmpp.d%05d.example", i), Issuer: "CN=R12,O=Let's Encrypt,C=US", NotAfter: t0.AddDate(0, 2, 0)},
			{SHA256: strings.Repeat("cd", 32), SPKISHA256: strings.Repeat("ef", 32), Subject: "CN=R12,O=Let's Encrypt,C=US", Issuer: "CN=ISRG Root X1,O=Internet Security Research Group,C=US", NotAfter: t0.AddDate(2, 0, 0)},
		},
		Valid:            true,
		Matched:          []string{fmt.Sprintf("DNS-ID d%05d.example", i)},
		TLSVersion:       "TLS 1.3",
		Cipher:           "TLS_AES_128_GCM_SHA256",
		Group:            "X25519MLKEM768",
		ForwardSecret:    true,
		StartTLSRequired: true,
		Dialback:         true,
		SASL:             []string{"EXTERNAL"},
		External:         "success",
	}
}

func open(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s := open(t, filepath.Join(t.TempDir(), "state", "history.db"), Options{})
	t.Cleanup(func() { s.Close() })
	return s
}

func key(i int) string { return obs(i, 0, t0).Endpoint.String() }

// TestDedup records one observation many times: one entry, last seen
// advanced, only the first call reports a change.
func TestDedup(t *testing.T) {
	s := newStore(t)
	const n = 50
	for j := range n {
		changed, prev, err := s.Record(obs(1, 0, t0.Add(time.Duration(j)*time.Minute)))
		if err != nil {
			t.Fatal(err)
		}
		if changed != (j == 0) || prev != nil {
			t.Fatalf("record %d: changed %v prev %v", j, changed, prev)
		}
	}
	// An older repeat does not move last seen back.
	if changed, _, err := s.Record(obs(1, 0, t0)); err != nil || changed {
		t.Fatalf("old repeat: changed %v, %v", changed, err)
	}
	h, err := s.History(key(1), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 1 {
		t.Fatalf("%d entries; want 1", len(h))
	}
	e := h[0]
	if !e.FirstSeen.Equal(t0) || !e.LastSeen.Equal(t0.Add((n-1)*time.Minute)) || e.Seq != 1 || !e.Observation.Equal(obs(1, 0, t0)) {
		t.Errorf("entry seq %d first %v last %v", e.Seq, e.FirstSeen, e.LastSeen)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

// TestChangeAndOrder records A, A, B, A: three entries newest first, each
// change returning the observation it replaced.
func TestChangeAndOrder(t *testing.T) {
	s := newStore(t)
	steps := []struct {
		v       int
		changed bool
		prev    int // variant of prev, -1 for none
	}{{0, true, -1}, {0, false, -1}, {1, true, 0}, {1, false, -1}, {0, true, 1}}
	for j, st := range steps {
		changed, prev, err := s.Record(obs(7, st.v, t0.Add(time.Duration(j)*time.Hour)))
		if err != nil {
			t.Fatal(err)
		}
		if changed != st.changed || (prev == nil) != (st.prev < 0) || prev != nil && !prev.Equal(obs(7, st.prev, t0)) {
			t.Fatalf("step %d: changed %v prev %+v", j, changed, prev)
		}
	}
	h, err := s.History(key(7), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		seq         uint64
		v           int
		first, last int
	}{{3, 0, 4, 4}, {2, 1, 2, 3}, {1, 0, 0, 1}}
	if len(h) != len(want) {
		t.Fatalf("%d entries; want %d", len(h), len(want))
	}
	for j, w := range want {
		e := h[j]
		if e.Seq != w.seq || !e.Observation.Equal(obs(7, w.v, t0)) || !e.FirstSeen.Equal(t0.Add(time.Duration(w.first)*time.Hour)) ||
			!e.LastSeen.Equal(t0.Add(time.Duration(w.last)*time.Hour)) || !e.At.Equal(e.FirstSeen) {
			t.Errorf("entry %d: seq %d first %v last %v; want %+v", j, e.Seq, e.FirstSeen, e.LastSeen, w)
		}
	}
	if h2, _ := s.History(key(7), 2); len(h2) != 2 || h2[0].Seq != 3 || h2[1].Seq != 2 {
		t.Errorf("limit 2: %d entries", len(h2))
	}
	l, err := s.Latest(key(7))
	if err != nil || l == nil || l.Seq != 3 {
		t.Errorf("Latest: %+v, %v", l, err)
	}
	if l, err := s.Latest("nowhere"); l != nil || err != nil {
		t.Errorf("Latest of unknown endpoint: %+v, %v", l, err)
	}
	if h, err := s.History("nowhere", 0); h != nil || err != nil {
		t.Errorf("History of unknown endpoint: %+v, %v", h, err)
	}
	// A neighbouring endpoint's entries do not leak into another's history.
	if _, _, err := s.Record(obs(8, 5, t0)); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.History(key(7), 0); len(h) != 3 {
		t.Errorf("after a neighbour: %d entries", len(h))
	}
	eps, err := s.Endpoints()
	if err != nil || len(eps) != 2 || eps[0] != key(7) || eps[1] != key(8) {
		t.Errorf("Endpoints: %q, %v", eps, err)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

// TestRecordAll records a sweep in one call, including the same
// endpoint twice, and checks the results line up with the input.
func TestRecordAll(t *testing.T) {
	s := newStore(t)
	rs, err := s.RecordAll([]watcher.Observation{obs(1, 0, t0), obs(2, 0, t0), obs(1, 1, t0.Add(time.Second)), obs(2, 0, t0.Add(time.Second))})
	if err != nil {
		t.Fatal(err)
	}
	if !rs[0].Changed || !rs[1].Changed || !rs[2].Changed || rs[2].Prev == nil || !rs[2].Prev.Equal(obs(1, 0, t0)) || rs[3].Changed {
		t.Errorf("results %+v", rs)
	}
	// Zero At means now.
	before := time.Now()
	if _, err := s.RecordAll([]watcher.Observation{obs(3, 0, time.Time{})}); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.Latest(key(3)); l == nil || l.FirstSeen.Before(before.Add(-time.Second)) {
		t.Errorf("zero At: %+v", l)
	}
	bad := obs(4, 0, t0)
	bad.Endpoint.Domain = "a\x00b"
	if _, err := s.RecordAll([]watcher.Observation{obs(5, 0, t0), bad}); err == nil {
		t.Error("NUL in key accepted")
	}
	if l, _ := s.Latest(key(5)); l != nil {
		t.Error("a refused batch was partly stored")
	}
}

// TestPrune drops superseded entries last seen before the cutoff and
// never an endpoint's current entry.
func TestPrune(t *testing.T) {
	s := newStore(t)
	day := 24 * time.Hour
	// Endpoint 1: v0 days 0-1, v1 days 2-3, v2 day 10 (current).
	// Endpoint 2: one entry, day 0, stale but current.
	for _, r := range []struct{ i, v, d int }{{1, 0, 0}, {1, 0, 1}, {1, 1, 2}, {1, 1, 3}, {1, 2, 10}, {2, 0, 0}} {
		if _, _, err := s.Record(obs(r.i, r.v, t0.Add(time.Duration(r.d)*day))); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.Prune(t0.Add(3 * day)) // v0 (last day 1) goes, v1 (last day 3) stays
	if err != nil || n != 1 {
		t.Fatalf("Prune: %d, %v; want 1", n, err)
	}
	h, _ := s.History(key(1), 0)
	if len(h) != 2 || h[0].Seq != 3 || h[1].Seq != 2 {
		t.Fatalf("after prune: %+v", h)
	}
	n, err = s.Prune(t0.Add(100 * day))
	if err != nil || n != 1 {
		t.Fatalf("second Prune: %d, %v; want 1", n, err)
	}
	if h, _ := s.History(key(1), 0); len(h) != 1 || h[0].Seq != 3 {
		t.Errorf("current entry pruned: %+v", h)
	}
	if h, _ := s.History(key(2), 0); len(h) != 1 {
		t.Errorf("stale current entry pruned: %+v", h)
	}
	// Recording after a prune continues the sequence.
	if changed, prev, err := s.Record(obs(1, 3, t0.Add(101*day))); err != nil || !changed || prev == nil || !prev.Equal(obs(1, 2, t0)) {
		t.Errorf("after prune: %v %v %v", changed, prev, err)
	}
	if l, _ := s.Latest(key(1)); l.Seq != 4 {
		t.Errorf("seq after prune %d; want 4", l.Seq)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

// TestConcurrentRecord records from many goroutines, each endpoint
// by one writer and one endpoint by all of them.
func TestConcurrentRecord(t *testing.T) {
	s := newStore(t)
	const workers, rounds = 8, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				at := t0.Add(time.Duration(r) * time.Second)
				if _, _, err := s.Record(obs(100+w, r/10, at)); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.RecordAll([]watcher.Observation{obs(0, 0, at), obs(200+w, 0, at)}); err != nil {
					t.Error(err)
					return
				}
				if _, err := s.History(key(100+w), 0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for w := range workers {
		if h, _ := s.History(key(100+w), 0); len(h) != rounds/10 {
			t.Errorf("worker %d: %d entries; want %d", w, len(h), rounds/10)
		}
	}
	if h, _ := s.History(key(0), 0); len(h) != 1 || !h[0].LastSeen.Equal(t0.Add((rounds-1)*time.Second)) {
		t.Errorf("shared endpoint: %+v", h)
	}
	if eps, _ := s.Endpoints(); len(eps) != 1+2*workers {
		t.Errorf("%d endpoints", len(eps))
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

// TestReopen closes and reopens: the data stays, and the file and its
// new directory have private modes.
func TestReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	path := filepath.Join(dir, "history.db")
	s := open(t, path, Options{})
	for j := range 3 {
		if _, _, err := s.Record(obs(1, j, t0.Add(time.Duration(j)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, %v; want %v", p, fi.Mode().Perm(), err, want)
		}
	}
	s = open(t, path, Options{})
	defer s.Close()
	h, err := s.History(key(1), 0)
	if err != nil || len(h) != 3 || !h[0].Observation.Equal(obs(1, 2, t0)) || !h[2].LastSeen.Equal(t0) {
		t.Fatalf("after reopen: %+v, %v", h, err)
	}
	if changed, _, _ := s.Record(obs(1, 2, t0.Add(5*time.Hour))); changed {
		t.Error("unchanged observation after reopen reported as a change")
	}
}

// TestReopenTightensMode: an existing file readable by others is made
// 0600 by a read-write Open.
func TestReopenTightensMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	open(t, path, Options{}).Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	open(t, path, Options{}).Close()
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
}

// TestLocked opens the file a second time while the first handle is
// open: the second Open gives up after its timeout with an error that
// names the file and says what to do.
func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s := open(t, path, Options{})
	defer s.Close()
	start := time.Now()
	_, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	// Twenty times the 100 ms asked for (room for -race on a loaded
	// machine); an Open that ignored it would wait DefaultTimeout.
	if took := time.Since(start); took >= DefaultTimeout {
		t.Errorf("Open waited %v", took)
	}
	var le *LockedError
	if !errors.Is(err, ErrLocked) || !errors.As(err, &le) || le.Path != path || le.ReadOnly {
		t.Fatalf("second Open: %v", err)
	}
	for _, want := range []string{path, "xmppcert daemon", "xmppcert status", "stop it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	t.Log(err)
}

// TestReadOnly documents what bbolt's flock does: a read-only Open
// (shared lock) cannot proceed while a read-write handle (exclusive
// lock) is open and fails after its timeout; read-only handles coexist
// with each other; a writer cannot open while any reader is open; a
// read-only Store refuses writes.
func TestReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	if _, err := Open(path, Options{ReadOnly: true}); err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "daemon creates it") {
		t.Errorf("read-only Open of a missing file: %v", err)
	}
	w := open(t, path, Options{})
	if _, _, err := w.Record(obs(1, 0, t0)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	var le *LockedError
	if !errors.As(err, &le) || !le.ReadOnly || !strings.Contains(err.Error(), "for reading") {
		t.Fatalf("read-only Open beside a writer: %v", err)
	}
	w.Close()

	r1 := open(t, path, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	defer r1.Close()
	r2 := open(t, path, Options{ReadOnly: true, Timeout: 100 * time.Millisecond})
	defer r2.Close()
	if h, err := r2.History(key(1), 0); err != nil || len(h) != 1 {
		t.Errorf("read-only History: %+v, %v", h, err)
	}
	if _, _, err := r1.Record(obs(1, 1, t0)); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only Record: %v", err)
	}
	if _, err := r1.Prune(t0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only Prune: %v", err)
	}
	if err := r1.Check(); err != nil {
		t.Error(err)
	}
	if _, err := Open(path, Options{Timeout: 100 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Errorf("writer Open beside readers: %v", err)
	}
}

// TestFormatRefused: a file from a future format is refused, not misread.
func TestFormatRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	open(t, path, Options{}).Close()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte("2")) })
	db.Close()
	for _, ro := range []bool{false, true} {
		_, err := Open(path, Options{ReadOnly: ro})
		var fe *FormatError
		if !errors.As(err, &fe) || fe.Format != "2" || !strings.Contains(err.Error(), path) {
			t.Errorf("read-only %v: %v", ro, err)
		}
	}
	if _, err := decodeEntry(append([]byte{2}, make([]byte, 20)...)); err == nil {
		t.Error("entry of format 2 decoded")
	}
}

// TestBackup copies the open store and opens the copy.
func TestBackup(t *testing.T) {
	s := newStore(t)
	if _, _, err := s.Record(obs(1, 0, t0)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.Backup(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c := open(t, path, Options{ReadOnly: true})
	defer c.Close()
	if l, err := c.Latest(key(1)); err != nil || l == nil || !l.Observation.Equal(obs(1, 0, t0)) {
		t.Errorf("copy: %+v, %v", l, err)
	}
}
