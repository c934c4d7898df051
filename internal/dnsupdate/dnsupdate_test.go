package dnsupdate_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/dnsupdate"
	"github.com/xmppcert/xmppcert/internal/secretfile"
	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

func rr(t *testing.T, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// startKnot serves example.org (updatable, with a CNAME), locked.example
// (no update ACL) and restricted.example (A updates only).
func startKnot(t *testing.T) *testdns.Knot {
	return testdns.StartKnot(t, testdns.KnotOptions{KeyName: "xmppcert", Zones: []testdns.Zone{
		{Name: "example.org", Updatable: true, Records: "alias CNAME target.example.net.\nwww A 192.0.2.1"},
		{Name: "locked.example"},
		{Name: "restricted.example", Updatable: true, UpdateTypes: []string{"A"}},
	}})
}

func serial(t *testing.T, k *testdns.Knot, zone string) uint32 {
	t.Helper()
	soa := k.Records(t, zone, dns.TypeSOA)
	if len(soa) != 1 {
		t.Fatalf("SOA of %s: %v", zone, soa)
	}
	return soa[0].(*dns.SOA).Serial
}

// Update deletes and adds in one message: the zone's serial moves by
// one, the deleted record is gone, the other records of the RRset stay,
// and the caller's records are not changed.
func TestUpdateOneMessage(t *testing.T) {
	k := startKnot(t)
	c := k.Client()
	ctx := t.Context()
	a, b, cc := rr(t, `n.example.org. 60 IN TXT "a"`), rr(t, `n.example.org. 60 IN TXT "b"`), rr(t, `n.example.org. 60 IN TXT "c"`)
	if err := c.Update(ctx, "example.org", []dns.RR{a, b}, nil); err != nil {
		t.Fatal(err)
	}
	before := serial(t, k, "example.org")
	if err := c.Update(ctx, "example.org.", []dns.RR{cc}, []dns.RR{a}); err != nil {
		t.Fatal(err)
	}
	if got := serial(t, k, "example.org"); got != before+1 {
		t.Errorf("serial %d -> %d: not one update", before, got)
	}
	got := k.TXT(t, "n.example.org")
	slices.Sort(got)
	if !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("TXT = %q, want b c", got)
	}
	if a.Header().Class != dns.ClassINET || a.Header().Ttl != 60 {
		t.Errorf("Update changed the caller's record: %s", a)
	}
	// Deleting what is not there and adding what is are no errors.
	if err := c.Update(ctx, "example.org", []dns.RR{cc}, []dns.RR{a}); err != nil {
		t.Fatal(err)
	}
	// Nothing to do: nothing sent.
	before = serial(t, k, "example.org")
	if err := c.Update(ctx, "example.org", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := serial(t, k, "example.org"); got != before {
		t.Errorf("an empty update changed the serial %d -> %d", before, got)
	}
}

// An update too big for a UDP message goes over TCP.
func TestUpdateLarge(t *testing.T) {
	k := startKnot(t)
	var recs []dns.RR
	for i := range 40 {
		recs = append(recs, rr(t, fmt.Sprintf(`big.example.org. 60 IN TXT "%02d %s"`, i, strings.Repeat("x", 40))))
	}
	if err := k.Client().Update(t.Context(), "example.org", recs, nil); err != nil {
		t.Fatal(err)
	}
	if got := k.TXT(t, "big.example.org"); len(got) != 40 {
		t.Errorf("%d records, want 40", len(got))
	}
	got, err := k.Client().Query(t.Context(), "big.example.org", dns.TypeTXT)
	if err != nil || len(got) != 40 {
		t.Errorf("Query: %d records, %v", len(got), err)
	}
}

// Query reads the primary's records at the name only; a missing name is
// no error; a zone the server does not serve is refused.
func TestQuery(t *testing.T) {
	k := startKnot(t)
	c := k.Client()
	got, err := c.Query(t.Context(), "WWW.example.org", dns.TypeA)
	if err != nil || len(got) != 1 || got[0].(*dns.A).A.String() != "192.0.2.1" {
		t.Fatalf("Query = %v, %v", got, err)
	}
	if got, err := c.Query(t.Context(), "nothere.example.org", dns.TypeTLSA); err != nil || len(got) != 0 {
		t.Errorf("missing name: %v, %v", got, err)
	}
	if got, err := c.Query(t.Context(), "alias.example.org", dns.TypeTXT); err != nil || len(got) != 0 {
		t.Errorf("CNAME not to be followed: %v, %v", got, err)
	}
	_, err = c.Query(t.Context(), "x.nothere.test", dns.TypeA)
	testtool.OneLineError(t, err, "querying A x.nothere.test. on "+k.Addr, "REFUSED", "does not serve a zone")

	// Unsigned: it works in a zone whose ACL does not name the key.
	if got, err := c.Query(t.Context(), "ns1.locked.example", dns.TypeA); err != nil || len(got) != 1 {
		t.Errorf("Query in a zone without ACL = %v, %v", got, err)
	}
}

// Zone finds the zone of a name inside it, of its apex, and refuses a
// CNAME and a name the server does not serve.
func TestZone(t *testing.T) {
	k := startKnot(t)
	c := k.Client()
	for _, name := range []string{"example.org", "_5222._tcp.xmpp.EXAMPLE.org.", "www.example.org"} {
		if z, err := c.Zone(t.Context(), name); err != nil || z != "example.org." {
			t.Errorf("Zone(%q) = %q, %v", name, z, err)
		}
	}
	_, err := c.Zone(t.Context(), "alias.example.org")
	var ce *dnsupdate.CNAMEError
	if !errors.As(err, &ce) || ce.Target != "target.example.net." {
		t.Errorf("CNAME: %v", err)
	}
	testtool.OneLineError(t, err, "alias.example.org. is a CNAME to target.example.net.")
	_, err = c.Zone(t.Context(), "x.nothere.test")
	testtool.OneLineError(t, err, "finding the zone of x.nothere.test.", "REFUSED", "does not serve a zone")
}

// The server's refusals come back as *UpdateError with the facts and a
// message that names the server, zone and key and what to check; nothing
// is changed.
func TestUpdateRefused(t *testing.T) {
	k := startKnot(t)
	ctx := t.Context()
	txt := func(name string) []dns.RR { return []dns.RR{rr(t, name+` 60 IN TXT "v"`)} }
	where := " on " + k.Addr + ": "

	err := k.Client().Update(ctx, "locked.example", txt("x.locked.example."), nil)
	testtool.OneLineError(t, err, "updating TXT x.locked.example. in zone locked.example."+where+"refused (NOTAUTH/BADKEY)", "TSIG key xmppcert", "update ACL")
	var ue *dnsupdate.UpdateError
	if !errors.As(err, &ue) || !ue.Refused() || ue.Rcode != dns.RcodeNotAuth || ue.TSIGError != dns.RcodeBadKey || ue.Zone != "locked.example." || ue.Server != k.Addr {
		t.Errorf("UpdateError = %+v", ue)
	}

	testtool.OneLineError(t, k.Client().Update(ctx, "restricted.example", txt("x.restricted.example."), nil), "zone restricted.example.", "BADKEY")

	wrong := k.Client()
	s := make([]byte, 32)
	rand.Read(s)
	wrong.Secret = base64.StdEncoding.EncodeToString(s)
	testtool.OneLineError(t, wrong.Update(ctx, "example.org", txt("x.example.org."), nil), "NOTAUTH/BADSIG", "check the secret of TSIG key xmppcert")

	unknown := k.Client()
	unknown.KeyName = "nobody."
	testtool.OneLineError(t, unknown.Update(ctx, "example.org", txt("x.example.org."), nil), "NOTAUTH/BADKEY", "TSIG key nobody", "check the key name and algorithm")

	unsigned := k.Client()
	unsigned.KeyName, unsigned.Secret = "", ""
	testtool.OneLineError(t, unsigned.Update(ctx, "example.org", txt("x.example.org."), nil), "refused (NOTAUTH)", "wants a TSIG key")

	testtool.OneLineError(t, k.Client().Update(ctx, "nothere.test", txt("x.nothere.test."), nil), "zone nothere.test.", "refused (NOTAUTH)", "not authoritative for zone nothere.test.")

	// Not sent at all: a record outside the zone.
	err = k.Client().Update(ctx, "example.org", txt("x.locked.example."), nil)
	testtool.OneLineError(t, err, "x.locked.example. is not inside zone example.org.: nothing sent")
	if !errors.As(err, &ue) || ue.Refused() {
		t.Errorf("UpdateError = %+v", ue)
	}

	if got := k.TXT(t, "x.example.org"); len(got) != 0 {
		t.Errorf("refused updates added %q", got)
	}
}

// A server that does not answer ends Update within Timeout, as a
// network error (not a refusal).
func TestUpdateUnreachable(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close() // swallows queries, never answers
	c := &dnsupdate.Client{Server: pc.LocalAddr().String(), KeyName: "k.", Secret: "c2VjcmV0", Timeout: 300 * time.Millisecond}
	start := time.Now()
	err = c.Update(t.Context(), "example.org", []dns.RR{rr(t, "a.example.org. 60 IN A 192.0.2.1")}, nil)
	testtool.OneLineError(t, err, "updating A a.example.org. in zone example.org. on "+pc.LocalAddr().String()+": timed out")
	var ue *dnsupdate.UpdateError
	if !errors.As(err, &ue) || ue.Refused() || ue.Rcode != -1 {
		t.Errorf("UpdateError = %+v", ue)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Update took %s with a 300ms timeout", d)
	}
}

// The answers Knot never gives (BIND's REFUSED for an update-policy
// denial, BADTIME, NOTZONE, SERVFAIL) still get a message that names the
// rcode and what to check.
func TestUpdateErrorMessages(t *testing.T) {
	base := dnsupdate.UpdateError{Server: "ns:53", Zone: "example.org.", KeyName: "k.", Names: []string{"_acme-challenge.x.example.org."}, Types: []string{"TXT"}}
	for _, tc := range []struct {
		rcode, tsig int
		err         error
		want        []string
	}{
		{dns.RcodeRefused, 0, nil, []string{"updating TXT _acme-challenge.x.example.org. in zone example.org. on ns:53: refused (REFUSED)", "primary for zone example.org.", "ACL lets TSIG key k update it, TXT records at _acme-challenge.x.example.org. included"}},
		{dns.RcodeNotAuth, dns.RcodeBadTime, nil, []string{"NOTAUTH/BADTIME", "NTP"}},
		{dns.RcodeNotZone, 0, nil, []string{"NOTZONE", "not inside zone"}},
		{dns.RcodeServerFailure, 0, nil, []string{"SERVFAIL", "log"}},
		{dns.RcodeNotImplemented, 0, nil, []string{"NOTIMP"}},
		{dns.RcodeYXRrset, 0, nil, []string{"answered YXRRSET"}},
		{dns.RcodeSuccess, 0, dns.ErrSig, []string{"does not verify"}},
		{-1, 0, errors.New("connection refused"), []string{"on ns:53: connection refused"}},
	} {
		e := base
		e.Rcode, e.TSIGError, e.Err = tc.rcode, tc.tsig, tc.err
		testtool.OneLineError(t, &e, tc.want...)
	}
	e := base
	e.Rcode = dns.RcodeRefused
	e.Names = []string{"a.", "b.", "c.", "d."}
	e.Types = []string{"TLSA"}
	e.What = "publishing TLSA"
	testtool.OneLineError(t, &e, "publishing TLSA in zone", "TLSA records at a., b. and 2 more names included")
}

func TestValidate(t *testing.T) {
	ok := func() *dnsupdate.Client {
		return &dnsupdate.Client{Server: "ns1.example.org", KeyName: "k.", Secret: "c2VjcmV0"}
	}
	if err := ok().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mod  func(*dnsupdate.Client)
		want string
	}{
		{func(c *dnsupdate.Client) { c.Server = "" }, "RFC 2136 server: empty server address"},
		{func(c *dnsupdate.Client) { c.Server = "ns1:99999" }, "invalid port"},
		{func(c *dnsupdate.Client) { c.Algorithm = "hmac-md5" }, "unknown TSIG algorithm"},
		{func(c *dnsupdate.Client) { c.Secret = "" }, "TSIG key k. has no secret"},
		{func(c *dnsupdate.Client) { c.Secret = "not base64!" }, "not base64"},
		{func(c *dnsupdate.Client) { c.KeyName = "" }, "secret without a key name"},
		{func(c *dnsupdate.Client) { c.KeyName = "bad..name" }, "not a domain name"},
	} {
		c := ok()
		tc.mod(c)
		testtool.OneLineError(t, c.Validate(), tc.want)
	}
	unsigned := &dnsupdate.Client{Server: "[::1]:5353"}
	if err := unsigned.Validate(); err != nil {
		t.Error(err)
	}
}

func TestHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"ns1.example.org": "ns1.example.org:53", "127.0.0.1:5353": "127.0.0.1:5353", "::1": "[::1]:53",
		"[::1]:53": "[::1]:53", " ns1 ": "ns1:53",
	} {
		if got, err := dnsupdate.HostPort(in); err != nil || got != want {
			t.Errorf("HostPort(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"": "empty", ":53": "no host", "ns1:0": "invalid port", "ns1:x": "invalid port", "a:b:c": "not host or host:port", "[::1": "not host",
	} {
		_, err := dnsupdate.HostPort(in)
		testtool.OneLineError(t, err, want)
	}
}

func TestTSIGAlgorithm(t *testing.T) {
	for in, want := range map[string]string{
		"": "hmac-sha256.", "hmac-sha256": "hmac-sha256.", "HMAC-SHA512.": "hmac-sha512.",
		"hmac-sha1": "hmac-sha1.", " hmac-sha384 ": "hmac-sha384.", "hmac-sha224": "hmac-sha224.",
	} {
		got, err := dnsupdate.TSIGAlgorithm(in)
		if err != nil || got != want {
			t.Errorf("TSIGAlgorithm(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"hmac-md5", "sha256", "hmac-sha256\nx", "gss-tsig"} {
		_, err := dnsupdate.TSIGAlgorithm(in)
		testtool.OneLineError(t, err, "unknown TSIG algorithm")
	}
}

// LoadTSIGSecret reads the formats operators have and gives one-line
// errors that never show the content.
func TestLoadTSIGSecret(t *testing.T) {
	dir := t.TempDir()
	const secret = "3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhs="
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, content := range map[string]string{
		"plain":    secret + "\n",
		"unpadded": strings.TrimRight(secret, "=") + "\n",
		"bind":     "key \"acme\" {\n\talgorithm hmac-sha256;\n\tsecret \"" + secret + "\";\n};\n",
		"bindline": `key "acme" { algorithm hmac-sha256; secret "` + secret + `"; };`,
		"knot":     "# hmac-sha256:acme:" + secret + "\nkey:\n  - id: acme\n    algorithm: hmac-sha256\n    secret: " + secret + "\n",
	} {
		got, err := dnsupdate.LoadTSIGSecret(write(name, content, 0o600))
		if err != nil || got != secret {
			t.Errorf("%s: got %q, %v; want %q", name, got, err, secret)
		}
	}
	load := func(p string) error { _, err := dnsupdate.LoadTSIGSecret(p); return err }
	testtool.OneLineError(t, load(filepath.Join(dir, "missing")), "cannot read TSIG secret file", "no such file")
	testtool.OneLineError(t, load(dir), "cannot read TSIG secret file", "is a directory")
	testtool.OneLineError(t, load(write("empty", " \n", 0o600)), "empty")
	testtool.OneLineError(t, load(write("junk", "hunter2 is my password!\nline2", 0o600)), "not base64")
	testtool.OneLineError(t, load(write("two", "secret: "+secret+"\nsecret: "+secret, 0o600)), "holds 2 secrets")
	testtool.OneLineError(t, load(write("big", strings.Repeat("A", secretfile.MaxSize+1), 0o600)), "larger than 64 KiB")
	if os.Geteuid() != 0 { // root reads anything
		testtool.OneLineError(t, load(write("noperm", secret, 0o000)), "permission denied")
	}
	if err := load(write("leak", "hunter2 is my password!", 0o600)); strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the file's content: %v", err)
	}
}
