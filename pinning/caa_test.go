package pinning

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/testdns"
)

const testAccount = "https://ca.example/acme/acct/42"

var testIssuer = CAAIssuer{Domains: []string{"ca.example"}, AccountURI: testAccount, Methods: []string{"http-01"}}

func caa(t *testing.T, lines ...string) []*dns.CAA {
	t.Helper()
	var out []*dns.CAA
	for _, l := range lines {
		rr, err := dns.NewRR("example.org. 60 IN CAA " + l)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		out = append(out, rr.(*dns.CAA))
	}
	return out
}

// TestEvaluateCAA: RFC 8659's processing with RFC 8657's accounturi and
// validationmethods, case by case.
func TestEvaluateCAA(t *testing.T) {
	for _, tc := range []struct {
		name    string
		records []string
		asked   string
		iss     CAAIssuer
		reason  CAAReason
		methods []string
		detail  string
	}{
		{"no records", nil, "example.org", testIssuer, CAANone, nil, ""},
		{"iodef only", []string{`0 iodef "mailto:sec@example.org"`}, "example.org", testIssuer, CAANoIssueProperty, nil, ""},
		{"our CA", []string{`0 issue "ca.example"`}, "example.org", testIssuer, CAAPermitted, []string{"http-01"}, ""},
		{"our CA, other case and spaces", []string{`0 issue "  CA.Example ;  "`}, "example.org", testIssuer, CAAPermitted, []string{"http-01"}, ""},
		{"our account", []string{`0 issue "ca.example; accounturi=` + testAccount + `"`}, "example.org", testIssuer, CAAPermitted, []string{"http-01"}, ""},
		{"other account", []string{`0 issue "ca.example; accounturi=https://ca.example/acme/acct/7"`}, "example.org", testIssuer, CAAOtherAccount, nil, "ca.example may issue only to account https://ca.example/acme/acct/7, not to ours (" + testAccount + ")"},
		{"no account yet", []string{`0 issue "ca.example; accounturi=` + testAccount + `"`}, "example.org", CAAIssuer{Domains: []string{"ca.example"}, Methods: []string{"http-01"}}, CAAOtherAccount, nil, "there is no account of ours yet"},
		{"two accounturi", []string{`0 issue "ca.example; accounturi=` + testAccount + `; accounturi=x"`}, "example.org", testIssuer, CAAOtherAccount, nil, ""},
		{"other account, then ours", []string{`0 issue "ca.example; accounturi=x"`, `0 issue "ca.example; accounturi=` + testAccount + `"`}, "example.org", testIssuer, CAAPermitted, []string{"http-01"}, ""},
		{"dns-01 only", []string{`0 issue "ca.example; validationmethods=dns-01"`}, "example.org", testIssuer, CAAMethodNotAllowed, nil, "ca.example may validate only by dns-01, and this order offers http-01"},
		{"methods narrowed", []string{`0 issue "ca.example; validationmethods=dns-01,http-01"`}, "example.org", CAAIssuer{Domains: []string{"ca.example"}, Methods: []string{"tls-alpn-01", "http-01"}}, CAAPermitted, []string{"http-01"}, ""},
		{"another CA", []string{`0 issue "other.example"`}, "example.org", testIssuer, CAACANotListed, nil, "only other.example may issue, not ca.example"},
		{"no CA", []string{`0 issue ";"`}, "example.org", testIssuer, CAANoCA, nil, ""},
		{"malformed only", []string{`0 issue "ca.example accounturi"`}, "example.org", testIssuer, CAANoCA, nil, ""},
		{"unknown critical", []string{`128 tbs "x"`, `0 issue "ca.example"`}, "example.org", testIssuer, CAAUnknownCritical, nil, `"tbs"`},
		{"unknown not critical", []string{`0 tbs "x"`, `0 issue "ca.example"`}, "example.org", testIssuer, CAAPermitted, []string{"http-01"}, ""},
		{"wildcard by issuewild", []string{`0 issue "ca.example"`, `0 issuewild ";"`}, "*.example.org", testIssuer, CAANoCA, nil, "issuewild"},
		{"wildcard by issue", []string{`0 issue "ca.example"`}, "*.example.org", testIssuer, CAAPermitted, []string{"http-01"}, ""},
		{"issuewild ignored for a plain name", []string{`0 issuewild "ca.example"`, `0 issue "other.example"`}, "example.org", testIssuer, CAACANotListed, nil, ""},
		{"unknown parameter ignored", []string{`0 issue "ca.example; policy=ev"`}, "example.org", testIssuer, CAAPermitted, []string{"http-01"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := EvaluateCAA(tc.asked, "example.org.", caa(t, tc.records...), tc.iss)
			if d.Reason != tc.reason || d.Permitted != (tc.reason == CAANone || tc.reason == CAANoIssueProperty || tc.reason == CAAPermitted) ||
				!slices.Equal(d.Methods, tc.methods) || !strings.Contains(d.Detail, tc.detail) || len(d.Records) != len(tc.records) {
				t.Errorf("got %+v; want reason %s, methods %q, detail with %q", d, tc.reason, tc.methods, tc.detail)
			}
		})
	}
}

// TestParseCAAValue: the grammar, both ways.
func TestParseCAAValue(t *testing.T) {
	for in, want := range map[string]string{
		"letsencrypt.org":                    "letsencrypt.org",
		"LetsEncrypt.ORG;":                   "letsencrypt.org",
		";":                                  ";",
		"":                                   ";",
		"ca.example; accounturi=https://a/1": "ca.example; accounturi=https://a/1",
		" ca.example ;accounturi = https://a/1 ; validationmethods=dns-01 ": "ca.example; accounturi=https://a/1; validationmethods=dns-01",
	} {
		v, err := ParseCAAValue(in)
		if err != nil || v.String() != want {
			t.Errorf("ParseCAAValue(%q) = %q, %v; want %q", in, v.String(), err, want)
		}
	}
	for _, bad := range []string{"ca.example accounturi=x", "-ca.example", "ca..example", "ca.example; =x", "ca.example; a b=c", "ca.example; a=b c", "ca.example; a=\x01", strings.Repeat("a", MaxCAAValue+1)} {
		if v, err := ParseCAAValue(bad); err == nil {
			t.Errorf("ParseCAAValue(%q) = %+v; want an error", bad, v)
		}
	}
}

// FuzzParseCAAValue: any value parses or is refused without a panic,
// and what parses prints to a value that parses to the same.
func FuzzParseCAAValue(f *testing.F) {
	for _, s := range []string{"letsencrypt.org", ";", "ca.example; accounturi=https://a/1; validationmethods=dns-01,http-01", "a; b=c;;d=e", "x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseCAAValue(s)
		if err != nil {
			return
		}
		again, err := ParseCAAValue(v.String())
		if err != nil || again.String() != v.String() {
			t.Errorf("%q parsed to %q, which parses to %q, %v", s, v.String(), again.String(), err)
		}
	})
}

// TestCAAPublishAndCheck publishes our issue property into a real knotd
// zone by RFC 2136, reads it back with kdig, and judges issuances
// through a validating unbound in front of knotd: tree climbing from a
// name without records, a CNAME to a name with records, another account
// and a DNSSEC-bogus zone.
func TestCAAPublishAndCheck(t *testing.T) {
	k := testdns.StartKnot(t, testdns.KnotOptions{KeyName: "xmppcert-caa", Zones: []testdns.Zone{
		{Name: "example.org", Updatable: true, Signed: true, Records: `
old CAA 0 issue "ca.example"
old CAA 0 iodef "mailto:sec@example.org"
old CAA 0 issue "other.example"
alias CNAME bound
bound CAA 0 issue "ca.example; accounturi=https://ca.example/acme/acct/7"
`},
		{Name: "bogus.example", Signed: true, Records: `@ CAA 0 issue "ca.example"`},
	}})
	p := &CAAPublisher{DNS: k.Client()}
	want := CAARecords([]string{"example.org", "old.example.org"}, testIssuer, 0)
	reports, err := p.Publish(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	ours := `0 issue "ca.example; accounturi=` + testAccount + `; validationmethods=http-01"`
	if len(reports) != 2 || reports[0].Name != "example.org." || !slices.Equal(reports[0].Added, []string{ours}) || len(reports[0].Removed) != 0 ||
		reports[1].Name != "old.example.org." || !slices.Equal(reports[1].Removed, []string{`0 issue "ca.example"`}) || len(reports[1].Others) != 2 || !reports[1].Updated {
		t.Fatalf("reports %+v", reports)
	}
	if got := k.Kdig(t, "old.example.org", "CAA"); len(got) != 3 || !slices.Contains(got, ours) || slices.Contains(got, `0 issue "ca.example"`) {
		t.Errorf("kdig sees at old.example.org: %q; want ours, iodef and other.example's", got)
	}
	// Publishing again changes nothing.
	if reports, err := p.Publish(context.Background(), want); err != nil || reports[0].Changed() || reports[1].Changed() || reports[0].Updated {
		t.Errorf("second publish: %+v, %v", reports, err)
	}

	opts := k.UnboundOptions().BreakAnchor("bogus.example.")
	u := testdns.StartUnbound(t, opts)
	c := &CAAChecker{Resolver: u.Addr}
	for _, tc := range []struct {
		name, owner string
		reason      CAAReason
	}{
		{"example.org", "example.org.", CAAPermitted},
		{"muc.example.org", "example.org.", CAAPermitted}, // no records: the parent's
		{"old.example.org", "old.example.org.", CAAPermitted},
		{"alias.example.org", "bound.example.org.", CAAOtherAccount}, // through the CNAME
	} {
		d, err := c.Check(context.Background(), tc.name, testIssuer)
		if err != nil || d.Owner != tc.owner || d.Reason != tc.reason {
			t.Errorf("%s: %+v, %v; want %s at %s", tc.name, d, err, tc.reason, tc.owner)
		}
	}
	_, err = c.Check(context.Background(), "xmpp.bogus.example", testIssuer)
	var bogus *DNSSECBogusError
	if !errors.As(err, &bogus) || bogus.Name != "xmpp.bogus.example." {
		t.Errorf("bogus zone: %v; want a DNSSECBogusError for xmpp.bogus.example.", err)
	}
}
