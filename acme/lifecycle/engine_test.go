package lifecycle

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

const day = 24 * time.Hour

// fakeClock is the engine's clock in these tests: time moves only when
// a test moves it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// testCA signs 90-day certificates that start at the engine's clock,
// with every XMPP identity of the request, like the embedded CA. errs
// are returned by the next issuances, one each, before it signs again.
type testCA struct {
	inter *testpki.CA
	root  *testpki.CA
	clock *fakeClock

	mu   sync.Mutex
	errs []error
	reqs []acme.Request
}

func newTestCA(clock *fakeClock) *testCA {
	root := testpki.NewRoot("lifecycle test root", nil)
	return &testCA{root: root, inter: root.Intermediate("lifecycle test intermediate", nil), clock: clock}
}

func (ca *testCA) Name() string { return "test CA" }

func (ca *testCA) Issue(_ context.Context, req acme.Request, key crypto.Signer) (*acme.Issued, error) {
	ca.mu.Lock()
	ca.reqs = append(ca.reqs, req)
	if len(ca.errs) > 0 {
		err := ca.errs[0]
		ca.errs = ca.errs[1:]
		ca.mu.Unlock()
		return nil, err
	}
	ca.mu.Unlock()
	san, err := xmppaddr.SANExtension(req.XMPPNames(), false)
	if err != nil {
		return nil, err
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	now := ca.clock.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: req.Host()},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(90 * day),
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{san},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.inter.Cert, key.Public(), ca.inter.Key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &acme.Issued{Chain: []*x509.Certificate{leaf, ca.inter.Cert}, Key: key, Issuer: ca.Name()}, nil
}

func (ca *testCA) requests() []acme.Request {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return slices.Clone(ca.reqs)
}

// rateLimited is a CA's refusal with a time to ask again.
type rateLimited struct{ until time.Time }

func (e rateLimited) Error() string         { return "the CA says: too many certificates" }
func (e rateLimited) RetryAfter() time.Time { return e.until }

// newEngine is an engine over a new state directory and a new store
// (newStore's) whose CA is ca, on clock, recording its events.
func newEngine(t *testing.T, clock *fakeClock, ca *testCA, newStore func(state string) acme.Store) (*Engine, *[]Event) {
	t.Helper()
	var events []Event
	state := t.TempDir()
	e := &Engine{
		Store:    newStore(state),
		StateDir: state,
		Now:      clock.Now,
		Open: func(_ string, _ acme.Request, _ IssueOptions) (acme.Issuer, *x509.CertPool, func(), error) {
			return ca, ca.root.Pool(), func() {}, nil
		},
		Events: func(ev Event) { events = append(events, ev) },
	}
	return e, &events
}

func request(t *testing.T, host string, components ...string) acme.Request {
	t.Helper()
	req, err := acme.NewRequest(host, xmppaddr.RoleHost, components, acme.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	req.CA = "local"
	return req
}

// hook is a deploy hook that appends its event to a log file, and fails
// while the file fail exists beside it.
func hook(t *testing.T) (cmd, log, fail string) {
	dir := t.TempDir()
	log, fail = filepath.Join(dir, "hook.log"), filepath.Join(dir, "fail")
	return `test ! -e ` + fail + ` && echo "$XMPPCERT_EVENT $XMPPCERT_DOMAINS" >> ` + log, log, fail
}

func eventNames(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Name)
	}
	return out
}

// TestRenewByLifetime: on the engine's clock, a 90-day certificate is
// not due before a third of its lifetime is left, and is renewed and
// deployed after, with the old leaf as the order's "replaces" and the
// stored request repeated; every step is an event.
func TestRenewByLifetime(t *testing.T) { eachStore(t, testRenewByLifetime) }

func testRenewByLifetime(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	e, events := newEngine(t, clock, ca, newStore)
	cmd, log, _ := hook(t)
	req := request(t, "example.org", "conference.example.org")
	req.Hooks = []string{cmd}
	rep, err := e.Issue(ctx, req, IssueOptions{}, ReplacePolicy{})
	if err != nil || !rep.Valid || rep.Version != 1 || !rep.Deployed() {
		t.Fatalf("issue: %+v, %v; want version 1, valid, deployed", rep, err)
	}
	v1, err := e.Store.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}

	clock.Advance(59 * day)
	got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	wantDue := v1.Chain[0].NotAfter.Add(-v1.Chain[0].NotAfter.Sub(v1.Chain[0].NotBefore) / 3).UTC()
	if got.Result != ResultNotDue || got.Rule != acme.RuleLifetime || !got.DueAt.Equal(wantDue) {
		t.Fatalf("day 59: %+v; want not due before %v by the lifetime rule", got, wantDue)
	}

	clock.Advance(2 * day)
	got = e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultRenewed || got.Version != 2 || len(got.Deploy) != 1 || !got.Deploy[0].OK {
		t.Fatalf("day 61: %+v; want renewed to version 2 and deployed", got)
	}
	reqs := ca.requests()
	if last := reqs[len(reqs)-1]; last.Replaces == nil || !last.Replaces.Equal(v1.Chain[0]) || !slices.Equal(last.Domains(), req.Domains()) {
		t.Errorf("renewal order: %+v; want the stored names, replacing version 1", last)
	}
	if want := []string{"issued example.org conference.example.org", "renewed example.org conference.example.org"}; !slices.Equal(testtool.Lines(t, log), want) {
		t.Errorf("hook calls %q; want %q", testtool.Lines(t, log), want)
	}
	if want := []string{EventIssued, EventDeployed, EventRenewed, EventDeployed}; !slices.Equal(eventNames(*events), want) {
		t.Errorf("events %q; want %q", eventNames(*events), want)
	}
	if got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org"); got.Result != ResultNotDue {
		t.Errorf("right after the renewal: %+v; want not due", got)
	}
}

// TestRenewRetryAfter: a CA's rate limit is kept; until its time has
// passed on the engine's clock the CA is not asked again and the result
// is a *WaitingError; forcing asks at once; after the time, renewal
// goes on by itself.
func TestRenewRetryAfter(t *testing.T) { eachStore(t, testRenewRetryAfter) }

func testRenewRetryAfter(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	e, events := newEngine(t, clock, ca, newStore)
	if _, err := e.Issue(ctx, request(t, "example.org"), IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(70 * day)
	until := clock.Now().Add(3 * time.Hour)
	ca.errs = []error{rateLimited{until}}
	got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultFailed || !got.RetryAfter.Equal(until) || len(ca.requests()) != 2 {
		t.Fatalf("rate limited: %+v; want failed with Retry-After %v", got, until)
	}
	if last := (*events)[len(*events)-1]; last.Name != EventRenewFailed || !errors.As(last.Err, new(rateLimited)) {
		t.Errorf("last event %+v; want %s carrying the CA's error", last, EventRenewFailed)
	}

	clock.Advance(time.Hour)
	got = e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	var wait *WaitingError
	if got.Result != ResultFailed || !errors.As(got.Err, &wait) || !wait.Until.Equal(until) || len(ca.requests()) != 2 {
		t.Fatalf("an hour later: %+v, %d requests; want a *WaitingError until %v without asking the CA", got, len(ca.requests()), until)
	}

	clock.Advance(3 * time.Hour)
	if got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org"); got.Result != ResultRenewed || len(ca.requests()) != 3 {
		t.Fatalf("after the Retry-After: %+v; want renewed", got)
	}
	cur, err := e.Store.Current("example.org")
	if err != nil || cur.State != (acme.RenewState{}) {
		t.Errorf("renewal record after the renewal: %+v, %v; want none", cur.State, err)
	}
}

// alreadyReplaced is a CA's refusal of a renewal whose certificate was
// replaced already (RFC 9773).
type alreadyReplaced struct{}

func (alreadyReplaced) Error() string         { return "the CA says: already replaced" }
func (alreadyReplaced) AlreadyReplaced() bool { return true }

// replacingIssuer is ca behind another node: before answering
// alreadyReplaced, it stores the version that node issued.
type replacingIssuer struct {
	*testCA
	store acme.Store
}

func (r replacingIssuer) Issue(ctx context.Context, req acme.Request, key crypto.Signer) (*acme.Issued, error) {
	req.Replaces = nil
	iss, err := r.testCA.Issue(ctx, req, key)
	if err != nil {
		return nil, err
	}
	next, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if _, err := r.store.Write(req, iss, next); err != nil {
		return nil, err
	}
	return nil, alreadyReplaced{}
}

// TestRenewAlreadyReplaced: a CA's alreadyReplaced with another node's
// version stored is that node's renewal: skipped, no second order.
// Without a newer version (a node that ordered and died before storing
// it) the renewal orders once more without "replaces", and says why.
func TestRenewAlreadyReplaced(t *testing.T) { eachStore(t, testRenewAlreadyReplaced) }

func testRenewAlreadyReplaced(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	e, _ := newEngine(t, clock, ca, newStore)
	if _, err := e.Issue(ctx, request(t, "example.org"), IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(70 * day)
	ca.errs = []error{alreadyReplaced{}}
	got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	reqs := ca.requests()
	if got.Result != ResultRenewed || len(reqs) != 3 || reqs[1].Replaces == nil || reqs[2].Replaces != nil ||
		!slices.ContainsFunc(got.Notes, func(n string) bool { return strings.Contains(n, "ordered again without replaces") }) {
		t.Fatalf("alreadyReplaced, nothing newer stored: %+v, %d orders; want renewed by a second order without replaces", got, len(reqs))
	}

	clock.Advance(70 * day)
	open := e.Open
	e.Open = func(state string, req acme.Request, o IssueOptions) (acme.Issuer, *x509.CertPool, func(), error) {
		return replacingIssuer{ca, e.Store}, ca.root.Pool(), func() {}, nil
	}
	defer func() { e.Open = open }()
	got = e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultSkipped || !strings.Contains(got.Reason, "renewed meanwhile by another node; version 3 is current") || len(ca.requests()) != 4 {
		t.Fatalf("alreadyReplaced after another node's renewal: %+v, %d orders; want skipped, no second order", got, len(ca.requests()))
	}
}

// TestRenewRetriesFailedDeploy: a renewal whose deploy failed is current
// but not deployed; the next run, with nothing due, deploys it once the
// target works, and issues nothing.
func TestRenewRetriesFailedDeploy(t *testing.T) { eachStore(t, testRenewRetriesFailedDeploy) }

func testRenewRetriesFailedDeploy(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	e, _ := newEngine(t, clock, ca, newStore)
	cmd, log, fail := hook(t)
	req := request(t, "example.org")
	req.Hooks = []string{cmd}
	if _, err := e.Issue(ctx, req, IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fail, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Advance(61 * day)
	got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultFailed || got.Version != 2 || len(got.Deploy) != 1 || got.Deploy[0].OK ||
		!strings.Contains(got.Error, "version 2 is current, but deploying it failed (the next run deploys it again)") {
		t.Fatalf("failing hook: %+v; want version 2 current and its deploy failed", got)
	}
	if got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org"); got.Result != ResultFailed || len(ca.requests()) != 2 {
		t.Fatalf("hook still failing: %+v, %d requests; want the deploy tried again, nothing issued", got, len(ca.requests()))
	}
	if err := os.Remove(fail); err != nil {
		t.Fatal(err)
	}
	got = e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultDeployed || got.Version != 2 || len(ca.requests()) != 2 || !slices.Equal(testtool.Lines(t, log), []string{"issued example.org", "renewed example.org"}) {
		t.Fatalf("hook fixed: %+v, hook calls %q; want version 2 deployed without issuing", got, testtool.Lines(t, log))
	}
}

// TestReconcile: a desired host without a lineage is issued and then
// renewed when due on the engine's clock; an ACME host whose account may
// not be registered fails with the front's hint and leaves the others
// alone.
func TestReconcile(t *testing.T) { eachStore(t, testReconcile) }

func testReconcile(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	e, _ := newEngine(t, clock, ca, newStore)
	acmeReq := request(t, "acme.example")
	acmeReq.CA = "https://127.0.0.1:1/directory"
	acmeReq.ACME = &acme.ACMESettings{Directory: acmeReq.CA, Challenges: acme.ChallengeSettings{HTTPListen: "127.0.0.1:0"}}
	hosts := []Host{
		{Request: acmeReq, Source: "test.toml:1", Hint: func(err error) string {
			var ae *AccountError
			if errors.As(err, &ae) {
				return "agree to the terms in test.toml:1"
			}
			return ""
		}},
		{Request: request(t, "example.org", "upload.example.org"), Source: "test.toml:9"},
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	err := e.Reconcile(ctx, hosts, false, logger)
	if err == nil || err.Error() != "1 of 2 lineages failed" {
		t.Fatalf("first run: %v; want 1 of 2 lineages failed", err)
	}
	if !strings.Contains(logs.String(), `next="agree to the terms in test.toml:1"`) || !strings.Contains(logs.String(), "no account with") {
		t.Errorf("log lacks the account failure with the front's hint:\n%s", logs.String())
	}
	l, err := e.Store.Load("example.org")
	if err != nil || l.Version != 1 || !slices.Equal(l.Request.Domains(), []string{"example.org", "upload.example.org"}) {
		t.Fatalf("example.org after the first run: %+v, %v; want version 1 with both names", l, err)
	}
	if _, err := e.Store.Load("acme.example"); !errors.Is(err, acme.ErrNoLineage) {
		t.Errorf("acme.example: %v; want no lineage", err)
	}

	clock.Advance(61 * day)
	logs.Reset()
	if err := e.Reconcile(ctx, hosts[1:], false, logger); err != nil {
		t.Fatalf("day 61: %v\n%s", err, logs.String())
	}
	if l, _ := e.Store.Load("example.org"); l == nil || l.Version != 2 {
		t.Errorf("day 61: example.org %+v; want version 2", l)
	}
}

// TestDeploys: a run over many lineages yields, in the order asked, what
// Deploy would for each: up to date without running anything, a lineage
// whose hook failed at issuance deployed, a name without a lineage its
// error; with all, every lineage's hook runs again; a cancelled run
// yields nothing.
func TestDeploys(t *testing.T) { eachStore(t, testDeploys) }

func testDeploys(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e, _ := newEngine(t, clock, newTestCA(clock), newStore)
	cmd, log, fail := hook(t)
	issue := func(host string) {
		t.Helper()
		req := request(t, host)
		req.Hooks = []string{cmd}
		if _, err := e.Issue(ctx, req, IssueOptions{}, ReplacePolicy{}); err != nil {
			t.Fatal(err)
		}
	}
	issue("a.example")
	if err := os.WriteFile(fail, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	issue("b.example") // its hook fails
	if err := os.Remove(fail); err != nil {
		t.Fatal(err)
	}
	names := []string{"a.example", "b.example", "missing.example"}
	for i := range aheadChunk * 2 {
		names = append(names, fmt.Sprintf("missing%02d.example", i))
	}
	run := func(ctx context.Context, all bool) []string {
		var got []string
		i := 0
		for rep, err := range e.Deploys(ctx, names, all) {
			switch {
			case err != nil && errors.Is(err, acme.ErrNoLineage):
				got = append(got, names[i]+" missing")
			case err != nil:
				t.Errorf("%s: %v", names[i], err)
			case rep.UpToDate:
				got = append(got, rep.Lineage+" up-to-date")
			case rep.Deployed():
				got = append(got, rep.Lineage+" deployed")
			default:
				got = append(got, rep.Lineage+" failed")
			}
			i++
		}
		return got
	}
	got := run(ctx, false)
	if want := []string{"a.example up-to-date", "b.example deployed", "missing.example missing"}; len(got) != len(names) || !slices.Equal(got[:3], want) {
		t.Errorf("deploy: %q...; want %q and every missing name", got[:min(3, len(got))], want)
	}
	if want := []string{"issued a.example", "issued b.example"}; !slices.Equal(testtool.Lines(t, log), want) {
		t.Errorf("hook calls %q; want %q", testtool.Lines(t, log), want)
	}
	if got := run(ctx, true); len(got) != len(names) || !slices.Equal(got[:2], []string{"a.example deployed", "b.example deployed"}) {
		t.Errorf("deploy all: %q...; want both deployed again", got[:min(2, len(got))])
	}
	if n := len(testtool.Lines(t, log)); n != 4 {
		t.Errorf("%d hook calls after deploy all; want 4", n)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, all := range []bool{false, true} {
		if got := run(cancelled, all); len(got) != 0 {
			t.Errorf("a cancelled run (all %v) yielded %q", all, got)
		}
	}
}

// TestIssueTimeout: the time a host allows its CA reaches the issuance
// of its first certificate, its re-issuance and every renewal of the
// daemon's runs, as a renewal run's own reaches each of its renewals; a
// lineage no host names is renewed within the CA's default.
func TestIssueTimeout(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	e, _ := newEngine(t, clock, ca, func(state string) acme.Store { return acme.DiskStore{Dir: state} })
	var opened []string
	e.Open = func(_ string, req acme.Request, o IssueOptions) (acme.Issuer, *x509.CertPool, func(), error) {
		opened = append(opened, fmt.Sprintf("%s %s", req.Host(), o.Timeout))
		return ca, ca.root.Pool(), func() {}, nil
	}
	if _, err := e.Issue(ctx, request(t, "other.example"), IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	host := Host{Request: request(t, "example.org"), Options: IssueOptions{Timeout: 42 * time.Second}, Source: "test.toml:1"}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	opened = nil
	if err := e.Reconcile(ctx, []Host{host}, false, logger); err != nil {
		t.Fatal(err)
	}
	host.Request = request(t, "example.org", "upload.example.org")
	if err := e.Reconcile(ctx, []Host{host}, false, logger); err != nil {
		t.Fatal(err)
	}
	clock.Advance(61 * day)
	if err := e.Reconcile(ctx, []Host{host}, false, logger); err != nil {
		t.Fatal(err)
	}
	want := []string{"example.org 42s", "example.org 42s", "example.org 42s", "other.example 0s"}
	if !slices.Equal(opened, want) {
		t.Errorf("the daemon's runs opened %q; want %q (issue, re-issue, renewals)", opened, want)
	}
	clock.Advance(61 * day)
	opened = nil
	if got := e.NewRenewRun(RenewOptions{Timeout: 90 * time.Second}).Lineage(ctx, "other.example"); got.Result != ResultRenewed {
		t.Fatalf("renewal: %+v", got)
	}
	if want := []string{"other.example 1m30s"}; !slices.Equal(opened, want) {
		t.Errorf("a renewal run opened %q; want %q", opened, want)
	}
}

// TestIssueDeployRetried: a deploy that fails at issuance is recorded;
// renewal runs with nothing due deploy it again, and once the target
// works it holds the version and later runs leave it alone. Deploy with
// all runs every target again; without, none while all hold the version.
func TestIssueDeployRetried(t *testing.T) { eachStore(t, testIssueDeployRetried) }

func testIssueDeployRetried(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	e, events := newEngine(t, clock, ca, newStore)
	cmd, log, fail := hook(t)
	if err := os.WriteFile(fail, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	req := request(t, "example.org")
	req.Hooks = []string{cmd}
	rep, err := e.Issue(ctx, req, IssueOptions{}, ReplacePolicy{})
	if err != nil || rep.Deployed() {
		t.Fatalf("issue with a failing hook: %+v, %v; want issued, deploy failed", rep, err)
	}
	rec, ok, err := e.Store.DeployRecord("example.org")
	if err != nil || !ok || len(rec.Targets) != 1 || rec.Targets[0].Failed != 1 || rec.Targets[0].Version != 0 {
		t.Fatalf("deploy record %+v, %v, %v; want the hook failed at version 1", rec, ok, err)
	}

	clock.Advance(day)
	got := e.NewRenewRun(RenewOptions{DryRun: true}).Lineage(ctx, "example.org")
	if got.Result != ResultWouldDeploy || got.Due || !strings.Contains(got.Reason, "not due, but hook "+cmd+" holds no good deploy of version 1") {
		t.Fatalf("dry run: %+v; want would-deploy, not due", got)
	}
	got = e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultFailed || !strings.Contains(got.Error, "deploying it failed again") || len(ca.requests()) != 1 {
		t.Fatalf("hook still failing: %+v; want the deploy tried again and failed, nothing issued", got)
	}
	if err := os.Remove(fail); err != nil {
		t.Fatal(err)
	}
	got = e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultDeployed || got.Version != 1 || len(got.Deploy) != 1 || !got.Deploy[0].OK || len(ca.requests()) != 1 {
		t.Fatalf("hook fixed: %+v; want version 1 deployed without issuing", got)
	}
	if want := []string{"issued example.org"}; !slices.Equal(testtool.Lines(t, log), want) {
		t.Errorf("hook calls %q; want %q: the retried deploy tells the hook what it deploys", testtool.Lines(t, log), want)
	}
	if got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org"); got.Result != ResultNotDue {
		t.Errorf("after the retry: %+v; want not due", got)
	}

	if d, err := e.Deploy(ctx, "example.org", false); err != nil || !d.UpToDate || len(d.Deploy) != 0 {
		t.Errorf("Deploy: %+v, %v; want up to date, nothing run", d, err)
	}
	if d, err := e.Deploy(ctx, "example.org", true); err != nil || d.UpToDate || len(d.Deploy) != 1 || !d.Deployed() {
		t.Errorf("Deploy all: %+v, %v; want the hook run again", d, err)
	}
	if n := len(testtool.Lines(t, log)); n != 2 {
		t.Errorf("%d hook calls; want 2", n)
	}
	var failed, deployed int
	for _, ev := range *events {
		switch ev.Name {
		case EventDeployFailed:
			failed++
		case EventDeployed:
			deployed++
		}
	}
	if failed != 2 || deployed != 2 {
		t.Errorf("%d deploy-failed and %d deployed events; want 2 and 2", failed, deployed)
	}
}

// TestNoStateDir: an engine without a state directory refuses to open a
// CA rather than creating one in the working directory.
func TestNoStateDir(t *testing.T) {
	t.Chdir(t.TempDir())
	e := &Engine{Store: newMemStore()}
	if _, err := e.Issue(context.Background(), request(t, "example.org"), IssueOptions{}, ReplacePolicy{}); !errors.Is(err, errNoStateDir) {
		t.Errorf("issue: %v; want errNoStateDir", err)
	}
	if ents, _ := os.ReadDir("."); len(ents) != 0 {
		t.Errorf("the working directory holds %d entries; want none", len(ents))
	}
}

// TestRenewLineages: a run over many lineages yields, in the order asked,
// what Lineage would for each (lineages not due, due ones renewed, and
// names with no lineage failed) although each lineage is read ahead, and
// it leaves nothing running when the caller stops early or the context
// ends.
func TestRenewLineages(t *testing.T) { eachStore(t, testRenewLineages) }

func testRenewLineages(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e, _ := newEngine(t, clock, newTestCA(clock), newStore)
	for _, host := range []string{"a.example", "c.example"} {
		if _, err := e.Issue(ctx, request(t, host), IssueOptions{}, ReplacePolicy{}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(40 * day)
	if _, err := e.Issue(ctx, request(t, "b.example"), IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(21 * day) // a and c are due, b is not
	// More names than are read ahead, most of them without a lineage.
	names := []string{"a.example", "b.example", "c.example"}
	for i := range aheadChunk*aheadChunks + 50 {
		names = append(names, fmt.Sprintf("missing%03d.example", i))
	}
	var got []string
	for l := range e.NewRenewRun(RenewOptions{}).Lineages(ctx, names) {
		got = append(got, l.Name+" "+l.Result)
		if l.Result == ResultFailed && !errors.Is(l.Err, acme.ErrNoLineage) {
			t.Errorf("%s: %v; want no such lineage", l.Name, l.Err)
		}
	}
	want := []string{"a.example renewed", "b.example not-due", "c.example renewed"}
	for _, n := range names[3:] {
		want = append(want, n+" failed")
	}
	if !slices.Equal(got, want) {
		t.Errorf("results %q...; want %q...", got[:4], want[:4])
	}

	n := 0
	for range e.NewRenewRun(RenewOptions{}).Lineages(ctx, names) {
		if n++; n == 2 {
			break
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for l := range e.NewRenewRun(RenewOptions{}).Lineages(cancelled, names) {
		t.Errorf("a cancelled run yielded %s", l.Name)
	}
	// The readers are named by their stacks: the store's own goroutines
	// (etcd's client) come and go on their own.
	stacks := make([]byte, 1<<20)
	stacks = stacks[:runtime.Stack(stacks, true)]
	if bytes.Contains(stacks, []byte("lifecycle.ahead")) {
		t.Errorf("a reader still runs after runs that stopped early:\n%s", stacks)
	}
}

// TestStatuses: the statuses of many lineages, read ahead, come in the
// order asked, each as Status gives it, and a name without a lineage
// comes with its error and its name.
func TestStatuses(t *testing.T) { eachStore(t, testStatuses) }

func testStatuses(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e, _ := newEngine(t, clock, newTestCA(clock), newStore)
	names := []string{"b.example", "missing.example", "a.example"}
	for _, host := range []string{"a.example", "b.example"} {
		if _, err := e.Issue(ctx, request(t, host), IssueOptions{}, ReplacePolicy{}); err != nil {
			t.Fatal(err)
		}
	}
	i := 0
	for st, err := range e.Statuses(ctx, names) {
		if st.Name != names[i] {
			t.Errorf("status %d is %q's; want %q's", i, st.Name, names[i])
		}
		if names[i] == "missing.example" {
			if !errors.Is(err, acme.ErrNoLineage) {
				t.Errorf("%s: %v; want no such lineage", names[i], err)
			}
		} else if want, werr := e.Status(names[i]); err != nil || werr != nil || !reflect.DeepEqual(st, want) {
			t.Errorf("%s: %+v, %v; want %+v, %v", names[i], st, err, want, werr)
		}
		i++
	}
	if i != len(names) {
		t.Errorf("%d statuses; want %d", i, len(names))
	}
}
