package history

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketCT holds, by CT log URL, the index of the next entry to read
// (8 bytes, big-endian): where the daemon's CT follower resumes.
var bucketCT = []byte("ct")

// Position returns where the CT follower stopped reading log (the index
// of the next entry), and false when it never read it. With SetPosition
// it makes *Store the follower's ct.Positions.
func (s *Store) Position(log string) (uint64, bool, error) {
	var next uint64
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCT)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(log))
		if v == nil {
			return nil
		}
		if len(v) != 8 {
			return fmt.Errorf("a position of %d bytes", len(v))
		}
		next, ok = binary.BigEndian.Uint64(v), true
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("history %s: CT log %s: %w", s.path, log, err)
	}
	return next, ok, nil
}

// SetPosition records that the CT follower read log up to (not
// including) entry next, in a transaction of its own.
func (s *Store) SetPosition(log string, next uint64) error {
	if s.readOnly {
		return fmt.Errorf("history %s: %w", s.path, ErrReadOnly)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketCT)
		if err != nil {
			return err
		}
		return b.Put([]byte(log), binary.BigEndian.AppendUint64(nil, next))
	})
	if err != nil {
		return fmt.Errorf("history %s: CT log %s: %w", s.path, log, err)
	}
	return nil
}
