package history

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/xmppcert/xmppcert/watcher"
)

// DefaultTimeout is how long Open waits for the file lock when
// Options.Timeout is zero: long enough to ride over another process's
// commit, short enough that a command whose file is held by the daemon
// says so promptly instead of hanging.
const DefaultTimeout = 2 * time.Second

// Options configure Open. The zero value opens read-write and waits
// DefaultTimeout for the lock.
type Options struct {
	// Timeout bounds the wait for the file lock (bbolt's flock). Zero
	// means DefaultTimeout; a negative value waits without limit, which
	// only a process that must own the file (the daemon) should choose.
	Timeout time.Duration
	// ReadOnly opens the file with a shared lock for reading: several
	// readers may coexist, but none while a writer holds the file. The
	// file must exist. Writes return ErrReadOnly.
	ReadOnly bool
}

// Store is an open history file. Its methods are safe for concurrent use;
// writes are serialized by bbolt.
type Store struct {
	db       *bolt.DB
	path     string
	readOnly bool
}

// Entry is one stored observation with the span of time over which the
// endpoint kept showing it. Observation.At equals FirstSeen.
type Entry struct {
	watcher.Observation
	// Seq numbers an endpoint's entries from 1 in the order they were
	// recorded; it survives Prune, so it can name an entry (e.g. to
	// acknowledge a change).
	Seq uint64 `json:"seq"`
	// FirstSeen and LastSeen are the first and the latest probe that
	// showed this observation.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
}

// Result says what RecordAll did with one observation.
type Result struct {
	// Changed is true when the observation was stored as a new entry:
	// the endpoint's first, or one that differs from the previous.
	Changed bool
	// Prev is the observation that was current before a change; nil
	// when nothing changed or the endpoint is new.
	Prev *watcher.Observation
}

var (
	// ErrLocked is matched (errors.Is) by the *LockedError that Open
	// returns when another handle holds the file lock.
	ErrLocked = errors.New("history file is locked by another process")
	// ErrReadOnly is returned by writes on a Store opened ReadOnly.
	ErrReadOnly = errors.New("history opened read-only")
)

// LockedError reports that Open gave up waiting for the file lock,
// naming the file and what to do about it.
type LockedError struct {
	// Path is the history file.
	Path string
	// ReadOnly says whether the Open that failed was read-only.
	ReadOnly bool
	// Waited is how long Open waited for the lock.
	Waited time.Duration
}

// Error says which file is locked, by whom most likely, and what to do.
func (e *LockedError) Error() string {
	how := "for writing"
	if e.ReadOnly {
		how = "for reading"
	}
	return fmt.Sprintf("history %s: cannot open %s: locked by another process (most likely a running \"xmppcert daemon\"; a command reading it holds it only briefly) after waiting %v; "+
		"ask the daemon instead (\"xmppcert status\" uses its API) or stop it and try again", e.Path, how, e.Waited)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// FormatError reports a file written in a format this version does not
// understand, so that it is refused rather than misread.
type FormatError struct {
	// Path is the history file.
	Path string
	// Format is the format the file records (empty if none).
	Format string
}

// Error names the file and both formats, and says what to do.
func (e *FormatError) Error() string {
	return fmt.Sprintf("history %s: format %q, but this xmppcert understands %q: upgrade xmppcert, or move the file aside to start a new history", e.Path, e.Format, formatVersion)
}

const (
	formatVersion = "1"
	entryFormat   = byte(1)
	entryHeader   = 17 // format byte, first_seen, last_seen
)

var (
	bucketMeta    = []byte("meta")
	bucketCurrent = []byte("current")
	bucketEntries = []byte("entries")
	bucketAcks    = []byte("acks")
	bucketScanned = []byte("scanned")
	bucketScans   = []byte("scans")
	keyFormat     = []byte("format")
)

// Open opens the history at path, creating it (0600, its directory 0700)
// unless opts.ReadOnly. It waits at most opts.Timeout for the file lock
// and then returns a *LockedError; see the package documentation for how
// the daemon and the CLI share the file.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		timeout = 0 // bbolt: wait forever
	}
	if opts.ReadOnly {
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("history %s does not exist: the daemon creates it when it first records a probe: %w", path, err)
			}
			return nil, fmt.Errorf("history %s: %w", path, err)
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("history %s: creating its directory: %w", path, err)
		}
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: opts.ReadOnly})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, &LockedError{Path: path, ReadOnly: opts.ReadOnly, Waited: timeout}
		}
		return nil, fmt.Errorf("history %s: %w (if the file is damaged, move it aside; the daemon starts a new history)", path, err)
	}
	s := &Store{db: db, path: path, readOnly: opts.ReadOnly}
	if !opts.ReadOnly {
		// bbolt applies the mode only when it creates the file.
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				db.Close()
				return nil, fmt.Errorf("history %s: restricting its mode to 0600: %w", path, err)
			}
		}
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// init creates the buckets of a new file and checks the format of an
// existing one.
func (s *Store) init() error {
	check := func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if m == nil {
			return nil
		}
		if f := string(m.Get(keyFormat)); f != formatVersion {
			return &FormatError{Path: s.path, Format: f}
		}
		return nil
	}
	if s.readOnly {
		return s.db.View(check)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := check(tx); err != nil {
			return err
		}
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if m.Get(keyFormat) == nil {
			if err := m.Put(keyFormat, []byte(formatVersion)); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{bucketCurrent, bucketEntries, bucketAcks, bucketScanned, bucketScans} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
}

// Path is the file the Store has open.
func (s *Store) Path() string { return s.path }

// Close releases the file and its lock. Pending transactions finish first.
func (s *Store) Close() error { return s.db.Close() }

// Record stores obs if it differs from its endpoint's current entry, and
// otherwise only advances that entry's last-seen time. changed is true
// when a new entry was stored; prev is then the observation it replaced
// (nil for a new endpoint). An observation with a zero At is taken as
// seen now. Each call is one commit; a sweep should use RecordAll.
func (s *Store) Record(obs watcher.Observation) (changed bool, prev *watcher.Observation, err error) {
	rs, err := s.RecordAll([]watcher.Observation{obs})
	if err != nil {
		return false, nil, err
	}
	return rs[0].Changed, rs[0].Prev, nil
}

// RecordAll records every observation, in order, in one transaction (one
// commit, one fsync): either all are stored or, on error, none. The
// results are in the order of obs.
func (s *Store) RecordAll(obs []watcher.Observation) ([]Result, error) {
	if s.readOnly {
		return nil, fmt.Errorf("history %s: %w", s.path, ErrReadOnly)
	}
	for _, o := range obs {
		if strings.IndexByte(o.Endpoint.String(), 0) >= 0 {
			return nil, fmt.Errorf("history %s: endpoint %q: key contains a NUL byte", s.path, o.Endpoint.String())
		}
	}
	var rs []Result
	err := s.db.Update(func(tx *bolt.Tx) error {
		rs = make([]Result, len(obs))
		cur, ent := tx.Bucket(bucketCurrent), tx.Bucket(bucketEntries)
		if cur == nil || ent == nil {
			return fmt.Errorf("buckets missing")
		}
		now := time.Now()
		for i, o := range obs {
			if o.At.IsZero() {
				o.At = now
			}
			r, err := record(cur, ent, o)
			if err != nil {
				return fmt.Errorf("endpoint %q: %w", o.Endpoint.String(), err)
			}
			rs[i] = r
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history %s: recording: %w", s.path, err)
	}
	return rs, nil
}

// record is one observation's part of RecordAll.
func record(cur, ent *bolt.Bucket, o watcher.Observation) (Result, error) {
	key := []byte(o.Endpoint.String())
	at := o.At.UnixNano()
	c := cur.Get(key)
	if c != nil {
		seq, last, err := decodeCurrent(c)
		if err != nil {
			return Result{}, err
		}
		ek := entryKey(key, seq)
		v := ent.Get(ek)
		if v == nil {
			return Result{}, fmt.Errorf("current entry %d missing", seq)
		}
		e, err := decodeEntry(v)
		if err != nil {
			return Result{}, fmt.Errorf("entry %d: %w", seq, err)
		}
		if e.Observation.Equal(o) {
			if at > last {
				// The cheap path: 16 bytes rewritten, the entry untouched.
				return Result{}, cur.Put(key, encodeCurrent(seq, at))
			}
			return Result{}, nil
		}
		// Seal the superseded entry with its final last_seen.
		sealed := append([]byte(nil), v...)
		binary.BigEndian.PutUint64(sealed[9:17], uint64(last))
		if err := ent.Put(ek, sealed); err != nil {
			return Result{}, err
		}
		prev := e.Observation
		if err := put(cur, ent, key, seq+1, o, at); err != nil {
			return Result{}, err
		}
		return Result{Changed: true, Prev: &prev}, nil
	}
	return Result{Changed: true}, put(cur, ent, key, 1, o, at)
}

// put stores o as entry seq of key and makes it current.
func put(cur, ent *bolt.Bucket, key []byte, seq uint64, o watcher.Observation, at int64) error {
	v, err := encodeEntry(o, at, at)
	if err != nil {
		return err
	}
	if err := ent.Put(entryKey(key, seq), v); err != nil {
		return err
	}
	return cur.Put(key, encodeCurrent(seq, at))
}

// Latest returns the endpoint's current entry, or nil if the endpoint
// has never been recorded. key is watcher.EndpointKey.String().
func (s *Store) Latest(key string) (*Entry, error) {
	es, err := s.History(key, 1)
	if err != nil || len(es) == 0 {
		return nil, err
	}
	return &es[0], nil
}

// History returns the endpoint's entries, newest first, at most limit of
// them (all when limit <= 0); none for an unknown endpoint. key is
// watcher.EndpointKey.String().
func (s *Store) History(key string, limit int) ([]Entry, error) {
	var out []Entry
	err := s.db.View(func(tx *bolt.Tx) error {
		cur, ent := tx.Bucket(bucketCurrent), tx.Bucket(bucketEntries)
		if cur == nil || ent == nil {
			return nil
		}
		c := cur.Get([]byte(key))
		if c == nil {
			return nil
		}
		seq, last, err := decodeCurrent(c)
		if err != nil {
			return err
		}
		prefix := entryPrefix([]byte(key))
		cr := ent.Cursor()
		for k, v := cr.Seek(entryKey([]byte(key), seq)); k != nil; k, v = cr.Prev() {
			if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) || limit > 0 && len(out) >= limit {
				break
			}
			e, err := decodeEntry(v)
			if err != nil {
				return fmt.Errorf("endpoint %q entry %x: %w", key, k[len(prefix):], err)
			}
			e.Seq = binary.BigEndian.Uint64(k[len(prefix):])
			if e.Seq == seq {
				e.LastSeen = time.Unix(0, last).UTC()
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", s.path, err)
	}
	return out, nil
}

// Endpoints lists the keys of every recorded endpoint, sorted bytewise.
func (s *Store) Endpoints() ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bucketCurrent)
		if cur == nil {
			return nil
		}
		return cur.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("history %s: %w", s.path, err)
	}
	return out, nil
}

// Prune deletes the entries last seen before olderThan, except each
// endpoint's current entry, which is kept however old so that the next
// probe is still compared with what the endpoint showed last. It returns
// how many entries it deleted. bbolt reuses the freed pages; the file
// does not shrink. Acknowledgements are left alone: Prune never removes
// an endpoint, and an acknowledged Seq keeps its meaning after the entry
// it names is deleted (Seqs are never reused).
func (s *Store) Prune(olderThan time.Time) (int, error) {
	if s.readOnly {
		return 0, fmt.Errorf("history %s: %w", s.path, ErrReadOnly)
	}
	cutoff := olderThan.UnixNano()
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		cur, ent := tx.Bucket(bucketCurrent), tx.Bucket(bucketEntries)
		if cur == nil || ent == nil {
			return nil
		}
		var doomed [][]byte
		cr := ent.Cursor()
		for k, v := cr.First(); k != nil; k, v = cr.Next() {
			if len(k) < 9 || len(v) < entryHeader {
				return fmt.Errorf("malformed entry %q", k)
			}
			if int64(binary.BigEndian.Uint64(v[9:17])) >= cutoff {
				continue
			}
			key, seq := k[:len(k)-9], binary.BigEndian.Uint64(k[len(k)-8:])
			if c := cur.Get(key); c != nil {
				if cs, _, err := decodeCurrent(c); err == nil && cs == seq {
					continue // the current entry is never pruned
				}
			}
			doomed = append(doomed, append([]byte(nil), k...))
		}
		for _, k := range doomed {
			if err := ent.Delete(k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("history %s: pruning: %w", s.path, err)
	}
	return n, nil
}

// Backup writes a consistent copy of the whole file to w while the Store
// stays usable, so that the daemon can offer a snapshot (to a backup or
// to a CLI that cannot take the lock) without stopping.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("history %s: backup: %w", s.path, err)
	}
	return n, nil
}
