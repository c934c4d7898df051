package acme_test

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testpki"
)

func sameKey(a, b crypto.Signer) bool {
	return acme.SPKIDigest(a.Public()) == acme.SPKIDigest(b.Public())
}

// TestNextKeyRollover walks a lineage through renewals: without
// published pins each renewal moves to the pre-made next key; once pins
// are published, a renewal keeps the current key until the next key's
// pins have been public for the hold time, then switches and makes a new
// next key; --reuse-key keeps both keys.
func TestNextKeyRollover(t *testing.T) {
	dir := t.TempDir()
	s := acme.DiskStore{Dir: dir}
	iss := newTestIssuer(t)
	req := request(t, "example.org", acme.KeyECDSAP256, false)

	v1 := mustObtain(t, s, iss, req)
	if v1.KeyChoice != acme.KeyNew || v1.NextKey == nil || sameKey(v1.Key, v1.NextKey) {
		t.Fatalf("first issuance: choice %q, next key %v; want a new key and a different next key", v1.KeyChoice, v1.NextKey != nil)
	}
	if p := perm(t, filepath.Join(dir, "live", "example.org", acme.NextKeyFile)); p != 0o600 {
		t.Errorf("next key mode %v; want 0600", p)
	}
	loaded, err := s.Load("example.org")
	if err != nil || !sameKey(loaded.NextKey, v1.NextKey) {
		t.Fatalf("Load: %v; next key read back %v", err, err == nil && sameKey(loaded.NextKey, v1.NextKey))
	}

	// Nothing published: the renewal moves to the next key.
	v2 := mustObtain(t, s, iss, req)
	if v2.KeyChoice != acme.KeyNext || !sameKey(v2.Key, v1.NextKey) || sameKey(v2.NextKey, v1.NextKey) {
		t.Fatalf("unpinned renewal: choice %q, moved to the old next key %v; want the next key and a fresh next key", v2.KeyChoice, sameKey(v2.Key, v1.NextKey))
	}

	// Only the current key's pins are published: the next key is unknown
	// to resolvers, so the renewal keeps the current key.
	now := time.Now()
	if _, err := acme.MarkPublished(s, v2.Lineage, []crypto.PublicKey{v2.Key.Public()}, time.Hour, now); err != nil {
		t.Fatal(err)
	}
	v3 := mustObtain(t, s, iss, req)
	if v3.KeyChoice != acme.KeyHeld || !sameKey(v3.Key, v2.Key) || !sameKey(v3.NextKey, v2.NextKey) || !strings.Contains(v3.KeyNote, "not published") {
		t.Fatalf("pinned renewal, next key unpublished: choice %q (%s); want the current key kept", v3.KeyChoice, v3.KeyNote)
	}

	// The next key's pins are published but the hold has not passed.
	if _, err := acme.MarkPublished(s, v3.Lineage, []crypto.PublicKey{v3.NextKey.Public()}, time.Hour, now.Add(-30*time.Minute)); err != nil {
		t.Fatal(err)
	}
	v4 := mustObtain(t, s, iss, req)
	if v4.KeyChoice != acme.KeyHeld || !sameKey(v4.Key, v2.Key) || !strings.Contains(v4.KeyNote, "1h0m0s hold ends") {
		t.Fatalf("renewal inside the hold: choice %q (%s); want the current key kept", v4.KeyChoice, v4.KeyNote)
	}

	// After the hold the renewal switches, and makes a new next key.
	ps, _ := s.PinState("example.org")
	ps.Published[acme.SPKIDigest(v4.NextKey.Public())] = now.Add(-2 * time.Hour)
	writePinState(t, dir, "example.org", ps)
	v5 := mustObtain(t, s, iss, req)
	if v5.KeyChoice != acme.KeyNext || !sameKey(v5.Key, v4.NextKey) || sameKey(v5.NextKey, v4.NextKey) {
		t.Fatalf("renewal after the hold: choice %q (%s); want the next key", v5.KeyChoice, v5.KeyNote)
	}

	// --reuse-key keeps the key and the next key, pins stay valid.
	reuse := request(t, "example.org", acme.KeyECDSAP256, true)
	v6 := mustObtain(t, s, iss, reuse)
	if v6.KeyChoice != acme.KeyReused || !sameKey(v6.Key, v5.Key) || !sameKey(v6.NextKey, v5.NextKey) {
		t.Fatalf("--reuse-key: choice %q; want both keys kept", v6.KeyChoice)
	}
}

// TestMarkPublished checks the pin state's bookkeeping: first times are
// kept, keys that left the lineage are dropped, foreign keys refused.
func TestMarkPublished(t *testing.T) {
	dir := t.TempDir()
	s := acme.DiskStore{Dir: dir}
	iss := newTestIssuer(t)
	req := request(t, "example.org", acme.KeyECDSAP256, false)
	v1 := mustObtain(t, s, iss, req)
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	p, err := acme.MarkPublished(s, v1.Lineage, []crypto.PublicKey{v1.Key.Public(), v1.NextKey.Public()}, 0, t0)
	if err != nil || len(p.Published) != 2 || p.Hold() != acme.DefaultHold {
		t.Fatalf("MarkPublished: %v, %d keys, hold %v; want 2 keys and the default hold", err, len(p.Published), p.Hold())
	}
	p, err = acme.MarkPublished(s, v1.Lineage, []crypto.PublicKey{v1.Key.Public()}, 90*time.Minute, t0.Add(time.Hour))
	if since, _ := p.PublishedFor(v1.Key.Public()); err != nil || !since.Equal(t0) || p.Hold() != 90*time.Minute {
		t.Errorf("second mark: %v, since %v, hold %v; want the first time kept and the new hold", err, since, p.Hold())
	}
	other := mustObtain(t, s, iss, request(t, "example.net", acme.KeyECDSAP256, false))
	if _, err := acme.MarkPublished(s, v1.Lineage, []crypto.PublicKey{other.Key.Public()}, 0, t0); err == nil {
		t.Errorf("marking another lineage's key was accepted")
	}
	// The lineage moves on (nothing holds it: its pins' hold has long
	// passed); the retired key's entry goes at the next mark.
	v2 := mustObtain(t, s, iss, req)
	p, err = acme.MarkPublished(s, v2.Lineage, nil, 0, t0.Add(3*time.Hour))
	if _, ok := p.PublishedFor(v1.Key.Public()); err != nil || ok || len(p.Published) != 1 {
		t.Errorf("after the switch: %v, retired key kept %v, %d entries; want only the new current key", err, ok, len(p.Published))
	}
}

func writePinState(t *testing.T, dir, name string, p acme.PinState) {
	t.Helper()
	writeJSONFile(t, filepath.Join(dir, "pins", name+".json"), p)
}

func writeJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestStagedVersion checks that a staged issuance leaves the current
// version in place, can be read, and goes live with Promote.
func TestStagedVersion(t *testing.T) {
	dir := t.TempDir()
	s := acme.DiskStore{Dir: dir}
	iss := newTestIssuer(t)
	req := request(t, "example.org", acme.KeyECDSAP256, false)
	v1 := mustObtain(t, s, iss, req)
	req.Stage = true
	staged := mustObtain(t, s, iss, req)
	if cur, err := s.Load("example.org"); err != nil || cur.Version != 1 {
		t.Fatalf("after staging: current version %v, %v; want 1", cur, err)
	}
	if staged.Version != 2 || staged.Path != filepath.Join(dir, "archive", "example.org", "000002") {
		t.Errorf("staged version %d at %s; want 2 in the archive", staged.Version, staged.Path)
	}
	got, err := s.LoadVersion("example.org", 2)
	if err != nil || !got.Chain[0].Equal(staged.Chain[0]) || !sameKey(got.Key, v1.NextKey) {
		t.Fatalf("LoadVersion: %v; want the staged certificate with the old next key", err)
	}
	if _, err := s.LoadVersion("example.org", 3); err == nil {
		t.Errorf("LoadVersion of a version that does not exist succeeded")
	}
	live, err := s.Promote("example.org", 2)
	if err != nil || live.Path != filepath.Join(dir, "live", "example.org") {
		t.Fatalf("Promote: %v, path %v", err, live)
	}
	if cur, err := s.Load("example.org"); err != nil || cur.Version != 2 || !cur.Chain[0].Equal(staged.Chain[0]) {
		t.Errorf("after Promote: %v, %v; want version 2 current", cur, err)
	}
}

// TestStagedReady checks when a staged certificate may go live: once
// POSH, rewritten after the staging, has listed it for its lifetime, or
// at once when the current certificate expires within a day.
func TestStagedReady(t *testing.T) {
	ca := testpki.NewRoot("staging test CA", nil)
	current, _ := ca.Leaf(nil) // 90 days
	staged, _ := ca.Leaf(nil)
	t0 := current.NotBefore.Add(time.Hour)
	listed := &acme.POSHPublication{ExpiresSeconds: 3600, Written: t0, Certs: []string{sha256Hex(current.Raw), sha256Hex(staged.Raw)}}
	for _, tc := range []struct {
		name   string
		p      acme.PinState
		now    time.Time
		ready  bool
		wantAt time.Time
	}{
		{"not listed", acme.PinState{StagedAt: t0, POSH: &acme.POSHPublication{ExpiresSeconds: 3600, Written: t0, Certs: []string{sha256Hex(current.Raw)}}}, t0.Add(2 * time.Hour), false, time.Time{}},
		{"listed before staging", acme.PinState{StagedAt: t0.Add(time.Minute), POSH: listed}, t0.Add(2 * time.Hour), false, time.Time{}},
		{"inside the lifetime", acme.PinState{StagedAt: t0, POSH: listed}, t0.Add(30 * time.Minute), false, t0.Add(time.Hour)},
		{"after the lifetime", acme.PinState{StagedAt: t0, POSH: listed}, t0.Add(time.Hour), true, t0.Add(time.Hour)},
		{"current expiring", acme.PinState{StagedAt: t0}, current.NotAfter.Add(-time.Hour), true, current.NotAfter.Add(-time.Hour)},
	} {
		ready, at := tc.p.StagedReady(staged, current, tc.now)
		if ready != tc.ready || !at.Equal(tc.wantAt) {
			t.Errorf("%s: StagedReady = %v, %v; want %v, %v", tc.name, ready, at, tc.ready, tc.wantAt)
		}
	}
}

func sha256Hex(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}
