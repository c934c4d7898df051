package history

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Acked returns the newest acknowledged entry (Seq) of the endpoint key,
// 0 when none of its changes was acknowledged. It reads a snapshot, so
// it never waits for the writer, and works on a Store opened ReadOnly
// too. With Ack it makes *Store the dashboard's persistent web.Acks.
func (s *Store) Acked(key string) (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAcks)
		if b == nil {
			return nil // a file written before acknowledgements were kept
		}
		var err error
		seq, err = decodeAck(b.Get([]byte(key)))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("history %s: endpoint %q: acknowledgement: %w", s.path, key, err)
	}
	return seq, nil
}

// Ack records that the endpoint's changes up to and including entry seq
// are acknowledged, in a short transaction of its own (one commit). It
// never moves an acknowledgement back: a seq at or below the recorded one
// is a no-op. It refuses an endpoint that has no history and a seq newer
// than the endpoint's current entry, which would silence changes not yet
// seen.
func (s *Store) Ack(key string, seq uint64) error {
	if s.readOnly {
		return fmt.Errorf("history %s: %w", s.path, ErrReadOnly)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		cur, b := tx.Bucket(bucketCurrent), tx.Bucket(bucketAcks)
		if cur == nil || b == nil {
			return fmt.Errorf("buckets missing")
		}
		c := cur.Get([]byte(key))
		if c == nil {
			return fmt.Errorf("no such endpoint")
		}
		latest, _, err := decodeCurrent(c)
		if err != nil {
			return err
		}
		if seq > latest {
			return fmt.Errorf("entry %d does not exist yet: the newest is %d", seq, latest)
		}
		old, err := decodeAck(b.Get([]byte(key)))
		if err != nil || seq <= old {
			return err
		}
		return b.Put([]byte(key), binary.BigEndian.AppendUint64(nil, seq))
	})
	if err != nil {
		return fmt.Errorf("history %s: endpoint %q: acknowledging entry %d: %w", s.path, key, seq, err)
	}
	return nil
}

// decodeAck reads a value of the acks bucket: the acknowledged seq, 8
// bytes big endian; a missing value is 0.
func decodeAck(v []byte) (uint64, error) {
	switch len(v) {
	case 0:
		return 0, nil
	case 8:
		return binary.BigEndian.Uint64(v), nil
	}
	return 0, fmt.Errorf("malformed acknowledgement (%d bytes)", len(v))
}
