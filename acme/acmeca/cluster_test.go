package acmeca

import (
	"context"
	"strings"
	"testing"

	acmeproto "github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/internal/testetcd"
)

// TestClusterSharedAccount: two nodes of a cluster order from one ACME
// account kept in etcd. The first registers it; the second, which may
// not register one (no agreement), finds it there and renews the first
// node's certificate with "replaces", which pebble accepts only from the
// account the certificate was issued to. Nothing is kept on disk.
func TestClusterSharedAccount(t *testing.T) {
	e := startPebble(t, acmecatest.PebbleOptions{})
	etcd := testetcd.Start(t)
	node := func(name string) *etcdstore.Store {
		c, sess := etcd.Session(t, 10)
		s, err := etcdstore.New(c, sess, etcdstore.Options{Prefix: "/xmppcert/", Key: []byte(strings.Repeat("k", etcdstore.KeySize)), Node: name, OrderSlots: 1})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := node("node-a"), node("node-b")
	cfgA := e.config()
	cfgA.StateDir, cfgA.Accounts, cfgA.OrderSlots = "", a, a
	cfgB := cfgA
	cfgB.Accounts, cfgB.OrderSlots, cfgB.AgreeTOS = b, b, false
	ctx := context.Background()
	req := hostRequest(t)
	first, err := acme.Obtain(ctx, a, mustIssuer(t, cfgA), req)
	if err != nil {
		t.Fatal(err)
	}
	if e.pebble.NewAccounts() != 1 {
		t.Fatalf("%d accounts registered; want 1", e.pebble.NewAccounts())
	}
	stored, err := b.Account(e.pebble.Directory)
	if err != nil || !strings.HasPrefix(stored.Location, "https://") || stored.Key == nil {
		t.Fatalf("the account as node b reads it: %+v, %v", stored, err)
	}
	if accountKept(e.state, e.pebble.Directory) {
		t.Error("the cluster's account was also kept in the state directory")
	}

	req.Replaces = first.Chain[0]
	second, err := acme.Obtain(ctx, b, mustIssuer(t, cfgB), req)
	if err != nil {
		t.Fatalf("node b renewing with the shared account: %v", err)
	}
	certID, err := acmeproto.ARIUniqueIdentifier(first.Chain[0])
	if err != nil {
		t.Fatal(err)
	}
	orders := e.pebble.Orders()
	if len(orders) != 2 || orders[1].Replaces != certID || orders[1].Status != 201 || second.Version != 2 {
		t.Fatalf("orders %+v, version %d; want node b's order to replace %s, accepted, as version 2", orders, second.Version, certID)
	}
	if e.pebble.NewAccounts() != 1 {
		t.Errorf("%d accounts registered; want the one account shared", e.pebble.NewAccounts())
	}

	// Without the shared account (node b's own, on disk) pebble refuses
	// the "replaces": the order goes through without it.
	own := e.config()
	req.Replaces = second.Chain[0]
	if _, err := acme.Obtain(ctx, b, mustIssuer(t, own), req); err != nil {
		t.Fatal(err)
	}
	orders = e.pebble.Orders()
	if n := len(orders); n != 4 || orders[2].Status != 403 || orders[3].Replaces != "" || orders[3].Status != 201 {
		t.Errorf("orders %+v; want another account's replaces refused, then an order without it", orders[2:])
	}
}
