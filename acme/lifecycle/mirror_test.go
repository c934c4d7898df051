package lifecycle

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/testetcd"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/pinning"
)

// Mirror writes a shared store's lineages into certbot's layout under
// the same version numbers, staged versions included and the shared
// current one made current; a layout already up to date is left alone,
// and one whose versions are not the shared store's is not touched.
func TestMirror(t *testing.T) {
	ca := testpki.NewRoot("mirror root", nil)
	write := func(s acme.Store, stage bool) *acme.Lineage {
		t.Helper()
		req, err := acme.NewRequest("example.org", 0, nil, acme.KeyECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		req.Stage = stage
		leaf, key := ca.Leaf(nil)
		next, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		l, err := s.Write(req, &acme.Issued{Chain: []*x509.Certificate{leaf, ca.Cert}, Key: key}, next)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	src := newMemStore()
	write(src, false)
	v2 := write(src, true) // staged: version 1 stays current
	dst := acme.DiskStore{Dir: t.TempDir()}

	changed, err := Mirror(src, dst)
	if err != nil || !slices.Equal(changed, []string{"example.org"}) {
		t.Fatalf("first mirror: %v, %v", changed, err)
	}
	cur, err := dst.Load("example.org")
	if err != nil || cur.Version != 1 {
		t.Fatalf("local current %+v, %v; want version 1", cur, err)
	}
	if leaf, err := dst.VersionLeaf("example.org", 2); err != nil || !leaf.Equal(v2.Chain[0]) {
		t.Errorf("local version 2: %v", err)
	}
	if changed, err := Mirror(src, dst); err != nil || len(changed) != 0 {
		t.Errorf("mirror of an up-to-date layout: %v, %v; want nothing done", changed, err)
	}
	if _, err := src.Promote("example.org", 2); err != nil {
		t.Fatal(err)
	}
	if changed, err := Mirror(src, dst); err != nil || len(changed) != 1 {
		t.Fatalf("after the promotion: %v, %v", changed, err)
	}
	if cur, _ := dst.Load("example.org"); cur == nil || cur.Version != 2 {
		t.Errorf("local current after the promotion: %+v; want version 2", cur)
	}

	// A layout of this machine's own with another certificate as version
	// 1 is not overwritten.
	other := acme.DiskStore{Dir: t.TempDir()}
	write(other, false)
	before, _ := os.ReadFile(filepath.Join(other.Dir, "live", "example.org", "cert.pem"))
	_, err = Mirror(src, other)
	var me *MirrorError
	if !errors.Is(err, ErrDiverged) || !errors.As(err, &me) || me.Name != "example.org" {
		t.Errorf("mirror over a diverged layout: %v; want ErrDiverged naming the lineage", err)
	}
	if after, _ := os.ReadFile(filepath.Join(other.Dir, "live", "example.org", "cert.pem")); string(after) != string(before) {
		t.Errorf("the diverged layout was changed")
	}
}

// clusterEngine is the engine of a cluster's node name on etcd, a live
// member, issuing from the test CA on clock.
func clusterEngine(t *testing.T, etcd *testetcd.Etcd, clock *fakeClock, ca *testCA, name string) *Engine {
	t.Helper()
	c, sess := etcd.Session(t, 10)
	s, err := etcdstore.New(c, sess, etcdstore.Options{Prefix: "/xmppcert/", Key: make([]byte, etcdstore.KeySize), Node: name})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Join(); err != nil {
		t.Fatal(err)
	}
	e := OnCluster(t.TempDir(), s)
	e.Now = clock.Now
	e.Open = func(string, acme.Request, IssueOptions) (acme.Issuer, *x509.CertPool, func(), error) {
		return ca, ca.root.Pool(), func() {}, nil
	}
	return e
}

// TestClusterDeployLayout: every node of a cluster deploys each version
// from its own certbot layout: the version is written there first, and
// the node's hooks get its path there (RENEWED_LINEAGE, certbot's
// live/NAME) whose cert.pem is the version deployed, the issuing node's
// and the other's alike.
func TestClusterDeployLayout(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	etcd := testetcd.Start(t)
	a, b := clusterEngine(t, etcd, clock, ca, "node-a"), clusterEngine(t, etcd, clock, ca, "node-b")
	log := filepath.Join(t.TempDir(), "hook.log")
	req := request(t, "example.org")
	req.Hooks = []string{`echo "$RENEWED_LINEAGE $(openssl x509 -in "$RENEWED_LINEAGE/cert.pem" -noout -serial)" >> ` + log}
	check := func(step string, e *Engine, version int) {
		t.Helper()
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		leaf, err := e.Store.VersionLeaf("example.org", version)
		if err != nil {
			t.Fatal(err)
		}
		serial := fmt.Sprintf("%X", leaf.SerialNumber)
		if len(serial)%2 == 1 {
			serial = "0" + serial // as openssl prints it, in whole bytes
		}
		want := filepath.Join(e.Layout.Dir, "live", "example.org") + " serial=" + serial
		if got := lines[len(lines)-1]; got != want {
			t.Errorf("%s: the hook saw %q; want %q", step, got, want)
		}
	}
	if _, err := a.Issue(ctx, req, IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	check("issued on node a", a, 1)
	if got := b.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org"); got.Result != ResultDeployed || len(got.Deploy) != 1 || !got.Deploy[0].OK {
		t.Fatalf("node b's run: %+v; want version 1 deployed there", got)
	}
	check("deployed on node b", b, 1)
	clock.Advance(61 * day)
	if got := a.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org"); got.Result != ResultRenewed {
		t.Fatalf("node a's renewal: %+v", got)
	}
	check("renewed on node a", a, 2)
	if got := b.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org"); got.Result != ResultDeployed {
		t.Fatalf("node b's run after the renewal: %+v; want version 2 deployed there", got)
	}
	check("version 2 deployed on node b", b, 2)
}

// TestClusterCA: the nodes of a cluster issue from one embedded CA.
// Two nodes that issue their first lineages at once end with the same
// root and intermediate (one node's material, kept in etcd first, the
// other's fresh CA replaced by it), their lineages chain to it, and the
// CA's keys are sealed in etcd. A node whose own CA predates its joining
// is refused, naming its CA directory, and its CA is left alone.
func TestClusterCA(t *testing.T) {
	ctx := context.Background()
	etcd := testetcd.Start(t)
	c := etcd.Client(t)
	node := func(name, state string) *Engine {
		_, sess := etcd.Session(t, 10)
		s, err := etcdstore.New(c, sess, etcdstore.Options{Prefix: "/xmppcert/", Key: make([]byte, etcdstore.KeySize), Node: name})
		if err != nil {
			t.Fatal(err)
		}
		return OnCluster(state, s)
	}
	a, b := node("node-a", t.TempDir()), node("node-b", t.TempDir())
	var wg sync.WaitGroup
	issued := make([]IssueReport, 2)
	for i, e := range []*Engine{a, b} {
		wg.Go(func() {
			var err error
			if issued[i], err = e.Issue(ctx, request(t, fmt.Sprintf("host%d.example", i)), IssueOptions{}, ReplacePolicy{}); err != nil {
				t.Errorf("node %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	roots := map[string]bool{}
	for i, e := range []*Engine{a, b} {
		root, err := os.ReadFile(filepath.Join(CADir(e.StateDir), "root.crt"))
		if err != nil {
			t.Fatal(err)
		}
		roots[string(root)] = true
		l, err := e.Store.Load(fmt.Sprintf("host%d.example", i))
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(root)
		inter := x509.NewCertPool()
		inter.AddCert(l.Chain[1])
		for j, other := range []*Engine{a, b} {
			otherRoot, _ := os.ReadFile(filepath.Join(CADir(other.StateDir), "root.crt"))
			p := x509.NewCertPool()
			p.AppendCertsFromPEM(otherRoot)
			if _, err := l.Chain[0].Verify(x509.VerifyOptions{Roots: p, Intermediates: inter}); err != nil {
				t.Errorf("node %d's lineage does not chain to node %d's root: %v", i, j, err)
			}
		}
	}
	if len(roots) != 1 {
		t.Errorf("the nodes have %d different roots; want the cluster's one", len(roots))
	}
	resp, err := c.Get(ctx, "/xmppcert/ca/material")
	if err != nil || len(resp.Kvs) != 1 || bytes.Contains(resp.Kvs[0].Value, []byte("PRIVATE KEY")) || bytes.Contains(resp.Kvs[0].Value, []byte("CERTIFICATE")) {
		t.Errorf("the CA material in etcd: %v; want it there, sealed", err)
	}

	own := t.TempDir()
	if err := localca.Init(CADir(own)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(CADir(own), "root.crt"))
	_, err = node("node-c", own).Issue(ctx, request(t, "host2.example"), IssueOptions{}, ReplacePolicy{})
	var mismatch *CAMismatchError
	if !errors.As(err, &mismatch) || mismatch.Dir != CADir(own) {
		t.Errorf("a node with its own CA: %v; want CAMismatchError naming %s", err, CADir(own))
	}
	if after, _ := os.ReadFile(filepath.Join(CADir(own), "root.crt")); !bytes.Equal(before, after) {
		t.Error("the node's own CA was changed")
	}
}

// TestMirrorConcurrent: two writers mirroring the same new versions at
// once (a cluster node's two loops) leave the layout whole, never
// diverged: the second finds them written under the layout's lock.
func TestMirrorConcurrent(t *testing.T) {
	ca := testpki.NewRoot("mirror root", nil)
	src := newMemStore()
	for round := range 20 {
		req, err := acme.NewRequest("example.org", 0, nil, acme.KeyECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		leaf, key := ca.Leaf(nil)
		next, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if _, err := src.Write(req, &acme.Issued{Chain: []*x509.Certificate{leaf, ca.Cert}, Key: key}, next); err != nil {
			t.Fatal(err)
		}
		dst := acme.DiskStore{Dir: t.TempDir()}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Go(func() {
				for {
					_, errs[i] = Mirror(src, dst)
					var held *acme.LockedError
					if !errors.As(errs[i], &held) {
						return
					}
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if vs, err := dst.Versions("example.org"); err != nil || len(vs) != round+1 {
			t.Fatalf("round %d: local versions %v, %v; want %d", round, vs, err, round+1)
		}
	}
}

// TestClusterPOSHPromotion: two nodes of a cluster each write the POSH
// documents of a lineage into their own web root. A renewal on one node
// stages the new version and lists it in that node's documents; it does
// not go live while the other node's documents do not list it, even past
// their lifetime, nor until the other node's have listed it for their
// lifetime; then it goes live, and the other node's documents follow.
func TestClusterPOSHPromotion(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	etcd := testetcd.Start(t)
	a, b := clusterEngine(t, etcd, clock, ca, "node-a"), clusterEngine(t, etcd, clock, ca, "node-b")
	webA, webB := t.TempDir(), t.TempDir()
	listed := func(web string) int {
		t.Helper()
		rel, _ := pinning.POSHPath("xmpp-client")
		doc, err := os.ReadFile(filepath.Join(web, filepath.FromSlash(rel)))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(doc), `"sha-256"`)
	}
	sync := func(want bool) {
		t.Helper()
		if wrote, err := b.SyncPOSH("example.org", webB); err != nil || wrote != want {
			t.Fatalf("node b's sync: wrote %v, %v; want %v", wrote, err, want)
		}
	}
	renew := func(step, want, reason string) {
		t.Helper()
		got := a.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
		if got.Result != want || !strings.Contains(got.Reason, reason) {
			t.Fatalf("%s: node a's run: %+v; want %s, reason with %q", step, got, want, reason)
		}
	}

	if _, err := a.Issue(ctx, request(t, "example.org"), IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	if err := a.PublishPOSH("example.org", acme.POSHPublication{Dir: webA, Services: []string{"xmpp-client"}, ExpiresSeconds: 3600}); err != nil {
		t.Fatal(err)
	}
	sync(true)
	sync(false)
	if listed(webA) != 1 || listed(webB) != 1 {
		t.Fatalf("before the renewal, the documents list %d and %d certificates; want the current one", listed(webA), listed(webB))
	}

	clock.Advance(61 * day)
	renew("due", ResultStaged, "goes live once POSH has listed it")
	if listed(webA) != 2 || listed(webB) != 1 {
		t.Fatalf("staged: the documents list %d and %d certificates; want 2 on node a, 1 on node b", listed(webA), listed(webB))
	}
	clock.Advance(2 * time.Hour)
	renew("past the lifetime on node a", ResultStaged, "node node-b does not list it yet")
	sync(true)
	if listed(webB) != 2 {
		t.Fatalf("node b's documents list %d certificates after its sync; want 2", listed(webB))
	}
	clock.Advance(30 * time.Minute)
	renew("half node b's lifetime", ResultStaged, "goes live after")
	clock.Advance(31 * time.Minute)
	renew("after node b's lifetime", ResultRenewed, "")
	if cur, err := a.Store.Current("example.org"); err != nil || cur.Version != 2 || listed(webA) != 1 {
		t.Fatalf("after promotion: %+v, %v, %d listed on node a; want version 2 current, listed alone", cur, err, listed(webA))
	}
	sync(true)
	if listed(webB) != 1 {
		t.Errorf("node b's documents list %d certificates after the promotion; want the new one alone", listed(webB))
	}

	// The next renewal on node b stages into node b's own web root.
	clock.Advance(61 * day)
	if got := b.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org"); got.Result != ResultStaged {
		t.Fatalf("node b's renewal: %+v; want staged", got)
	}
	if listed(webB) != 2 || listed(webA) != 1 {
		t.Fatalf("node b staged: the documents list %d on node a, %d on node b; want 1 and 2", listed(webA), listed(webB))
	}
	if wrote, err := a.SyncPOSH("example.org", webA); err != nil || !wrote || listed(webA) != 2 {
		t.Fatalf("node a's sync: wrote %v, %v, %d listed; want both certificates", wrote, err, listed(webA))
	}
}

// TestLocalCALead: with LocalCALead set (a cluster node's daemon), a due
// lineage the embedded CA signs is left to the node that leads its
// issuance, named in the reason, and renewed once this node leads; one
// from another CA is not held back.
func TestLocalCALead(t *testing.T) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	e, _ := newEngine(t, clock, newTestCA(clock), func(state string) acme.Store { return acme.DiskStore{Dir: state} })
	if _, err := e.Issue(ctx, request(t, "example.org"), IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	here, leader := false, "node-x"
	e.LocalCALead = func() (bool, string) { return here, leader }
	clock.Advance(61 * day)
	if got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org"); got.Result != ResultSkipped || !strings.Contains(got.Reason, "node node-x") {
		t.Fatalf("due, another node leading: %+v; want skipped, naming node-x", got)
	}
	leader = ""
	if got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org"); got.Result != ResultSkipped || !strings.Contains(got.Reason, "none does yet") {
		t.Fatalf("due, no node leading: %+v; want skipped, saying so", got)
	}
	here = true
	if got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org"); got.Result != ResultRenewed {
		t.Fatalf("due, this node leading: %+v; want renewed", got)
	}
	if why, elsewhere := e.issuesElsewhere(acme.Request{CA: "https://acme.example/directory"}); elsewhere {
		t.Errorf("a request of another CA is held back: %s", why)
	}
}
