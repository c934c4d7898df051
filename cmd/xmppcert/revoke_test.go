package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/testfs"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestRevokeLocal revokes a certificate of the embedded CA for key
// compromise: `openssl crl` lists its serial in STATE/ca/crl.der and
// `openssl verify -crl_check` refuses it, while the CA's next
// certificate passes; certificates and the monitoring check show it due
// (critical) until renew replaces it, at once, with the
// lineage's pre-made next key although --reuse-key was given. Bad
// input is refused with exit 2 and nothing written.
func TestRevokeLocal(t *testing.T) {
	openssl := testtool.Require(t, "openssl", "openssl")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, nil, append([]string{"--state-dir", state}, args...)...)
	}
	if code, out, errs := cli("issue", "example.org", "--reuse-key", "-q"); code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
	}
	store := acme.DiskStore{Dir: state}
	v1, err := store.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"revoke", "example.org", "--reason", "bored"}, `xmppcert: --reason "bored" is not a revocation reason; use one of affiliationChanged, cessationOfOperation, keyCompromise, superseded, unspecified` + "\n"},
		{[]string{"revoke", "other.example"}, "xmppcert: no lineage other.example in " + filepath.Join(state, "live") + "; 'xmppcert certificates' lists them\n"},
		{[]string{"revoke"}, "xmppcert: revoke needs exactly one LINEAGE\n"},
	} {
		before := testfs.Snapshot(t, state)
		if code, out, errs := cli(c.args...); code != exitUsage || out != "" || errs != c.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, out, errs, c.want)
		}
		if d := diff(before, testfs.Snapshot(t, state)); d != nil {
			t.Errorf("%q changed the state directory: %q", c.args, d)
		}
	}

	code, out, errs := cli("revoke", "example.org", "--reason", "keyCompromise")
	if code != exitOK || !strings.HasPrefix(out, fmt.Sprintf("Revoked example.org version 1 (serial %s, keyCompromise) by the embedded CA", v1.Chain[0].SerialNumber)) {
		t.Fatalf("revoke: exit %d\n%s%s", code, out, errs)
	}
	crl := filepath.Join(state, "ca", "crl.der")
	text, err := exec.Command(openssl, "crl", "-in", crl, "-inform", "der", "-noout", "-text").CombinedOutput()
	serialHex := strings.ToUpper(v1.Chain[0].SerialNumber.Text(16))
	if len(serialHex)%2 == 1 {
		serialHex = "0" + serialHex
	}
	if err != nil || !strings.Contains(string(text), "Serial Number: "+serialHex) || !strings.Contains(string(text), "Key Compromise") {
		t.Errorf("openssl crl -text: %v; want serial %s, Key Compromise\n%s", err, serialHex, text)
	}
	root := filepath.Join(state, "ca", "root.crt")
	verify := func(cert string) (string, error) {
		out, err := exec.Command(openssl, "verify", "-crl_check", "-CAfile", root, "-untrusted", filepath.Join(state, "ca", "intermediate.crt"),
			"-CRLfile", filepath.Join(state, "ca", "crl.pem"), cert).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(filepath.Join(state, "live", "example.org", "cert.pem")); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify -crl_check of the revoked certificate: %v\n%s; want it refused as revoked", err, out)
	}

	// Until renew replaces it, the lineage shows as due because revoked,
	// and the monitoring check is critical.
	certificates := func() lifecycle.LineageStatus {
		t.Helper()
		code, out, errs := cli("certificates", "--json")
		var got certificatesOutput
		if err := json.Unmarshal([]byte(out), &got); code != exitOK || err != nil || len(got.Lineages) != 1 {
			t.Fatalf("certificates --json: exit %d, %v\n%s%s", code, err, out, errs)
		}
		return got.Lineages[0]
	}
	if l := certificates(); !l.Due || l.Rule != acme.RuleRevoked || l.Revoked == nil || l.Revoked.Reason != acme.ReasonKeyCompromise {
		t.Errorf("certificates after the revocation: due %v, rule %q, revoked %+v; want due by rule %q, keyCompromise", l.Due, l.Rule, l.Revoked, acme.RuleRevoked)
	}
	problem := "lineage example.org: version 1 was revoked (keyCompromise) at "
	if code, out, _ := cli("status", "--check", "--listen", "127.0.0.1:1"); code != checkCritical || !strings.Contains(out, problem) {
		t.Errorf("status --check after the revocation: exit %d; want CRITICAL with %q\n%s", code, problem, out)
	}

	code, out, errs = cli("renew")
	if code != exitOK || !strings.Contains(out, "example.org: renewed version 2") || !strings.Contains(out, "was revoked (keyCompromise)") {
		t.Fatalf("renew after the revocation: exit %d; want version 2 at once\n%s%s", code, out, errs)
	}
	v2, err := store.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !sameKey(v2.Key.Public(), v1.NextKey.Public()) || sameKey(v2.Key.Public(), v1.Key.Public()) {
		t.Errorf("version 2's key is not version 1's next key (or is the compromised one), despite --reuse-key")
	}
	if out, err := verify(filepath.Join(state, "live", "example.org", "cert.pem")); err != nil {
		t.Errorf("openssl verify -crl_check of the replacement: %v\n%s", err, out)
	}
	if code, out, _ := cli("renew"); code != exitOK || !strings.Contains(out, "example.org: not due") {
		t.Errorf("renew after the replacement: exit %d; want not due\n%s", code, out)
	}
	if l := certificates(); l.Due || l.Rule != acme.RuleLifetime || l.Revoked != nil {
		t.Errorf("certificates after the replacement: due %v, rule %q, revoked %+v; want not due, rule %q", l.Due, l.Rule, l.Revoked, acme.RuleLifetime)
	}
}

// TestRevokePebble revokes a certificate of an ACME CA (pebble): the CA
// accepts the revocation (its renewal information then says renew now),
// and renew re-issues it at once.
func TestRevokePebble(t *testing.T) {
	p := startPublicPebble(t, acmecatest.PebbleOptions{})
	state := filepath.Join(t.TempDir(), "state")
	if code, out, errs := runCLI(t, nil, append([]string{"--state-dir", state, "issue", "example.org", "-q"}, p.args("--agree-tos")...)...); code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
	}
	store := acme.DiskStore{Dir: state}
	v1, err := store.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, nil, "--state-dir", state, "revoke", "example.org", "--reason", "superseded")
	if code != exitOK || !strings.Contains(out, "Revoked example.org version 1") || !strings.Contains(out, "superseded) by "+p.Directory) {
		t.Fatalf("revoke: exit %d\n%s%s", code, out, errs)
	}
	iss, _, release, err := lifecycle.OpenIssuer(state, v1.Request, lifecycle.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := iss.(acme.RenewalAdvisor).RenewalWindow(context.Background(), v1.Chain[0])
	release()
	if err != nil || w.End.After(time.Now().Add(time.Minute)) {
		t.Errorf("pebble's renewal window after the revocation: %+v, %v; want one that says renew now (the revocation was accepted)", w, err)
	}
	code, out, errs = runCLI(t, nil, "--state-dir", state, "renew")
	if code != exitOK || !strings.Contains(out, "example.org: renewed version 2") {
		t.Fatalf("renew after the revocation: exit %d\n%s%s", code, out, errs)
	}
}
