package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/watcher/config"
	"github.com/xmppcert/xmppcert/watcher/daemon"
)

// clusterStore joins the cluster of --config's [cluster], or of the
// cluster flags (--etcd-endpoint ...), for a command (issue, renew,
// deploy, certificates, revoke, delete, status, ca): its lineage store,
// or nil without either. The etcd client's warnings go to standard
// error.
func clusterStore(c *cli.Context) (*etcdstore.Store, error) {
	cluster, err := clusterOf(c)
	if err != nil || cluster == nil {
		return nil, err
	}
	store, err := daemon.OpenCluster(c.Context, cluster, newLogger(c.App.ErrWriter, false, true))
	if err != nil {
		return nil, fmt.Errorf("joining the cluster: %w", err)
	}
	return store, nil
}

// clusterSettingFlags names the flag of each config.ClusterSettings field.
var clusterSettingFlags = map[string]string{
	"Endpoints": "--etcd-endpoint", "TLSCertFile": "--etcd-cert-file", "TLSKeyFile": "--etcd-key-file", "TLSCAFile": "--etcd-ca-file",
	"NodeID": "--node-id", "LeaseTTL": "--lease-ttl", "KeyFile": "--cluster-key-file", "Prefix": "--cluster-prefix",
}

// clusterOf is the cluster the command works on: --config's [cluster],
// or the one the cluster flags give; nil for neither.
func clusterOf(c *cli.Context) (*config.Cluster, error) {
	cfg, err := loadConfig(c)
	if err != nil {
		return nil, err
	}
	given := clusterFlagsGiven(c)
	if len(given) == 0 {
		if cfg == nil {
			return nil, nil
		}
		return cfg.Cluster, nil
	}
	if cfg != nil && cfg.Cluster != nil {
		return nil, usagef("%s and the [cluster] of --config %s both name a cluster; give one of them", strings.Join(given, ", "), c.Path("config"))
	}
	cluster, err := config.ClusterFrom(config.ClusterSettings{
		Endpoints:   c.StringSlice("etcd-endpoint"),
		TLSCertFile: c.Path("etcd-cert-file"),
		TLSKeyFile:  c.Path("etcd-key-file"),
		TLSCAFile:   c.Path("etcd-ca-file"),
		NodeID:      c.String("node-id"),
		LeaseTTL:    c.Duration("lease-ttl"),
		KeyFile:     c.Path("cluster-key-file"),
		Prefix:      c.String("cluster-prefix"),
	})
	if list, ok := err.(config.ErrorList); ok {
		lines := make([]string, len(list))
		for i, e := range list {
			lines[i] = clusterSettingFlags[e.Key] + ": " + e.Msg
		}
		return nil, usagef("%s", strings.Join(lines, "\nxmppcert: "))
	}
	return cluster, err
}

// clusterFlagsGiven lists the cluster flags given, sorted.
func clusterFlagsGiven(c *cli.Context) []string {
	var given []string
	for _, f := range clusterSettingFlags {
		if c.IsSet(strings.TrimPrefix(f, "--")) {
			given = append(given, f)
		}
	}
	slices.Sort(given)
	return given
}
