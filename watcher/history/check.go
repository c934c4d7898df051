package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Check verifies the file: bbolt's own page consistency (tx.Check) and
// this package's invariants (every current record names an existing
// entry that is its endpoint's newest; every entry decodes, belongs to a
// recorded endpoint, and was first seen no later than last seen). The
// daemon can run it at start after an unclean stop; tests run it after
// killing a writer. It returns all problems found, joined.
func (s *Store) Check() error {
	var errs []error
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			errs = append(errs, fmt.Errorf("bbolt: %w", err))
		}
		cur, ent := tx.Bucket(bucketCurrent), tx.Bucket(bucketEntries)
		if cur == nil || ent == nil {
			if tx.Bucket(bucketMeta) != nil {
				errs = append(errs, errors.New("buckets missing"))
			}
			return nil
		}
		newest := map[string]uint64{}
		err := ent.ForEach(func(k, v []byte) error {
			if len(k) < 9 || k[len(k)-9] != 0 {
				errs = append(errs, fmt.Errorf("malformed entry key %q", k))
				return nil
			}
			key, seq := string(k[:len(k)-9]), binary.BigEndian.Uint64(k[len(k)-8:])
			newest[key] = max(newest[key], seq)
			e, err := decodeEntry(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("endpoint %q entry %d: %w", key, seq, err))
				return nil
			}
			if got := e.Observation.Endpoint.String(); got != key {
				errs = append(errs, fmt.Errorf("endpoint %q entry %d: holds an observation of %q", key, seq, got))
			}
			if e.LastSeen.Before(e.FirstSeen) {
				errs = append(errs, fmt.Errorf("endpoint %q entry %d: last seen %v before first seen %v", key, seq, e.LastSeen, e.FirstSeen))
			}
			if cur.Get([]byte(key)) == nil {
				errs = append(errs, fmt.Errorf("endpoint %q entry %d: endpoint has no current record", key, seq))
			}
			return nil
		})
		if err != nil {
			return err
		}
		return cur.ForEach(func(k, v []byte) error {
			seq, last, err := decodeCurrent(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("endpoint %q: %w", k, err))
				return nil
			}
			ev := ent.Get(entryKey(k, seq))
			switch {
			case ev == nil:
				errs = append(errs, fmt.Errorf("endpoint %q: current entry %d missing", k, seq))
			case newest[string(k)] != seq:
				errs = append(errs, fmt.Errorf("endpoint %q: current entry %d is not the newest (%d)", k, seq, newest[string(k)]))
			case len(ev) >= entryHeader && int64(binary.BigEndian.Uint64(ev[1:9])) > last:
				errs = append(errs, fmt.Errorf("endpoint %q: last seen before the current entry was first seen", k))
			}
			if bytes.IndexByte(k, 0) >= 0 {
				errs = append(errs, fmt.Errorf("endpoint %q: key contains NUL", k))
			}
			return nil
		})
	})
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("history %s: check failed: %w", s.path, err)
	}
	return nil
}
