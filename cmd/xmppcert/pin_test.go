package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testfs"
	"github.com/xmppcert/xmppcert/pinning"
)

// TestPOSHStaging walks a lineage whose POSH documents xmppcert writes
// through a renewal: the renewal stages the new certificate and the
// documents list both; the deployed certificate stays until the
// documents have listed the new one for their lifetime; then the next
// run makes it current, deploys it, and the documents list it alone.
// At no moment do the documents lack the certificate being served.
func TestPOSHStaging(t *testing.T) {
	advance := fakeClock(t)
	state := filepath.Join(t.TempDir(), "state")
	www := t.TempDir()
	mustRun(t, "--state-dir", state, "issue", "example.org", "-q")
	mustRun(t, "--state-dir", state, "pin", "posh", "example.org", "--out-dir", www, "--expires", "24h")
	v1 := mustLoad(t, state, "example.org")
	doc := filepath.Join(www, ".well-known", "posh", "xmpp-server.json")
	if got := poshListed(t, doc); len(got) != 1 || got[0] != poshDigest(v1.Chain[0]) {
		t.Fatalf("documents list %q; want the current certificate", got)
	}

	hook := filepath.Join(t.TempDir(), "deployed")
	out := mustRun(t, "--state-dir", state, "renew", "--force", "--hook", "echo $RENEWED_LINEAGE >> "+hook)
	if !regexp.MustCompile(`example\.org: staged: version 2 is staged, valid until .*; it goes live once POSH has listed it for 24h0m0s\n`).MatchString(out) {
		t.Fatalf("first renewal:\n%s\nwant the new version staged", out)
	}
	staged, err := acme.DiskStore{Dir: state}.LoadVersion("example.org", 2)
	if err != nil {
		t.Fatal(err)
	}
	if cur := mustLoad(t, state, "example.org"); cur.Version != 1 {
		t.Errorf("staging made version %d current; want 1 until POSH lists the new certificate long enough", cur.Version)
	}
	if got := poshListed(t, doc); len(got) != 2 || got[0] != poshDigest(v1.Chain[0]) || got[1] != poshDigest(staged.Chain[0]) {
		t.Errorf("documents during staging list %q; want the current and the staged certificate", got)
	}
	if _, err := os.Stat(hook); err == nil {
		t.Errorf("a staged version was deployed")
	}
	printed := mustRun(t, "--state-dir", state, "pin", "posh", "example.org", "--json")
	if !strings.Contains(printed, poshDigest(staged.Chain[0])) || !strings.Contains(printed, poshDigest(v1.Chain[0])) {
		t.Errorf("pin posh during staging does not list both certificates:\n%s", printed)
	}

	out = mustRun(t, "--state-dir", state, "renew", "--force")
	if !strings.Contains(out, "example.org: staged: version 2 is staged; it goes live after ") {
		t.Errorf("renewal inside the POSH lifetime:\n%s\nwant it to wait", out)
	}
	advance(24*time.Hour + time.Minute)
	out = mustRun(t, "--state-dir", state, "renew", "--force", "--hook", "echo $RENEWED_LINEAGE >> "+hook)
	if !strings.Contains(out, "example.org: renewed version 2 ") || !strings.Contains(out, "note: staged version 2 went live: POSH has listed it since ") {
		t.Fatalf("renewal after the POSH lifetime:\n%s\nwant the staged version live", out)
	}
	cur := mustLoad(t, state, "example.org")
	if cur.Version != 2 || !cur.Chain[0].Equal(staged.Chain[0]) {
		t.Errorf("current version %d; want the staged version 2", cur.Version)
	}
	if b, _ := os.ReadFile(hook); strings.Count(string(b), "\n") != 1 {
		t.Errorf("deploy hook ran %d times; want once, for the promotion", strings.Count(string(b), "\n"))
	}
	if got := poshListed(t, doc); len(got) != 1 || got[0] != poshDigest(staged.Chain[0]) {
		t.Errorf("documents after the switch list %q; want the new certificate alone", got)
	}
}

// TestPinBadInput: exit 2, one line on stderr naming the problem, nothing
// on stdout, nothing written.
func TestPinBadInput(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	mustRun(t, "--state-dir", state, "issue", "example.org", "-q")
	secret := filepath.Join(t.TempDir(), "unreadable.key")
	if err := os.WriteFile(secret, []byte("c2VjcmV0\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.key")
	dir := t.TempDir() // unreadable as a file, for root too
	dns := []string{"--dns-rfc2136-server", "127.0.0.1:53", "--dns-tsig-name", "k."}
	for _, tc := range []struct {
		args []string
		want string // a regular expression for the whole line
	}{
		{[]string{"pin", "tlsa", "unknown.example"}, `no lineage unknown\.example in .*/live; issue one with 'xmppcert issue unknown\.example'`},
		{[]string{"pin", "posh", "unknown.example"}, `no lineage unknown\.example .*`},
		{[]string{"pin", "tlsa", "example.org", "--port", "0"}, `--port "0": a TCP port is a number from 1 to 65535`},
		{[]string{"pin", "tlsa", "example.org", "--port", "70000"}, `--port "70000": a TCP port is a number from 1 to 65535`},
		{[]string{"pin", "tlsa", "example.org", "--port", "52x"}, `--port "52x": a TCP port is a number from 1 to 65535`},
		{[]string{"pin", "tlsa", "example.org", "--usage", "4"}, `--usage 4: TLSA usage must be 0 to 3`},
		{[]string{"pin", "tlsa", "example.org", "--selector", "2"}, `--selector 2: TLSA selector must be 0 to 1`},
		{[]string{"pin", "tlsa", "example.org", "--mtype", "3"}, `--mtype 3: TLSA mtype must be 0 to 2`},
		{[]string{"pin", "tlsa", "example.org", "--target", "a..b"}, `--target: invalid domain "a\.\.b": .*`},
		{[]string{"pin", "tlsa"}, `pin tlsa needs exactly one LINEAGE, the host a certificate was issued for`},
		{[]string{"pin", "tlsa", "--usage", "2", "example.org", "--mark-published"}, `--mark-published: this output pins no key .*`},
		{[]string{"pin", "posh", "example.org", "--service", "xmpp-foo"}, `--service: POSH service "xmpp-foo" is not "xmpp-client" or "xmpp-server": .*`},
		{[]string{"pin", "posh", "example.org", "--expires", "0s"}, `--expires: POSH expires 0s is under one second: .*`},
		{[]string{"pin", "posh", "example.org", "--out-dir", missing}, `--out-dir: web root .* does not exist: .*`},
		{[]string{"pin", "posh-redirect", "hosted.example", "--to", "http://provider.example/x.json"}, `.*https.*`},
		{[]string{"pin", "posh-redirect", "hosted.example"}, `pin posh-redirect needs --to URL, .*`},
		{append([]string{"pin", "publish", "example.org", "--dns-tsig-secret-file", secret}, dns...), `--dns-tsig-secret-file .*unreadable\.key: .*`},
		{append([]string{"pin", "publish", "example.org", "--dns-tsig-secret-file", missing}, dns...), `--dns-tsig-secret-file .*missing\.key: .*`},
		{append([]string{"pin", "publish", "example.org", "--dns-tsig-secret-file", dir}, dns...), `--dns-tsig-secret-file .*: .*`},
		{[]string{"pin", "tlsa", "example.org", "--from-srv", "--port", "5222"}, `--from-srv takes the targets and ports from DNS; leave out --target and --port`},
		{[]string{"pin", "publish", "example.org"}, `pin publish needs --dns-rfc2136-server, the primary that takes the updates`},
		{[]string{"pin", "publish", "unknown.example", "--dns-rfc2136-server", "127.0.0.1"}, `no lineage unknown\.example .*`},
		{[]string{"pin", "verify", "a..example"}, `DOMAIN: invalid domain "a\.\.example": .*`},
		{[]string{"pin", "verify", "example.org", "--service", "https"}, `--service "https": use xmpp-client or xmpp-server`},
		{[]string{"pin", "verify", "example.org", "--resolver", "127.0.0.1"}, `--resolver "127\.0\.0\.1": give HOST:PORT of a validating resolver`},
		{[]string{"pin", "verify", "example.org", "--lineage", "unknown.example"}, `--lineage unknown\.example: no such lineage in .*`},
		{[]string{"pin", "frobnicate"}, `.*frobnicate.*`},
	} {
		if os.Getuid() == 0 && strings.Contains(strings.Join(tc.args, " "), "unreadable") {
			continue // root reads a 0000 file; the directory covers the case
		}
		before := testfs.Snapshot(t, state)
		code, stdout, stderr := runCLI(t, nil, append([]string{"--state-dir", state}, tc.args...)...)
		re := regexp.MustCompile(`^xmppcert: ` + tc.want + `\n$`)
		if code != exitUsage || stdout != "" || !re.MatchString(stderr) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %s", tc.args, code, stdout, stderr, re)
		}
		if d := diff(before, testfs.Snapshot(t, state)); d != nil {
			t.Errorf("%q changed the state directory: %q", tc.args, d)
		}
	}
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := runCLI(t, nil, args...)
	if code != exitOK {
		t.Fatalf("%q: exit %d\n%s%s", args, code, stdout, stderr)
	}
	return stdout
}

// poshListed returns the sha-256 fingerprints a POSH document lists.
func poshListed(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := pinning.ParsePOSH(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	for _, f := range doc.Fingerprints {
		out = append(out, base64.StdEncoding.EncodeToString(f.SHA256))
	}
	return out
}

func poshDigest(c *x509.Certificate) string {
	d := sha256.Sum256(c.Raw)
	return base64.StdEncoding.EncodeToString(d[:])
}

// TestIssueRewritesPOSH: issue over a lineage whose POSH documents
// xmppcert writes rewrites them for the new certificate and says what
// cached documents mean.
func TestIssueRewritesPOSH(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	www := t.TempDir()
	mustRun(t, "--state-dir", state, "issue", "example.org", "-q")
	mustRun(t, "--state-dir", state, "pin", "posh", "example.org", "--out-dir", www, "--expires", "1h")
	out := mustRun(t, "--state-dir", state, "issue", "example.org")
	if !strings.Contains(out, "note: the POSH documents in "+www+" now list the new certificate; clients that cached the old ones (for up to 1h0m0s) refuse it") {
		t.Errorf("issue output:\n%s\nwant the POSH note", out)
	}
	cur := mustLoad(t, state, "example.org")
	if got := poshListed(t, filepath.Join(www, ".well-known", "posh", "xmpp-client.json")); len(got) != 1 || got[0] != poshDigest(cur.Chain[0]) {
		t.Errorf("documents list %q; want the new certificate", got)
	}
}
