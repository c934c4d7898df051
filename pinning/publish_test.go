package pinning

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/dnsupdate"
	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// publishKnot serves example.org (the key may update it), locked.example
// (no update ACL) and signed.example (updatable, DNSSEC-signed by knotd).
func publishKnot(t *testing.T) *testdns.Knot {
	t.Helper()
	return testdns.StartKnot(t, testdns.KnotOptions{KeyName: "xmppcert-tlsa", Zones: []testdns.Zone{
		{Name: "example.org", Updatable: true, Records: "xmpp A 127.0.0.1"},
		{Name: "locked.example"},
		{Name: "signed.example", Updatable: true, Signed: true, Records: "xmpp A 127.0.0.1"},
	}})
}

// publishRR is a 3 1 1 record with random data.
func publishRR(t *testing.T) *dns.TLSA {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return &dns.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Certificate: hex.EncodeToString(b)}
}

// publishAt reads the TLSA data at name straight from knotd, sorted.
func publishAt(t *testing.T, k *testdns.Knot, name string) []string {
	t.Helper()
	var out []string
	for _, rr := range k.Records(t, name, dns.TypeTLSA) {
		out = append(out, tlsaData(rr.(*dns.TLSA)))
	}
	slices.Sort(out)
	return out
}

func publishData(rrs ...*dns.TLSA) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, tlsaData(rr))
	}
	slices.Sort(out)
	return out
}

func publishSerial(t *testing.T, k *testdns.Knot, zone string) uint32 {
	t.Helper()
	return k.Records(t, zone, dns.TypeSOA)[0].(*dns.SOA).Serial
}

// publishCheckName compares one name's report with the expected lists.
func publishCheckName(t *testing.T, r PublishReport, name string, updated bool, added, removed, kept, stale []*dns.TLSA) {
	t.Helper()
	i := slices.IndexFunc(r.Names, func(n TLSANameReport) bool { return n.Name == name })
	if i < 0 {
		t.Fatalf("report lacks %s:\n%s", name, r)
	}
	n := r.Names[i]
	for _, l := range []struct {
		what      string
		got, want []*dns.TLSA
	}{{"added", n.Added, added}, {"removed", n.Removed, removed}, {"kept", n.Kept, kept}, {"stale-kept", n.StaleKept, stale}} {
		if !slices.Equal(publishData(l.got...), publishData(l.want...)) {
			t.Errorf("%s %s = %q, want %q", name, l.what, publishData(l.got...), publishData(l.want...))
		}
	}
	if n.Updated != updated {
		t.Errorf("%s updated = %v, want %v", name, n.Updated, updated)
	}
}

// A key rollover against a real knotd: publish into empty names, publish
// again (nothing sent), add the next key's record, move to the new key
// keeping the old record (reported stale), then remove it; after each
// step the primary holds exactly the expected set. Both names are in one
// zone, so each step that changes something is one update (serial +1).
func TestPublishTLSARollover(t *testing.T) {
	k := publishKnot(t)
	ctx := t.Context()
	p := &TLSAPublisher{DNS: k.Client()}
	c2s, s2s := "_5222._tcp.xmpp.example.org.", "_5269._tcp.xmpp.example.org."
	old, next := publishRR(t), publishRR(t)
	step := func(want []*dns.TLSA, removeStale bool) PublishReport {
		t.Helper()
		r, err := p.Publish(ctx, map[string][]*dns.TLSA{c2s: want, "_5269._TCP.xmpp.example.org": want}, removeStale)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	expect := func(want ...*dns.TLSA) {
		t.Helper()
		for _, name := range []string{c2s, s2s} {
			if got := publishAt(t, k, name); !slices.Equal(got, publishData(want...)) {
				t.Errorf("%s holds %q, want %q", name, got, publishData(want...))
			}
		}
	}

	serial := publishSerial(t, k, "example.org")
	r := step([]*dns.TLSA{old}, false)
	publishCheckName(t, r, c2s, true, []*dns.TLSA{old}, nil, nil, nil)
	publishCheckName(t, r, s2s, true, []*dns.TLSA{old}, nil, nil, nil)
	expect(old)
	if got := publishSerial(t, k, "example.org"); got != serial+1 {
		t.Errorf("serial %d -> %d: want one update for both names", serial, got)
	}
	if ttl := k.Records(t, c2s, dns.TypeTLSA)[0].Header().Ttl; ttl != 3600 {
		t.Errorf("TTL %d, want the default 3600", ttl)
	}

	serial = publishSerial(t, k, "example.org")
	r = step([]*dns.TLSA{old}, true)
	publishCheckName(t, r, c2s, false, nil, nil, []*dns.TLSA{old}, nil)
	if r.Changed() {
		t.Error("publishing the same set again changed something")
	}
	expect(old)
	if got := publishSerial(t, k, "example.org"); got != serial {
		t.Errorf("serial %d -> %d: nothing should have been sent", serial, got)
	}

	// A dry run of the next step reports it and sends nothing.
	p.DryRun = true
	r = step([]*dns.TLSA{old, next}, false)
	if !r.DryRun || !strings.Contains(r.String(), "would add: "+c2s+" TLSA "+tlsaData(next)) {
		t.Errorf("dry-run report:\n%s", r)
	}
	publishCheckName(t, r, c2s, false, []*dns.TLSA{next}, nil, []*dns.TLSA{old}, nil)
	expect(old)
	p.DryRun = false

	r = step([]*dns.TLSA{old, next}, false)
	publishCheckName(t, r, c2s, true, []*dns.TLSA{next}, nil, []*dns.TLSA{old}, nil)
	expect(old, next)

	r = step([]*dns.TLSA{next}, false)
	publishCheckName(t, r, c2s, false, nil, nil, []*dns.TLSA{next}, []*dns.TLSA{old})
	publishCheckName(t, r, s2s, false, nil, nil, []*dns.TLSA{next}, []*dns.TLSA{old})
	if !strings.Contains(r.String(), "keep stale: "+c2s+" TLSA "+tlsaData(old)) {
		t.Errorf("report:\n%s", r)
	}
	expect(old, next)
	js, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(js), `"stale_kept":["`+tlsaData(old)+`"]`) || !strings.Contains(string(js), `"dry_run":false`) {
		t.Errorf("JSON report: %s, %v", js, err)
	}

	serial = publishSerial(t, k, "example.org")
	r = step([]*dns.TLSA{next}, true)
	publishCheckName(t, r, c2s, true, nil, []*dns.TLSA{old}, []*dns.TLSA{next}, nil)
	publishCheckName(t, r, s2s, true, nil, []*dns.TLSA{old}, []*dns.TLSA{next}, nil)
	expect(next)
	if got := publishSerial(t, k, "example.org"); got != serial+1 {
		t.Errorf("serial %d -> %d: want one update", serial, got)
	}

	// Replacing a record in one step adds and removes in one update: the
	// set never lacks a wanted record.
	third := publishRR(t)
	r = step([]*dns.TLSA{third}, true)
	publishCheckName(t, r, c2s, true, []*dns.TLSA{third}, []*dns.TLSA{next}, nil, nil)
	expect(third)

	// The TTL is the publisher's.
	p.TTL = 5 * time.Minute
	other := "_5223._tcp.xmpp.example.org."
	if _, err := p.Publish(ctx, map[string][]*dns.TLSA{other: {old}}, false); err != nil {
		t.Fatal(err)
	}
	if ttl := k.Records(t, other, dns.TypeTLSA)[0].Header().Ttl; ttl != 300 {
		t.Errorf("TTL %d, want 300", ttl)
	}
}

// A zone whose ACL does not let the key update it: the error names the
// server, zone and key and says what to check; nothing is published and
// the report says so.
func TestPublishTLSARefused(t *testing.T) {
	k := publishKnot(t)
	p := &TLSAPublisher{DNS: k.Client()}
	name := "_5222._tcp.xmpp.locked.example."
	rr := publishRR(t)
	r, err := p.Publish(t.Context(), map[string][]*dns.TLSA{name: {rr}}, true)
	if err == nil {
		t.Fatal("published into a zone without update ACL")
	}
	for _, want := range []string{"publishing TLSA records at " + name, "zone locked.example.", "on " + k.Addr, "refused (NOTAUTH/BADKEY)", "TSIG key xmppcert-tlsa", "update ACL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	var ue *dnsupdate.UpdateError
	if !errors.As(err, &ue) || !ue.Refused() {
		t.Errorf("not a refusal: %#v", err)
	}
	publishCheckName(t, r, name, false, []*dns.TLSA{rr}, nil, nil, nil)
	if got := publishAt(t, k, name); len(got) != 0 {
		t.Errorf("refused update published %q", got)
	}

	// A key the server does not know.
	p.DNS.KeyName = "nobody"
	_, err = p.Publish(t.Context(), map[string][]*dns.TLSA{"_5222._tcp.xmpp.example.org.": {rr}}, true)
	if err == nil || !strings.Contains(err.Error(), "BADKEY") || !strings.Contains(err.Error(), "TSIG key nobody") {
		t.Errorf("unknown key: %v", err)
	}
}

// Wrong input is refused before anything is sent.
func TestPublishTLSAInvalid(t *testing.T) {
	good := publishRR(t)
	client := &dnsupdate.Client{Server: "127.0.0.1:1", KeyName: "k", Secret: "c2VjcmV0"}
	for _, tc := range []struct {
		p    *TLSAPublisher
		want map[string][]*dns.TLSA
		err  string
	}{
		{&TLSAPublisher{}, map[string][]*dns.TLSA{"a.example.": {good}}, "no DNS update client"},
		{&TLSAPublisher{DNS: &dnsupdate.Client{}}, map[string][]*dns.TLSA{"a.example.": {good}}, "empty server address"},
		{&TLSAPublisher{DNS: client}, nil, "no records to publish"},
		{&TLSAPublisher{DNS: client}, map[string][]*dns.TLSA{"a.example.": {}}, "no record wanted at a.example."},
		{&TLSAPublisher{DNS: client}, map[string][]*dns.TLSA{"a..example": {good}}, "not a domain name"},
		{&TLSAPublisher{DNS: client}, map[string][]*dns.TLSA{"a.example.": {nil}}, "nil record"},
		{&TLSAPublisher{DNS: client}, map[string][]*dns.TLSA{"a.example.": {{Usage: 4, Selector: 1, MatchingType: 1, Certificate: good.Certificate}}}, "usage 4"},
		{&TLSAPublisher{DNS: client}, map[string][]*dns.TLSA{"a.example.": {{Usage: 3, Selector: 2, MatchingType: 1, Certificate: good.Certificate}}}, "selector 2"},
		{&TLSAPublisher{DNS: client}, map[string][]*dns.TLSA{"a.example.": {{Usage: 3, Selector: 1, MatchingType: 3, Certificate: good.Certificate}}}, "matching type 3"},
		{&TLSAPublisher{DNS: client}, map[string][]*dns.TLSA{"a.example.": {{Usage: 3, Selector: 1, MatchingType: 1, Certificate: "abcd"}}}, "32 bytes, not 2"},
		{&TLSAPublisher{DNS: client}, map[string][]*dns.TLSA{"a.example.": {{Usage: 3, Selector: 1, MatchingType: 2, Certificate: good.Certificate}}}, "64 bytes"},
		{&TLSAPublisher{DNS: client}, map[string][]*dns.TLSA{"a.example.": {{Usage: 3, Selector: 1, MatchingType: 0, Certificate: "xyz\n"}}}, "not hex"},
		{&TLSAPublisher{DNS: client, Zone: "other.example"}, map[string][]*dns.TLSA{"a.example.": {good}}, "not inside zone other.example."},
	} {
		_, err := tc.p.Publish(t.Context(), tc.want, true)
		if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n") {
			t.Errorf("want one-line error with %q, got %v", tc.err, err)
		}
	}
}

// TLSAByOwner groups records under canonical owner names.
func TestTLSAByOwner(t *testing.T) {
	a, b := publishRR(t), publishRR(t)
	a.Hdr.Name, b.Hdr.Name = "_25._tcp.MX.example.org", "_25._tcp.mx.example.org."
	got := TLSAByOwner([]*dns.TLSA{a, b})
	if len(got) != 1 || len(got["_25._tcp.mx.example.org."]) != 2 {
		t.Errorf("TLSAByOwner = %v", got)
	}
}

// Into a zone knotd signs: the published record comes back through a
// validating unbound with the AD bit, and ldns-dane, asking that
// unbound, authenticates a TLS server by it (and rejects one whose key
// the record does not pin).
func TestPublishTLSADNSSEC(t *testing.T) {
	k := publishKnot(t)
	u := testdns.StartUnbound(t, k.UnboundOptions())

	// A TLS server on loopback and its 3 1 1 record.
	cert, key := testpki.NewRoot("Publish Test CA", nil).Leaf(func(c *x509.Certificate) {
		c.DNSNames = []string{"xmpp.signed.example", "wrong.signed.example"}
	})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				c.(*tls.Conn).Handshake()
				c.Read(make([]byte, 1))
			}()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	spki := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	pin := &dns.TLSA{Usage: 3, Selector: 1, MatchingType: 1, Certificate: hex.EncodeToString(spki[:])}
	name := "_" + strconv.Itoa(port) + "._tcp.xmpp.signed.example."
	wrongName := "_" + strconv.Itoa(port) + "._tcp.wrong.signed.example."

	p := &TLSAPublisher{DNS: k.Client()}
	if _, err := p.Publish(t.Context(), map[string][]*dns.TLSA{name: {pin}, wrongName: {publishRR(t)}}, true); err != nil {
		t.Fatal(err)
	}
	resp := u.Query(t, name, dns.TypeTLSA)
	if resp.Rcode != dns.RcodeSuccess || !resp.AuthenticatedData {
		t.Fatalf("TLSA through unbound: want NOERROR with AD, got\n%s", resp)
	}
	var got []*dns.TLSA
	for _, rr := range resp.Answer {
		if t, ok := rr.(*dns.TLSA); ok {
			got = append(got, t)
		}
	}
	if !slices.Equal(publishData(got...), publishData(pin)) {
		t.Errorf("unbound answers %q, want %q", publishData(got...), publishData(pin))
	}

	if !u.Port53 {
		t.Skipf("unbound is on %s, not port 53: ldns-dane -r cannot reach it", u.Addr)
	}
	ldnsDane := testtool.Require(t, "ldns-dane", "ldnsutils")
	run := func(host string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, ldnsDane, "-r", u.Host, "-a", "127.0.0.1", "verify", host, strconv.Itoa(port)).CombinedOutput()
		return string(out), err
	}
	if out, err := run("xmpp.signed.example"); err != nil || !strings.Contains(out, "dane-validated successfully") {
		t.Errorf("ldns-dane with the published pin: %v\n%s", err, out)
	}
	if out, err := run("wrong.signed.example"); err == nil || !strings.Contains(out, "did not dane-validate") {
		t.Errorf("ldns-dane with a pin of another key: %v\n%s", err, out)
	}
}
