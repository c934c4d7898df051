package localca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mholt/acmez/v3/acme"
)

// TestACMECanonicalIdentifiers: an identifier that is not already in
// canonical form is refused with rejectedIdentifier at new-order, before
// the --allow-domain filter or validation sees it. The fullwidth dot
// case passed the filter (IDNA maps U+FF0E to a dot) and had step-ca
// validate evil.xn--comexample-3f99c.org.
func TestACMECanonicalIdentifiers(t *testing.T) {
	for _, allow := range [][]string{nil, {"example.org"}} {
		env := startACME(t, Options{}, ServeOptions{AllowDomains: allow})
		c := env.acmeClient(acme.ChallengeTypeHTTP01)
		acct := mustAccount(t, c)
		ctx := context.Background()
		for _, id := range []acme.Identifier{
			{Type: "dns", Value: "evil.com\uff0eexample.org"},
			{Type: "dns", Value: "xmpp\u3002example.org"},
			{Type: "dns", Value: "Example.org"},
			{Type: "dns", Value: "example.org."},
			{Type: "dns", Value: "b\u00fccher.example.org"},
			{Type: "dns", Value: "*.Example.org"},
			{Type: "ip", Value: "::FFFF:7F00:1"},
			{Type: "ip", Value: "fe80::1%eth0"},
		} {
			_, err := c.NewOrder(ctx, acct, acme.Order{Identifiers: []acme.Identifier{id}})
			if p := problemOf(t, err); p.Type != acme.ProblemTypeRejectedIdentifier || p.Status != http.StatusBadRequest {
				t.Errorf("allow %q: order for %s %q: %s (%d: %s); want %s, 400", allow, id.Type, id.Value, p.Type, p.Status, p.Detail, acme.ProblemTypeRejectedIdentifier)
			}
		}
		if hosts := env.http01.requestHosts(); len(hosts) != 0 {
			t.Errorf("allow %q: validation requests were made for %q", allow, hosts)
		}
		// The canonical form of a U-label name is issued.
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if _, err := c.ObtainCertificateForSANs(ctx, acct, key, []string{"xn--bcher-kva.example.org"}); err != nil {
			t.Errorf("allow %q: order for xn--bcher-kva.example.org: %v", allow, err)
		}
	}
}

// TestACMEOrderQuota: an account gets MaxOrdersPerHour orders an hour and
// MaxNamesPerOrder names in each; beyond either, rateLimited (429), the
// first with a Retry-After of when the oldest order leaves the hour.
// Other accounts are not affected, and a request that names an account
// it cannot sign for does not spend that account's quota.
func TestACMEOrderQuota(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	env := startACME(t, Options{}, ServeOptions{MaxOrdersPerHour: 3, MaxNamesPerOrder: 2, Now: clock})
	c := env.acmeClient(acme.ChallengeTypeHTTP01)
	ctx := context.Background()
	victim, attacker := mustAccount(t, c), mustAccount(t, c)
	dir, err := c.GetDirectory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	order := func(key any, kid string, names ...string) (int, acme.Problem, string) {
		t.Helper()
		var ids []acme.Identifier
		for _, n := range names {
			ids = append(ids, acme.Identifier{Type: "dns", Value: n})
		}
		payload, _ := json.Marshal(map[string]any{"identifiers": ids})
		jws := env.sign(t, key.(*ecdsa.PrivateKey), kid, dir, payload)
		resp, err := env.client.Post(dir.NewOrder, "application/jose+json", bytes.NewReader([]byte(jws.FullSerialize())))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p acme.Problem
		json.NewDecoder(resp.Body).Decode(&p)
		return resp.StatusCode, p, resp.Header.Get("Retry-After")
	}

	if code, p, _ := order(victim.PrivateKey, victim.Location, "a.example.org", "b.example.org", "c.example.org"); code != http.StatusTooManyRequests || p.Type != acme.ProblemTypeRateLimited {
		t.Errorf("three names with a limit of two: %d %s (%s); want 429 %s", code, p.Type, p.Detail, acme.ProblemTypeRateLimited)
	}
	// Forged: the attacker signs with its own key and names the victim's
	// account. step-ca refuses them, and they count for no one.
	for range 5 {
		if code, p, _ := order(attacker.PrivateKey, victim.Location, "example.org"); code < 400 || code == http.StatusTooManyRequests {
			t.Fatalf("an order signed with another account's key: %d %s", code, p.Type)
		}
	}
	for i := range 3 {
		if code, p, _ := order(victim.PrivateKey, victim.Location, "example.org", "xmpp.example.org"); code != http.StatusCreated {
			t.Fatalf("order %d of 3: %d %s (%s)", i+1, code, p.Type, p.Detail)
		}
		advance(10 * time.Minute)
	}
	code, p, retry := order(victim.PrivateKey, victim.Location, "example.org")
	if code != http.StatusTooManyRequests || p.Type != acme.ProblemTypeRateLimited {
		t.Fatalf("a fourth order within the hour: %d %s (%s); want 429 %s", code, p.Type, p.Detail, acme.ProblemTypeRateLimited)
	}
	if s, err := strconv.Atoi(retry); err != nil || s != 30*60 {
		t.Errorf("Retry-After %q; want 1800 (the first order leaves the hour in 30 minutes)", retry)
	}
	if code, p, _ := order(attacker.PrivateKey, attacker.Location, "example.org"); code != http.StatusCreated {
		t.Errorf("another account's order: %d %s (%s)", code, p.Type, p.Detail)
	}
	advance(30 * time.Minute)
	if code, p, _ := order(victim.PrivateKey, victim.Location, "example.org"); code != http.StatusCreated {
		t.Errorf("an order once the first left the hour: %d %s (%s)", code, p.Type, p.Detail)
	}
	if code, _, _ := order(victim.PrivateKey, victim.Location, "example.org"); code != http.StatusTooManyRequests {
		t.Errorf("the next one: %d; want 429", code)
	}
}

// TestAccountsWithoutEAB: accounts created before RequireEAB was turned
// on are listed for the start-up report; an account bound to a key is
// not.
func TestAccountsWithoutEAB(t *testing.T) {
	ca := openTestCA(t, Options{})
	dir := ca.dir
	ctx := context.Background()
	early := mustAccount(t, startACMEWith(t, ca, ServeOptions{}).acmeClient())
	ca.Close()

	ca, err := Open(dir, Options{RequireEAB: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	kid, hmac, err := ca.NewEABKey(ctx, "bound")
	if err != nil {
		t.Fatal(err)
	}
	c := startACMEWith(t, ca, ServeOptions{}).acmeClient()
	if _, err := newAccount(ctx, c, &acme.EAB{KeyID: kid, MACKey: hmac}); err != nil {
		t.Fatal(err)
	}
	got, err := ca.AccountsWithoutEAB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || early.Location == "" || !bytes.HasSuffix([]byte(early.Location), []byte("/"+got[0].ID)) {
		t.Errorf("accounts without a binding: %+v; want only %s", got, early.Location)
	}
}
