package acme_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
)

// t0 is when the test certificates start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// leafFor makes a certificate valid from notBefore for lifetime, with
// the given serial: all the policy looks at.
func leafFor(t testing.TB, serial int64, notBefore time.Time, lifetime time.Duration) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), NotBefore: notBefore, NotAfter: notBefore.Add(lifetime)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDecideLifetime checks the rule without renewal information: due
// once a third of the lifetime is left, at once when expired, and
// always when forced, with the time and the reason the output shows.
func TestDecideLifetime(t *testing.T) {
	leaf := leafFor(t, 1, t0, 90*day)
	dueAt := t0.Add(60 * day)
	cases := []struct {
		now    time.Time
		force  bool
		due    bool
		rule   string
		at     time.Time
		reason string
	}{
		{t0, false, false, acme.RuleLifetime, dueAt, "when a third of its lifetime is left"},
		{dueAt.Add(-time.Second), false, false, acme.RuleLifetime, dueAt, "when a third of its lifetime is left"},
		{dueAt, false, true, acme.RuleLifetime, dueAt, "a third or less of its lifetime is left, it expires 2026-05-30 12:00 UTC"},
		{t0.Add(89 * day), false, true, acme.RuleLifetime, dueAt, "a third or less of its lifetime is left, it expires 2026-05-30 12:00 UTC"},
		{t0.Add(90 * day), false, true, acme.RuleLifetime, t0.Add(90 * day), "the certificate expired at 2026-05-30 12:00 UTC"},
		{t0.Add(day), true, true, acme.RuleForce, dueAt, "renewal was forced; by its lifetime it is due 2026-04-30 12:00 UTC"},
		{dueAt, true, true, acme.RuleLifetime, dueAt, "a third or less of its lifetime is left, it expires 2026-05-30 12:00 UTC"},
	}
	for _, c := range cases {
		d := acme.Decide(leaf, c.now, nil, c.force)
		if d.Due != c.due || d.Rule != c.rule || !d.At.Equal(c.at) || d.Reason != c.reason {
			t.Errorf("at %v (force %v): %+v; want due %v, rule %s, at %v, reason %q", c.now, c.force, d, c.due, c.rule, c.at, c.reason)
		}
	}
	// A six-day certificate (Let's Encrypt's short-lived profile) is due
	// with two days left.
	short := leafFor(t, 2, t0, 6*day)
	if d := acme.Decide(short, t0.Add(4*day), nil, false); !d.Due || !d.At.Equal(t0.Add(4*day)) {
		t.Errorf("six-day certificate after four days: %+v; want due at day 4", d)
	}
}

// TestDecideARI checks the CA's window: not due before the time chosen
// in it, due from that time and once the window has ended, whatever the
// lifetime rule says either way; an unusable window and an expired
// certificate fall back to the lifetime rule.
func TestDecideARI(t *testing.T) {
	leaf := leafFor(t, 7, t0, 90*day)
	w := &acme.RenewalWindow{Start: t0.Add(50 * day), End: t0.Add(52 * day)}
	chosen := acme.RenewalTime(leaf, *w)
	if chosen.Before(w.Start) || !chosen.Before(w.End) {
		t.Fatalf("chosen time %v is outside the window %v to %v", chosen, w.Start, w.End)
	}
	before := acme.Decide(leaf, chosen.Add(-time.Nanosecond), w, false)
	if before.Due || before.Rule != acme.RuleARI || !before.At.Equal(chosen) ||
		before.Reason != "at the time chosen in the CA's renewal window 2026-04-20 12:00 UTC to 2026-04-22 12:00 UTC" {
		t.Errorf("just before the chosen time: %+v; want not due, rule ari, at %v", before, chosen)
	}
	at := acme.Decide(leaf, chosen, w, false)
	if !at.Due || at.Rule != acme.RuleARI || !strings.HasSuffix(at.Reason, "has reached the time chosen in it") {
		t.Errorf("at the chosen time: %+v; want due by ari", at)
	}
	ended := acme.Decide(leaf, w.End, w, false)
	if !ended.Due || !ended.At.Equal(w.End) || !strings.HasSuffix(ended.Reason, "has ended") {
		t.Errorf("at the window's end: %+v; want due, at the end", ended)
	}
	// A window in the past (the certificate was revoked, say) makes a
	// young certificate due, and the explanation is passed on.
	revoked := &acme.RenewalWindow{Start: t0.Add(-2 * day), End: t0.Add(-day), ExplanationURL: "https://ca.example/incident"}
	if d := acme.Decide(leaf, t0.Add(day), revoked, false); !d.Due || d.Rule != acme.RuleARI || !strings.Contains(d.Reason, "(the CA explains: https://ca.example/incident)") {
		t.Errorf("window in the past: %+v; want due with the explanation", d)
	}
	// A window later than the lifetime rule's point wins: not due.
	late := &acme.RenewalWindow{Start: t0.Add(70 * day), End: t0.Add(75 * day)}
	if d := acme.Decide(leaf, t0.Add(65*day), late, false); d.Due || d.Rule != acme.RuleARI {
		t.Errorf("window after the lifetime point: %+v; want not due by ari", d)
	}
	if d := acme.Decide(leaf, t0.Add(65*day), late, true); !d.Due || d.Rule != acme.RuleForce ||
		!strings.HasPrefix(d.Reason, "renewal was forced; by the CA's renewal window it is due ") {
		t.Errorf("forced with a window: %+v", d)
	}
	// A window that ends before it starts is no window.
	bad := &acme.RenewalWindow{Start: t0.Add(80 * day), End: t0.Add(10 * day)}
	if d := acme.Decide(leaf, t0.Add(61*day), bad, false); !d.Due || d.Rule != acme.RuleLifetime {
		t.Errorf("backwards window: %+v; want the lifetime rule", d)
	}
	// An expired certificate is due whatever the window says.
	if d := acme.Decide(leaf, t0.Add(91*day), late, false); !d.Due || !strings.HasPrefix(d.Reason, "the certificate expired") {
		t.Errorf("expired with a later window: %+v; want due", d)
	}
}

// TestRenewalTime checks the time chosen in a window: the same for the
// same certificate and window however often it is asked (cron runs
// agree), different for a moved window, and spread evenly over the
// window across certificates, as RFC 9773's random choice is.
func TestRenewalTime(t *testing.T) {
	w := acme.RenewalWindow{Start: t0, End: t0.Add(10 * day)}
	leaf := leafFor(t, 42, t0, 90*day)
	first := acme.RenewalTime(leaf, w)
	for range 3 {
		if again := acme.RenewalTime(leafFor(t, 42, t0.Add(time.Hour), 90*day), w); !again.Equal(first) {
			t.Fatalf("same serial, same window: %v then %v", first, again)
		}
	}
	moved := acme.RenewalWindow{Start: t0.Add(time.Hour), End: t0.Add(10*day + time.Hour)}
	if acme.RenewalTime(leaf, moved).Equal(first.Add(time.Hour)) {
		t.Errorf("a moved window gave the same pick, shifted")
	}
	const n, buckets = 2000, 10
	var count [buckets]int
	tmpl := *leaf
	for i := range n {
		tmpl.SerialNumber = big.NewInt(int64(1000 + i))
		at := acme.RenewalTime(&tmpl, w)
		if at.Before(w.Start) || !at.Before(w.End) {
			t.Fatalf("serial %d: %v outside the window", 1000+i, at)
		}
		count[int(at.Sub(w.Start)/(day))]++
	}
	for i, c := range count {
		// n/buckets = 200 each; a uniform choice stays well within ±30%.
		if c < 140 || c > 260 {
			t.Errorf("day %d of the window got %d of %d renewals; want about %d (counts %v)", i, c, n, n/buckets, count)
		}
	}
}

// fakeAdvisor answers RenewalWindow with a fixed window and counts the
// questions.
type fakeAdvisor struct {
	w     acme.RenewalWindow
	err   error
	asked int
}

func (a *fakeAdvisor) RenewalWindow(context.Context, *x509.Certificate) (acme.RenewalWindow, error) {
	a.asked++
	return a.w, a.err
}

// TestRenewalWindowCache checks that the CA's window is reused until its
// Retry-After, bounded to between a minute and a day (six hours when the
// CA gives none), that a dry run caches nothing, that a renewed
// certificate is asked about afresh, and that a CA without renewal
// information gives no window.
func TestRenewalWindowCache(t *testing.T) {
	ctx := context.Background()
	s := acme.DiskStore{Dir: t.TempDir()}
	iss := newTestIssuer(t)
	mustObtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, false))
	cur, err := s.Current("example.org")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	window := acme.RenewalWindow{Start: now.Add(10 * day), End: now.Add(12 * day)}
	cases := []struct {
		retryAfter time.Duration // from now; 0: none
		interval   time.Duration // how long the answer is reused
	}{
		{2 * time.Hour, 2 * time.Hour},
		{10 * time.Second, acme.ARIMinInterval},
		{3 * day, acme.ARIMaxInterval},
		{0, acme.ARIDefaultInterval},
	}
	for _, c := range cases {
		adv := &fakeAdvisor{w: window}
		if c.retryAfter > 0 {
			adv.w.RetryAfter = now.Add(c.retryAfter)
		}
		os.RemoveAll(filepath.Join(s.Dir, "renew"))
		w, err := acme.RenewalWindowFor(ctx, s, cur, adv, now, true)
		if err != nil || w == nil || !w.Start.Equal(window.Start) || !w.End.Equal(window.End) || !w.RetryAfter.Equal(now.Add(c.interval)) {
			t.Fatalf("Retry-After %v: %+v, %v; want the window, asked again at now+%v", c.retryAfter, w, err, c.interval)
		}
		for _, later := range []time.Duration{time.Second, c.interval - time.Second} {
			w, err := acme.RenewalWindowFor(ctx, s, cur, adv, now.Add(later), true)
			if err != nil || adv.asked != 1 || !w.Start.Equal(window.Start) || !w.End.Equal(window.End) {
				t.Errorf("Retry-After %v, %v later: asked %d times, %+v, %v; want the cached window", c.retryAfter, later, adv.asked, w, err)
			}
		}
		if _, err := acme.RenewalWindowFor(ctx, s, cur, adv, now.Add(c.interval), true); err != nil || adv.asked != 2 {
			t.Errorf("Retry-After %v, at now+%v: asked %d times, %v; want asked again", c.retryAfter, c.interval, adv.asked, err)
		}
	}

	// A dry run asks but keeps nothing.
	os.RemoveAll(filepath.Join(s.Dir, "renew"))
	adv := &fakeAdvisor{w: window}
	for i := range 2 {
		if w, err := acme.RenewalWindowFor(ctx, s, cur, adv, now, false); err != nil || w == nil || adv.asked != i+1 {
			t.Fatalf("dry run %d: %+v, %v, asked %d times", i, w, err, adv.asked)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "renew")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a dry run wrote the cache: %v", err)
	}

	// A renewed certificate has another serial: the cache is not its.
	if _, err := acme.RenewalWindowFor(ctx, s, cur, adv, now, true); err != nil || adv.asked != 3 {
		t.Fatal(err, adv.asked)
	}
	mustObtain(t, s, iss, request(t, "example.org", acme.KeyECDSAP256, false))
	renewed, err := s.Current("example.org")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acme.RenewalWindowFor(ctx, s, renewed, adv, now, true); err != nil || adv.asked != 4 {
		t.Errorf("renewed certificate: asked %d times, %v; want asked again", adv.asked, err)
	}

	// No renewal information, or an error: no window, nothing cached.
	os.RemoveAll(filepath.Join(s.Dir, "renew"))
	if w, err := acme.RenewalWindowFor(ctx, s, cur, &fakeAdvisor{err: acme.ErrNoRenewalInfo}, now, true); w != nil || err != nil {
		t.Errorf("CA without renewal information: %+v, %v; want no window and no error", w, err)
	}
	broken := &fakeAdvisor{err: errors.New("connection refused")}
	if w, err := acme.RenewalWindowFor(ctx, s, cur, broken, now, true); w != nil || err == nil {
		t.Errorf("failing CA: %+v, %v; want the error", w, err)
	}
	if _, err := acme.RenewalWindowFor(ctx, s, cur, broken, now, true); broken.asked != 2 || err == nil {
		t.Errorf("an error was cached: asked %d times", broken.asked)
	}
}

// TestCurrent checks what renewal reads of a lineage, the renewal record
// kept under the lineage's lock, and when a renewal's deploy is pending.
func TestCurrent(t *testing.T) {
	s := acme.DiskStore{Dir: t.TempDir()}
	iss := newTestIssuer(t)
	req := request(t, "example.org", acme.KeyECDSAP256, true)
	req.Days = 30
	got := mustObtain(t, s, iss, req)
	cur, err := s.Current("example.org")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Name != "example.org" || cur.Version != 1 || !cur.Leaf.Equal(got.Chain[0]) ||
		fmt.Sprint(cur.Request.Names) != fmt.Sprint(req.Names) || !cur.Request.ReuseKey || cur.Request.Days != 30 || cur.Request.CA != "local" {
		t.Fatalf("Current: %+v; want version 1 with the stored request and leaf", cur)
	}
	if cur.State != (acme.RenewState{}) || cur.DeployPending() {
		t.Errorf("fresh lineage: state %+v, pending %v", cur.State, cur.DeployPending())
	}
	wait := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	if err := s.SaveRenewState("example.org", acme.RenewState{RenewingFrom: 1, RetryAfter: wait}); err != nil {
		t.Fatal(err)
	}
	cur, err = s.Current("example.org")
	if err != nil || cur.State.RenewingFrom != 1 || !cur.State.RetryAfter.Equal(wait) || cur.DeployPending() {
		t.Fatalf("renewing from the current version: %+v, %v; want the record, no deploy pending", cur, err)
	}
	mustObtain(t, s, iss, req)
	cur, err = s.Current("example.org")
	if err != nil || cur.Version != 2 || !cur.DeployPending() {
		t.Fatalf("a newer version than the renewal started from: %+v, %v; want deploy pending", cur, err)
	}
	if err := s.SaveRenewState("example.org", acme.RenewState{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "renew", "example.org.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("clearing the record left the file: %v", err)
	}
	if err := s.SaveRenewState("example.org", acme.RenewState{}); err != nil {
		t.Errorf("clearing twice: %v", err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "renew", "example.org.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Current("example.org"); err == nil || !strings.Contains(err.Error(), "example.org.json") {
		t.Errorf("corrupt record: %v; want an error naming the file", err)
	}
	if _, err := s.Current("example.net"); !errors.Is(err, acme.ErrNoLineage) {
		t.Errorf("missing lineage: %v; want ErrNoLineage", err)
	}
}

// rateLimited is how an Issuer reports a CA's Retry-After.
type rateLimited struct{ until time.Time }

func (e rateLimited) Error() string         { return "rate limited" }
func (e rateLimited) RetryAfter() time.Time { return e.until }

// TestRetryAfter checks how a CA's Retry-After is found on an Issuer's
// error: a RetryAfter method anywhere in the chain, a zero time being
// none.
func TestRetryAfter(t *testing.T) {
	until := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	cases := []struct {
		err  error
		want time.Time
	}{
		{rateLimited{until}, until},
		{fmt.Errorf("new order: %w", rateLimited{until}), until},
		{fmt.Errorf("renewing: %w", fmt.Errorf("new order: %w", rateLimited{until})), until},
		{rateLimited{}, time.Time{}},
		{errors.New("rejectedIdentifier"), time.Time{}},
		{nil, time.Time{}},
	}
	for _, c := range cases {
		got, ok := acme.RetryAfter(c.err)
		if !got.Equal(c.want) || ok != !c.want.IsZero() {
			t.Errorf("RetryAfter(%v) = %v, %v; want %v", c.err, got, ok, c.want)
		}
	}
}
