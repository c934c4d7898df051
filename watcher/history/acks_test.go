package history

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestAcks: an acknowledgement is kept in the file (it survives Close and
// Open, read-only too), never moves back, cannot name an entry that does
// not exist yet or an unknown endpoint, and survives Prune deleting the
// entry it names.
func TestAcks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "history.db")
	s := open(t, path, Options{})
	for v := range 3 {
		if _, _, err := s.Record(obs(1, v, t0.Add(time.Duration(v)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Record(obs(2, 0, t0)); err != nil {
		t.Fatal(err)
	}
	acked := func(s *Store, k string, want uint64) {
		t.Helper()
		got, err := s.Acked(k)
		if err != nil || got != want {
			t.Fatalf("Acked(%q) = %d, %v; want %d", k, got, err, want)
		}
	}
	acked(s, key(1), 0)
	if err := s.Ack(key(1), 2); err != nil {
		t.Fatal(err)
	}
	acked(s, key(1), 2)
	acked(s, key(2), 0)
	if err := s.Ack(key(1), 1); err != nil {
		t.Fatalf("an older ack is a no-op, not an error: %v", err)
	}
	acked(s, key(1), 2)
	if err := s.Ack(key(1), 4); err == nil {
		t.Error("Ack accepted entry 4 of an endpoint whose newest is 3")
	}
	if err := s.Ack("nobody", 1); err == nil {
		t.Error("Ack accepted an endpoint without history")
	}
	acked(s, "nobody", 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopened: still acknowledged, and never backwards.
	s = open(t, path, Options{})
	acked(s, key(1), 2)
	if err := s.Ack(key(1), 1); err != nil {
		t.Fatal(err)
	}
	acked(s, key(1), 2)
	if err := s.Ack(key(1), 3); err != nil {
		t.Fatal(err)
	}
	acked(s, key(1), 3)

	// Pruning the superseded entries (1 and 2) keeps the ack that covers
	// them.
	if n, err := s.Prune(t0.Add(1000 * time.Hour)); err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2 entries deleted", n, err)
	}
	acked(s, key(1), 3)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// A reader without the lock sees it; it cannot write.
	ro := open(t, path, Options{ReadOnly: true})
	defer ro.Close()
	acked(ro, key(1), 3)
	if err := ro.Ack(key(2), 1); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Ack on a read-only store: %v, want ErrReadOnly", err)
	}
}

// TestAckedOldFile: a file written before acknowledgements were kept (no
// acks bucket) reads as nothing acknowledged, and the next read-write
// Open adds the bucket.
func TestAckedOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.db")
	s := open(t, path, Options{})
	if _, _, err := s.Record(obs(1, 0, t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketAcks) }); err != nil {
		t.Fatal(err)
	}
	s.Close()

	ro := open(t, path, Options{ReadOnly: true})
	if n, err := ro.Acked(key(1)); err != nil || n != 0 {
		t.Errorf("Acked on a file without acks = %d, %v", n, err)
	}
	ro.Close()

	s = open(t, path, Options{})
	defer s.Close()
	if err := s.Ack(key(1), 1); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Acked(key(1)); err != nil || n != 1 {
		t.Errorf("Acked after reopening = %d, %v", n, err)
	}
}
