package history

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/xmppcert/xmppcert/watcher"
)

// unchangedGrowth records one sweep of endpoints observations, then
// sweeps more unchanged sweeps, each one RecordAll, and returns the file
// growth and the growth of bbolt's high-water mark over the unchanged
// sweeps, in bytes per unchanged observation.
func unchangedGrowth(t testing.TB, endpoints, sweeps int) (fileBytes, usedBytes float64) {
	path := filepath.Join(t.TempDir(), "history.db")
	s := open(t, path, Options{})
	defer s.Close()
	sweep := make([]watcher.Observation, endpoints)
	at := t0
	record := func() {
		for i := range sweep {
			sweep[i] = obs(i, 0, at)
		}
		if _, err := s.RecordAll(sweep); err != nil {
			t.Fatal(err)
		}
		at = at.Add(5 * time.Minute)
	}
	size := func() (file, used int64) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		s.db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
		return fi.Size(), used
	}
	record()
	file0, used0 := size()
	for range sweeps {
		record()
	}
	file1, used1 := size()
	n := float64(endpoints * sweeps)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.History(sweep[0].Endpoint.String(), 0); len(h) != 1 || !h[0].LastSeen.Equal(at.Add(-5*time.Minute)) {
		t.Fatalf("history after unchanged sweeps: %+v", h)
	}
	t.Logf("%d endpoints: file %d -> %d bytes, used %d -> %d bytes over %d unchanged observations", endpoints, file0, file1, used0, used1, endpoints*sweeps)
	return float64(file1-file0) / n, float64(used1-used0) / n
}

// TestBytesPerUnchangedObservation holds the README's budget: history
// grows under 200 bytes per unchanged observation (measured over 100,000
// unchanged observations of 1,000 endpoints, one RecordAll per sweep).
func TestBytesPerUnchangedObservation(t *testing.T) {
	sweeps := 100
	if testing.Short() {
		sweeps = 10
	}
	file, used := unchangedGrowth(t, 1000, sweeps)
	t.Logf("bytes per unchanged observation: file %.2f, bbolt high-water mark %.2f (budget 200)", file, used)
	if file >= 200 || used >= 200 {
		t.Errorf("%.2f file / %.2f used bytes per unchanged observation; budget 200", file, used)
	}
}

// BenchmarkRecordAllUnchanged times a sweep of 1,000 unchanged
// endpoints (one commit) and reports the file growth per observation.
func BenchmarkRecordAllUnchanged(b *testing.B) {
	path := filepath.Join(b.TempDir(), "history.db")
	s := open(b, path, Options{})
	defer s.Close()
	sweep := make([]watcher.Observation, 1000)
	at := t0
	record := func() {
		for i := range sweep {
			sweep[i] = obs(i, 0, at)
		}
		if _, err := s.RecordAll(sweep); err != nil {
			b.Fatal(err)
		}
		at = at.Add(time.Minute)
	}
	record()
	fi0, _ := os.Stat(path)
	b.ResetTimer()
	for b.Loop() {
		record()
	}
	b.StopTimer()
	fi1, _ := os.Stat(path)
	b.ReportMetric(float64(fi1.Size()-fi0.Size())/float64(b.N*len(sweep)), "file-bytes/obs")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(sweep)), "ns/obs")
}
