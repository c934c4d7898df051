package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/lifecycle"
	"github.com/xmppcert/xmppcert/internal/testetcd"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/watcher/config"
)

// TestClusterRenewsOnce: three nodes with the same [[host]] and
// [cluster] on one etcd run their renewal at once, several times: the
// lineage is issued exactly once (one version in etcd), the nodes that
// found it locked say it is being issued elsewhere, every node reads the
// same certificate and key back from etcd, and every node's certbot
// layout holds it (live/example.org, privkey.pem 0600).
func TestClusterRenewsOnce(t *testing.T) {
	e := testetcd.Start(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var nodes []clusterNode
	for i := range 3 {
		nodes = append(nodes, startClusterNode(t, dir, e.Endpoint, keyFile, i))
	}
	for round := range 3 {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Go(func() {
				if err := n.d.renew(context.Background()); err != nil {
					var le *acme.LockedError
					if !errors.As(err, &le) {
						t.Errorf("round %d: %v", round, err)
					}
				}
			})
		}
		wg.Wait()
	}
	var fingerprints []string
	for i, n := range nodes {
		store := n.d.engineFor(n.d.Config()).Store
		vs, err := store.Versions("example.org")
		if err != nil || len(vs) != 1 {
			t.Fatalf("node %d: versions %v, %v; want exactly one issuance across the cluster\n%s", i, vs, err, n.logs.String())
		}
		l, err := store.Load("example.org")
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		fingerprints = append(fingerprints, fmt.Sprintf("%x %v", l.Chain[0].Signature[:8], l.Key.Public()))
	}
	if fingerprints[0] != fingerprints[1] || fingerprints[1] != fingerprints[2] {
		t.Errorf("the nodes read different lineages: %q", fingerprints)
	}
	// Every node's certbot layout holds the shared lineage.
	var fullchains []string
	for i, n := range nodes {
		state := n.d.Config().StateDir
		b, err := os.ReadFile(filepath.Join(state, "live", "example.org", "fullchain.pem"))
		if err != nil {
			t.Fatalf("node %d: %v\n%s", i, err, n.logs.String())
		}
		fullchains = append(fullchains, string(b))
		local, err := acme.DiskStore{Dir: state}.Load("example.org")
		if err != nil || local.Version != 1 {
			t.Fatalf("node %d's layout: %+v, %v", i, local, err)
		}
		if fi, err := os.Stat(filepath.Join(state, "live", "example.org", "privkey.pem")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("node %d's privkey.pem: %v, %v; want 0600", i, fi.Mode(), err)
		}
	}
	if fullchains[0] != fullchains[1] || fullchains[1] != fullchains[2] {
		t.Errorf("the nodes' fullchain.pem differ")
	}
	issued := 0
	for _, n := range nodes {
		issued += strings.Count(n.logs.String(), "msg=issued ")
	}
	if issued != 1 {
		t.Errorf("%d issuances logged across the nodes, want 1", issued)
	}
}

// clusterNode is a daemon of a cluster node, with its log.
type clusterNode struct {
	d      *Daemon
	logs   *testtool.LockedBuffer
	state  string
	engine *lifecycle.Engine
}

// startClusterNode makes node i in dir: a configuration with the
// [[host]] example.org (component muc.example.org) and [cluster] on the
// etcd at endpoint, its own etcd session (lease 5 s), its daemon.
func startClusterNode(t *testing.T, dir, endpoint, keyFile string, i int) clusterNode {
	t.Helper()
	nd := filepath.Join(dir, fmt.Sprintf("node%d", i))
	file := filepath.Join(nd, "xmppcert.toml")
	if err := os.MkdirAll(nd, 0o700); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf("state_dir = %q\n[[host]]\ndomain = \"example.org\"\ncomponents = [\"muc.example.org\"]\n[watch]\nown_hosts = false\n"+
		"[cluster]\netcd_endpoints = [%q]\nkey_file = %q\nnode_id = \"node%d\"\nlease_ttl = \"5s\"\n", filepath.Join(nd, "state"), endpoint, keyFile, i)
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testtool.LockedBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	store, err := OpenCluster(context.Background(), cfg.Cluster, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	engine := lifecycle.OnCluster(cfg.StateDir, store)
	d, err := New(cfg, Deps{Engine: engine, Logger: log, NoSignals: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	return clusterNode{d: d, logs: logs, state: cfg.StateDir, engine: engine}
}

// TestClusterFollows: a node whose renewal loop runs writes a version
// that another node committed into its own layout within 2 s of the
// commit, watching etcd, not waiting for its next run (an hour away).
func TestClusterFollows(t *testing.T) {
	e := testetcd.Start(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, b := startClusterNode(t, dir, e.Endpoint, keyFile, 0), startClusterNode(t, dir, e.Endpoint, keyFile, 1)
	ctx, cancel := context.WithCancel(context.Background())
	looped := make(chan struct{})
	go func() {
		defer close(looped)
		a.d.renewLoop(ctx, ctx)
	}()
	defer func() {
		cancel()
		<-looped
	}()
	// version waits until a's own layout holds version n of the lineage.
	version := func(n int, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < within {
			if l, err := (acme.DiskStore{Dir: a.state}).Load("example.org"); err == nil && l.Version == n {
				return time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("node0's layout does not hold version %d after %s:\n%s", n, within, a.logs.String())
		return 0
	}
	version(1, time.Minute) // node0's first run issues it
	l, err := b.engine.Store.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.engine.Issue(context.Background(), l.Request, lifecycle.IssueOptions{}, lifecycle.ReplacePolicy{}); err != nil {
		t.Fatal(err)
	}
	took := version(2, 2*time.Second)
	t.Logf("node0 wrote node1's version 2 into its layout %s after the commit", took.Round(time.Millisecond))
}
