package history

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/xmppcert/xmppcert/internal/tlsscan"
)

// Scan is the newest full TLS scan of one endpoint: the manifesto grade's
// version and forward-secrecy requirements are judged on it until the
// next one, which may be a day away.
type Scan struct {
	// At is when the scan ran.
	At time.Time
	// Report is what it found, without the certificates (the daemon's
	// scans do not collect them) and with at most storedErrors errors.
	Report tlsscan.Report
}

// ScanTimes returns, per target key (the daemon's name for one probe of a
// domain's service), when its last full scan ran. It reads a snapshot
// and works on a Store opened ReadOnly; a file written before full scans
// were kept has none.
func (s *Store) ScanTimes() (map[string]time.Time, error) {
	out := map[string]time.Time{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketScanned)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("malformed scan time of %q", k)
			}
			out[string(k)] = time.Unix(0, int64(binary.BigEndian.Uint64(v)))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("history %s: scan times: %w", s.path, err)
	}
	return out, nil
}

// Scan returns the newest full scan of the endpoint key, nil when it has
// none.
func (s *Store) Scan(key string) (*Scan, error) {
	var sc *Scan
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketScans)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		var st storedScan
		if err := json.Unmarshal(v, &st); err != nil {
			return err
		}
		sc = st.scan()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history %s: endpoint %q: scan: %w", s.path, key, err)
	}
	return sc, nil
}

// RecordScans records, in one transaction, when each target was scanned
// (targets: target key to time) and each endpoint's scan (scans:
// endpoint key to scan), replacing the ones before. A target whose scan
// reached no endpoint is recorded too, so that it waits for its next turn
// like the others.
func (s *Store) RecordScans(targets map[string]time.Time, scans map[string]Scan) error {
	if s.readOnly {
		return fmt.Errorf("history %s: %w", s.path, ErrReadOnly)
	}
	if len(targets) == 0 && len(scans) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		times, reports := tx.Bucket(bucketScanned), tx.Bucket(bucketScans)
		if times == nil || reports == nil {
			return fmt.Errorf("buckets missing")
		}
		for k, at := range targets {
			if err := times.Put([]byte(k), binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano()))); err != nil {
				return err
			}
		}
		for k, sc := range scans {
			v, err := json.Marshal(storeScan(sc))
			if err != nil {
				return err
			}
			if err := reports.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("history %s: recording %d scans: %w", s.path, len(scans), err)
	}
	return nil
}

// storedScan is a Scan as the history keeps it: the suites by number
// only (tlsscan.CipherByID gives back the rest), so that a day of scans
// of 10,000 endpoints stays a few megabytes (README, "Watching 10,000
// endpoints").
type storedScan struct {
	At       int64           `json:"t"`
	Versions []storedVersion `json:"v"`
	TLS12    []uint16        `json:"c12,omitempty"`
	TLS13    []uint16        `json:"c13,omitempty"`
	Pref     *bool           `json:"p,omitempty"`
	Pref13   *bool           `json:"p13,omitempty"`
	NonFS    bool            `json:"nfs,omitempty"`
	Conns    int             `json:"n,omitempty"`
	Errors   []string        `json:"e,omitempty"`
}

// storedVersion is a tlsscan.Version with its suite by number (0: none).
type storedVersion struct {
	Name    string `json:"n"`
	Offered bool   `json:"o,omitempty"`
	Detail  string `json:"d,omitempty"`
	Cipher  uint16 `json:"c,omitempty"`
}

// storedErrors bounds how many of a scan's errors are kept.
const storedErrors = 8

func storeScan(sc Scan) storedScan {
	r := sc.Report
	st := storedScan{At: sc.At.UnixNano(), Pref: r.ServerPreference, Pref13: r.TLS13ServerPreference,
		NonFS: r.NonForwardSecret, Conns: r.Connections, Errors: r.Errors[:min(len(r.Errors), storedErrors)]}
	for _, v := range r.Versions {
		sv := storedVersion{Name: v.Name, Offered: v.Offered, Detail: v.Detail}
		if v.Cipher != nil {
			sv.Cipher = v.Cipher.ID
		}
		st.Versions = append(st.Versions, sv)
	}
	for _, c := range r.TLS12Ciphers {
		st.TLS12 = append(st.TLS12, c.ID)
	}
	for _, c := range r.TLS13Ciphers {
		st.TLS13 = append(st.TLS13, c.ID)
	}
	return st
}

func (st storedScan) scan() *Scan {
	r := tlsscan.Report{Versions: []tlsscan.Version{}, TLS12Ciphers: []tlsscan.Cipher{}, TLS13Ciphers: []tlsscan.Cipher{},
		ServerPreference: st.Pref, TLS13ServerPreference: st.Pref13, NonForwardSecret: st.NonFS,
		Connections: st.Conns, Errors: st.Errors, Certificates: []tlsscan.CertificateSeen{}}
	if r.Errors == nil {
		r.Errors = []string{}
	}
	for _, sv := range st.Versions {
		v := tlsscan.Version{Name: sv.Name, Offered: sv.Offered, Detail: sv.Detail}
		if sv.Cipher != 0 {
			c := tlsscan.CipherByID(sv.Cipher)
			v.Cipher = &c
		}
		r.Versions = append(r.Versions, v)
	}
	for _, id := range st.TLS12 {
		r.TLS12Ciphers = append(r.TLS12Ciphers, tlsscan.CipherByID(id))
	}
	for _, id := range st.TLS13 {
		r.TLS13Ciphers = append(r.TLS13Ciphers, tlsscan.CipherByID(id))
	}
	return &Scan{At: time.Unix(0, st.At), Report: r}
}
