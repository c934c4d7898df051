package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/internal/testdns"
)

// TestCAAAndPreflight: lineages from pebble (given its CAA identity,
// pebble.test, since its directory names none) with the pre-flight
// asking a validating unbound in front of a knotd that signs the zones.
// caa --publish binds a lineage to our account in the real zone (read
// back with kdig), and renewal under it goes out. Records that forbid
// the CA, bind it to another account or allow only dns-01, and a
// DNSSEC-bogus zone: caa verify and preflight say why, and issue and
// renew are refused before any order reaches pebble.
func TestCAAAndPreflight(t *testing.T) {
	k := testdns.StartKnot(t, testdns.KnotOptions{Zones: []testdns.Zone{
		{Name: "example.net", Signed: true, Updatable: true, Records: "ok A 127.0.0.1\nca A 127.0.0.1\nacct A 127.0.0.1\ndns A 127.0.0.1\n"},
		{Name: "bogus.example", Signed: true, Records: "xmpp A 127.0.0.1\n"},
		// The top-level domain, which the CAA lookup climbs to when no
		// name below has records (unbound here has no root to ask).
		{Name: "net"},
	}})
	opts := k.UnboundOptions().BreakAnchor("bogus.example.")
	u := testdns.StartUnbound(t, opts)
	p := startPublicPebble(t, acmecatest.PebbleOptions{})
	state := filepath.Join(t.TempDir(), "state")
	issue := func(name string, extra ...string) (int, string, string) {
		return runCLI(t, nil, append([]string{"--state-dir", state, "issue", name}, p.args(append([]string{"--agree-tos", "--caa-identity", "pebble.test", "--preflight-resolver", u.Addr}, extra...)...)...)...)
	}
	// No CAA records yet: every order goes out.
	for _, n := range []string{"ok", "ca", "acct", "dns"} {
		if code, out, errs := issue(n + ".example.net"); code != exitOK {
			t.Fatalf("issue %s: exit %d\n%s%s", n, code, out, errs)
		}
	}
	orders := len(p.Orders())

	// DNSSEC bogus: refused before the order.
	code, out, errs := issue("xmpp.bogus.example")
	if code != exitFailed || !strings.Contains(errs, "not sent, the CA would refuse it: pre-flight: dnssec xmpp.bogus.example: DNSSEC validation fails at xmpp.bogus.example.") || len(p.Orders()) != orders {
		t.Errorf("issue in a bogus zone: exit %d, %d orders (was %d)\n%s%s", code, len(p.Orders()), orders, out, errs)
	}

	// preflight for a domain not issued yet, described by issue's flags.
	code, out, errs = runCLI(t, nil, append([]string{"--state-dir", state, "preflight", "xmpp.bogus.example", "--resolver", u.Addr}, p.args("--caa-identity", "pebble.test")...)...)
	if code != exitFailed || !strings.HasPrefix(out, "FAIL dnssec     xmpp.bogus.example. DNSSEC validation fails at xmpp.bogus.example.") || len(p.Orders()) != orders {
		t.Errorf("preflight of a domain in a bogus zone: exit %d, %d orders (was %d)\n%s%s", code, len(p.Orders()), orders, out, errs)
	}

	// caa --publish binds ok.example.net to our account.
	secret := filepath.Join(t.TempDir(), "tsig.key")
	if err := os.WriteFile(secret, []byte(k.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	account := acmeAccountURI(t, state, p.Directory)
	ours := `0 issue "pebble.test; accounturi=` + account + `; validationmethods=http-01"`
	code, out, errs = runCLI(t, nil, "--state-dir", state, "caa", "ok.example.net", "--publish", "--dns-rfc2136-server", k.Addr,
		"--dns-tsig-name", k.KeyName, "--dns-tsig-secret-file", secret)
	if code != exitOK || out != "add: ok.example.net. CAA "+ours+"\n" {
		t.Fatalf("caa --publish: exit %d\n%s%s", code, out, errs)
	}
	if got := k.Kdig(t, "ok.example.net", "CAA"); len(got) != 1 || got[0] != ours {
		t.Errorf("kdig reads %q; want %q", got, ours)
	}

	// The other names get records an operator (or an attacker with the
	// zone) might write.
	for name, rec := range map[string]string{
		"ca.example.net":   `0 issue "other.example"`,
		"acct.example.net": `0 issue "pebble.test; accounturi=https://elsewhere.example/acct/1"`,
		"dns.example.net":  `0 issue "pebble.test; validationmethods=dns-01"`,
	} {
		rr, err := dns.NewRR(name + ". 60 IN CAA " + rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Client().Update(context.Background(), "example.net.", []dns.RR{rr}, nil); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		name, why string
	}{
		{"ok.example.net", ""},
		{"ca.example.net", `REFUSED \(ca-not-listed\): only other.example may issue, not pebble.test`},
		{"acct.example.net", `REFUSED \(account-mismatch\): pebble.test may issue only to account https://elsewhere.example/acct/1, not to ours`},
		{"dns.example.net", `REFUSED \(method-not-allowed\): pebble.test may validate only by dns-01, and this order offers http-01`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, nil, "--state-dir", state, "caa", "verify", tc.name)
			want := exitOK
			if tc.why != "" {
				want = exitFailed
			}
			if code != want || tc.why != "" && !regexp.MustCompile(`^`+regexp.QuoteMeta(tc.name)+`: `+tc.why).MatchString(out) ||
				tc.why == "" && !strings.HasPrefix(out, tc.name+": permitted (permitted): pebble.test may issue, validated by http-01\n") {
				t.Errorf("caa verify: exit %d (want %d)\n%s%s", code, want, out, errs)
			}
			code, out, errs = runCLI(t, nil, "--state-dir", state, "preflight", tc.name)
			if code != want || tc.why != "" && !strings.Contains(out, "FAIL caa        "+tc.name+". CAA at "+tc.name+".: ") {
				t.Errorf("preflight: exit %d (want %d)\n%s%s", code, want, out, errs)
			}
			before := len(p.Orders())
			code, out, errs = runCLI(t, nil, "--state-dir", state, "renew", "--force", "--lineage", tc.name)
			if tc.why == "" {
				if code != exitOK || len(p.Orders()) != before+1 {
					t.Errorf("renew under our own CAA record: exit %d, %d orders (was %d)\n%s%s", code, len(p.Orders()), before, out, errs)
				}
				return
			}
			if code != exitFailed || !strings.Contains(out+errs, "not sent, the CA would refuse it: pre-flight: caa "+tc.name+": CAA at "+tc.name+".: ") || len(p.Orders()) != before {
				t.Errorf("renew: exit %d, %d orders (was %d)\n%s%s", code, len(p.Orders()), before, out, errs)
			}
		})
	}

	// caa verify of a lineage in the bogus zone (issued with the
	// pre-flight off): it says why no CA will issue there.
	if code, out, errs := issue("xmpp.bogus.example", "--no-preflight"); code != exitOK {
		t.Fatalf("issue --no-preflight: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, nil, "--state-dir", state, "caa", "verify", "xmpp.bogus.example")
	if code != exitFailed || !strings.Contains(errs, "xmpp.bogus.example: DNSSEC validation fails for xmpp.bogus.example.") {
		t.Errorf("caa verify in a bogus zone: exit %d\n%s%s", code, out, errs)
	}
}

// acmeAccountURI is the URL of the ACME account kept in state for the
// directory.
func acmeAccountURI(t *testing.T, state, directory string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(acmeca.AccountDir(state, directory), acmeca.AccountFile))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"location": "([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no location in %s", b)
	}
	return string(m[1])
}
