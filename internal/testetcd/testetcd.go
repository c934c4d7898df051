// Package testetcd starts etcd (go.etcd.io/etcd/server/v3, the version
// of the client) on loopback for tests: one member in the test's process
// (Start), which hands out clients and sessions, or a cluster of members
// in their own processes (StartCluster), which a test stops, kills and
// starts again.
package testetcd

import (
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// Etcd is a running member.
type Etcd struct {
	// Endpoint is its client URL, http://127.0.0.1:PORT.
	Endpoint string
	stop     func() // closes the member once
}

// Start starts a member in a temporary directory; it stops when the test
// ends.
func Start(t testing.TB) *Etcd {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = t.TempDir()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop()) // its shutdown is noisy
	client := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t))}
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", testtool.FreePort(t))}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatalf("starting etcd: %v", err)
	}
	stop := sync.OnceFunc(e.Close)
	t.Cleanup(stop)
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd did not become ready within 30 s")
	}
	return &Etcd{Endpoint: client.String(), stop: stop}
}

// Client is a new client of the member, closed when the test ends.
func (e *Etcd) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Session is a new session (lease) of ttl seconds on a new client,
// closed when the test ends.
func (e *Etcd) Session(t testing.TB, ttl int) (*clientv3.Client, *concurrency.Session) {
	t.Helper()
	c := e.Client(t)
	s, err := concurrency.NewSession(c, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return c, s
}

// Stop stops the member before the test ends: its clients' sessions end
// once their leases' TTL has passed without a renewal.
func (e *Etcd) Stop() { e.stop() }
