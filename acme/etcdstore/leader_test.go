package etcdstore

import (
	"context"
	"errors"
	"slices"
	"strings"
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

// TestServe: a role is played by the node that leads it; a standby is
// told who leads; a leader whose session ends is told so, and the next
// candidate leads; one whose context ends resigns at once and Serve
// returns nil; a Lead that fails ends Serve with its error, resigned.
func TestServe(t *testing.T) {
	e := testetcd.Start(t)
	a, _, sessA := newStore(t, e, "node0", sealing)
	b, _, _ := newStore(t, e, "node1", sealing)
	events := make(chan string, 16)
	play := func(s *Store, node string, ctx context.Context, fail error) <-chan error {
		done := make(chan error, 1)
		go func() {
			done <- s.Serve(ctx, Role{Name: RoleLocalCA, Offer: node,
				Lead: func(lctx context.Context) error {
					events <- node + " leads"
					if fail != nil {
						return fail
					}
					<-lctx.Done()
					return nil
				},
				Standby: func(l Candidate, ok bool) {
					if ok {
						events <- node + " stands by for " + l.Node
					}
				},
				Lost: func() { events <- node + " lost" },
			})
		}()
		return done
	}
	// expect waits for the events wanted, in any order; a standby's
	// other events may come between (who it sees leading depends on
	// when it asks).
	expect := func(want ...string) {
		t.Helper()
		for len(want) > 0 {
			select {
			case got := <-events:
				if i := slices.Index(want, got); i >= 0 {
					want = slices.Delete(want, i, i+1)
				} else if !strings.Contains(got, "stands by") {
					t.Fatalf("event %q; want %q", got, want)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("no event; want %q", want)
			}
		}
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	doneA := play(a, "node0", ctxA, nil)
	expect("node0 leads")
	ctxB, cancelB := context.WithCancel(context.Background())
	doneB := play(b, "node1", ctxB, nil)
	expect("node1 stands by for node0")

	sessA.Close() // node0's lease ends, as when etcd loses it
	expect("node0 lost", "node1 leads")

	// node0 cannot lead again on its closed session; node2 stands by.
	c, _, _ := newStore(t, e, "node2", sealing)
	ctxC, cancelC := context.WithCancel(context.Background())
	defer cancelC()
	doneC := play(c, "node2", ctxC, nil)
	expect("node2 stands by for node1")
	cancelB() // node1 resigns: node2 leads at once
	expect("node2 leads")
	for _, done := range []<-chan error{doneB, doneA, doneC} {
		cancelA()
		cancelC()
		if err := <-done; err != nil {
			t.Fatalf("Serve after its context ended: %v", err)
		}
	}
	if l, err := b.Leader(RoleLocalCA); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("after every Serve ended: %+v, %v; want ErrNoLeader", l, err)
	}

	failed := errors.New("cannot listen")
	if err := <-play(b, "node1", context.Background(), failed); !errors.Is(err, failed) {
		t.Fatalf("Serve whose Lead failed: %v; want its error", err)
	}
	expect("node1 leads")
	if l, err := c.Leader(RoleLocalCA); !errors.Is(err, ErrNoLeader) {
		t.Fatalf("after a failed Lead: %+v, %v; want the role resigned", l, err)
	}
}
