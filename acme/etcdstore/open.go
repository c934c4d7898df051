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
// opts on it. Close ends the session, releasing the node's locks at
// once, and the connection.
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
	session, err := concurrency.NewSession(client, concurrency.WithTTL(ttl), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("etcd %v: opening this node's session: %w", c.Endpoints, err)
	}
	s, err := New(client, session, opts)
	if err != nil {
		session.Close()
		client.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// Done is closed when the node's session ends: its lease expired (the
// node was cut off from etcd for longer than its TTL) and its locks are
// gone. A node must then stop renewing and open the store again.
func (s *Store) Done() <-chan struct{} { return s.session.Done() }

// Close ends the session and, for a Store that Open connected, the
// client.
func (s *Store) Close() error {
	err := s.session.Close()
	if s.owned {
		if cerr := s.client.Close(); err == nil {
			err = cerr
		}
	}
	return err
}
