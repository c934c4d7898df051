package acme

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"path/filepath"
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
func (s Store) PinState(name string) (PinState, error) {
	var p PinState
	err := readJSON(filepath.Join(s.Dir, pinsDir, name+".json"), &p)
	return p, err
}

// MarkPublished records that pins for keys have been published now (a
// key already recorded keeps its first time) and sets the hold time when
// hold is positive. Entries for keys that are neither the lineage's
// current nor its next key are dropped. The caller holds the lineage's
// lock, so that a renewal cannot switch keys in between.
func (s Store) MarkPublished(l *Lineage, keys []crypto.PublicKey, hold time.Duration, now time.Time) (PinState, error) {
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
	return p, s.writeRenewFile(filepath.Join(s.Dir, pinsDir, l.Name+".json"), p)
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
	if req.ReuseKey && req.Key.Matches(cur.Key) {
		return keyPlan{key: cur.Key, next: next, choice: KeyReused}, nil
	}
	switchNow := func(note string) (keyPlan, error) {
		fresh, err := gen()
		return keyPlan{key: next, next: fresh, choice: KeyNext, note: note}, err
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
		note: "kept the current key: the next key's pins are not published yet; run xmppcert pin publish (or publish `xmppcert pin tlsa` and mark it with --mark-published), and the key changes after the hold time"}, nil
}
