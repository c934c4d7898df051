package etcdstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testetcd"
)

// TestLead: one node leads a role at a time; when its session ends, the
// next candidate leads and the old leader's Lost is closed; a candidate
// whose context ends withdraws; Resign leaves the role to nobody.
func TestLead(t *testing.T) {
	e := testetcd.Start(t)
	a, _, sessA := newStore(t, e, "node0", sealing)
	b, _, _ := newStore(t, e, "node1", sealing)
	c, _, _ := newStore(t, e, "node2", sealing)
	ctx := context.Background()

	if _, err := a.Leader(RoleCA); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("before any campaign: %v, want ErrNoLeader", err)
	}
	la, err := a.Lead(ctx, RoleCA, "https://node0.example:8443/acme/acme/directory")
	if err != nil {
		t.Fatal(err)
	}
	won := make(chan *Leadership, 1)
	go func() {
		lb, err := b.Lead(ctx, RoleCA, "https://node1.example:8443/acme/acme/directory")
		if err != nil {
			t.Error(err)
		}
		won <- lb
	}()
	// A third candidate that gives up withdraws without leading.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := c.Lead(cctx, RoleCA, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a candidate whose context ended: %v", err)
	}
	select {
	case <-won:
		t.Fatal("a second node leads while the first does")
	default:
	}
	if l, err := c.Leader(RoleCA); err != nil || l.Node != "node0" || l.Offer != "https://node0.example:8443/acme/acme/directory" {
		t.Fatalf("leader %+v, %v; want node0 and its offer", l, err)
	}

	sessA.Close() // node0's lease ends, as when it dies
	select {
	case <-la.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the old leader's Lost is not closed once its session ended")
	}
	var lb *Leadership
	select {
	case lb = <-won:
	case <-time.After(10 * time.Second):
		t.Fatal("node1 does not lead once node0's session ended")
	}
	if l, err := c.Leader(RoleCA); err != nil || l.Node != "node1" {
		t.Fatalf("leader %+v, %v; want node1", l, err)
	}
	if err := lb.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if l, err := c.Leader(RoleCA); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("after the leader resigned: %+v, %v; want ErrNoLeader", l, err)
	}
}
