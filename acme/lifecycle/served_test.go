package lifecycle

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// TestCheckServed: what an endpoint presents after a deploy is served
// (the version deployed), stale (an older version of the lineage),
// mismatch (a version of another lineage), foreign (a key of no
// lineage) or unreachable; a stale answer is waited out for the grace
// period and then marks the deploy failed, with an event, so that the
// next run deploys again.
func TestCheckServed(t *testing.T) { eachStore(t, testCheckServed) }

func testCheckServed(t *testing.T, newStore func(state string) acme.Store) {
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	ca := newTestCA(clock)
	e, events := newEngine(t, clock, ca, newStore)
	e.ServeGrace = 300 * time.Millisecond
	if _, err := e.Issue(ctx, request(t, "example.org"), IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	v1, _ := e.Store.Load("example.org")
	if _, err := e.Issue(ctx, request(t, "other.example"), IssueOptions{}, ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	other, _ := e.Store.Load("other.example")
	foreignCert, foreignKey := testpki.NewRoot("elsewhere", nil).Leaf(nil)

	// One server whose certificate the test switches.
	var present atomic.Pointer[tls.Certificate]
	srv := xmpptlstest.Start(t, xmpptlstest.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return present.Load(), nil }})
	show := func(chainKey func() (*tls.Certificate, error)) {
		t.Helper()
		c, err := chainKey()
		if err != nil {
			t.Fatal(err)
		}
		present.Store(c)
	}
	ofLineage := func(l *acme.Lineage) func() (*tls.Certificate, error) {
		return func() (*tls.Certificate, error) {
			return &tls.Certificate{Certificate: [][]byte{l.Chain[0].Raw}, PrivateKey: l.Key, Leaf: l.Chain[0]}, nil
		}
	}
	addr := srv.Addr
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	req := request(t, "example.org")
	req.ServeCheck = []acme.ServeEndpoint{{Addr: addr, Service: xmppaddr.ServiceClient}}
	cmd, _, _ := hook(t)
	req.Hooks = []string{cmd}
	// The server presents version 1 when version 2 is issued: the
	// issuance says it is stale there.
	show(ofLineage(v1))
	rep, err := e.Issue(ctx, req, IssueOptions{}, ReplacePolicy{})
	if err != nil || rep.Version != 2 || len(rep.Served) != 1 || rep.Served[0].Status != ServedStale || rep.Deployed() {
		t.Fatalf("issue over a stale endpoint: %+v, %v; want version 2 issued, the endpoint stale", rep, err)
	}
	v2, _ := e.Store.Load("example.org")
	for _, c := range []struct {
		name    string
		present func() (*tls.Certificate, error)
		addr    string
		status  string
		version int
	}{
		{"current", ofLineage(v2), addr, ServedCurrent, 2},
		{"older version", ofLineage(v1), addr, ServedStale, 1},
		{"other lineage", ofLineage(other), addr, ServedMismatch, other.Version},
		{"foreign key", func() (*tls.Certificate, error) {
			return &tls.Certificate{Certificate: [][]byte{foreignCert.Raw}, PrivateKey: foreignKey}, nil
		}, addr, ServedForeign, 0},
		{"closed port", ofLineage(v2), closedAddr, ServedUnreachable, 0},
	} {
		show(c.present)
		l := *v2
		l.Request.ServeCheck = []acme.ServeEndpoint{{Addr: c.addr, Service: xmppaddr.ServiceClient}}
		got := e.CheckServed(ctx, &l)
		if len(got) != 1 || got[0].Status != c.status || got[0].Version != c.version {
			t.Errorf("%s: %+v; want %s, version %d", c.name, got, c.status, c.version)
		}
	}

	// A deploy after which the endpoint still serves version 2: the
	// renewal fails, says so, and records the hook as not holding
	// version 3, so the next run deploys again.
	show(ofLineage(v2))
	clock.Advance(61 * day)
	before := len(srv.Seen())
	got := e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultFailed || got.Version != 3 || !strings.Contains(got.Error, "version 3 is deployed, but xmpp-client:"+addr+" still serves version 2 (stale") {
		t.Fatalf("renewal served stale: %+v", got)
	}
	if n := len(srv.Seen()) - before; n < 2 {
		t.Errorf("the endpoint was asked %d times; want the stale answer asked again within the grace period", n)
	}
	if last := (*events)[len(*events)-2]; last.Name != EventServedStale {
		t.Errorf("events end with %q; want %s before the renewal's failure", eventNames((*events)[len(*events)-2:]), EventServedStale)
	}
	v3, _ := e.Store.Load("example.org")
	show(ofLineage(v3))
	got = e.NewRenewRun(RenewOptions{}).Lineage(ctx, "example.org")
	if got.Result != ResultDeployed || len(got.Served) != 1 || !got.Served[0].OK() || got.Served[0].Version != 3 {
		t.Errorf("next run, the endpoint serving version 3: %+v; want deployed and served", got)
	}
}
