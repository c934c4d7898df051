package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/acmeca/acmecatest"
	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/internal/testetcd"
	"github.com/xmppcert/xmppcert/internal/testtool"
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

// TestClusterKillHolder: two `xmppcert daemon` nodes of a cluster on one
// etcd (lease 2 s) and pebble. A revocation makes the lineage due on
// both; the node that takes its lock orders and is killed (SIGKILL)
// while pebble's validation of its order is held open. The other node
// completes the renewal soon after the dead node's lease ends (woken by
// the lock's release, not by a schedule): exactly one new version. The
// killed node, started again, deploys that version without renewing.
// Then a holder stopped (SIGSTOP) past its lease while the other node
// renews has its own commit refused once it goes on (SIGCONT).
func TestClusterKillHolder(t *testing.T) {
	testtool.SkipShort(t, "runs two daemons, etcd and pebble")
	e := testetcd.Start(t)
	validate := testtool.FreePort(t)
	p := acmecatest.StartPebble(t, acmecatest.PebbleOptions{HTTPPort: validate})
	dir := t.TempDir()
	webroot := filepath.Join(dir, "webroot")
	if err := os.MkdirAll(webroot, 0o755); err != nil {
		t.Fatal(err)
	}
	// The web server pebble validates http-01 against serves the nodes'
	// shared webroot; while holding, it keeps each validation waiting.
	var mu sync.Mutex
	var gate chan struct{} // open while nil; closed to let the held through
	held := make(chan struct{}, 1)
	hold := func() {
		mu.Lock()
		gate = make(chan struct{})
		mu.Unlock()
		select {
		case <-held:
		default:
		}
	}
	letGo := func() {
		mu.Lock()
		close(gate)
		gate = nil
		mu.Unlock()
	}
	files := http.FileServer(http.Dir(webroot))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		g := gate
		mu.Unlock()
		if g != nil {
			select {
			case held <- struct{}{}:
			default:
			}
			select {
			case <-g:
			case <-r.Context().Done():
				return
			}
		}
		files.ServeHTTP(w, r)
	})}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", validate))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	roots := filepath.Join(dir, "pebble-roots.pem")
	keyFile := filepath.Join(dir, "cluster.key")
	writeFile(t, roots, p.RootsPEM(), 0o644)
	writeFile(t, keyFile, []byte(strings.Repeat("c3", 32)+"\n"), 0o600)
	node := func(name string) (state, cfg string) {
		state, cfg = filepath.Join(dir, name), filepath.Join(dir, name+".toml")
		writeFile(t, cfg, []byte(fmt.Sprintf("state_dir = %q\n[[host]]\ndomain = \"example.org\"\nca = %q\n[host.acme]\nagree_tos = true\ntrust_root = %q\nwebroot = %q\n"+
			"[watch]\nown_hosts = false\n[cluster]\netcd_endpoints = [%q]\nkey_file = %q\nnode_id = %q\nlease_ttl = \"2s\"\n",
			state, p.Directory, roots, webroot, e.Endpoint, keyFile, name)), 0o600)
		return state, cfg
	}
	bin := buildXmppcert(t)
	states, cfgs := map[string]string{}, map[string]string{}
	daemons := map[string]*daemonProc{}
	for _, name := range []string{"node0", "node1", "cron"} {
		states[name], cfgs[name] = node(name)
	}
	start := func(name string) *daemonProc {
		d := startDaemonProc(t, bin, daemonOptions{listen: freeAddr(t)}, "--config", cfgs[name], "daemon")
		daemons[name] = d
		return d
	}
	start("node0").wait(t, "version 1", func() bool { return strings.Contains(daemons["node0"].logs.String(), "msg=issued") })
	start("node1").wait(t, "node1's first run", func() bool { return strings.Contains(daemons["node1"].logs.String(), "renew run finished") })
	c, sess := e.Session(t, 5)
	store, err := etcdstore.New(c, sess, etcdstore.Options{Prefix: "/xmppcert/", Key: []byte(strings.Repeat("\xc3", 32)), Node: "observer"})
	if err != nil {
		t.Fatal(err)
	}

	hold()
	if code, out, errs := runCLI(t, nil, "--state-dir", states["cron"], "--config", cfgs["cron"], "revoke", "example.org", "--reason", "superseded"); code != exitOK {
		t.Fatalf("revoke: exit %d\n%s%s", code, out, errs)
	}
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatalf("no node ordered within 30 s of the revocation\nnode0:\n%s\nnode1:\n%s", daemons["node0"].logs.String(), daemons["node1"].logs.String())
	}
	resp, err := c.Get(context.Background(), "/xmppcert/locks/example.org/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the lineage's lock: %v, %v", resp, err)
	}
	holder := string(resp.Kvs[0].Value)
	other := map[string]string{"node0": "node1", "node1": "node0"}[holder]
	if other == "" {
		t.Fatalf("the lock is held by %q", holder)
	}
	daemons[holder].cmd.Process.Kill()
	<-daemons[holder].done
	killed := time.Now()
	letGo()

	var committed time.Duration
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if vs, err := store.Versions("example.org"); err == nil && len(vs) == 2 {
			committed = time.Since(killed)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal within 30 s of the holder's death\n%s:\n%s", other, daemons[other].logs.String())
		}
	}
	t.Logf("%s killed holding the lock; %s committed version 2 %v later (lease 2 s)", holder, other, committed.Round(10*time.Millisecond))
	if committed > 2*time.Second+5*time.Second {
		t.Errorf("the renewal took %v after the holder's death; want under the lease (2 s) + 5 s", committed)
	}

	start(holder).wait(t, "the restarted node's copy of version 2", func() bool {
		l, err := acme.DiskStore{Dir: states[holder]}.Load("example.org")
		return err == nil && l.Version == 2
	})
	time.Sleep(500 * time.Millisecond)
	if vs, err := store.Versions("example.org"); err != nil || len(vs) != 2 {
		t.Errorf("versions %v, %v; want exactly one renewal", vs, err)
	}
	if strings.Contains(daemons[holder].logs.String(), "result=renewed") {
		t.Errorf("the restarted node renewed again:\n%s", daemons[holder].logs.String())
	}

	// SIGSTOP of the holder past its lease, then SIGCONT: the other node
	// renews meanwhile, and the stopped node's commit is refused.
	hold()
	if code, out, errs := runCLI(t, nil, "--state-dir", states["cron"], "--config", cfgs["cron"], "revoke", "example.org", "--reason", "superseded"); code != exitOK {
		t.Fatalf("second revoke: exit %d\n%s%s", code, out, errs)
	}
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("no node ordered within 30 s of the second revocation")
	}
	resp, err = c.Get(context.Background(), "/xmppcert/locks/example.org/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the lineage's lock: %v, %v", resp, err)
	}
	holder = string(resp.Kvs[0].Value)
	other = map[string]string{"node0": "node1", "node1": "node0"}[holder]
	stopped := daemons[holder].cmd.Process
	if err := stopped.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	letGo()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if vs, err := store.Versions("example.org"); err == nil && len(vs) == 3 {
			break
		}
		if time.Now().After(deadline) {
			stopped.Signal(syscall.SIGCONT)
			t.Fatalf("no renewal within 30 s while %s was stopped\n%s:\n%s", holder, other, daemons[other].logs.String())
		}
	}
	if err := stopped.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	daemons[holder].wait(t, "the resumed node's refused commit", func() bool {
		return strings.Contains(daemons[holder].logs.String(), "no longer holds the lineage's lock")
	})
	if vs, err := store.Versions("example.org"); err != nil || len(vs) != 3 {
		t.Errorf("versions %v, %v after the stopped node resumed; want its commit refused", vs, err)
	}
	t.Logf("pebble's orders: %+v", p.Orders())
}
