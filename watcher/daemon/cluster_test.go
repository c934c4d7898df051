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
	type node struct {
		d    *Daemon
		logs *testtool.LockedBuffer
	}
	var nodes []node
	for i := range 3 {
		nd := filepath.Join(dir, fmt.Sprintf("node%d", i))
		file := filepath.Join(nd, "xmppcert.toml")
		if err := os.MkdirAll(nd, 0o700); err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprintf("state_dir = %q\n[[host]]\ndomain = \"example.org\"\ncomponents = [\"muc.example.org\"]\n[watch]\nown_hosts = false\n"+
			"[cluster]\netcd_endpoints = [%q]\nkey_file = %q\nnode_id = \"node%d\"\nlease_ttl = \"5s\"\n", filepath.Join(nd, "state"), e.Endpoint, keyFile, i)
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
		engine := lifecycle.OnDisk(cfg.StateDir)
		engine.Store = store
		d, err := New(cfg, Deps{Engine: engine, Logger: log, NoSignals: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(context.Background()) })
		nodes = append(nodes, node{d, logs})
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
