// Package history keeps, per watched endpoint, the observations that
// differ from one another, each with the time it was first and last seen
// (README, "The daemon"). It is the memory behind change alerts, the
// dashboard's per-endpoint history and `xmppcert status`.
//
// # What is stored
//
// An observation (watcher.Observation) that is Equal to the endpoint's
// current entry is not stored again: only the current entry's last-seen
// time moves. That time lives in a small fixed-size value (16 bytes) in a
// bucket of its own, so an unchanged probe rewrites one short record and
// never the observation itself, and a sweep recorded with RecordAll is one
// commit. Measured (TestBytesPerUnchangedObservation, 100,000 unchanged
// observations of 1,000 endpoints in 100 sweeps): the file does not grow
// at all and bbolt's high-water mark grows about 2.4 bytes per
// observation, because bbolt reuses the pages each commit frees; the
// issue's budget is 200 bytes.
//
// Layout (bbolt buckets):
//
//	meta     "format" -> "1"
//	current  KEY -> seq (8 bytes, big endian) | last_seen (8 bytes, Unix ns)
//	entries  KEY 0x00 seq -> format byte | first_seen | last_seen | JSON
//	acks     KEY -> seq (8 bytes, big endian)
//
// KEY is watcher.EndpointKey.String(). seq counts an endpoint's entries
// from 1; the current entry is the one named in "current", and its
// last_seen there is authoritative (the copy inside the entry is written
// when the entry is superseded).
//
// "acks" holds the operator's acknowledgements (the dashboard's
// web.Acks): per endpoint the newest entry whose changes are
// acknowledged. Ack writes it in a short transaction of its own and never
// moves it back, so acknowledgements survive a restart of the daemon.
// Prune keeps them: it never removes an endpoint, and a Seq is never
// reused, so an acknowledgement of a pruned entry still means "every
// change up to here". A file written before the bucket existed gets it
// at the next read-write Open; until then Acked reports 0.
//
// # Encoding
//
// Entries are JSON behind a 17-byte binary header. JSON, because the
// Observation already carries JSON tags that the dashboard's API emits,
// because it survives added fields in both directions, and because a file
// can be read with generic bbolt tools when something goes wrong; its size
// does not matter, as a new entry is written only when something changed.
// Gob would embed type descriptions in every value (each is encoded on its
// own) and tie the format to Go type names. The header keeps first_seen
// and last_seen in binary so that Prune never decodes JSON. Every entry
// starts with a format byte and the meta bucket records the file's format:
// a file written by a newer format is refused with a *FormatError rather
// than misread.
//
// # Sharing between the daemon and the CLI
//
// bbolt locks the whole file with flock(2): a read-write Open takes an
// exclusive lock and a read-only Open a shared one, so a read-only Open
// waits while any read-write handle is open (also in the same process),
// and two read-only opens can coexist. The decision, and why:
//
//   - The daemon is the only writer. It opens the history read-write at
//     start and holds it for its lifetime. Every write is one short
//     transaction (a sweep is one RecordAll), and readers inside the
//     daemon (dashboard, JSON API, metrics) read through bbolt's MVCC
//     snapshots, which never wait for the writer.
//   - `xmppcert status` asks the running daemon through its loopback JSON
//     API. Only when no daemon answers does it Open the file itself, with
//     ReadOnly and a short Timeout. If the lock is still held (a daemon
//     whose API is off, or a second daemon), Open fails after Timeout with
//     a *LockedError (errors.Is(err, ErrLocked)) that names the file and
//     says what to do; the CLI never waits unboundedly and never writes.
//   - `renew` does not touch the history: lineages are separate files with
//     their own locks, so renew and the daemon never contend here.
//   - Not chosen: opening and closing the file around each daemon write
//     (a CLI reader could then delay the daemon's writes by up to its own
//     runtime, and each reopen re-maps the file and re-reads the freelist);
//     several writers (bbolt allows one process; the second would only
//     wait).
//
// Nothing can be corrupted by this sharing: bbolt commits are atomic (the
// new meta page is written and synced last), so a reader sees whole
// commits only and a writer killed with SIGKILL mid-commit leaves the
// previous commit (TestKillMidRecordAll). Check verifies a file: bbolt's
// page consistency and this package's invariants.
//
// Files are created 0600 in a directory created 0700 (state files hold
// what an operator's servers present).
package history
