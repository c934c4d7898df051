package history

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/xmppcert/xmppcert/watcher"
)

// entryKey is KEY 0x00 seq: an endpoint's entries are adjacent and in
// order, so History walks them with one cursor. Keys never contain NUL
// (RecordAll refuses them), so one endpoint's prefix cannot be another's.
func entryKey(key []byte, seq uint64) []byte {
	k := make([]byte, 0, len(key)+9)
	k = append(k, key...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// entryPrefix is the part of entryKey shared by all of key's entries.
func entryPrefix(key []byte) []byte {
	return append(append([]byte(nil), key...), 0)
}

// encodeCurrent is the 16-byte value of the current bucket: the current
// entry's seq and the endpoint's last-seen time. It is all an unchanged
// observation rewrites.
func encodeCurrent(seq uint64, lastSeen int64) []byte {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, seq)
	binary.BigEndian.PutUint64(v[8:], uint64(lastSeen))
	return v
}

func decodeCurrent(v []byte) (seq uint64, lastSeen int64, err error) {
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("malformed current record (%d bytes)", len(v))
	}
	return binary.BigEndian.Uint64(v), int64(binary.BigEndian.Uint64(v[8:])), nil
}

// encodeEntry is the format byte, first_seen and last_seen (Unix ns, big
// endian) and the observation as JSON.
func encodeEntry(o watcher.Observation, firstSeen, lastSeen int64) ([]byte, error) {
	j, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	v := make([]byte, entryHeader, entryHeader+len(j))
	v[0] = entryFormat
	binary.BigEndian.PutUint64(v[1:9], uint64(firstSeen))
	binary.BigEndian.PutUint64(v[9:17], uint64(lastSeen))
	return append(v, j...), nil
}

// decodeEntry reverses encodeEntry; Seq is left for the caller, who
// knows the key.
func decodeEntry(v []byte) (Entry, error) {
	if len(v) < entryHeader {
		return Entry{}, fmt.Errorf("malformed entry (%d bytes)", len(v))
	}
	if v[0] != entryFormat {
		return Entry{}, fmt.Errorf("entry format %d, but this xmppcert understands %d", v[0], entryFormat)
	}
	var e Entry
	if err := json.Unmarshal(v[entryHeader:], &e.Observation); err != nil {
		return Entry{}, fmt.Errorf("decoding entry: %w", err)
	}
	e.FirstSeen = time.Unix(0, int64(binary.BigEndian.Uint64(v[1:9]))).UTC()
	e.LastSeen = time.Unix(0, int64(binary.BigEndian.Uint64(v[9:17]))).UTC()
	return e, nil
}
