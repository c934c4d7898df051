package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testfs"
)

// TestIssueDesiredState: re-issuing an existing lineage keeps its stored
// deploy targets, hooks, key type, key reuse and validity (those asked
// for anew and different are reported); other names are refused with the difference
// (exit 2, one line, the state directory unchanged) unless
// --replace-names, which then says what changed; --replace-names with
// nothing to replace and --no-hooks behave as documented.
func TestIssueDesiredState(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	log := filepath.Join(t.TempDir(), "hook.log")
	hook := `echo "$XMPPCERT_EVENT $XMPPCERT_DOMAINS" >> ` + log
	issue := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, nil, append([]string{"--state-dir", state, "issue", "example.org"}, args...)...)
	}
	if code, out, errs := issue("--component", "muc.example.org", "--hook", hook, "--key-type", "rsa2048", "--reuse-key", "--days", "30", "-q"); code != exitOK {
		t.Fatalf("first issue: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := issue("--component", "muc.example.org"); code != exitOK || strings.Contains(out, "changed") {
		t.Fatalf("plain re-issue: exit %d, want 0 and no change reported\n%s%s", code, out, errs)
	}
	if l, err := (acme.DiskStore{Dir: state}).Load("example.org"); err != nil || l.Request.Key != acme.KeyRSA2048 || !l.Request.ReuseKey || l.Request.Days != 30 {
		t.Errorf("after a plain re-issue: %+v, %v; want the key type, key reuse and days stored at first", l.Request, err)
	}
	b, _ := os.ReadFile(log)
	if want := "issued example.org muc.example.org\nissued example.org muc.example.org\n"; string(b) != want {
		t.Errorf("hook calls %q; want the stored hook run by the plain re-issue too: %q", b, want)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, `lineage example\.org is stored with other names or CA than asked for \(- muc\.example\.org \(component\)\); nothing was changed; give --replace-names to issue it with these names`},
		{[]string{"--component", "muc.example.org", "--anonymous"}, `.*\(example\.org: host -> anonymous\).*--replace-names.*`},
		{[]string{"--component", "muc.example.org", "--replace-names"}, `--replace-names: the names, roles and CA asked for are those stored; there is nothing to replace; leave the flag out`},
	} {
		before := testfs.Snapshot(t, state)
		code, out, errs := issue(c.args...)
		if code != exitUsage || out != "" || !oneLine(errs) || !regexp.MustCompile(`^xmppcert: `+c.want+"\n$").MatchString(errs) {
			t.Errorf("issue example.org %q: exit %d, stdout %q, stderr %q; want exit 2 and one line matching %s", c.args, code, out, errs, c.want)
		}
		if d := diff(before, testfs.Snapshot(t, state)); d != nil {
			t.Errorf("issue example.org %q changed the state directory: %q", c.args, d)
		}
	}

	code, out, errs := issue("--replace-names", "--no-hooks", "--key-type", "ecdsa-p256", "--days", "30")
	if code != exitOK || !strings.Contains(out, "  changed   names: - muc.example.org (component)\n") ||
		!strings.Contains(out, "  changed   hook removed: "+hook+"\n") || !strings.Contains(out, "  changed   key type: rsa2048 -> ecdsa-p256\n") ||
		strings.Contains(out, "changed   days") || strings.Contains(out, "changed   reuse key") {
		t.Fatalf("--replace-names --no-hooks --key-type ecdsa-p256 --days 30: exit %d; want the dropped name and hook and the key type reported, not the days given as stored\n%s%s", code, out, errs)
	}
	l, err := acme.DiskStore{Dir: state}.Load("example.org")
	if err != nil || len(l.Request.Names) != 1 || len(l.Request.Hooks) != 0 || l.Request.Key != acme.KeyECDSAP256 || !l.Request.ReuseKey {
		t.Errorf("stored request %+v, %v; want example.org alone, no hook, ECDSA P-256 and the key still reused", l.Request, err)
	}
}

// TestDeployRetried: a hook that fails at issuance is recorded; renew
// with nothing due tries it again (exit 1 while it fails), and once it
// works renew deploys it (exit 0) and later runs leave it alone; the
// deploy command does the same for a lineage named, runs every target
// with --all, and refuses an unknown lineage (exit 2).
func TestDeployRetried(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	log, fail := filepath.Join(dir, "hook.log"), filepath.Join(dir, "fail")
	hook := `test ! -e ` + fail + ` && echo "$XMPPCERT_EVENT $RENEWED_DOMAINS" >> ` + log
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, nil, append([]string{"--state-dir", state}, args...)...)
	}
	if err := os.WriteFile(fail, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a.example", "b.example"} {
		if code, out, errs := cli("issue", name, "--hook", hook, "-q"); code != exitFailed {
			t.Fatalf("issue %s with a failing hook: exit %d; want 1\n%s%s", name, code, out, errs)
		}
	}
	code, out, errs := cli("renew", "--lineage", "a.example")
	if code != exitFailed || !strings.Contains(out, "a.example: FAILED: version 1 is current, but deploying it failed again") {
		t.Fatalf("renew while the hook fails: exit %d; want 1 and the deploy tried again\n%s%s", code, out, errs)
	}
	code, out, errs = cli("certificates", "a.example")
	if code != exitOK || !strings.Contains(out, "  deploy    hook "+hook+": FAILED at version 1: ") || !strings.Contains(out, "a.example: version 1, ECDSA P-256, from the embedded CA\n") {
		t.Errorf("certificates while the hook fails: exit %d; want the failed hook shown\n%s%s", code, out, errs)
	}
	if err := os.Remove(fail); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli("renew", "--lineage", "a.example")
	if code != exitOK || !strings.Contains(out, "a.example: deployed version 1") || !strings.Contains(out, "  deployed  hook "+hook+"\n") {
		t.Fatalf("renew once the hook works: exit %d; want 0 and version 1 deployed\n%s%s", code, out, errs)
	}
	if code, out, _ := cli("renew", "--lineage", "a.example"); code != exitOK || !strings.Contains(out, "a.example: not due") {
		t.Errorf("renew after the retry: exit %d; want not due\n%s", code, out)
	}
	code, out, errs = cli("certificates", "--json")
	var certs struct {
		Lineages []struct {
			Name    string
			Version int
			Rule    string
			Targets []struct {
				Target string
				Holds  bool
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &certs); code != exitOK || err != nil || len(certs.Lineages) != 2 {
		t.Fatalf("certificates --json: exit %d, %v\n%s%s", code, err, out, errs)
	}
	if a, b := certs.Lineages[0], certs.Lineages[1]; a.Name != "a.example" || a.Rule != "lifetime" || len(a.Targets) != 1 || !a.Targets[0].Holds || b.Name != "b.example" || b.Targets[0].Holds {
		t.Errorf("certificates --json: %+v; want a.example's hook holding version 1, b.example's not", certs.Lineages)
	}

	code, out, errs = cli("deploy", "b.example")
	if code != exitOK || out != "b.example: version 1\n  deployed  hook "+hook+"\n" {
		t.Fatalf("deploy b.example: exit %d; want 0 and the hook deployed\n%s%s", code, out, errs)
	}
	if code, out, _ := cli("deploy"); code != exitOK || out != "a.example: version 1: every target holds it\nb.example: version 1: every target holds it\n" {
		t.Errorf("deploy with every target up to date: exit %d\n%s", code, out)
	}
	if code, out, _ := cli("deploy", "--all", "a.example", "--json"); code != exitOK || !strings.Contains(out, `"up_to_date": false`) {
		t.Errorf("deploy --all: exit %d\n%s", code, out)
	}
	b, _ := os.ReadFile(log)
	if want := "issued a.example\nissued b.example\nissued a.example\n"; string(b) != want {
		t.Errorf("hook calls %q; want %q", b, want)
	}

	if code, out, errs := cli("certificates", "c.example"); code != exitUsage || out != "" || !oneLine(errs) {
		t.Errorf("certificates c.example: exit %d, stdout %q, stderr %q; want exit 2 and one line", code, out, errs)
	}
	before := testfs.Snapshot(t, state)
	code, out, errs = cli("deploy", "c.example")
	if code != exitUsage || out != "" || !oneLine(errs) || !strings.HasPrefix(errs, "xmppcert: no lineage c.example in ") {
		t.Errorf("deploy c.example: exit %d, stdout %q, stderr %q; want exit 2 and one line", code, out, errs)
	}
	if d := diff(before, testfs.Snapshot(t, state)); d != nil {
		t.Errorf("deploy of an unknown lineage changed the state directory: %q", d)
	}
}

// fakeServerCtl puts a script named name (prosodyctl, ejabberdctl) first
// in $PATH for the rest of the test: its status says the server runs,
// and every other command succeeds, so that deploy targets reload
// without a real server. It returns the file its calls are logged to.
func fakeServerCtl(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$*\" >> '" + log + "'\nexit 0\n"
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

// TestDelete: delete refuses without --yes and for an unknown lineage
// (exit 2, one line, nothing changed), and with --yes removes the
// lineage and its records, leaving the others and what was deployed.
func TestDelete(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	certs := filepath.Join(dir, "certs")
	fakeServerCtl(t, "prosodyctl")
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, nil, append([]string{"--state-dir", state}, args...)...)
	}
	for _, name := range []string{"a.example", "b.example"} {
		if code, out, errs := cli("issue", name, "--deploy", "prosody:"+certs, "-q"); code != exitOK {
			t.Fatalf("issue %s: exit %d\n%s%s", name, code, out, errs)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"delete", "a.example"}, "xmppcert: delete removes lineage a.example and every version of it from " + state + "; give --yes to do it\n"},
		{[]string{"delete", "c.example", "--yes"}, "xmppcert: no lineage c.example in " + filepath.Join(state, "live") + "; 'xmppcert certificates' lists them\n"},
		{[]string{"delete", "--yes"}, "xmppcert: delete needs exactly one LINEAGE\n"},
	} {
		before := testfs.Snapshot(t, state)
		if code, out, errs := cli(c.args...); code != exitUsage || out != "" || errs != c.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, out, errs, c.want)
		}
		if d := diff(before, testfs.Snapshot(t, state)); d != nil {
			t.Errorf("%q changed the state directory: %q", c.args, d)
		}
	}
	if code, out, errs := cli("delete", "a.example", "--yes"); code != exitOK || !strings.HasPrefix(out, "Deleted lineage a.example: ") {
		t.Fatalf("delete --yes: exit %d\n%s%s", code, out, errs)
	}
	for _, p := range []string{"live/a.example", "archive/a.example", "deploy/a.example.json"} {
		if _, err := os.Lstat(filepath.Join(state, p)); !os.IsNotExist(err) {
			t.Errorf("%s is still there: %v", p, err)
		}
	}
	if code, out, _ := cli("certificates", "--json"); code != exitOK || !strings.Contains(out, `"name": "b.example"`) || strings.Contains(out, "a.example") {
		t.Errorf("certificates after the delete: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(certs, "a.example.crt")); err != nil {
		t.Errorf("the deployed certificate of the deleted lineage: %v; want it left in place", err)
	}
}
