package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"

	"go.uber.org/zap"

	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// OpenCluster joins the cluster of c: it connects to etcd with the
// node's client certificate, opens the node's session and returns the
// lineage store the node's lifecycle engine uses in place of its state
// directory's; the etcd client's warnings go to log. The caller closes it, and stops when its Done channel
// closes (the node's lease expired: its locks are gone).
func OpenCluster(ctx context.Context, c *config.Cluster, log *slog.Logger) (*etcdstore.Store, error) {
	var tc *tls.Config
	if c.TLSCertFile != "" || c.TLSCAFile != "" {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
		if c.TLSCertFile != "" {
			pair, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("cluster: the node's etcd client certificate %s / %s: %w", c.TLSCertFile, c.TLSKeyFile, err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
		if c.TLSCAFile != "" {
			certs, err := certfile.Read(c.TLSCAFile, nil)
			if err != nil {
				return nil, fmt.Errorf("cluster: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			for _, cert := range certs {
				tc.RootCAs.AddCert(cert)
			}
		}
	}
	return etcdstore.Open(ctx, etcdstore.Connection{Endpoints: c.Endpoints, TLS: tc, LeaseTTL: c.LeaseTTL,
		Logger: zap.New(slogCore{log.With("component", "etcd")})},
		etcdstore.Options{Prefix: c.Prefix, Key: c.Key, Node: c.NodeID, OrderSlots: c.MaxOrders})
}
