package acme

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"time"
)

// Next-key rollover. Every lineage version carries the key the lineage
// will move to (Lineage.NextKey), so that pin data (TLSA 3 1 1, SPKI
// pins) for it can be published before any certificate uses it. The pin
// state, STATE/pins/NAME.json, records when the pins of each key were
// first published. A renewal that would change the key (no --reuse-key)
// switches to the next key only when
//
//   - no pin of the lineage was ever published through xmppcert: nobody
//     relies on the key, so renewal moves on freely; or
//   - the next key's pins have been public for the hold time, so that
//     caches holding the old record set have expired.
//
// Otherwise it keeps the current key for this renewal and says why: a
// renewal never breaks a published pin.
//
// POSH pins certificates, not keys, so every renewal changes what it
// must list. Once POSH documents of a lineage have been written through
// xmppcert (PinState.POSH), a renewal stages the new certificate: the
// version is written but not made current (Request.Stage), POSH is
// rewritten to list the current and the staged certificate, and a later
// run makes the staged version current once the documents have listed it
// for their lifetime (StagedReady), so that no client holds a cached
// document without it.
const pinsDir = "pins"

// DefaultHold is the hold time when none was recorded: twice the default
// TLSA TTL of an hour, so that a resolver's cached record set has expired
// twice over before the key changes.
const DefaultHold = 2 * time.Hour

// PinState is what xmppcert knows of the lineage's published pins.
type PinState struct {
	// Published maps the SPKI digest (SPKIDigest) of a key to when pins
	// for it were first published. Only the current and next keys are
	// kept.
	Published map[string]time.Time `json:"published,omitempty"`
	// HoldSeconds is how long the next key's pins must have been public
	// before a renewal switches to it; 0 means DefaultHold.
	HoldSeconds int64 `json:"hold_seconds,omitempty"`
	// POSH is where and when POSH documents of the lineage were last
	// written; nil when never.
	POSH *POSHPublication `json:"posh,omitempty"`
	// Staged is a version written ahead of being made current (0: none),
	// StagedAt when. A staged version not above the current one is stale
	// (an issue made a newer version current) and is ignored.
	Staged   int       `json:"staged,omitempty"`
	StagedAt time.Time `json:"staged_at,omitzero"`
}

// POSHPublication records POSH documents xmppcert wrote for a lineage,
// so that renewal can rewrite them when it stages and switches versions.
type POSHPublication struct {
	// Dir is the web root, Services the documents written there.
	Dir      string   `json:"dir"`
	Services []string `json:"services"`
	// ExpiresSeconds is the documents' "expires": how long clients may
	// cache them, and so how long a staged certificate must be listed
	// before it goes live.
	ExpiresSeconds int64 `json:"expires_seconds"`
	SHA512         bool  `json:"sha512,omitempty"`
	// Written is when they were last written, Certs the hex SHA-256 of
	// the certificates they listed.
	Written time.Time `json:"written"`
	Certs   []string  `json:"certs"`
}

// POSHServed is what one node of a cluster serves as a lineage's POSH
// documents, each node writing its own web root (README, "Cluster
// mode"): a staged certificate goes live once every live node's
// documents have listed it for their lifetime.
type POSHServed struct {
	// Dir is the node's web root the documents are written into.
	Dir string `json:"dir"`
	// Certs are the hex SHA-256 of the certificates the node's documents
	// list, as POSHPublication.Certs.
	Certs []string `json:"certs"`
	// Since is when the node's documents began listing them.
	Since time.Time `json:"since"`
}

// Lists reports whether the documents list cert.
func (p *POSHPublication) Lists(cert *x509.Certificate) bool {
	d := sha256.Sum256(cert.Raw)
	return p != nil && slices.Contains(p.Certs, hex.EncodeToString(d[:]))
}

// StagedFor returns the staged version when there is one above current.
func (p PinState) StagedFor(current int) (int, bool) {
	return p.Staged, p.Staged > current
}

// StagedReady says whether a staged certificate may go live at now: POSH
// has listed it for the documents' lifetime since it was staged, or the
// current certificate expires within a day (an expired certificate
// breaks more than a cached document does). When it may not, it returns
// when it may, or the zero time when POSH does not list it yet.
func (p PinState) StagedReady(staged, current *x509.Certificate, now time.Time) (bool, time.Time) {
	if !now.Before(current.NotAfter.Add(-24 * time.Hour)) {
		return true, now
	}
	if !p.POSH.Lists(staged) || p.POSH.Written.Before(p.StagedAt) {
		return false, time.Time{}
	}
	at := p.POSH.Written.Add(time.Duration(p.POSH.ExpiresSeconds) * time.Second)
	return !now.Before(at), at
}

// SavePinState replaces the lineage's pin state. The caller holds the
// lineage's lock.
func (s DiskStore) SavePinState(name string, p PinState) error {
	return s.writeJSONFile(filepath.Join(s.Dir, pinsDir, name+".json"), p)
}

// Hold is the state's hold time.
func (p PinState) Hold() time.Duration {
	if p.HoldSeconds <= 0 {
		return DefaultHold
	}
	return time.Duration(p.HoldSeconds) * time.Second
}

// Pinned reports whether pins of the lineage have been published.
func (p PinState) Pinned() bool { return len(p.Published) > 0 }

// PublishedFor says since when the pins of key have been public.
func (p PinState) PublishedFor(key crypto.PublicKey) (time.Time, bool) {
	t, ok := p.Published[SPKIDigest(key)]
	return t, ok
}

// SPKIDigest is the hex SHA-256 of a public key's DER SubjectPublicKeyInfo,
// the digest TLSA 3 1 1 records publish. It names keys in PinState.
func SPKIDigest(key crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return ""
	}
	d := sha256.Sum256(der)
	return hex.EncodeToString(d[:])
}

// PinState reads the lineage's pin state; a lineage never pinned has the
// zero state.
func (s DiskStore) PinState(name string) (PinState, error) {
	var p PinState
	err := readJSON(filepath.Join(s.Dir, pinsDir, name+".json"), &p)
	return p, err
}

// MarkPublished records in s that pins for keys have been published now (a
// key already recorded keeps its first time) and sets the hold time when
// hold is positive. Entries for keys that are neither the lineage's
// current nor its next key are dropped. The caller holds the lineage's
// lock, so that a renewal cannot switch keys in between.
func MarkPublished(s Store, l *Lineage, keys []crypto.PublicKey, hold time.Duration, now time.Time) (PinState, error) {
	p, err := s.PinState(l.Name)
	if err != nil {
		return p, err
	}
	live := map[string]bool{SPKIDigest(l.Key.Public()): true}
	if l.NextKey != nil {
		live[SPKIDigest(l.NextKey.Public())] = true
	}
	published := map[string]time.Time{}
	for d, t := range p.Published {
		if live[d] {
			published[d] = t
		}
	}
	for _, k := range keys {
		d := SPKIDigest(k)
		if !live[d] {
			return p, fmt.Errorf("lineage %s: a key that is neither its current nor its next key cannot be marked published", l.Name)
		}
		if _, ok := published[d]; !ok {
			published[d] = now.UTC()
		}
	}
	p.Published = published
	if hold > 0 {
		p.HoldSeconds = int64((hold + time.Second - 1) / time.Second)
	}
	return p, s.SavePinState(l.Name, p)
}

// KeyChoice says which key an issuance used.
type KeyChoice string

// Key choices, as Obtained.KeyChoice reports them.
const (
	KeyNew    KeyChoice = "new"    // a first issuance, or a lineage without a usable next key
	KeyReused KeyChoice = "reused" // --reuse-key: the current key, pins unchanged
	KeyNext   KeyChoice = "next"   // the pre-made next key; a new next key was made
	KeyHeld   KeyChoice = "held"   // the current key, kept because the next key's pins are not public long enough
)

// keyPlan is the key for an issuance, the next key to store with it, and
// why.
type keyPlan struct {
	key, next crypto.Signer
	choice    KeyChoice
	note      string
}

// planKey chooses the key for a new version of a lineage whose current
// version is cur (nil for none), by the rules above.
func planKey(req Request, cur *Lineage, pins PinState, now time.Time) (keyPlan, error) {
	gen := req.Key.Generate
	if cur == nil {
		key, err := gen()
		if err != nil {
			return keyPlan{}, err
		}
		next, err := gen()
		return keyPlan{key: key, next: next, choice: KeyNew}, err
	}
	next := cur.NextKey
	if next == nil || !req.Key.Matches(next) {
		var err error
		if next, err = gen(); err != nil {
			return keyPlan{}, err
		}
	}
	switchNow := func(note string) (keyPlan, error) {
		fresh, err := gen()
		return keyPlan{key: next, next: fresh, choice: KeyNext, note: note}, err
	}
	if req.KeyCompromised {
		// Never the compromised key again: the next key, whose pins (if
		// any) were published beside the current key's, at once.
		note := "the current key was revoked as compromised: moved to the next key"
		if since, ok := pins.PublishedFor(next.Public()); ok {
			note += fmt.Sprintf(", whose pins are public since %s", stamp(since))
		} else if pins.Pinned() {
			note += ", whose pins are not published yet: publish them now"
		}
		return switchNow(note)
	}
	if req.ReuseKey && req.Key.Matches(cur.Key) {
		return keyPlan{key: cur.Key, next: next, choice: KeyReused}, nil
	}
	if !pins.Pinned() {
		return switchNow("")
	}
	hold := pins.Hold()
	since, ok := pins.PublishedFor(next.Public())
	switch {
	case ok && !now.Before(since.Add(hold)):
		return switchNow(fmt.Sprintf("its pins were published %s, more than the %s hold ago", stamp(since), hold))
	case ok:
		return keyPlan{key: cur.Key, next: next, choice: KeyHeld,
			note: fmt.Sprintf("kept the current key: the next key's pins were published %s and its %s hold ends %s", stamp(since), hold, stamp(since.Add(hold)))}, nil
	}
	return keyPlan{key: cur.Key, next: next, choice: KeyHeld,
		note: "kept the current key: the next key's pins are not published yet; publish them (xmppcert pin publish, or pin tlsa's records marked as published), and the key changes after the hold time"}, nil
}
