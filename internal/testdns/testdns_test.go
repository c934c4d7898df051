package testdns

import (
	"net"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// Unbound in front of Knot validates what Knot signs: a signed zone's
// answer has the AD bit, an unsigned zone's does not, and a signed zone
// whose trust anchor is wrong answers SERVFAIL (bogus).
func TestUnboundValidatesKnot(t *testing.T) {
	k := StartKnot(t, KnotOptions{Zones: []Zone{
		{Name: "signed.example", Signed: true, Records: "www A 192.0.2.1"},
		{Name: "plain.example", Records: "www A 192.0.2.2"},
		{Name: "bogus.example.", Signed: true, Records: "www A 192.0.2.3"},
	}})
	for _, z := range []string{"signed.example.", "bogus.example."} {
		a, ok := k.Anchors[z]
		if !ok || len(a.DS) == 0 || len(a.DNSKEY) != len(a.DS) {
			t.Fatalf("anchor of %s = %+v", z, a)
		}
		if a.DS[0].DigestType != dns.SHA256 || a.DS[0].Algorithm != dns.ECDSAP256SHA256 {
			t.Errorf("DS of %s = %s", z, a.DS[0])
		}
	}
	if _, ok := k.Anchors["plain.example."]; ok {
		t.Error("an unsigned zone has an anchor")
	}

	// bogus.example's anchor is a key it does not have.
	opts := k.UnboundOptions().BreakAnchor("bogus.example.")
	u := StartUnbound(t, opts)
	t.Logf("unbound on %s (port 53: %v)", u.Addr, u.Port53)
	if u.Port53 != (u.Port == 53) || net.JoinHostPort(u.Host, "53") != u.Addr && u.Port53 {
		t.Errorf("inconsistent address %+v", u)
	}
	if os.Geteuid() == 0 && !u.Port53 {
		// Only a wildcard listener on port 53 explains it; in CI that
		// would silently skip every ldns-dane test.
		if os.Getenv("CI") != "" {
			t.Errorf("running as root, yet unbound is not on port 53: %s", u.Addr)
		} else {
			t.Logf("running as root, yet unbound is not on port 53: %s", u.Addr)
		}
	}

	r := u.Query(t, "www.signed.example", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || !r.AuthenticatedData || !hasA(r, "192.0.2.1") {
		t.Errorf("signed zone: want NOERROR with AD and 192.0.2.1, got\n%s", r)
	}
	r = u.Query(t, "www.plain.example", dns.TypeA)
	if r.Rcode != dns.RcodeSuccess || r.AuthenticatedData || !hasA(r, "192.0.2.2") {
		t.Errorf("unsigned zone: want NOERROR without AD and 192.0.2.2, got\n%s", r)
	}
	r = u.Query(t, "www.bogus.example", dns.TypeA)
	if r.Rcode != dns.RcodeServerFailure {
		t.Errorf("wrong trust anchor: want SERVFAIL, got\n%s", r)
	}
	// A name that does not exist in the signed zone: a validated denial.
	r = u.Query(t, "nothere.signed.example", dns.TypeA)
	if r.Rcode != dns.RcodeNameError || !r.AuthenticatedData {
		t.Errorf("signed NXDOMAIN: want NXDOMAIN with AD, got\n%s", r)
	}
}

// The key may update exactly the Updatable zones (and only the allowed
// types), and a record added to a signed zone comes back validated
// through unbound.
func TestKnotUpdates(t *testing.T) {
	k := StartKnot(t, KnotOptions{KeyName: "test-key", Zones: []Zone{
		{Name: "open.example", Updatable: true, Signed: true},
		{Name: "a-only.example", Updatable: true, UpdateTypes: []string{"A"}},
		{Name: "locked.example"},
	}})
	if k.KeyName != "test-key." {
		t.Errorf("KeyName = %q", k.KeyName)
	}
	c := k.Client()
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	u := StartUnbound(t, k.UnboundOptions())
	if err := c.Update(t.Context(), "open.example", []dns.RR{rr(`new.open.example. 60 IN TXT "hello"`)}, nil); err != nil {
		t.Fatal(err)
	}
	if got := k.TXT(t, "new.open.example"); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("TXT = %q", got)
	}
	if got := k.KdigTXT(t, "new.open.example"); !slices.Equal(got, []string{"hello"}) {
		t.Errorf("kdig TXT = %q", got)
	}
	if r := u.Query(t, "new.open.example", dns.TypeTXT); r.Rcode != dns.RcodeSuccess || !r.AuthenticatedData || len(r.Answer) == 0 {
		t.Errorf("updated record through unbound: want AD, got\n%s", r)
	}

	if err := c.Update(t.Context(), "a-only.example", []dns.RR{rr("x.a-only.example. 60 IN A 192.0.2.9")}, nil); err != nil {
		t.Errorf("A update: %v", err)
	}
	if err := c.Update(t.Context(), "a-only.example", []dns.RR{rr(`x.a-only.example. 60 IN TXT "no"`)}, nil); err == nil || !strings.Contains(err.Error(), "BADKEY") {
		t.Errorf("TXT update where only A is allowed: %v", err)
	}
	if err := c.Update(t.Context(), "locked.example", []dns.RR{rr("x.locked.example. 60 IN A 192.0.2.9")}, nil); err == nil || !strings.Contains(err.Error(), "BADKEY") {
		t.Errorf("update of a zone without ACL: %v", err)
	}
}

// An anchor prints as DS lines that parse back.
func TestAnchorString(t *testing.T) {
	ds := &dns.DS{Hdr: dns.RR_Header{Name: "z.example.", Rrtype: dns.TypeDS, Class: dns.ClassINET, Ttl: 60},
		KeyTag: 1, Algorithm: dns.ECDSAP256SHA256, DigestType: dns.SHA256, Digest: strings.Repeat("AB", 32)}
	a := Anchor{Zone: "z.example.", DS: []*dns.DS{ds, ds}}
	lines := strings.Split(strings.TrimSpace(a.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("String = %q", a.String())
	}
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil || !dns.IsDuplicate(rr, ds) {
			t.Errorf("line %q: %v", l, err)
		}
	}
	if b, err := os.ReadFile(a.WriteFile(t)); err != nil || string(b) != a.String() {
		t.Errorf("WriteFile: %q, %v", b, err)
	}
}

func hasA(r *dns.Msg, ip string) bool {
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok && a.A.String() == ip {
			return true
		}
	}
	return false
}
