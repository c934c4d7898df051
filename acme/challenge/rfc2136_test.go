package challenge

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// The solvers are what acmez expects.
var (
	_ acmez.Solver = (*HTTP01)(nil)
	_ acmez.Solver = (*Webroot)(nil)
	_ acmez.Solver = (*TLSALPN01)(nil)
	_ acmez.Solver = (*RFC2136)(nil)
	_ acmez.Waiter = (*RFC2136)(nil)
	_ acmez.Solver = (*DNSHook)(nil)
	_ acmez.Waiter = (*DNSHook)(nil)
)

// dnsChallenge is a dns-01 challenge for name with a key authorization
// unique to this call.
func dnsChallenge(name string) acme.Challenge {
	return acme.Challenge{
		Type:             acme.ChallengeTypeDNS01,
		Identifier:       acme.Identifier{Type: "dns", Value: name},
		Token:            randToken(),
		KeyAuthorization: randToken() + "." + randToken(),
	}
}

func randToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (k *knot) rfc2136() *RFC2136 {
	return &RFC2136{
		Server:      k.Addr,
		KeyName:     k.KeyName,
		Secret:      k.Secret,
		Propagation: Propagation{Timeout: 10 * time.Second, Interval: 20 * time.Millisecond},
	}
}

// Present adds the TXT record (seen by a plain query and by kdig), Wait
// returns once it is visible, CleanUp deletes that record and leaves the
// other value at the same name (a name and its wildcard share it).
func TestRFC2136PresentWaitCleanUp(t *testing.T) {
	k := startKnot(t)
	ctx := t.Context()
	for _, zone := range []string{"", "example.org"} {
		t.Run("zone="+zone, func(t *testing.T) {
			s := k.rfc2136()
			s.Zone = zone
			a, b := dnsChallenge("example.org"), dnsChallenge("*.example.org")
			const name = "_acme-challenge.example.org."
			for _, c := range []acme.Challenge{a, b} {
				if err := s.Present(ctx, c); err != nil {
					t.Fatal(err)
				}
			}
			want := []string{a.DNS01KeyAuthorization(), b.DNS01KeyAuthorization()}
			slices.Sort(want)
			got := k.TXT(t, name)
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Fatalf("TXT after Present = %q, want %q", got, want)
			}
			if got := k.KdigTXT(t, name); !slices.Contains(got, a.DNS01KeyAuthorization()) {
				t.Fatalf("kdig sees %q, lacks %q", got, a.DNS01KeyAuthorization())
			}
			start := time.Now()
			if err := s.Wait(ctx, a); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Wait took %s for a record already there", d)
			}
			if err := s.CleanUp(ctx, a); err != nil {
				t.Fatal(err)
			}
			if got := k.TXT(t, name); !slices.Equal(got, []string{b.DNS01KeyAuthorization()}) {
				t.Fatalf("TXT after one CleanUp = %q, want only %q", got, b.DNS01KeyAuthorization())
			}
			if err := s.CleanUp(ctx, b); err != nil {
				t.Fatal(err)
			}
			if got := k.TXT(t, name); len(got) != 0 {
				t.Fatalf("TXT after CleanUp = %q, want none", got)
			}
			// Deleting what is not there is no error (CleanUp after a
			// failed Present).
			if err := s.CleanUp(ctx, b); err != nil {
				t.Fatalf("second CleanUp: %v", err)
			}
		})
	}
}

// Wait returns as soon as the record appears, polling while it does not.
func TestRFC2136WaitSeesLateRecord(t *testing.T) {
	k := startKnot(t)
	s := k.rfc2136()
	c := dnsChallenge("www.example.org")
	// Without the record, Wait polls until its context ends.
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	err := s.Wait(ctx, c)
	cancel()
	if err == nil {
		t.Fatal("Wait returned before the record existed")
	}
	// Started before the record exists, it returns once it appears.
	done := make(chan error, 1)
	go func() { done <- s.Wait(t.Context(), c) }()
	if err := s.Present(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not see the record")
	}
	s.CleanUp(t.Context(), c)
}

// Wait gives up after its timeout with a message naming the record, the
// server and what it answered; the caller's cancellation ends it too.
func TestRFC2136WaitTimeout(t *testing.T) {
	k := startKnot(t)
	s := k.rfc2136()
	s.Propagation.Timeout = 300 * time.Millisecond
	c := dnsChallenge("www.example.org")
	start := time.Now()
	err := s.Wait(t.Context(), c)
	testtool.OneLineError(t, err, "_acme-challenge.www.example.org.", c.DNS01KeyAuthorization(), "not visible after 300ms on "+k.Addr+": ", "propagation timeout")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Wait took %s with a 300ms timeout", d)
	}

	// What each server answered (the message's detail; queried directly
	// so that a loaded machine cannot turn it into "timed out").
	server := nameserver{label: k.Addr, addrs: []string{k.Addr}}
	fqdn, value, _ := dnsRecord(c)
	if ok, detail := s.Propagation.sees(t.Context(), server, fqdn, value); ok || detail != "no TXT record" {
		t.Errorf("sees without a record = %v %q", ok, detail)
	}
	other := dnsChallenge("www.example.org")
	if err := s.Present(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	defer s.CleanUp(t.Context(), other)
	if ok, detail := s.Propagation.sees(t.Context(), server, fqdn, value); ok || detail != "only other values: \""+other.DNS01KeyAuthorization()+"\"" {
		t.Errorf("sees with another value = %v %q", ok, detail)
	}
	if ok, _ := s.Propagation.sees(t.Context(), server, fqdn, other.DNS01KeyAuthorization()); !ok {
		t.Error("sees does not see the value that is there")
	}
	if ok, detail := s.Propagation.sees(t.Context(), nameserver{label: "x", addrs: []string{"127.0.0.1:1"}}, fqdn, value); ok || !strings.Contains(detail, "refused") {
		t.Errorf("sees on a closed port = %v %q", ok, detail)
	}

	// The caller's cancellation ends Wait too, and says so.
	ctx, cancel := context.WithCancel(t.Context())
	s.Propagation.Timeout = time.Minute
	time.AfterFunc(100*time.Millisecond, cancel)
	testtool.OneLineError(t, s.Wait(ctx, c), "context canceled")
}

// A wrong secret is refused with BADSIG, a key the server does not know
// with BADKEY, and nothing is added.
func TestRFC2136BadKey(t *testing.T) {
	k := startKnot(t)
	c := dnsChallenge("www.example.org")

	s := k.rfc2136()
	wrong := make([]byte, 32)
	rand.Read(wrong)
	s.Secret = base64.StdEncoding.EncodeToString(wrong)
	testtool.OneLineError(t, s.Present(t.Context(), c), "NOTAUTH/BADSIG", "check the secret of TSIG key acme-update")

	s = k.rfc2136()
	s.KeyName = "nobody."
	testtool.OneLineError(t, s.Present(t.Context(), c), "NOTAUTH/BADKEY", "check the key name and algorithm")

	s = k.rfc2136()
	s.Algorithm = "hmac-sha512"
	testtool.OneLineError(t, s.Present(t.Context(), c), "BADKEY")

	if got := k.TXT(t, "_acme-challenge.www.example.org"); len(got) != 0 {
		t.Fatalf("refused updates added %q", got)
	}
}

// A zone the server does not serve, and a served zone whose ACL does not
// let the key update it, are refused with the rcode and what to check.
func TestRFC2136Refused(t *testing.T) {
	k := startKnot(t)

	// Zone looked up: the server refuses the SOA query.
	s := k.rfc2136()
	testtool.OneLineError(t, s.Present(t.Context(), dnsChallenge("xmpp.nothere.test")), "REFUSED", "does not serve a zone", "give the zone")

	// Zone given: the server refuses the update itself.
	s = k.rfc2136()
	s.Zone = "nothere.test"
	testtool.OneLineError(t, s.Present(t.Context(), dnsChallenge("xmpp.nothere.test")), "refused (NOTAUTH)", "not authoritative for zone nothere.test.")

	// Served, but no update ACL for the key: Knot answers BADKEY.
	s = k.rfc2136()
	testtool.OneLineError(t, s.Present(t.Context(), dnsChallenge("xmpp.locked.example")), "zone locked.example.", "refused (NOTAUTH/BADKEY)", "update ACL")

	// The key may update the zone, but not TXT records: Knot answers
	// BADKEY too (it never answers an update with REFUSED; BIND does).
	s = k.rfc2136()
	testtool.OneLineError(t, s.Present(t.Context(), dnsChallenge("xmpp.restricted.example")), "zone restricted.example.", "refused (NOTAUTH/BADKEY)", "update ACL")

	// Unsigned: NOTAUTH without a TSIG error.
	s = k.rfc2136()
	s.KeyName, s.Secret = "", ""
	testtool.OneLineError(t, s.Present(t.Context(), dnsChallenge("www.example.org")), "refused (NOTAUTH)", "wants a TSIG key")

	// A name outside the given zone is not sent at all.
	s = k.rfc2136()
	s.Zone = "example.org"
	testtool.OneLineError(t, s.Present(t.Context(), dnsChallenge("xmpp.locked.example")), "not inside zone example.org.")
}

// A server that does not answer ends Present within Timeout.
func TestRFC2136Unreachable(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close() // swallows queries, never answers
	s := &RFC2136{Server: pc.LocalAddr().String(), Zone: "example.org", KeyName: "k.", Secret: "c2VjcmV0", Timeout: 300 * time.Millisecond}
	start := time.Now()
	testtool.OneLineError(t, s.Present(t.Context(), dnsChallenge("www.example.org")), "timed out")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Present took %s with a 300ms timeout", d)
	}
}

// Wait also polls the zone's NS found through a resolver when one is set.
func TestRFC2136WaitDiscoversNS(t *testing.T) {
	k := startKnot(t)
	_, port, _ := net.SplitHostPort(k.Addr)
	s := k.rfc2136()
	s.Propagation.Resolver = k.Addr // knotd answers NS and A for its zone
	s.Propagation.nsPort = port
	c := dnsChallenge("www.example.org")
	if err := s.Present(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	defer s.CleanUp(t.Context(), c)
	if err := s.Wait(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	s.Propagation.Timeout = 300 * time.Millisecond
	c2 := dnsChallenge("www.example.org")
	testtool.OneLineError(t, s.Wait(t.Context(), c2), "on "+k.Addr+": ", "; ns1.example.org: ")
}

func TestRFC2136Validate(t *testing.T) {
	ok := func() *RFC2136 { return &RFC2136{Server: "ns1.example.org", KeyName: "k.", Secret: "c2VjcmV0"} }
	if err := ok().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mod  func(*RFC2136)
		want string
	}{
		{func(s *RFC2136) { s.Server = "" }, "empty server address"},
		{func(s *RFC2136) { s.Server = "ns1:99999" }, "invalid port"},
		{func(s *RFC2136) { s.Algorithm = "hmac-md5" }, "unknown TSIG algorithm"},
		{func(s *RFC2136) { s.Secret = "" }, "has no secret"},
		{func(s *RFC2136) { s.Secret = "not base64!" }, "not base64"},
		{func(s *RFC2136) { s.KeyName = "" }, "secret without a key name"},
		{func(s *RFC2136) { s.Zone = "bad..zone" }, "not a domain name"},
		{func(s *RFC2136) { s.Propagation.Resolver = "[::1" }, "resolver"},
	} {
		s := ok()
		tc.mod(s)
		testtool.OneLineError(t, s.Validate(), tc.want)
	}
}

// TSIGAlgorithm, LoadTSIGSecret and ParseTSIGSecret are
// internal/dnsupdate's (tested there); these check that the solver's
// names for them still work.
func TestTSIGAlgorithm(t *testing.T) {
	if got, err := TSIGAlgorithm("HMAC-SHA512."); err != nil || got != "hmac-sha512." {
		t.Errorf("TSIGAlgorithm = %q, %v", got, err)
	}
	_, err := TSIGAlgorithm("hmac-md5")
	testtool.OneLineError(t, err, "unknown TSIG algorithm")
}

func TestLoadTSIGSecret(t *testing.T) {
	const secret = "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhs="
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte(`key "acme" { algorithm hmac-sha256; secret "`+secret+`"; };`), 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadTSIGSecret(p); err != nil || got != secret {
		t.Errorf("LoadTSIGSecret = %q, %v", got, err)
	}
	if got, err := ParseTSIGSecret([]byte(strings.TrimRight(secret, "="))); err != nil || got != secret {
		t.Errorf("ParseTSIGSecret = %q, %v", got, err)
	}
	_, err := LoadTSIGSecret(p + ".missing")
	testtool.OneLineError(t, err, "cannot read TSIG secret file", "no such file")
}

// A refused update names the dns-01 record it was about.
func TestRFC2136UpdateMessage(t *testing.T) {
	k := startKnot(t)
	s := k.rfc2136()
	c := dnsChallenge("xmpp.locked.example")
	testtool.OneLineError(t, s.Present(t.Context(), c), "dns-01: adding TXT _acme-challenge.xmpp.locked.example. in zone locked.example. on "+k.Addr+": refused (NOTAUTH/BADKEY)")
	testtool.OneLineError(t, s.CleanUp(t.Context(), c), "dns-01: deleting TXT _acme-challenge.xmpp.locked.example. in zone locked.example. on "+k.Addr+": refused (NOTAUTH/BADKEY)")
}

// A challenge name that is a CNAME (a delegation to another zone) is
// refused before any update, saying what to do.
func TestRFC2136CNAME(t *testing.T) {
	k := startKnot(t)
	s := k.rfc2136()
	testtool.OneLineError(t, s.Present(t.Context(), dnsChallenge("delegated.example.org")),
		"dns-01: _acme-challenge.delegated.example.org. is a CNAME to _acme-challenge.delegated.other.example.", "remove the CNAME or update the target's zone yourself (DNS hook)")
}
