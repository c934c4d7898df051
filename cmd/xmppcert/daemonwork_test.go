package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/pinning"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/daemon"
)

// TestDaemonWork runs the daemon's renewal work over a configuration
// with two hosts and a lineage no host names, against a real knotd on
// loopback taking RFC 2136 updates signed with TSIG:
//
//  1. the first run issues both hosts with the local CA, publishes the
//     TLSA records of the current and the next key of the DANE host
//     (exactly those two at each endpoint), records them published with
//     the configured hold, and writes the POSH documents of the POSH host
//     into its out_dir;
//  2. a forced run inside the hold renews without switching keys and
//     publishes nothing new; the POSH host's renewal is staged and its
//     documents list both certificates;
//  3. a forced run after the hold switches the DANE host to the next key
//     (whose record was public when the new certificate was deployed),
//     publishes the new next key and removes the old key's records; the
//     POSH host's staged certificate goes live;
//  4. a run with nothing due changes nothing.
//
// A deploy hook asks knotd for the records at every deploy, so that the
// test sees that the deployed key always had its record; the unnamed
// lineage is renewed by every forced run; the TSIG secret never shows in
// the logs.
func TestDaemonWork(t *testing.T) {
	advance := fakeClock(t)
	k := testdns.StartKnot(t, testdns.KnotOptions{Zones: []testdns.Zone{{Name: "example.org", Updatable: true}}})
	kdig := testtool.Require(t, "kdig", "knot-dnsutils")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	www := filepath.Join(dir, "www")
	if err := os.Mkdir(www, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "tsig.key")
	writeFile(t, secret, []byte(k.Secret+"\n"), 0o600)
	mustRun(t, "--state-dir", state, "issue", "other.example", "-q")

	// The hook appends the event, then the TLSA records knotd holds at
	// the first endpoint as kdig prints them, then a line ".".
	seen := filepath.Join(dir, "seen")
	host, port, _ := net.SplitHostPort(k.Addr)
	hook := fmt.Sprintf(`printf '%%s\n' "$XMPPCERT_EVENT" >> %[1]s && %[2]s @%[3]s -p %[4]s +tcp +short +norecurse _5222._tcp.example.org TLSA >> %[1]s && echo . >> %[1]s`,
		seen, kdig, host, port)
	cfgFile := filepath.Join(dir, "xmppcert.toml")
	// The POSH host comes first, so that the DANE host's records are
	// marked published at the end of a run, as close as can be to the
	// next run's renewal.
	cfgText := fmt.Sprintf(`[[host]]
domain = "example.net"
[host.pins.posh]
out_dir = %q
expires = "24h"

[[host]]
domain = "example.org"
hooks = [%q]
[host.pins.tlsa]
server = %q
tsig_name = %q
tsig_secret_file = %q
ttl = "1s"
hold = "48h"
ports = [5222, 5269]
`, www, hook, k.Addr, k.KeyName, secret)
	writeFile(t, cfgFile, []byte(cfgText), 0o600)
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	var logs testtool.LockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	defer func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()
	ctx := context.Background()
	forced := func(name string) {
		t.Helper()
		if err := reconcile(state, cfg, true, logger)(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	owners := []string{"_5222._tcp.example.org.", "_5269._tcp.example.org."}
	// published returns the record set, the same at every endpoint.
	published := func(name string) []string {
		t.Helper()
		var set []string
		for i, owner := range owners {
			var here []string
			for _, rr := range k.Records(t, owner, dns.TypeTLSA) {
				here = append(here, pinning.FromRR(rr.(*dns.TLSA)).Data)
			}
			slices.Sort(here)
			if i > 0 && !slices.Equal(here, set) {
				t.Fatalf("%s: %s holds %.12q, %s holds %.12q; want the same set", name, owners[0], set, owner, here)
			}
			set = here
		}
		return set
	}
	wantSet := func(name string, keys ...any) []string {
		t.Helper()
		var want []string
		for _, key := range keys {
			want = append(want, spkiRecord(t, key))
		}
		slices.Sort(want)
		if got := published(name); !slices.Equal(got, want) {
			t.Fatalf("%s: published %.12q; want %.12q", name, got, want)
		}
		return want
	}
	pinState := func() acme.PinState {
		t.Helper()
		ps, err := acme.DiskStore{Dir: state}.PinState("example.org")
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	countLog := func(msg string) int {
		return strings.Count(logs.String(), `"msg":`+jsonString(msg)+`,`)
	}
	docs := []string{filepath.Join(www, ".well-known", "posh", "xmpp-client.json"), filepath.Join(www, ".well-known", "posh", "xmpp-server.json")}
	wantPOSH := func(name string, versions ...int) {
		t.Helper()
		var want []string
		for _, v := range versions {
			l, err := acme.DiskStore{Dir: state}.LoadVersion("example.net", v)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, poshDigest(l.Chain[0]))
		}
		for _, doc := range docs {
			if got := poshListed(t, doc); !slices.Equal(got, want) {
				t.Errorf("%s: %s lists %q; want versions %v: %q", name, doc, got, versions, want)
			}
		}
	}

	// 1. Issue, publish, write POSH.
	if err := reconcile(state, cfg, false, logger)(ctx); err != nil {
		t.Fatalf("first run: %v", err)
	}
	l1 := mustLoad(t, state, "example.org")
	if l1.Version != 1 || l1.NextKey == nil {
		t.Fatalf("first run: example.org version %d, next key %v; want version 1 with a next key", l1.Version, l1.NextKey != nil)
	}
	first := wantSet("first run", l1.Key.Public(), l1.NextKey.Public())
	ps := pinState()
	since, ok := ps.PublishedFor(l1.NextKey.Public())
	if _, cur := ps.PublishedFor(l1.Key.Public()); !ok || !cur || ps.Hold() != 48*time.Hour {
		t.Fatalf("first run: pin state %+v; want the current and the next key published, hold 48h", ps)
	}
	if n := mustLoad(t, state, "example.net"); n.Version != 1 {
		t.Fatalf("first run: example.net version %d; want 1", n.Version)
	}
	wantPOSH("first run", 1)
	if countLog("issued") != 2 || countLog("TLSA records published") != 1 || countLog("POSH documents written") != 1 {
		t.Errorf("first run: want two issued, one TLSA and one POSH record")
	}
	t.Logf("1. issued; published at each endpoint: %.12q", first)

	// 2. Forced, inside the hold: the key is held, nothing is published.
	forced("second run")
	l2 := mustLoad(t, state, "example.org")
	if l2.Version != 2 || !sameKey(l2.Key.Public(), l1.Key.Public()) || !sameKey(l2.NextKey.Public(), l1.NextKey.Public()) {
		t.Fatalf("second run: version %d, key switched %v; want version 2 keeping the current and next key", l2.Version, !sameKey(l2.Key.Public(), l1.Key.Public()))
	}
	wantSet("second run", l2.Key.Public(), l2.NextKey.Public())
	if again, _ := pinState().PublishedFor(l1.NextKey.Public()); !again.Equal(since) {
		t.Errorf("second run: the next key is published since %s; want %s still", again, since)
	}
	if countLog("TLSA records published") != 1 {
		t.Errorf("second run published TLSA records")
	}
	if mustLoad(t, state, "example.net").Version != 1 {
		t.Errorf("second run: the POSH host's renewal went live; want it staged")
	}
	wantPOSH("second run", 1, 2)
	if o := mustLoad(t, state, "other.example"); o.Version != 2 {
		t.Errorf("second run: other.example, which no host names, is version %d; want 2", o.Version)
	}
	t.Logf("2. renewed inside the hold, key kept; published: %.12q", first)

	// 3. Forced, after the hold: the renewal switches to the next key.
	advance(48*time.Hour + time.Minute)
	forced("third run")
	l3 := mustLoad(t, state, "example.org")
	if l3.Version != 3 || !sameKey(l3.Key.Public(), l1.NextKey.Public()) {
		t.Fatalf("third run: version %d; want version 3 with the pre-published next key", l3.Version)
	}
	third := wantSet("third run", l3.Key.Public(), l3.NextKey.Public())
	if _, ok := pinState().PublishedFor(l3.NextKey.Public()); !ok {
		t.Errorf("third run: the new next key is not recorded published")
	}
	if n := mustLoad(t, state, "example.net"); n.Version != 2 {
		t.Errorf("third run: example.net version %d; want the staged version 2 live", n.Version)
	}
	wantPOSH("third run", 2)
	t.Logf("3. renewed after the hold onto the next key; published: %.12q", third)

	// 4. Nothing due: nothing changes.
	if err := reconcile(state, cfg, false, logger)(ctx); err != nil {
		t.Fatalf("fourth run: %v", err)
	}
	if l := mustLoad(t, state, "example.org"); l.Version != 3 {
		t.Errorf("fourth run renewed example.org")
	}
	wantSet("fourth run", l3.Key.Public(), l3.NextKey.Public())
	if countLog("TLSA records published") != 2 || countLog("POSH documents written") != 1 {
		t.Errorf("fourth run: want TLSA published twice in all (first and third run) and POSH written once")
	}

	// Every deploy found the deployed key's record published, except the
	// first issuance, before which no record existed at all.
	deployed := []struct {
		event string
		key   any
	}{{acme.EventIssued, nil}, {acme.EventRenewed, l2.Key.Public()}, {acme.EventRenewed, l3.Key.Public()}}
	blocks := hookBlocks(t, seen)
	if len(blocks) != len(deployed) {
		t.Fatalf("the hook ran %d times: %q; want %d", len(blocks), blocks, len(deployed))
	}
	for i, d := range deployed {
		b := blocks[i]
		switch {
		case b[0] != d.event:
			t.Errorf("deploy %d: event %s; want %s", i+1, b[0], d.event)
		case d.key == nil && len(b) > 1:
			t.Errorf("deploy %d: records %q published before the first issuance", i+1, b[1:])
		case d.key != nil && !slices.Contains(b[1:], spkiRecord(t, d.key)):
			t.Errorf("deploy %d: the deployed key %.12s had no record at the time: %.12q", i+1, spkiRecord(t, d.key), b[1:])
		}
	}
	if strings.Contains(logs.String(), k.Secret) {
		t.Errorf("the TSIG secret is in the log")
	}
}

// hookBlocks reads the file the deploy hook of TestDaemonWork appends
// to: per deploy, the event and the data of the TLSA 3 1 1 records, in
// hex, as spkiRecord returns them.
func hookBlocks(t *testing.T, path string) [][]string {
	t.Helper()
	var out [][]string
	var cur []string
	for _, line := range testtool.Lines(t, path) {
		switch f := strings.Fields(line); {
		case line == ".":
			out, cur = append(out, cur), nil
		case cur == nil:
			cur = []string{line}
		case len(f) >= 4 && strings.Join(f[:3], " ") == "3 1 1":
			cur = append(cur, strings.ToLower(strings.Join(f[3:], "")))
		default:
			t.Fatalf("kdig printed %q", line)
		}
	}
	return out
}

// TestDaemonWorkIssueFailure: a host that cannot be issued (an ACME CA
// without an account and without agree_tos) is logged with what to set
// and fails the run, while the other host is issued; the EAB key never
// shows in the log.
func TestDaemonWorkIssueFailure(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	hmac := "c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw"
	writeFile(t, filepath.Join(dir, "eab.key"), []byte(hmac+"\n"), 0o600)
	cfgFile := filepath.Join(dir, "xmppcert.toml")
	writeFile(t, cfgFile, []byte(`[[host]]
domain = "acme.example"
ca = "https://127.0.0.1:1/directory"
[host.acme]
email = "hostmaster@acme.example"
eab_kid = "kid-1"
eab_hmac_file = "eab.key"
http_listen = "127.0.0.1:0"

[[host]]
domain = "local.example"
`), 0o600)
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	var logs testtool.LockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	err = reconcile(state, cfg, false, logger)(context.Background())
	if err == nil || err.Error() != "1 of 2 lineages failed" {
		t.Errorf("run: %v; want 1 of 2 lineages failed", err)
	}
	if l := mustLoad(t, state, "local.example"); l.Version != 1 {
		t.Errorf("local.example version %d; want 1", l.Version)
	}
	var rec struct {
		Msg, Lineage, Error, Next string
	}
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if err := json.Unmarshal([]byte(line), &rec); err == nil && rec.Msg == "issuance failed" {
			break
		}
		rec.Msg = ""
	}
	if rec.Lineage != "acme.example" || !strings.Contains(rec.Error, "no account with") || !strings.Contains(rec.Next, "agree_tos = true") || !strings.Contains(rec.Next, "line 1") {
		t.Errorf("issuance failure logged as %+v; want the lineage, the error and agree_tos at line 1\n%s", rec, logs.String())
	}
	if strings.Contains(logs.String(), hmac) {
		t.Errorf("the EAB HMAC key is in the log")
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// reconcile is one renewal run of the daemon over cfg's hosts and the
// lineages in state, as the daemon runs it.
func reconcile(state string, cfg *config.Config, force bool, logger *slog.Logger) func(context.Context) error {
	return func(ctx context.Context) error {
		hosts, err := daemon.DesiredHosts(cfg)
		if err != nil {
			return err
		}
		engine := lifecycle.OnDisk(state)
		engine.Now = clock
		return engine.Reconcile(ctx, hosts, force, logger)
	}
}
