package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/internal/testfs"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

const day = 24 * time.Hour

// pastIssuer signs as a state directory's local CA does (its
// intermediate, the names' identities, serverAuth and clientAuth), but
// with the validity it is given. Renewal is tested on the real clock
// with certificates that are already old, instead of a clock of its own.
type pastIssuer struct {
	inter     *x509.Certificate
	key       crypto.Signer
	roots     *x509.CertPool
	notBefore time.Time
	lifetime  time.Duration
}

// newPastIssuer creates the local CA in state if needed and signs with
// its intermediate.
func newPastIssuer(t testing.TB, state string, notBefore time.Time, lifetime time.Duration) *pastIssuer {
	t.Helper()
	ca, err := openCA(state, localca.Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	roots := ca.RootPool()
	ca.Close()
	inter, err := certfile.Read(filepath.Join(caDir(state), "intermediate.crt"), nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := acme.ReadKey(filepath.Join(caDir(state), "intermediate.key"))
	if err != nil {
		t.Fatal(err)
	}
	return &pastIssuer{inter: inter[0], key: key, roots: roots, notBefore: notBefore, lifetime: lifetime}
}

func (p *pastIssuer) Name() string { return "local CA, backdated" }

func (p *pastIssuer) Issue(_ context.Context, req acme.Request, key crypto.Signer) (*acme.Issued, error) {
	san, err := xmppaddr.SANExtension(req.XMPPNames(), false)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: req.Host()},
		NotBefore: p.notBefore, NotAfter: p.notBefore.Add(p.lifetime),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{san},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.inter, key.Public(), p.key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &acme.Issued{Chain: []*x509.Certificate{leaf, p.inter}, Key: key, Issuer: p.Name()}, nil
}

// localRequest is what 'issue HOST --component C...' stores.
func localRequest(t testing.TB, host string, role xmppaddr.Role, components ...string) acme.Request {
	t.Helper()
	req, err := acme.NewRequest(host, role, components, acme.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	req.CA, req.Days = "local", 90
	return req
}

// agedLineage writes a lineage for req, under its lock as issue does,
// whose 90-day certificate was issued age ago. With age over 60 days
// the lineage is due.
func agedLineage(t testing.TB, state string, req acme.Request, age time.Duration) *acme.Obtained {
	t.Helper()
	store := acme.DiskStore{Dir: state}
	unlock, err := store.Lock(req.Host())
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	got, err := acme.Obtain(context.Background(), store, newPastIssuer(t, state, time.Now().Add(-age), 90*day), req)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// hookLog is a --hook command that appends the event, RENEWED_LINEAGE,
// RENEWED_DOMAINS and XMPPCERT_FULLCHAIN to log, one line per call.
func hookLog(log string) string {
	return `printf '%s|%s|%s|%s\n' "$XMPPCERT_EVENT" "$RENEWED_LINEAGE" "$RENEWED_DOMAINS" "$XMPPCERT_FULLCHAIN" >> '` + log + `'`
}

// lineageFiles snapshots what serving a lineage relies on: live/NAME
// and archive/NAME.
func lineageFiles(t *testing.T, state, name string) map[string]string {
	t.Helper()
	out := map[string]string{}
	target, err := os.Readlink(filepath.Join(state, "live", name))
	if err != nil {
		t.Fatal(err)
	}
	out["live"] = target
	for k, v := range testfs.Snapshot(t, filepath.Join(state, "archive", name)) {
		out["archive"+k] = v
	}
	return out
}

func mustLoad(t *testing.T, state, name string) *acme.Lineage {
	t.Helper()
	l, err := acme.DiskStore{Dir: state}.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// identities lists a certificate's identities as "type value".
func identities(c *x509.Certificate) []string {
	var out []string
	for _, id := range xmppaddr.Identities(c).Identifiers {
		out = append(out, string(id.Type)+" "+id.Value)
	}
	slices.Sort(out)
	return out
}

const stampRE = `[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} UTC`

// TestRenew renews the due lineages of a state directory with the local
// CA and leaves the others alone: each renewed version repeats the
// stored request (names, roles, key type, key reuse, CA, days) and
// carries the same identities; hooks run once per renewal with event
// renewed and certbot's variables; the summary says what happened. A
// second run finds nothing due and changes nothing.
func TestRenew(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", "fresh.example", "-q"); code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
	}
	pinned := localRequest(t, "pinned.example", xmppaddr.RoleHost)
	pinned.ReuseKey = true
	reqs := map[string]acme.Request{
		"old.example":    localRequest(t, "old.example", xmppaddr.RoleHost, "conference.old.example", "upload.old.example"),
		"anon.example":   localRequest(t, "anon.example", xmppaddr.RoleAnonymousHost),
		"pinned.example": pinned,
	}
	before := map[string]*acme.Obtained{}
	for name, req := range reqs {
		before[name] = agedLineage(t, state, req, 70*day)
	}
	fresh := lineageFiles(t, state, "fresh.example")
	log := filepath.Join(dir, "hook.log")

	start := time.Now()
	code, stdout, stderr := runCLI(t, nil, "--state-dir", state, "renew", "--hook", hookLog(log))
	if code != exitOK || stderr != "" {
		t.Fatalf("renew: exit %d, stderr %q\n%s", code, stderr, stdout)
	}
	for _, re := range []string{
		`(?m)^fresh\.example: not due before ` + stampRE + `, when a third of its lifetime is left$`,
		`(?m)^old\.example: renewed version 2 \(valid until ` + stampRE + `, next due ` + stampRE + `\): a third or less of its lifetime is left, it expires ` + stampRE + `$`,
		`(?m)^  deployed  hook printf`,
		`(?m)^4 lineages: 3 renewed, 1 not due\n\z`,
	} {
		if !regexp.MustCompile(re).MatchString(stdout) {
			t.Errorf("output does not match %s:\n%s", re, stdout)
		}
	}
	var hooks []string
	for name, req := range reqs {
		old := before[name]
		l := mustLoad(t, state, name)
		if l.Version != 2 {
			t.Errorf("%s: version %d after renew; want 2", name, l.Version)
			continue
		}
		if fmt.Sprintf("%+v", l.Request) != fmt.Sprintf("%+v", req) {
			t.Errorf("%s: renewed with request %+v; want the stored %+v", name, l.Request, req)
		}
		if got, want := identities(l.Chain[0]), identities(old.Chain[0]); !slices.Equal(got, want) {
			t.Errorf("%s: renewed certificate carries %q; the old one %q", name, got, want)
		}
		leaf := l.Chain[0]
		if leaf.NotBefore.Before(start.Add(-2*time.Minute)) || leaf.NotAfter.Sub(leaf.NotBefore).Round(day) != 90*day {
			t.Errorf("%s: renewed certificate valid %v to %v; want 90 days from now", name, leaf.NotBefore, leaf.NotAfter)
		}
		sameKey := l.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(old.Key.Public())
		if sameKey != req.ReuseKey {
			t.Errorf("%s: key reused %v; the request says %v", name, sameKey, req.ReuseKey)
		}
		live := filepath.Join(state, "live", name)
		hooks = append(hooks, "renewed|"+live+"|"+strings.Join(req.Domains(), " ")+"|"+filepath.Join(live, "fullchain.pem"))
	}
	// The component gets no _xmpp-client SRV-ID, the anonymous host no
	// _xmpp-server one: the roles were kept.
	oldIDs := identities(mustLoad(t, state, "old.example").Chain[0])
	anonIDs := identities(mustLoad(t, state, "anon.example").Chain[0])
	if slices.Contains(oldIDs, "SRVName _xmpp-client.conference.old.example") || !slices.Contains(oldIDs, "SRVName _xmpp-server.conference.old.example") ||
		slices.Contains(anonIDs, "SRVName _xmpp-server.anon.example") || !slices.Contains(anonIDs, "SRVName _xmpp-client.anon.example") {
		t.Errorf("roles not kept: old.example %q, anon.example %q", oldIDs, anonIDs)
	}
	got := testtool.Lines(t, log)
	slices.Sort(got)
	slices.Sort(hooks)
	if !slices.Equal(got, hooks) {
		t.Errorf("hook calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(hooks, "\n"))
	}
	if d := diff(fresh, lineageFiles(t, state, "fresh.example")); d != nil {
		t.Errorf("a lineage that was not due changed: %q", d)
	}
	if left, _ := filepath.Glob(filepath.Join(state, "renew", "*.json")); len(left) > 0 {
		t.Errorf("finished renewals left records: %q", left)
	}

	all := testfs.Snapshot(t, state)
	code, stdout, stderr = runCLI(t, nil, "--state-dir", state, "renew", "--hook", hookLog(log))
	if code != exitOK || stderr != "" || !strings.HasSuffix(stdout, "\n4 lineages: 4 not due\n") {
		t.Errorf("second renew: exit %d, stderr %q\n%s", code, stderr, stdout)
	}
	if n := len(testtool.Lines(t, log)); n != 3 {
		t.Errorf("the second run ran hooks: %d calls in all", n)
	}
	if d := diff(all, testfs.Snapshot(t, state)); d != nil {
		t.Errorf("a run with nothing due changed the state directory: %q", d)
	}
	// --quiet: nothing on success.
	if code, stdout, stderr := runCLI(t, nil, "--state-dir", state, "renew", "--quiet"); code != exitOK || stdout != "" || stderr != "" {
		t.Errorf("renew --quiet: exit %d, %q, %q; want exit 0 and no output", code, stdout, stderr)
	}
}

// TestRenewForceAndSelect checks --force (a lineage that is not due is
// renewed) and --lineage (only the named lineages are looked at).
func TestRenewForceAndSelect(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	for _, d := range []string{"a.example", "b.example", "c.example"} {
		if code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", d, "-q"); code != exitOK {
			t.Fatalf("issue %s: exit %d\n%s%s", d, code, out, errs)
		}
	}
	agedLineage(t, state, localRequest(t, "due.example", xmppaddr.RoleHost), 80*day)
	c := lineageFiles(t, state, "c.example")
	due := lineageFiles(t, state, "due.example")
	code, stdout, stderr := runCLI(t, nil, "--state-dir", state, "renew", "--force", "--lineage", "b.example", "--lineage", "a.example", "--lineage", "a.example")
	if code != exitOK || stderr != "" {
		t.Fatalf("renew --force: exit %d, stderr %q\n%s", code, stderr, stdout)
	}
	want := regexp.MustCompile(`^a\.example: renewed version 2 \(.*\): renewal was forced; by its lifetime it is due ` + stampRE + `\n` +
		`b\.example: renewed version 2 \(.*\): renewal was forced; .*\n` +
		`2 lineages: 2 renewed\n$`)
	if !want.MatchString(stdout) {
		t.Errorf("output:\n%s\nwant to match %s", stdout, want)
	}
	for _, name := range []string{"a.example", "b.example"} {
		if v := mustLoad(t, state, name).Version; v != 2 {
			t.Errorf("%s: version %d; want 2", name, v)
		}
	}
	if d := append(diff(c, lineageFiles(t, state, "c.example")), diff(due, lineageFiles(t, state, "due.example"))...); d != nil {
		t.Errorf("lineages not selected changed: %q", d)
	}
}

// TestRenewDryRun checks that --dry-run says what would be renewed and
// why, runs no hook and changes nothing in the state directory, not even
// a lock file, with and without --force.
func TestRenewDryRun(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", "fresh.example", "-q"); code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
	}
	agedLineage(t, state, localRequest(t, "old.example", xmppaddr.RoleHost), 61*day)
	if err := os.RemoveAll(filepath.Join(state, "locks")); err != nil {
		t.Fatal(err) // so that a lock file taken would show
	}
	before := testfs.Snapshot(t, state)
	log := filepath.Join(dir, "hook.log")

	code, stdout, stderr := runCLI(t, nil, "--state-dir", state, "renew", "--dry-run", "--hook", hookLog(log))
	want := "fresh.example: not due before " + stampRE + ", when a third of its lifetime is left\n" +
		"old.example: would renew: a third or less of its lifetime is left, it expires " + stampRE + "\n" +
		"2 lineages: 1 would renew, 1 not due; dry run, nothing was changed\n"
	if code != exitOK || stderr != "" || !regexp.MustCompile("^"+want+"$").MatchString(stdout) {
		t.Errorf("renew --dry-run: exit %d, stderr %q\n%s\nwant:\n%s", code, stderr, stdout, want)
	}

	code, stdout, stderr = runCLI(t, nil, "--state-dir", state, "renew", "--dry-run", "--force", "--json", "--hook", hookLog(log))
	var rep renewReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != exitOK || stderr != "" {
		t.Fatalf("renew --dry-run --force --json: exit %d, %v, stderr %q\n%s", code, err, stderr, stdout)
	}
	if !rep.DryRun || len(rep.Lineages) != 2 || rep.Counts[lifecycle.ResultWouldRenew] != 2 ||
		rep.Lineages[0].Rule != acme.RuleForce || rep.Lineages[1].Rule != acme.RuleLifetime || rep.Lineages[0].DueAt.IsZero() {
		t.Errorf("JSON: %+v; want both would-renew, forced and by lifetime", rep)
	}
	if _, err := os.Stat(log); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a dry run ran the hook: %v", err)
	}
	if d := diff(before, testfs.Snapshot(t, state)); d != nil {
		t.Errorf("a dry run changed the state directory: %q", d)
	}
}

// TestRenewFailure renews a state directory where one due lineage
// cannot be renewed (its stored request asks for a validity the local
// CA refuses): the others are renewed and deployed, the failing one is
// named on stderr and in the summary, its lineage and deployed files are
// untouched, and the run exits 1, the next run too.
func TestRenewFailure(t *testing.T) {
	fakeServerCtl(t, "prosodyctl")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	certs := filepath.Join(dir, "prosody-certs")
	if code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", "fresh.example", "-q"); code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
	}
	agedLineage(t, state, localRequest(t, "good.example", xmppaddr.RoleHost), 65*day)
	bad := localRequest(t, "bad.example", xmppaddr.RoleHost)
	bad.Days = 1000
	agedLineage(t, state, bad, 65*day)
	// bad.example's certificate, as a previous deploy left it.
	if err := os.MkdirAll(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(certs, "bad.example.crt"), []byte("deployed before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badFiles := lineageFiles(t, state, "bad.example")
	deployed := testfs.Snapshot(t, certs)

	for run := 1; run <= 2; run++ {
		code, stdout, stderr := runCLI(t, nil, "--state-dir", state, "renew", "--json", "--deploy", "prosody:"+certs)
		var rep renewReport
		if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
			t.Fatalf("run %d: %v\n%s", run, err, stdout)
		}
		byName := map[string]lifecycle.LineageResult{}
		for _, l := range rep.Lineages {
			byName[l.Name] = l
		}
		b := byName["bad.example"]
		wantErr := `^certificate lifetime 24000h0m0s is out of range: from 1 hour to 397 days; the deployed certificate is unchanged$`
		if code != exitFailed || b.Result != lifecycle.ResultFailed || b.Version != 1 || !b.Due || !regexp.MustCompile(wantErr).MatchString(b.Error) || len(b.Deploy) != 0 {
			t.Errorf("run %d: exit %d, bad.example %+v; want exit 1 and failed with %s", run, code, b, wantErr)
		}
		if want := "xmppcert: bad.example: " + b.Error + "\nxmppcert: 1 of 3 lineages failed\n"; stderr != want {
			t.Errorf("run %d: stderr %q; want %q", run, stderr, want)
		}
		wantGood := map[int]string{1: lifecycle.ResultRenewed, 2: lifecycle.ResultNotDue}[run]
		if g := byName["good.example"]; g.Result != wantGood || g.Version != 2 || (run == 1 && (len(g.Deploy) != 1 || !g.Deploy[0].OK)) {
			t.Errorf("run %d: good.example %+v; want %s, version 2, deployed in run 1", run, g, wantGood)
		}
		if f := byName["fresh.example"]; f.Result != lifecycle.ResultNotDue {
			t.Errorf("run %d: fresh.example %+v; want not due", run, f)
		}
	}
	if d := diff(badFiles, lineageFiles(t, state, "bad.example")); d != nil {
		t.Errorf("the failed lineage changed: %q", d)
	}
	if _, err := os.Stat(filepath.Join(state, "renew", "bad.example.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed renewal left a record (the next run would take it for an unfinished deploy): %v", err)
	}
	now := testfs.Snapshot(t, certs)
	for _, f := range []string{"/bad.example.crt", "/bad.example.key"} {
		if now[f] != deployed[f] {
			t.Errorf("the failed lineage's deployed %s changed", f)
		}
	}
	if now["/good.example.crt"] == "" || now["/good.example.key"] == "" {
		t.Errorf("good.example was not deployed: %q", slices.Sorted(func(yield func(string) bool) {
			for k := range now {
				if !yield(k) {
					return
				}
			}
		}))
	}
}

// TestRenewLocked holds a due lineage's lock, as a renewing daemon or a
// second cron job would: renew skips it with the holder's pid, exits 0
// and changes nothing; once the lock is free, renew renews it.
func TestRenewLocked(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	agedLineage(t, state, localRequest(t, "busy.example", xmppaddr.RoleHost), 70*day)
	before := lineageFiles(t, state, "busy.example")
	unlock, err := acme.DiskStore{Dir: state}.Lock("busy.example")
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, nil, "--state-dir", state, "renew")
	want := fmt.Sprintf("busy.example: skipped: being renewed or issued by pid %d\n1 lineage: 1 skipped\n", os.Getpid())
	if code != exitOK || stdout != want || stderr != "" {
		t.Errorf("renew of a locked lineage: exit %d, %q, %q; want exit 0 and %q", code, stdout, stderr, want)
	}
	if d := diff(before, lineageFiles(t, state, "busy.example")); d != nil {
		t.Errorf("a skipped lineage changed: %q", d)
	}
	unlock()
	if code, stdout, _ := runCLI(t, nil, "--state-dir", state, "renew"); code != exitOK || !strings.HasPrefix(stdout, "busy.example: renewed version 2") {
		t.Errorf("renew after unlock: exit %d\n%s", code, stdout)
	}
}

// TestRenewDeployRetried makes the hook fail after a renewal: the run
// exits 1 saying the new version is current but not deployed, and the
// next run, with the hook working again, deploys it without issuing
// again; the run after that has nothing to do.
func TestRenewDeployRetried(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	ok := filepath.Join(dir, "server-ready")
	log := filepath.Join(dir, "hook.log")
	hook := "test -e '" + ok + "' && " + hookLog(log)
	agedLineage(t, state, localRequest(t, "example.org", xmppaddr.RoleHost, "conference.example.org"), 70*day)

	code, stdout, stderr := runCLI(t, nil, "--state-dir", state, "renew", "--hook", hook)
	wantErr := `^xmppcert: example\.org: version 2 is current, but deploying it failed \(the next run deploys it again\): hook .*: exit status 1\n` +
		`xmppcert: 1 of 1 lineages failed\n$`
	if code != exitFailed || !regexp.MustCompile(wantErr).MatchString(stderr) || !strings.Contains(stdout, "  FAILED    hook test -e") {
		t.Fatalf("renew with a failing hook: exit %d, stderr %q\n%s", code, stderr, stdout)
	}
	if v := mustLoad(t, state, "example.org").Version; v != 2 {
		t.Fatalf("version %d after the renewal; want 2", v)
	}
	if err := os.WriteFile(ok, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCLI(t, nil, "--state-dir", state, "renew", "--hook", hook)
	want := `^example\.org: deployed version 2 \(valid until ` + stampRE + `, next due ` + stampRE + `\): version 2 was renewed by an earlier run that did not finish deploying it\n` +
		`  deployed  hook test -e .*\n1 lineage: 1 deployed\n$`
	if code != exitOK || stderr != "" || !regexp.MustCompile(want).MatchString(stdout) {
		t.Errorf("the next run: exit %d, stderr %q\n%s\nwant to match %s", code, stderr, stdout, want)
	}
	if got := testtool.Lines(t, log); len(got) != 1 || !strings.HasPrefix(got[0], "renewed|"+filepath.Join(state, "live", "example.org")+"|example.org conference.example.org|") {
		t.Errorf("hook calls %q; want one, event renewed", got)
	}
	if v := mustLoad(t, state, "example.org").Version; v != 2 {
		t.Errorf("version %d after the deploy; want still 2", v)
	}
	if code, stdout, _ := runCLI(t, nil, "--state-dir", state, "renew", "--hook", hook); code != exitOK || !strings.HasSuffix(stdout, "1 lineage: 1 not due\n") || len(testtool.Lines(t, log)) != 1 {
		t.Errorf("the run after: exit %d\n%s", code, stdout)
	}
}

// TestRenewBadInput holds renew to the usage contract: exit 2, one line,
// nothing on stdout, nothing changed.
func TestRenewBadInput(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", "example.org", "-q"); code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
	}
	before := testfs.Snapshot(t, state)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"example.org"}, `renew takes no arguments; choose lineages with --lineage NAME`},
		{[]string{"--lineage", "example.net"}, `--lineage: no lineage example\.net in ` + regexp.QuoteMeta(filepath.Join(state, "live")) + `; 'xmppcert certificates' lists them`},
		{[]string{"--lineage", "../live/example.org"}, `--lineage: invalid domain "\.\./live/example\.org": .*`},
		{[]string{"--deploy", "nginx"}, `--deploy: unknown deploy target "nginx"; use prosody\[:CERTDIR\] or ejabberd\[:FILE\]`},
		{[]string{"--hook", " "}, `--hook is empty; give a shell command`},
		{[]string{"--timeout", "0s"}, `--timeout 0s: give a positive duration such as 10m`},
		{[]string{"--frobnicate"}, `xmppcert renew: flag provided but not defined: -frobnicate; see 'xmppcert renew --help'`},
	} {
		code, stdout, stderr := runCLI(t, nil, append([]string{"--state-dir", state, "renew", "--force"}, c.args...)...)
		if code != exitUsage || stdout != "" || !regexp.MustCompile(`^xmppcert: `+c.want+"\n$").MatchString(stderr) {
			t.Errorf("renew %q: exit %d, stdout %q, stderr %q; want exit 2 and %s", c.args, code, stdout, stderr, c.want)
		}
	}
	if d := diff(before, testfs.Snapshot(t, state)); d != nil {
		t.Errorf("bad input changed the state directory: %q", d)
	}
	// No lineages at all is nothing to do, not an error; the state
	// directory is not created.
	empty := filepath.Join(t.TempDir(), "none")
	code, stdout, stderr := runCLI(t, nil, "--state-dir", empty, "renew")
	if code != exitOK || stderr != "" || stdout != "No lineages in "+empty+"/live; 'xmppcert issue DOMAIN' creates one.\n" {
		t.Errorf("renew without lineages: exit %d, %q, %q", code, stdout, stderr)
	}
	if _, err := os.Stat(empty); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("renew created the state directory: %v", err)
	}
}

// flakyCA stands in for a public ACME CA: it fails with the errors it is
// given, one per call, then signs through a pastIssuer; it records the
// requests and can advise a renewal window.
type flakyCA struct {
	*pastIssuer
	errs   []error
	reqs   []acme.Request
	window *acme.RenewalWindow
	ariErr error
	asked  int
}

func (f *flakyCA) Issue(ctx context.Context, req acme.Request, key crypto.Signer) (*acme.Issued, error) {
	f.reqs = append(f.reqs, req)
	if len(f.reqs) <= len(f.errs) {
		return nil, f.errs[len(f.reqs)-1]
	}
	return f.pastIssuer.Issue(ctx, req, key)
}

// advisingCA is a flakyCA that offers renewal information.
type advisingCA struct{ *flakyCA }

func (a advisingCA) RenewalWindow(context.Context, *x509.Certificate) (acme.RenewalWindow, error) {
	a.asked++
	if a.ariErr != nil {
		return acme.RenewalWindow{}, a.ariErr
	}
	return *a.window, nil
}

// racingCA advises a window that has passed, but first lets race run: a
// renewal by another process, finishing between this run's decision and
// its lock.
type racingCA struct {
	*flakyCA
	race func()
}

func (c racingCA) RenewalWindow(context.Context, *x509.Certificate) (acme.RenewalWindow, error) {
	c.race()
	return acme.RenewalWindow{Start: time.Now().Add(-2 * day), End: time.Now().Add(-day)}, nil
}

type serverError struct{}

func (serverError) Error() string { return "the CA answered 500 (3 attempts)" }

type rateLimited struct{ until time.Time }

func (e rateLimited) Error() string         { return "the CA says: too many certificates for this domain" }
func (e rateLimited) RetryAfter() time.Time { return e.until }

// TestRenewPublicCA runs renew's per-lineage logic with CAs in the place
// of lifecycle.OpenIssuer: a failed issuance is not retried on top of the Issuer's
// own retries and leaves the lineage as it was; the renewal is sent with
// the old leaf as Replaces and the stored request; a new certificate that
// fails the check is not deployed until it passes; a rate limit beyond the
// run is reported, kept (the next run does not ask the CA) and
// overridden by --force; a CA's renewal window decides over the
// lifetime, is asked for once and reused; a lineage renewed by another
// process between the decision and the lock is left alone.
func TestRenewPublicCA(t *testing.T) {
	ctx := context.Background()
	state := filepath.Join(t.TempDir(), "state")
	store := acme.DiskStore{Dir: state}
	signer := newPastIssuer(t, state, time.Now().Add(-time.Minute), 90*day)
	req := localRequest(t, "example.org", xmppaddr.RoleHost, "conference.example.org")
	req.CA = "https://acme.example/directory"
	newRenewer := func(ca acme.Issuer) *testRenewer {
		return &testRenewer{e: &lifecycle.Engine{Store: store,
			Open: func(_ string, r acme.Request, _ lifecycle.IssueOptions) (acme.Issuer, *x509.CertPool, func(), error) {
				if r.CA != req.CA {
					return nil, nil, nil, fmt.Errorf("opened CA %q", r.CA)
				}
				return ca, signer.roots, func() {}, nil
			}}}
	}

	t.Run("replaces", func(t *testing.T) {
		old := agedLineage(t, state, req, 70*day)
		before := lineageFiles(t, state, "example.org")
		// The Issuer has retried its 500s already: renew does not retry
		// on top, the next run does.
		ca := &flakyCA{pastIssuer: signer, errs: []error{fmt.Errorf("new order: %w", serverError{})}}
		rep := newRenewer(ca).lineage(ctx, "example.org")
		if rep.Result != lifecycle.ResultFailed || len(ca.reqs) != 1 || rep.Error != "new order: the CA answered 500 (3 attempts); the deployed certificate is unchanged" {
			t.Fatalf("%+v, %d requests; want failed after the one issuance", rep, len(ca.reqs))
		}
		if d := diff(before, lineageFiles(t, state, "example.org")); d != nil {
			t.Errorf("the failed lineage changed: %q", d)
		}
		rep = newRenewer(ca).lineage(ctx, "example.org")
		if rep.Result != lifecycle.ResultRenewed || rep.Version != old.Version+1 || rep.Error != "" {
			t.Fatalf("next run: %+v; want renewed", rep)
		}
		for i, r := range ca.reqs {
			if r.Replaces == nil || !r.Replaces.Equal(old.Chain[0]) || fmt.Sprint(r.Names) != fmt.Sprint(req.Names) || r.CA != req.CA || r.Days != req.Days {
				t.Errorf("request %d: %+v; want the stored request, Replaces the old leaf", i+1, r)
			}
		}
	})

	t.Run("check", func(t *testing.T) {
		// The new certificate does not chain to the roots it is checked
		// against: it is live but not deployed, and the next run checks
		// it again and deploys it once it passes.
		agedLineage(t, state, req, 70*day)
		log := filepath.Join(t.TempDir(), "hook.log")
		ca := &flakyCA{pastIssuer: signer}
		r := newRenewer(ca)
		r.targets = []acme.Target{&acme.HookTarget{Command: hookLog(log)}}
		open := r.e.Open
		r.e.Open = func(state string, req acme.Request, o lifecycle.IssueOptions) (acme.Issuer, *x509.CertPool, func(), error) {
			iss, _, release, err := open(state, req, o)
			return iss, x509.NewCertPool(), release, err
		}
		rep := r.lineage(ctx, "example.org")
		want := `^version [0-9]+ is current but was not deployed: it fails the check for example\.org xmpp-client \(.+\), example\.org xmpp-server \(.+\), ` +
			`conference\.example\.org xmpp-server \(.+\); the next run checks it again$`
		if rep.Result != lifecycle.ResultFailed || !regexp.MustCompile(want).MatchString(rep.Error) || len(rep.Deploy) != 0 || testtool.Lines(t, log) != nil {
			t.Fatalf("%+v, hook calls %q; want failed, not deployed: %s", rep, testtool.Lines(t, log), want)
		}
		r.e.Open = open
		r.run = nil // a new run, with the real roots
		rep = r.lineage(ctx, "example.org")
		if rep.Result != lifecycle.ResultDeployed || len(testtool.Lines(t, log)) != 1 || len(ca.reqs) != 1 {
			t.Errorf("next run: %+v, hook calls %q, %d requests; want deployed without issuing again", rep, testtool.Lines(t, log), len(ca.reqs))
		}
	})

	t.Run("rate-limit", func(t *testing.T) {
		agedLineage(t, state, req, 70*day)
		before := lineageFiles(t, state, "example.org")
		until := time.Now().Add(3 * time.Hour).Truncate(time.Second)
		ca := &flakyCA{pastIssuer: signer, errs: []error{rateLimited{until}}}
		rep := newRenewer(ca).lineage(ctx, "example.org")
		if rep.Result != lifecycle.ResultFailed || len(ca.reqs) != 1 || !rep.RetryAfter.Equal(until) ||
			rep.Error != "the CA says: too many certificates for this domain; the deployed certificate is unchanged" {
			t.Fatalf("%+v; want failed, Retry-After %v", rep, until)
		}
		if cur, err := store.Current("example.org"); err != nil || cur.State.RenewingFrom != 0 || !cur.State.RetryAfter.Equal(until) {
			t.Errorf("record after the refusal: %+v, %v; want only the Retry-After", cur.State, err)
		}
		rep = newRenewer(ca).lineage(ctx, "example.org")
		want := "due, but the CA asked not to be asked again before " + stamp(until) + " (a rate limit)"
		if rep.Result != lifecycle.ResultFailed || len(ca.reqs) != 1 || rep.Error != want || !rep.RetryAfter.Equal(until) ||
			renewError(rep) != want+"; renew waits until then, or try now with --force" {
			t.Errorf("next run: %+v, %d requests in all; want failed without asking the CA: %s", rep, len(ca.reqs), want)
		}
		if d := diff(before, lineageFiles(t, state, "example.org")); d != nil {
			t.Errorf("the rate-limited lineage changed: %q", d)
		}
		forced := newRenewer(ca)
		forced.force = true
		if rep := forced.lineage(ctx, "example.org"); rep.Result != lifecycle.ResultRenewed || len(ca.reqs) != 2 {
			t.Errorf("--force: %+v, %d requests; want renewed", rep, len(ca.reqs))
		}
		cur, err := store.Current("example.org")
		if err != nil || cur.State != (acme.RenewState{}) {
			t.Errorf("after the renewal: %+v, %v; want the record cleared", cur, err)
		}
	})

	t.Run("hints", func(t *testing.T) {
		// A renewal out of time is retried with more time by renew
		// itself; what renewal cannot change is issue's.
		for _, c := range []struct {
			err  *acmeca.Error
			hint string
		}{
			{&acmeca.Error{CA: "ACME CA acme.example", Op: "ordering a certificate for example.org", Kind: acmeca.KindTimeout}, " (xmppcert renew --timeout)"},
			{&acmeca.Error{CA: "ACME CA acme.example", Op: "ordering a certificate for example.org", Kind: acmeca.KindUntrusted}, " (xmppcert issue --trust-root FILE)"},
		} {
			agedLineage(t, state, req, 70*day)
			rep := newRenewer(&flakyCA{pastIssuer: signer, errs: []error{c.err}}).lineage(ctx, "example.org")
			if got := renewError(rep); rep.Result != lifecycle.ResultFailed || !strings.HasSuffix(got, c.hint) {
				t.Errorf("%+v: %q; want failed, ending %q", rep, got, c.hint)
			}
		}
	})

	t.Run("renewed-meanwhile", func(t *testing.T) {
		old := agedLineage(t, state, req, 70*day)
		other := newRenewer(&flakyCA{pastIssuer: signer})
		other.force = true
		var otherRep lifecycle.LineageResult
		ca := racingCA{&flakyCA{pastIssuer: signer}, func() { otherRep = other.lineage(ctx, "example.org") }}
		rep := newRenewer(ca).lineage(ctx, "example.org")
		want := fmt.Sprintf("renewed meanwhile by another process; version %d is current", old.Version+1)
		if otherRep.Result != lifecycle.ResultRenewed || rep.Result != lifecycle.ResultSkipped || rep.Reason != want || len(ca.reqs) != 0 {
			t.Errorf("the other run: %+v\nthis run: %+v, %d requests; want renewed there, and here skipped: %s", otherRep, rep, len(ca.reqs), want)
		}
		if v := mustLoad(t, state, "example.org").Version; v != old.Version+1 {
			t.Errorf("version %d; want %d, one issuance", v, old.Version+1)
		}
	})

	t.Run("ari", func(t *testing.T) {
		// Ten days old: by lifetime not due for 50 days.
		agedLineage(t, state, req, 10*day)
		now := time.Now()
		ca := advisingCA{&flakyCA{pastIssuer: signer, window: &acme.RenewalWindow{Start: now.Add(5 * day), End: now.Add(7 * day), RetryAfter: now.Add(time.Hour)}}}
		for run := 1; run <= 2; run++ {
			rep := newRenewer(ca).lineage(ctx, "example.org")
			if rep.Result != lifecycle.ResultNotDue || rep.Rule != acme.RuleARI || rep.DueAt.Before(now.Add(5*day)) || ca.asked != 1 {
				t.Errorf("window ahead, run %d: %+v, asked %d times; want not due by ari, asked once", run, rep, ca.asked)
			}
		}
		// The CA moves the window into the past (a revocation): due at
		// once, once the cached answer has expired.
		ca.window = &acme.RenewalWindow{Start: now.Add(-2 * day), End: now.Add(-day), ExplanationURL: "https://acme.example/incident"}
		if err := os.Remove(filepath.Join(state, "renew", "example.org.ari.json")); err != nil {
			t.Fatal(err)
		}
		rep := newRenewer(ca).lineage(ctx, "example.org")
		if rep.Result != lifecycle.ResultRenewed || rep.Rule != acme.RuleARI || !strings.Contains(rep.Reason, "has ended (the CA explains: https://acme.example/incident)") {
			t.Errorf("window passed: %+v; want renewed by ari", rep)
		}
		// A CA that does not answer is asked once per run, not once per
		// lineage, and an expired certificate not at all (RFC 9773 §4.3).
		down := advisingCA{&flakyCA{pastIssuer: signer, ariErr: errors.New("connection refused")}}
		r := newRenewer(down)
		for i := range 2 {
			rep := r.lineage(ctx, "example.org")
			if rep.Result != lifecycle.ResultNotDue || rep.Rule != acme.RuleLifetime || down.asked != 1 ||
				!slices.Equal(rep.Notes, []string{"asking the CA for its renewal window: connection refused; decided by the certificate's lifetime"}) {
				t.Errorf("unreachable CA, lineage %d of a run: %+v, asked %d times; want decided by lifetime, asked once", i+1, rep, down.asked)
			}
		}
		expired := newPastIssuer(t, state, time.Now().Add(-91*day), 90*day)
		unlock, err := store.Lock("example.org")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := acme.Obtain(ctx, store, expired, req); err != nil {
			t.Fatal(err)
		}
		unlock()
		down = advisingCA{&flakyCA{pastIssuer: signer, window: ca.window}}
		if rep := newRenewer(down).lineage(ctx, "example.org"); rep.Result != lifecycle.ResultRenewed || down.asked != 0 ||
			!strings.HasPrefix(rep.Reason, "the certificate expired at ") {
			t.Errorf("expired certificate: %+v, asked %d times; want renewed without asking", rep, down.asked)
		}
		// A CA without renewal information: the lifetime rule.
		plain := &flakyCA{pastIssuer: signer}
		if rep := newRenewer(plain).lineage(ctx, "example.org"); rep.Result != lifecycle.ResultNotDue || rep.Rule != acme.RuleLifetime {
			t.Errorf("CA without ARI: %+v; want not due by lifetime", rep)
		}
	})
}

// TestRenewFaults runs renew as cron does, as separate processes, and
// hurts it: kill -9 at random moments of renewals and in the middle of
// a deploy, then a new run; two runs started together.
func TestRenewFaults(t *testing.T) {
	bin := buildXmppcert(t)
	t.Run("kill-9", func(t *testing.T) { testRenewKill(t, bin) })
	t.Run("concurrent", func(t *testing.T) { testRenewConcurrent(t, bin) })
}

// renewedState checks lineage name after the runs of a fault test and
// returns its versions: every archive version complete and consistent
// (temporaries of an interrupted write allowed), live/NAME pointing at
// the newest, its certificate and key belonging together.
func renewedState(t *testing.T, state, name string) []int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(state, "archive", name))
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	for _, e := range ents {
		switch {
		case versionName.MatchString(e.Name()) && e.IsDir():
			v, _ := strconv.Atoi(e.Name())
			versions = append(versions, v)
			checkVersion(t, filepath.Join(state, "archive", name, e.Name()))
		case !strings.HasPrefix(e.Name(), ".tmp-"):
			t.Fatalf("unexpected %s in archive/%s", e.Name(), name)
		}
	}
	if l := mustLoad(t, state, name); len(versions) == 0 || l.Version != versions[len(versions)-1] {
		t.Fatalf("%s: live version %d, archive %v; want the newest live", name, l.Version, versions)
	}
	live := filepath.Join(state, "live", name)
	checkPair(t, filepath.Join(live, "cert.pem"), filepath.Join(live, "fullchain.pem"), filepath.Join(live, "privkey.pem"))
	return versions
}

// versionsOf reads which version of lineage name is live and which
// complete versions the archive holds, without judging them.
func versionsOf(t *testing.T, state, name string) (live int, archived []int) {
	t.Helper()
	if target, err := os.Readlink(filepath.Join(state, "live", name)); err == nil {
		live, _ = strconv.Atoi(filepath.Base(target))
	}
	ents, err := os.ReadDir(filepath.Join(state, "archive", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if v, err := strconv.Atoi(e.Name()); err == nil {
			archived = append(archived, v)
		}
	}
	return live, archived
}

// renewJSON runs renew --json and decodes its report.
func renewJSON(t *testing.T, bin string, args ...string) (result, renewReport) {
	t.Helper()
	r := runBin(t, bin, append(args, "--json")...)
	var rep renewReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("renew: exit %d: %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	return r, rep
}

// testRenewKill kills renew with SIGKILL, first while its hook runs (the
// new version is current, its deploy unfinished), then at random moments
// of a renewal, each time into a fresh due lineage. The next run must
// exit 0, take the lock the killed process held, and leave exactly one
// new version, deployed (by the killed run or by finishing its deploy).
func testRenewKill(t *testing.T, bin string) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	log := filepath.Join(dir, "hook.log")
	lineage := func(i int) string {
		name := fmt.Sprintf("r%d.example.org", i)
		agedLineage(t, state, localRequest(t, name, xmppaddr.RoleHost, "conference."+name), 70*day)
		return name
	}
	deployedTimes := func(name string) int {
		n := 0
		for _, l := range testtool.Lines(t, log) {
			if strings.HasPrefix(l, "renewed|"+filepath.Join(state, "live", name)+"|") {
				n++
			}
		}
		return n
	}
	// after runs renew for name after a kill and checks the outcome: one
	// more version than the archive held after the kill when the killed
	// run's version never went live (an orphan, or none), none when it
	// did; the newest version live and deployed.
	after := func(name, what string) string {
		t.Helper()
		live, archived := versionsOf(t, state, name)
		want := []int{1, 2}
		if live == 1 {
			want = nil
			for v := 1; v <= archived[len(archived)-1]+1; v++ {
				want = append(want, v)
			}
		}
		r, rep := renewJSON(t, bin, "--state-dir", state, "renew", "--lineage", name, "--hook", hookLog(log))
		if r.code != 0 || len(rep.Lineages) != 1 {
			t.Fatalf("renew after %s: exit %d\n%s%s", what, r.code, r.stdout, r.stderr)
		}
		if v := renewedState(t, state, name); !slices.Equal(v, want) {
			t.Fatalf("after %s (live version %d, archive %v) and a new run: versions %v; want %v", what, live, archived, v, want)
		}
		if deployedTimes(name) == 0 {
			t.Fatalf("after %s and a new run: the new version was never deployed", what)
		}
		return rep.Lineages[0].Result
	}

	// Killed in the hook: the lineage lock is held, version 2 is current.
	name := lineage(0)
	pidFile := filepath.Join(dir, "hook.pid")
	cmd := exec.Command(bin, "--state-dir", state, "renew", "--lineage", name, "--hook", "echo $$ > '"+pidFile+"'; exec sleep 60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var hookPID int
	for deadline := time.Now().Add(30 * time.Second); hookPID == 0; time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			hookPID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		if time.Now().After(deadline) {
			t.Fatal("the hook did not start within 30 s")
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	syscall.Kill(hookPID, syscall.SIGKILL) // the hook's own group outlives xmppcert
	if got := after(name, "a kill during the hook"); got != lifecycle.ResultDeployed {
		t.Errorf("after a kill during the hook: %s; want the new run to finish the deploy (%s)", got, lifecycle.ResultDeployed)
	}

	// Random moments: calibrate on whole runs, then kill within them.
	var durs []time.Duration
	for i := 1; i <= 3; i++ {
		n := lineage(i)
		s := time.Now()
		if r := runBin(t, bin, "--state-dir", state, "renew", "--lineage", n, "-q"); r.code != 0 {
			t.Fatalf("renew: exit %d: %s", r.code, r.stderr)
		}
		durs = append(durs, time.Since(s))
	}
	slices.Sort(durs)
	window := durs[1] * 5 / 4
	rng := mrand.New(mrand.NewPCG(testtool.Seed(t), 0))
	t.Logf("a renewal takes %v (median of 3); kills fall in [0, %v)", durs[1].Round(time.Millisecond), window.Round(time.Millisecond))
	outcomes := map[string]int{}
	runs := testtool.Rounds(t, 24)
	for i := 10; i < 10+runs; i++ {
		name := lineage(i)
		cmd := exec.Command(bin, "--state-dir", state, "renew", "--lineage", name, "-q", "--hook", hookLog(log))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(window))))
		cmd.Process.Kill()
		cmd.Wait()
		ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
		killed := ws.Signaled() && ws.Signal() == syscall.SIGKILL
		if !killed && !(ws.Exited() && ws.ExitStatus() == 0) {
			t.Fatalf("%s: %v: %s", name, cmd.ProcessState, stderr.String())
		}
		outcomes[fmt.Sprintf("killed %v, next run %s", killed, after(name, "a kill"))]++
	}
	t.Logf("%d kills: %v", runs, outcomes)
	if outcomes["killed true, next run "+lifecycle.ResultRenewed] == 0 {
		t.Errorf("no kill landed before the new version went live: %v", outcomes)
	}
}

// testRenewConcurrent starts two renew processes at once over the same
// due lineages, whose hook is slow enough for the runs to overlap: both
// exit 0, every lineage is renewed exactly once and deployed once, and
// for each lineage the other run reports it skipped or not due.
func testRenewConcurrent(t *testing.T, bin string) {
	for round := range 3 {
		dir := t.TempDir()
		state := filepath.Join(dir, "state")
		log := filepath.Join(dir, "hook.log")
		names := []string{"a.example.org", "b.example.org", "c.example.org", "d.example.org"}
		for _, n := range names {
			agedLineage(t, state, localRequest(t, n, xmppaddr.RoleHost, "conference."+n), 70*day)
		}
		type run struct {
			cmd    *exec.Cmd
			stdout bytes.Buffer
			stderr bytes.Buffer
		}
		runs := []*run{{}, {}}
		for _, r := range runs {
			r.cmd = exec.Command(bin, "--state-dir", state, "renew", "--json", "--hook", hookLog(log)+"; sleep 0.2")
			r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
		}
		for _, r := range runs {
			if err := r.cmd.Start(); err != nil {
				t.Fatal(err)
			}
		}
		results := map[string][]string{}
		for i, r := range runs {
			if err := r.cmd.Wait(); err != nil {
				t.Fatalf("round %d, run %d: %v: %s", round, i, err, r.stderr.String())
			}
			var rep renewReport
			if err := json.Unmarshal(r.stdout.Bytes(), &rep); err != nil {
				t.Fatalf("round %d, run %d: %v\n%s", round, i, err, r.stdout.String())
			}
			for _, l := range rep.Lineages {
				results[l.Name] = append(results[l.Name], l.Result)
			}
		}
		hooks := map[string]int{}
		for _, l := range testtool.Lines(t, log) {
			hooks[filepath.Base(strings.Split(l, "|")[1])]++
		}
		for _, n := range names {
			r := slices.Sorted(slices.Values(results[n]))
			if len(r) != 2 || (r[0] != lifecycle.ResultNotDue && r[0] != lifecycle.ResultRenewed) || (r[0] == lifecycle.ResultRenewed) == (r[1] == lifecycle.ResultRenewed) ||
				(r[1] != lifecycle.ResultRenewed && r[1] != lifecycle.ResultSkipped) {
				t.Errorf("round %d, %s: results %q; want renewed by one run, skipped or not due in the other", round, n, r)
			}
			if v := renewedState(t, state, n); !slices.Equal(v, []int{1, 2}) {
				t.Errorf("round %d, %s: versions %v; want [1 2]", round, n, v)
			}
			if hooks[n] != 1 {
				t.Errorf("round %d, %s: deployed %d times; want once", round, n, hooks[n])
			}
		}
		t.Logf("round %d: %v", round, results)
	}
}

// TestRenewStoredTargets checks that renewal deploys to what issue was
// given (stored with the lineage), plus what renew is given, each once.
func TestRenewStoredTargets(t *testing.T) {
	fakeServerCtl(t, "prosodyctl")
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	log := filepath.Join(dir, "hooks.log")
	certs := filepath.Join(dir, "certs")
	hook := `echo "stored $XMPPCERT_EVENT" >> ` + log
	if code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", "example.org", "-q",
		"--deploy", "prosody:"+certs, "--hook", hook); code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
	}
	if err := os.Remove(filepath.Join(certs, "example.org.crt")); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, nil, "--state-dir", state, "renew", "--force", "-q",
		"--hook", hook, "--hook", `echo "given $XMPPCERT_EVENT" >> `+log)
	if code != exitOK {
		t.Fatalf("renew: exit %d\n%s%s", code, out, errs)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "stored issued\nstored renewed\ngiven renewed\n"; got != want {
		t.Errorf("hooks ran:\n%s\nwant:\n%s", got, want)
	}
	crt, err := os.ReadFile(filepath.Join(certs, "example.org.crt"))
	if err != nil {
		t.Fatalf("the stored prosody target was not deployed again: %v", err)
	}
	live, _ := os.ReadFile(filepath.Join(state, "live", "example.org", "fullchain.pem"))
	if string(crt) != string(live) {
		t.Error("the prosody target does not hold the renewed chain")
	}
}

// testRenewer runs renewals with an engine whose CA a test chooses. Its
// options may be changed until the first lineage; the run is then kept,
// so that what it remembers (a CA that failed to answer) carries over,
// until run is reset.
type testRenewer struct {
	e       *lifecycle.Engine
	force   bool
	targets []acme.Target
	run     *lifecycle.RenewRun
}

func (r *testRenewer) lineage(ctx context.Context, name string) lifecycle.LineageResult {
	if r.run == nil {
		r.run = r.e.NewRenewRun(lifecycle.RenewOptions{Force: r.force, Targets: r.targets})
	}
	return r.run.Lineage(ctx, name)
}
