package etcdstore

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// Connection says how a node reaches etcd.
type Connection struct {
	// Endpoints are etcd's client URLs.
	Endpoints []string
	// TLS is the client's TLS configuration for https endpoints (its
	// certificate and the CAs etcd's is checked against); nil for none.
	TLS *tls.Config
	// LeaseTTL is the node's lease: its locks outlive it by at most that
	// long.
	LeaseTTL time.Duration
	// Logger receives the etcd client's own records; nil discards them.
	Logger *zap.Logger
}

// Open connects to etcd, opens this node's session (a lease of
// c.LeaseTTL, kept alive while the node runs) and returns the Store of
// opts on it. When the session ends (etcd lost its quorum, or the node
// was cut off for longer than its lease) the Store is unavailable
// (Unavailable, ErrUnavailable): its locks are gone and nothing is
// written; it opens a new session as soon as etcd grants one. Close
// ends the session, releasing the node's locks at once, and the
// connection.
func Open(ctx context.Context, c Connection, opts Options) (*Store, error) {
	logger := c.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints, TLS: c.TLS, DialTimeout: 5 * time.Second, Context: context.WithoutCancel(ctx), Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("etcd %v: %w", c.Endpoints, err)
	}
	ttl := int(c.LeaseTTL / time.Second)
	if ttl < 1 {
		ttl = 1
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := client.Status(sctx, c.Endpoints[0]); err != nil {
		client.Close()
		return nil, fmt.Errorf("etcd %v does not answer: %w", c.Endpoints, err)
	}
	keep, stop := context.WithCancel(context.WithoutCancel(ctx))
	session, err := newSession(keep, client, ttl)
	if err != nil {
		stop()
		client.Close()
		return nil, fmt.Errorf("etcd %v: opening this node's session: %w", c.Endpoints, err)
	}
	s, err := New(client, session, opts)
	if err != nil {
		stop()
		session.Close()
		client.Close()
		return nil, err
	}
	s.owned, s.stopKeep, s.kept = true, stop, make(chan struct{})
	go s.keep(keep, ttl)
	if err := s.Join(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// newSession grants a lease of ttl seconds, within the request timeout,
// and keeps it alive until ctx ends.
func newSession(ctx context.Context, client *clientv3.Client, ttl int) (*concurrency.Session, error) {
	gctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	lease, err := client.Grant(gctx, int64(ttl))
	if err != nil {
		return nil, err
	}
	return concurrency.NewSession(client, concurrency.WithLease(lease.ID), concurrency.WithTTL(ttl), concurrency.WithContext(ctx))
}

// keep opens a new session each time the node's ends, until ctx ends:
// it asks etcd for a lease every second until one is granted, then
// revokes the old lease (which a new leader may have kept alive for
// another TTL, with the locks on it).
func (s *Store) keep(ctx context.Context, ttl int) {
	defer close(s.kept)
	for {
		s.sessMu.Lock()
		old := s.session
		s.sessMu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-old.Done():
		}
		s.sessMu.Lock()
		closing := s.closing
		s.sessMu.Unlock()
		if closing {
			return
		}
		s.Unavailable() // records when it ended
		for {
			session, err := newSession(ctx, s.client, ttl)
			if err == nil {
				rctx, cancel := s.ctx()
				s.client.Revoke(rctx, old.Lease())
				cancel()
				s.sessMu.Lock()
				closing := s.closing
				if !closing {
					s.session, s.lost = session, time.Time{}
				}
				s.sessMu.Unlock()
				if closing {
					session.Close()
					return
				}
				s.Join() // failing, the next sweeps count the node out until its next session
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// Close ends the session and, for a Store that Open connected, its
// keeper and the client.
func (s *Store) Close() error {
	s.sessMu.Lock()
	session := s.session
	s.closing = true
	s.sessMu.Unlock()
	err := session.Close()
	if s.stopKeep != nil {
		s.stopKeep()
		<-s.kept // no goroutine of the store's logs after Close
	}
	if s.owned {
		if cerr := s.client.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
