package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/watcher/daemon"
)

// clusterStore joins the cluster of --config's [cluster] for a command
// (issue, renew, deploy, certificates, revoke, delete, status): its
// lineage store, or nil without a configuration or without [cluster].
// The etcd client's warnings go to standard error.
func clusterStore(c *cli.Context) (*etcdstore.Store, error) {
	cfg, err := loadConfig(c)
	if err != nil || cfg == nil || cfg.Cluster == nil {
		return nil, err
	}
	store, err := daemon.OpenCluster(c.Context, cfg.Cluster, newLogger(c.App.ErrWriter, false, true))
	if err != nil {
		return nil, fmt.Errorf("joining the cluster: %w", err)
	}
	return store, nil
}
