package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/pinning"
)

// TestPinRollover is DANE end to end against real DNS: a DNSSEC-signed
// zone served by knotd on loopback, a validating unbound in front of it,
// XMPP servers (STARTTLS and direct TLS) presenting the lineage's live
// certificate. pin publish finds the endpoints in the SRV records and
// adds the records by RFC 2136, pin verify
// reports a match through the resolver's validation, ldns-dane verifies
// the published TLSA against the direct TLS endpoint, and the lineage
// rolls over through two renewals: at every step the published record
// set matches the deployed key, and a renewal switches keys only once
// the next key's record has been public for the hold time.
func TestPinRollover(t *testing.T) {
	advance := fakeClock(t)
	state := filepath.Join(t.TempDir(), "state")
	mustRun(t, "--state-dir", state, "issue", "example.org", "-q")
	root := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(root, []byte(mustRun(t, "--state-dir", state, "ca", "root")), 0o644); err != nil {
		t.Fatal(err)
	}
	live := func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(filepath.Join(state, "live", "example.org", acme.FullchainFile), filepath.Join(state, "live", "example.org", acme.KeyFile))
		return &c, err
	}
	starttls := xmpptlstest.Start(t, xmpptlstest.Config{GetCertificate: live})
	direct := xmpptlstest.Start(t, xmpptlstest.Config{GetCertificate: live, DirectTLS: true})
	k := testdns.StartKnot(t, testdns.KnotOptions{Zones: []testdns.Zone{{
		Name: "example.org", Updatable: true, Signed: true,
		Records: fmt.Sprintf("@ A 127.0.0.1\n_xmpp-client._tcp SRV 0 0 %d example.org.\n_xmpps-client._tcp SRV 0 0 %d example.org.\n",
			starttls.Port(), direct.Port()),
	}}})
	u := testdns.StartUnbound(t, k.UnboundOptions())
	secret := filepath.Join(t.TempDir(), "tsig.key")
	if err := os.WriteFile(secret, []byte(k.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	owners := []string{fmt.Sprintf("_%d._tcp.example.org.", starttls.Port()), fmt.Sprintf("_%d._tcp.example.org.", direct.Port())}
	publish := func() string {
		t.Helper()
		return mustRun(t, "--state-dir", state, "pin", "publish", "example.org", "--ttl", "1s", "--hold", "48h", "--from-srv", "--resolver", u.Addr,
			"--dns-rfc2136-server", k.Addr, "--dns-tsig-name", k.KeyName, "--dns-tsig-secret-file", secret)
	}
	// step checks the published record set against the deployed key
	// and the lineage's next key, and logs it.
	step := func(name string, wantNext bool) []string {
		t.Helper()
		l := mustLoad(t, state, "example.org")
		cur := spkiRecord(t, l.Key.Public())
		next := spkiRecord(t, l.NextKey.Public())
		var set []string
		for _, owner := range owners {
			var here []string
			for _, rr := range k.Records(t, owner, dns.TypeTLSA) {
				here = append(here, pinning.FromRR(rr.(*dns.TLSA)).Data)
			}
			slices.Sort(here)
			if !slices.Contains(here, cur) {
				t.Fatalf("%s: %s holds %q: no record for the deployed key %s", name, owner, here, cur)
			}
			if wantNext != slices.Contains(here, next) {
				t.Errorf("%s: %s holds %q; the next key's record %s present: want %v", name, owner, here, next, wantNext)
			}
			set = here
		}
		t.Logf("%s: version %d, deployed key %.12s, next key %.12s, published at each endpoint: %.12q", name, l.Version, cur, next, set)
		return set
	}
	verify := func(name string, wantBreak bool) {
		t.Helper()
		code, out, errs := runCLI(t, nil, "--state-dir", state, "pin", "verify", "example.org", "--service", "xmpp-client",
			"--resolver", u.Addr, "--roots", root, "--no-posh", "--json")
		var rep pinning.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%s: pin verify: exit %d: %v\n%s%s", name, code, err, out, errs)
		}
		if len(rep.Services) != 1 || len(rep.Services[0].Targets) != 2 || !rep.Services[0].SRV.Validated {
			t.Fatalf("%s: pin verify found %+v; want two validated targets", name, rep.Services)
		}
		for _, tg := range rep.Services[0].Targets {
			if tg.Status != pinning.StatusMatch || !tg.DANEApplies || tg.RenewalWouldBreak != wantBreak {
				t.Errorf("%s: %s:%d: status %s, DANE applies %v, renewal would break %v; want match, true, %v\n%s",
					name, tg.Target, tg.Port, tg.Status, tg.DANEApplies, tg.RenewalWouldBreak, wantBreak, out)
			}
		}
		if wantCode := map[bool]int{false: exitOK, true: exitFailed}[wantBreak]; code != wantCode {
			t.Errorf("%s: pin verify exit %d; want %d", name, code, wantCode)
		}
	}

	out := publish()
	if !strings.Contains(out, "renewal may switch example.org to its next key after ") {
		t.Errorf("first publish:\n%s", out)
	}
	first := step("published", true)
	verify("published", false)
	_, text, _ := runCLI(t, nil, "--state-dir", state, "pin", "verify", "example.org", "--service", "xmpp-client",
		"--resolver", u.Addr, "--roots", root, "--no-posh")
	t.Logf("pin verify:\n%s", text)
	ldnsDANE(t, u, k, direct.Port())

	// Inside the hold the renewal keeps the key: the next key's record
	// may not have reached every cache.
	out = mustRun(t, "--state-dir", state, "renew", "--force")
	if !strings.Contains(out, "key held: kept the current key: the next key's pins were published") {
		t.Fatalf("renewal inside the hold:\n%s\nwant the key held", out)
	}
	if got := step("renewed inside the hold", true); !slices.Equal(got, first) {
		t.Errorf("a held renewal changed the record set")
	}

	for i := 1; i <= 2; i++ {
		advance(48*time.Hour + time.Minute)
		before := mustLoad(t, state, "example.org")
		mustRun(t, "--state-dir", state, "renew", "--force")
		after := mustLoad(t, state, "example.org")
		if !sameKey(after.Key.Public(), before.NextKey.Public()) {
			t.Fatalf("renewal %d after the hold did not switch to the pre-published next key", i)
		}
		// The new key's record was published ahead: DANE holds before
		// anything is published again; only the new next key is missing.
		step(fmt.Sprintf("renewal %d, before publishing", i), false)
		verify(fmt.Sprintf("renewal %d, before publishing", i), true)
		out = publish()
		if !strings.Contains(out, "\nremove: ") {
			t.Errorf("publish after renewal %d removed no stale record:\n%s", i, out)
		}
		set := step(fmt.Sprintf("renewal %d, published", i), true)
		if len(set) != 2 {
			t.Errorf("after renewal %d: %d records per endpoint; want the current and the next key's", i, len(set))
		}
		verify(fmt.Sprintf("renewal %d, published", i), false)
	}
	ldnsDANE(t, u, k, direct.Port())
}

// ldnsDANE runs ldns-dane against the direct TLS endpoint: it resolves
// the TLSA record through the validating resolver (which needs port 53,
// ldns-dane -r takes an address alone) and checks the presented
// certificate against it.
func ldnsDANE(t *testing.T, u *testdns.Unbound, k *testdns.Knot, port uint16) {
	t.Helper()
	bin := testtool.Require(t, "ldns-dane", "ldnsutils")
	if !u.Port53 {
		if os.Getenv("CI") != "" {
			t.Fatal("the validating resolver could not listen on port 53, which ldns-dane needs; CI runs as root")
		}
		t.Log("skipping ldns-dane: the resolver could not listen on port 53 (needs root)")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-r", u.Host, "-k", k.Anchors["example.org."].WriteFile(t), "-n",
		"verify", "example.org", fmt.Sprint(port)).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "dane-validated successfully") {
		t.Fatalf("ldns-dane verify: %v\n%s", err, out)
	}
	t.Logf("ldns-dane: %s", strings.TrimSpace(string(out)))
}

func spkiRecord(t *testing.T, pub any) string {
	t.Helper()
	r, err := pinning.NewKeyTLSA(pub, pinning.UsageDANEEE, pinning.MatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return r.Data
}

func sameKey(a, b any) bool {
	return acme.SPKIDigest(a) == acme.SPKIDigest(b)
}
