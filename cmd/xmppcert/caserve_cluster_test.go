package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/testetcd"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestClusterCAServe: `xmppcert ca serve` on two nodes of a cluster (one
// etcd, lease 2 s) serves the cluster's CA from one node at a time: the
// first serves, the second stands by naming it and its ACME directory,
// both hold the same root. The serving node killed (SIGKILL), the other
// serves within the lease and a few seconds (the time is logged; over
// 30 s fails), and certbot obtains a certificate from it that chains to
// the cluster's root.
func TestClusterCAServe(t *testing.T) {
	certbot := testtool.Require(t, "certbot", "certbot")
	e := testetcd.Start(t)
	bin, dir := buildXmppcert(t), t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	writeFile(t, keyFile, []byte(strings.Repeat("c3", 32)+"\n"), 0o600)
	httpPort := testtool.FreePort(t)
	states := map[string]string{}
	serve := func(name string) (*daemonProc, string) {
		state, cfg := filepath.Join(dir, name), filepath.Join(dir, name+".toml")
		states[name] = state
		writeFile(t, cfg, []byte(fmt.Sprintf("[cluster]\netcd_endpoints = [%q]\nkey_file = %q\nnode_id = %q\nlease_ttl = \"2s\"\n", e.Endpoint, keyFile, name)), 0o600)
		listen := freeAddr(t)
		p := startDaemonProc(t, bin, daemonOptions{}, "--state-dir", state, "--config", cfg, "ca", "serve", "--listen", listen,
			"--validate-ip", "127.0.0.1", "--http-01-port", strconv.Itoa(httpPort))
		return p, "https://" + listen + localca.ACMEPath
	}
	serving := regexp.MustCompile(`ACME directory (\S+)`)
	first, firstDir := serve("node0")
	first.wait(t, "node0 serving", func() bool { return serving.MatchString(first.logs.String()) })
	second, secondDir := serve("node1")
	second.wait(t, "node1 standing by", func() bool {
		return strings.Contains(second.logs.String(), "standing by: node node0 serves the cluster's CA at "+firstDir)
	})
	if serving.MatchString(second.logs.String()) {
		t.Fatalf("node1 serves while node0 does:\n%s", second.logs.String())
	}
	root0, err0 := os.ReadFile(filepath.Join(states["node0"], "ca", "root.crt"))
	root1, err1 := os.ReadFile(filepath.Join(states["node1"], "ca", "root.crt"))
	if err0 != nil || err1 != nil || !bytes.Equal(root0, root1) {
		t.Fatalf("the nodes' roots differ or are missing (%v, %v)", err0, err1)
	}

	first.cmd.Process.Kill()
	<-first.done
	killed := time.Now()
	for deadline := killed.Add(30 * time.Second); !serving.MatchString(second.logs.String()); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) || second.exited() {
			t.Fatalf("node1 does not serve within 30 s of node0's death:\n%s", second.logs.String())
		}
	}
	t.Logf("node0 killed; node1 serves the CA %v later (lease 2 s)", time.Since(killed).Round(10*time.Millisecond))
	if m := serving.FindStringSubmatch(second.logs.String()); m[1] != secondDir {
		t.Fatalf("node1 serves at %s, want %s", m[1], secondDir)
	}
	rootFile := filepath.Join(dir, "root.pem")
	writeFile(t, rootFile, root1, 0o644)
	live, err := certbotOrder(certbot, dir, secondDir, rootFile, httpPort, "example.org")
	if err != nil {
		t.Fatal(err)
	}
	check := exec.Command(bin, "check", "--service", "xmpp-client", "--domain", "example.org", "--roots", rootFile, filepath.Join(live, "fullchain.pem"))
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("certbot's certificate from the new leader does not check against the cluster's root: %v\n%s", err, out)
	}
}

// TestClusterCACommands: with --config naming a [cluster], `ca root`
// says when the cluster keeps no CA yet; `ca init` creates the cluster's
// CA on one node and installs it on another, whose `ca root` prints the
// same root; a node whose own CA predates its joining is refused, its CA
// left as it was.
func TestClusterCACommands(t *testing.T) {
	e := testetcd.Start(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	writeFile(t, keyFile, []byte(strings.Repeat("c3", 32)+"\n"), 0o600)
	node := func(name string) []string {
		cfg := filepath.Join(dir, name+".toml")
		writeFile(t, cfg, []byte(fmt.Sprintf("[cluster]\netcd_endpoints = [%q]\nkey_file = %q\nnode_id = %q\n", e.Endpoint, keyFile, name)), 0o600)
		return []string{"--state-dir", filepath.Join(dir, name), "--config", cfg}
	}
	n0, n1, n2 := node("node0"), node("node1"), node("node2")
	ca := func(args []string, cmd ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, nil, append(append(args, "ca"), cmd...)...)
	}

	if code, _, errs := ca(n0, "root"); code != exitFailed || !strings.Contains(errs, "the cluster keeps no CA yet") {
		t.Fatalf("ca root before any CA: exit %d, %q", code, errs)
	}
	if code, out, errs := ca(n0, "init"); code != exitOK || !strings.HasPrefix(out, "created the private CA") {
		t.Fatalf("ca init on node0: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := ca(n1, "init", "--root-key-out", filepath.Join(dir, "root.key")); code != exitUsage || out != "" || !strings.Contains(errs, "the cluster keeps an embedded CA already") {
		t.Fatalf("ca init --root-key-out on node1: exit %d\n%s%s; want a usage error", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "node1", "ca")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the refused ca init wrote node1's CA directory (%v)", err)
	}
	if code, out, errs := ca(n1, "init"); code != exitOK || !strings.HasPrefix(out, "installed the private CA") {
		t.Fatalf("ca init on node1: exit %d\n%s%s", code, out, errs)
	}
	_, root0, _ := ca(n0, "root")
	code, root1, errs := ca(n1, "root")
	if code != exitOK || root0 != root1 || !strings.HasPrefix(root1, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("node1's ca root: exit %d %s; want node0's root", code, errs)
	}
	if code, _, errs := ca(n1, "init"); code != exitFailed || !strings.Contains(errs, "a CA already exists") {
		t.Errorf("ca init again on node1: exit %d, %q", code, errs)
	}

	// node2 made its own CA before it joined.
	if code, out, errs := runCLI(t, nil, "--state-dir", filepath.Join(dir, "node2"), "ca", "init"); code != exitOK {
		t.Fatalf("node2's own ca init: exit %d\n%s%s", code, out, errs)
	}
	own, err := os.ReadFile(filepath.Join(dir, "node2", "ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"init", "root"} {
		code, _, errs := ca(n2, cmd)
		if code != exitFailed || !strings.Contains(errs, "is not the cluster's") || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("ca %s on node2 with its own CA: exit %d, %q; want one line saying its CA is not the cluster's", cmd, code, errs)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "node2", "ca", "root.crt")); !bytes.Equal(after, own) {
		t.Error("node2's own CA changed")
	}
}

// TestClusterLocalCALeader: the daemons of a cluster (one etcd, lease
// 2 s) renew the lineages the embedded CA signs on the node elected to
// lead its issuance: after a revocation the leader renews, the other
// node does not; the leader killed (SIGKILL), the other node leads, and
// renews after the next revocation.
func TestClusterLocalCALeader(t *testing.T) {
	e := testetcd.Start(t)
	bin, dir := buildXmppcert(t), t.TempDir()
	keyFile := filepath.Join(dir, "cluster.key")
	writeFile(t, keyFile, []byte(strings.Repeat("c3", 32)+"\n"), 0o600)
	args := map[string][]string{}
	for _, name := range []string{"node0", "node1"} {
		state, cfg := filepath.Join(dir, name), filepath.Join(dir, name+".toml")
		writeFile(t, cfg, []byte(fmt.Sprintf("state_dir = %q\n[[host]]\ndomain = \"example.org\"\n[watch]\nown_hosts = false\n"+
			"[cluster]\netcd_endpoints = [%q]\nkey_file = %q\nnode_id = %q\nlease_ttl = \"2s\"\n", state, e.Endpoint, keyFile, name)), 0o600)
		args[name] = []string{"--state-dir", state, "--config", cfg}
	}
	c, sess := e.Session(t, 5)
	store, err := etcdstore.New(c, sess, etcdstore.Options{Prefix: "/xmppcert/", Key: []byte(strings.Repeat("\xc3", 32)), Node: "observer"})
	if err != nil {
		t.Fatal(err)
	}
	start := func(name string) *daemonProc {
		return startDaemonProc(t, bin, daemonOptions{listen: freeAddr(t)}, append(args[name], "daemon")...)
	}
	revoke := func(versions int) {
		t.Helper()
		if code, out, errs := runCLI(t, nil, append(args["node1"], "revoke", "example.org", "--reason", "superseded")...); code != exitOK {
			t.Fatalf("revoke: exit %d\n%s%s", code, out, errs)
		}
		waitFor(t, fmt.Sprintf("version %d", versions), func() bool {
			vs, err := store.Versions("example.org")
			return err == nil && len(vs) == versions
		})
	}
	const leads = "this node leads the embedded CA's issuance"
	node0 := start("node0")
	node0.wait(t, "version 1", func() bool { return strings.Contains(node0.logs.String(), "issued=1") })
	node1 := start("node1")
	node1.wait(t, "node1's first run", func() bool { return strings.Contains(node1.logs.String(), "renew run finished") })
	if !strings.Contains(node0.logs.String(), leads) || strings.Contains(node1.logs.String(), leads) {
		t.Fatalf("node0 should lead, node1 not\nnode0:\n%s\nnode1:\n%s", node0.logs.String(), node1.logs.String())
	}

	revoke(2)
	// The commit comes before the renewal's log line.
	node0.wait(t, "node0's renewal", func() bool { return strings.Contains(node0.logs.String(), "result=renewed") })
	if strings.Contains(node1.logs.String(), "result=renewed") {
		t.Errorf("node1 renewed while node0 leads:\n%s", node1.logs.String())
	}

	node0.cmd.Process.Kill()
	<-node0.done
	killed := time.Now()
	for deadline := killed.Add(30 * time.Second); !strings.Contains(node1.logs.String(), leads); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("node1 does not lead within 30 s of node0's death:\n%s", node1.logs.String())
		}
	}
	t.Logf("node0 killed; node1 leads the embedded CA's issuance %v later (lease 2 s)", time.Since(killed).Round(10*time.Millisecond))
	revoke(3)
	node1.wait(t, "node1's renewal", func() bool { return strings.Contains(node1.logs.String(), "result=renewed") })
}
