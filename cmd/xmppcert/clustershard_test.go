package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmppcert/xmppcert/internal/testetcd"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/xmppsim"
	"github.com/xmppcert/xmppcert/watcher/changes"
	"github.com/xmppcert/xmppcert/watcher/web"
)

// TestClusterShardKill: three `xmppcert daemon` processes on one etcd
// (lease 2 s, sweeps every 5 s) share the watching of 300 endpoints of a
// simulator in its own process. One node is killed (SIGKILL) after one
// of its endpoints changed key: the others probe every endpoint of its
// share within the lease and a sweep interval (the time logged; over 60
// s fails), and the key change raises exactly one key-changed alert,
// the other endpoints none.
func TestClusterShardKill(t *testing.T) {
	testtool.SkipShort(t, "runs three daemons, etcd and the simulator")
	const n = 300
	sim := xmppsim.StartProcess(t, false)
	domains := sim.Do(t, fmt.Sprintf("prepare %d", n))
	e := testetcd.Start(t)
	bin, dir := buildXmppcert(t), t.TempDir()
	keyFile, roots := filepath.Join(dir, "cluster.key"), filepath.Join(dir, "sim-ca.pem")
	writeFile(t, keyFile, []byte(strings.Repeat("c3", 32)+"\n"), 0o600)
	writeFile(t, roots, sim.CAPEM, 0o644)
	hook := newWebhookReceiver(t, nil)
	var peers strings.Builder
	for _, d := range domains {
		fmt.Fprintf(&peers, "[[watch.peer]]\ndomain = %q\nservice = \"xmpp-client\"\nconnect = %q\n", d, sim.Addr)
	}
	nodes := []string{"node0", "node1", "node2"}
	daemons := map[string]*daemonProc{}
	for _, name := range nodes {
		cfg := filepath.Join(dir, name+".toml")
		writeFile(t, cfg, []byte(fmt.Sprintf("state_dir = %q\n[alert]\nmin_severity = \"warning\"\n[[alert.webhook]]\nurl = %q\n"+
			"[watch]\ninterval = \"5s\"\njitter = 0\nown_hosts = false\nfull_interval = \"never\"\ntrust_roots = [%q]\n%s"+
			"[cluster]\netcd_endpoints = [%q]\nkey_file = %q\nnode_id = %q\nlease_ttl = \"2s\"\n",
			filepath.Join(dir, name), hook.URL, roots, peers.String(), e.Endpoint, keyFile, name)), 0o600)
		daemons[name] = startDaemonProc(t, bin, daemonOptions{listen: freeAddr(t)}, "--config", cfg, "daemon")
	}
	client := e.Client(t)
	members := func() int64 {
		resp, err := client.Get(context.Background(), "/xmppcert/members/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return -1
		}
		return resp.Count
	}
	// Every endpoint observed by its owner, the shares settled; node2's
	// share is what it observed and no other node did.
	var share []web.EndpointStatus
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		seen, others := map[string]bool{}, map[string]bool{}
		var node2 []web.EndpointStatus
		for _, name := range nodes {
			for _, ep := range endpointsOf(t, daemons[name].url) {
				seen[ep.Key] = true
				if name == "node2" {
					node2 = append(node2, ep)
				} else {
					others[ep.Key] = true
				}
			}
		}
		share = share[:0]
		for _, ep := range node2 {
			if !others[ep.Key] {
				share = append(share, ep)
			}
		}
		total := len(seen)
		if members() == 3 && total >= n && len(share) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nodes did not observe the %d endpoints between them within 60 s (%d, %d members)", n, total, members())
		}
	}
	moved := share[0].Endpoint.Domain
	sim.Do(t, "rekey "+moved)

	daemons["node2"].cmd.Process.Kill()
	<-daemons["node2"].done
	killed := time.Now()
	sim.Do(t, "reset")
	want := map[string]bool{}
	for _, s := range share {
		want[s.Endpoint.Domain] = true
	}
	for deadline := killed.Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		missing := 0
		for d := range want {
			if sim.Do(t, "count "+d)[0] == "0" {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of node2's %d endpoints not probed within 60 s of its death", missing, len(want))
		}
	}
	t.Logf("node2 killed; its %d endpoints probed by the others %v later (lease 2 s, interval 5 s)", len(want), time.Since(killed).Round(10*time.Millisecond))
	hook.waitKind(t, changes.KeyChanged, 1)
	// Another sweep of each remaining node: no second alert.
	for _, name := range []string{"node0", "node1"} {
		d := daemons[name]
		swept := strings.Count(d.logs.String(), `msg="sweep done"`)
		d.wait(t, name+"'s next sweep", func() bool { return strings.Count(d.logs.String(), `msg="sweep done"`) > swept })
	}
	if got := hook.of(changes.KeyChanged); len(got) != 1 || got[0].Endpoint.Domain != moved {
		t.Errorf("key-changed alerts %+v; want one, for %s", got, moved)
	}
}

// endpointsOf is a daemon's own endpoints (GET /api/endpoints).
func endpointsOf(t *testing.T, url string) []web.EndpointStatus {
	t.Helper()
	code, body := fetch(t, http.MethodGet, url+"/api/endpoints", "", "")
	var out struct{ Endpoints []web.EndpointStatus }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("GET /api/endpoints: %d %.200s", code, body)
	}
	return out.Endpoints
}
