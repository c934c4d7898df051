package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/internal/testetcd"
)

// TestDaemonCluster: `xmppcert daemon` with [cluster] issues its
// [[host]] into etcd, where another node reads the lineage, certificate
// and key whole; when etcd goes away for longer than the node's lease,
// the daemon pauses its renewals, saying that the cluster store is
// unavailable, and goes on running.
func TestDaemonCluster(t *testing.T) {
	e := testetcd.Start(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	writeFile(t, keyFile, []byte(strings.Repeat("c3", 32)+"\n"), 0o600)
	cfg := filepath.Join(dir, "xmppcert.toml")
	writeFile(t, cfg, []byte(fmt.Sprintf("state_dir = %q\n[[host]]\ndomain = \"example.org\"\n[watch]\nown_hosts = false\n"+
		"[cluster]\netcd_endpoints = [%q]\nkey_file = %q\nnode_id = \"node1\"\nlease_ttl = \"2s\"\n", filepath.Join(dir, "state"), e.Endpoint, keyFile)), 0o600)
	d := startDaemonProc(t, buildXmppcert(t), daemonOptions{listen: freeAddr(t)}, "--config", cfg, "daemon")
	d.wait(t, "the renewal run", func() bool { return strings.Contains(d.logs.String(), "renew run finished") })

	c, sess := e.Session(t, 5)
	other, err := etcdstore.New(c, sess, etcdstore.Options{Prefix: "/xmppcert/", Key: []byte(strings.Repeat("\xc3", 32)), Node: "node2"})
	if err != nil {
		t.Fatal(err)
	}
	l, err := other.Load("example.org")
	if err != nil || l.Version != 1 || l.Key == nil || len(l.Request.Names) != 1 {
		t.Fatalf("another node reads %+v, %v; want version 1 with its key", l, err)
	}

	e.Stop()
	stopped := time.Now()
	d.wait(t, "renewals paused", func() bool { return strings.Contains(d.logs.String(), "renewals paused") })
	t.Logf("renewals paused %v after etcd stopped (lease 2 s)", time.Since(stopped).Round(100*time.Millisecond))
	select {
	case <-d.done:
		t.Fatalf("the daemon exited without etcd (exit %d); it should go on probing\n%s", d.cmd.ProcessState.ExitCode(), d.logs.String())
	case <-time.After(time.Second):
	}
	if !strings.Contains(d.logs.String(), "cluster store is unavailable") {
		t.Errorf("the log does not say that the cluster store is unavailable:\n%s", d.logs.String())
	}
}

// TestClusterCommands: with --config naming a [cluster], issue, renew,
// certificates and status work on the cluster's lineages (cron on any
// node), and issue and renew write them into the node's own certbot
// layout: a lineage issued on one node is listed and renewed on
// another, and the first node lists the renewal.
func TestClusterCommands(t *testing.T) {
	e := testetcd.Start(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	writeFile(t, keyFile, []byte(strings.Repeat("c3", 32)+"\n"), 0o600)
	node := func(name string) (state, cfg string) {
		state, cfg = filepath.Join(dir, name), filepath.Join(dir, name+".toml")
		writeFile(t, cfg, []byte(fmt.Sprintf("[[host]]\ndomain = \"example.org\"\n[cluster]\netcd_endpoints = [%q]\nkey_file = %q\nnode_id = %q\n", e.Endpoint, keyFile, name)), 0o600)
		return state, cfg
	}
	s1, c1 := node("node1")
	s2, c2 := node("node2")
	run := func(state, cfg string, args ...string) string {
		t.Helper()
		code, out, errs := runCLI(t, nil, append([]string{"--state-dir", state, "--config", cfg}, args...)...)
		if code != exitOK {
			t.Fatalf("%q: exit %d\n%s%s", args, code, out, errs)
		}
		return out
	}
	run(s1, c1, "issue", "example.org", "-q")
	if _, err := os.Stat(filepath.Join(s1, "live", "example.org", "cert.pem")); err != nil {
		t.Errorf("node1's own layout: %v", err)
	}
	if out := run(s2, c2, "certificates"); !strings.HasPrefix(out, "example.org: version 1, ") {
		t.Errorf("node2 lists:\n%s", out)
	}
	run(s2, c2, "renew", "--force", "-q")
	l, err := acme.DiskStore{Dir: s2}.Load("example.org")
	if err != nil || l.Version != 2 {
		t.Fatalf("node2's own layout after its renewal: %+v, %v; want version 2", l, err)
	}
	if out := run(s1, c1, "certificates", "--json"); !strings.Contains(out, `"version": 2`) {
		t.Errorf("node1 lists after node2's renewal:\n%s", out)
	}
	if l, _ := (acme.DiskStore{Dir: s1}).Load("example.org"); l == nil || l.Version != 1 {
		t.Errorf("node1's own layout changed by a read-only command")
	}
}
