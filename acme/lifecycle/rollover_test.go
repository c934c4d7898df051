package lifecycle

import (
	"context"
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/dnsupdate"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/pinning"
)

func sameKey(a, b crypto.PublicKey) bool {
	e, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && e.Equal(b)
}

// TestKeyRolloverHold: on the engine's clock, a renewal keeps the key
// while the next key's pins have been public for less than the hold
// time, and moves to that next key once they have been public longer.
func TestKeyRolloverHold(t *testing.T) { eachStore(t, testKeyRolloverHold) }

func testKeyRolloverHold(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	e, _ := newEngine(t, clock, ca, newStore)
	if _, err := e.Issue(ctx, request(t, "example.org"), IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	v1, _ := e.Store.Load("example.org")
	clock.Advance(60 * day)
	if err := e.MarkPublished(v1, LineageKeys(v1), 48*time.Hour); err != nil {
		t.Fatal(err)
	}

	clock.Advance(day) // due by the lifetime; the pins are a day old
	got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	v2, _ := e.Store.Load("example.org")
	if got.Result != ResultRenewed || got.Key != string(acme.KeyHeld) || !sameKey(v2.Key.Public(), v1.Key.Public()) || !sameKey(v2.NextKey.Public(), v1.NextKey.Public()) {
		t.Fatalf("a day into the 48h hold: %+v; want renewed with the key held and the same next key", got)
	}

	clock.Advance(2 * day)
	got = e.NewRenewRun(RenewOptions{Force: true}).Lineage(ctx, "example.org")
	v3, _ := e.Store.Load("example.org")
	if got.Result != ResultRenewed || got.Key != string(acme.KeyNext) || !sameKey(v3.Key.Public(), v1.NextKey.Public()) || sameKey(v3.NextKey.Public(), v1.NextKey.Public()) {
		t.Fatalf("after the hold: %+v; want the pre-published next key, and a new next key", got)
	}
}

// TestPOSHStaging: on the engine's clock, a renewal of a lineage whose
// POSH documents xmppcert writes stages the new version and lists it in
// the documents; it goes live only once the documents have listed it
// for their lifetime, and is then deployed and listed alone.
func TestPOSHStaging(t *testing.T) { eachStore(t, testPOSHStaging) }

func testPOSHStaging(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	e, _ := newEngine(t, clock, ca, newStore)
	cmd, log, _ := hook(t)
	req := request(t, "example.org")
	req.Hooks = []string{cmd}
	if _, err := e.Issue(ctx, req, IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	web := t.TempDir()
	if err := e.PublishPOSH("example.org", acme.POSHPublication{Dir: web, Services: []string{"xmpp-client"}, ExpiresSeconds: 3600}); err != nil {
		t.Fatal(err)
	}
	listed := func() int {
		t.Helper()
		rel, _ := pinning.POSHPath("xmpp-client")
		b, err := os.ReadFile(filepath.Join(web, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(b), `"sha-256"`)
	}
	if n := listed(); n != 1 {
		t.Fatalf("the document lists %d certificates; want the current one", n)
	}

	clock.Advance(61 * day)
	got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultStaged || got.Version != 1 || listed() != 2 || len(testtool.Lines(t, log)) != 1 {
		t.Fatalf("due: %+v, %d listed; want version 2 staged beside version 1, nothing deployed", got, listed())
	}
	clock.Advance(30 * time.Minute)
	got = e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultStaged || !strings.Contains(got.Reason, "goes live after") {
		t.Fatalf("half an hour later: %+v; want still staged, saying when it goes live", got)
	}
	clock.Advance(time.Hour)
	got = e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultRenewed || got.Version != 2 || listed() != 1 || len(testtool.Lines(t, log)) != 2 {
		t.Fatalf("after the documents' lifetime: %+v, %d listed; want version 2 live, deployed, listed alone", got, listed())
	}
	if cur, err := e.Store.Current("example.org"); err != nil || cur.Version != 2 {
		t.Errorf("the store's current version after promotion: %+v, %v; want 2", cur, err)
	}
}

// TestPublishTLSALocked: TLSA records are published under the
// lineage's lock, so that one process (on a cluster, the node holding
// the lineage) publishes at a time: with the lock held elsewhere,
// nothing is sent and the error is an *acme.LockedError.
func TestPublishTLSALocked(t *testing.T) { eachStore(t, testPublishTLSALocked) }

func testPublishTLSALocked(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e, _ := newEngine(t, clock, newTestCA(clock), newStore)
	if _, err := e.Issue(ctx, request(t, "example.org"), IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	l, err := e.Store.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}
	// A server that answers nothing: reaching it is an error of its own.
	pub := &pinning.TLSAPublisher{DNS: &dnsupdate.Client{Server: "127.0.0.1:1"}, Zone: "example.org."}
	spec := TLSASpec{Usage: 3, Selector: 1, MatchingType: 1, Endpoints: Endpoints(l.Request, nil, nil)}
	unlock, err := e.Store.Lock("example.org")
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.PublishTLSA(ctx, l, spec, pub, time.Hour, false)
	var held *acme.LockedError
	if !errors.As(err, &held) {
		t.Fatalf("publishing with the lock held elsewhere: %v; want an *acme.LockedError", err)
	}
	unlock()
	if _, err = e.PublishTLSA(ctx, l, spec, pub, time.Hour, false); err == nil || errors.As(err, &held) {
		t.Fatalf("publishing with the lock free: %v; want the server's failure", err)
	}
}
