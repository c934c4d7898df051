package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// Elections of the node that plays a role for the cluster (RoleCA,
// RoleLocalCA), under the prefix:
//
//	elections/ROLE/LEASE    a candidate for ROLE, on its session's lease:
//	                        Candidate (JSON); the oldest leads

// The roles: RoleCA is the embedded CA's ACME server (xmppcert ca
// serve), RoleLocalCA the daemon that renews and issues the lineages the
// embedded CA signs; one node plays each at a time, with its own step-ca
// database.
const (
	RoleCA      = "ca"
	RoleLocalCA = "local-ca"
)

// Candidate is a node campaigning for a role, as its election key holds
// it: what the leader offers the others (README, "Cluster mode").
type Candidate struct {
	// Node is the candidate's name.
	Node string `json:"node"`
	// Offer is what the leader serves, for the others to name (for the
	// embedded CA, its ACME directory URL).
	Offer string `json:"offer,omitempty"`
}

// MaxCandidate bounds a candidate's value as Leader reads it.
const MaxCandidate = 4 << 10

// Leadership is this node's lead of a role, won by Lead.
type Leadership struct {
	election *concurrency.Election
	session  *concurrency.Session
}

// Lost is closed when the leadership ends without Resign: the node's
// session ended (etcd lost its quorum, or the node was paused past its
// lease), and another candidate may lead from then on. A leader stops
// serving its role when Lost is closed.
func (l *Leadership) Lost() <-chan struct{} { return l.session.Done() }

// Resign gives the role up at once, for the next candidate.
func (l *Leadership) Resign(ctx context.Context) error {
	if err := l.election.Resign(ctx); err != nil {
		return fmt.Errorf("etcd: resigning: %w", unavailable(err))
	}
	return nil
}

// Lead campaigns for role on this node's session, offering offer, and
// returns once this node leads it (concurrency.Election: the candidate
// whose key is oldest leads; when its session ends, the next one does).
// While etcd is unavailable, or when the session ends mid-campaign, it
// campaigns again on the node's next session. It returns ctx's error
// when ctx ends first, withdrawing the candidacy.
func (s *Store) Lead(ctx context.Context, role, offer string) (*Leadership, error) {
	value, err := json.Marshal(Candidate{Node: s.opts.Node, Offer: offer})
	if err != nil {
		return nil, err
	}
	if len(value) > MaxCandidate {
		return nil, fmt.Errorf("the offer for %s is %d bytes, more than %d", role, len(value), MaxCandidate)
	}
	for {
		session, err := s.live()
		if err == nil {
			e := concurrency.NewElection(session, s.opts.Prefix+"elections/"+role)
			cctx, cancel := context.WithCancel(ctx)
			go func() {
				select {
				case <-session.Done():
					cancel()
				case <-cctx.Done():
				}
			}()
			err = e.Campaign(cctx, string(value))
			cancel()
			if err == nil {
				return &Leadership{election: e, session: session}, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// ErrNoLeader is what Leader answers when no node leads the role.
var ErrNoLeader = errors.New("no node leads")

// Leader is the candidate that leads role now; ErrNoLeader when none
// does. A value that is not a Candidate document of at most
// MaxCandidate bytes reads as a candidate with no name.
func (s *Store) Leader(role string) (Candidate, error) {
	session, err := s.live()
	if err != nil {
		return Candidate{}, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := concurrency.NewElection(session, s.opts.Prefix+"elections/"+role).Leader(ctx)
	if errors.Is(err, concurrency.ErrElectionNoLeader) {
		return Candidate{}, ErrNoLeader
	}
	if err != nil {
		return Candidate{}, fmt.Errorf("etcd: reading the leader of %s: %w", role, unavailable(err))
	}
	var c Candidate
	if v := resp.Kvs[0].Value; len(v) <= MaxCandidate {
		json.Unmarshal(v, &c)
	}
	return c, nil
}

// Role is a role that one node of the cluster plays at a time, as
// Store.Serve plays it.
type Role struct {
	// Name is the role (RoleCA, RoleLocalCA) and Offer what its leader
	// offers the others (Candidate).
	Name, Offer string
	// Lead plays the role; its context ends when the lead does.
	Lead func(ctx context.Context) error
	// Standby, when set, is told before each campaign which node leads
	// (ok false when none is known).
	Standby func(leader Candidate, ok bool)
	// Lost, when set, is told that the lead ended with this node's etcd
	// session: another node may lead from then on.
	Lost func()
}

// Serve plays r on this node whenever it leads r: it campaigns (Lead)
// and, once elected, runs r.Lead with a context that ends with the
// lead. When ctx ends, the role is resigned at once for the next
// candidate and Serve returns nil; when the node's session ends first,
// r.Lost is told and Serve campaigns again; when r.Lead returns by
// itself, the role is resigned and Serve returns its error.
func (s *Store) Serve(ctx context.Context, r Role) error {
	for {
		if r.Standby != nil {
			l, err := s.Leader(r.Name)
			r.Standby(l, err == nil)
		}
		lead, err := s.Lead(ctx, r.Name, r.Offer)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lead.Lost():
				cancel()
			case <-lctx.Done():
			}
		}()
		err = r.Lead(lctx)
		cancel()
		select {
		case <-lead.Lost():
			if ctx.Err() == nil {
				if r.Lost != nil {
					r.Lost()
				}
				continue
			}
		default:
		}
		resign, stop := context.WithTimeout(context.Background(), 5*time.Second)
		lead.Resign(resign) // a lease that ends does it too, later
		stop()
		return err
	}
}
