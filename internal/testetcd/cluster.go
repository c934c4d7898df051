package testetcd

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// Cluster is an etcd cluster of members in their own processes (the
// member program next to this file), which a test stops, kills and
// starts again one by one.
type Cluster struct {
	// Endpoints are the members' client URLs, http://127.0.0.1:PORT.
	Endpoints []string
	members   []*member
}

type member struct {
	args []string // without -state
	mu   sync.Mutex
	proc *os.Process
	done chan struct{} // closed when proc has ended
	logs testtool.LockedBuffer
}

// memberBinary is the member program, built once per test process.
func memberBinary(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return testtool.BuildProgram(t, filepath.Join(filepath.Dir(file), "member"), "etcd-member")
}

// StartCluster starts an n-member cluster on loopback, each member in
// its own process and data directory; they stop when the test ends. A
// port taken between its choice and the member's listening on it (the
// other members' outgoing connections take ports from the same range)
// makes it start again on other ports, up to three times.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	bin := memberBinary(t)
	for attempt := 1; ; attempt++ {
		c, err := startCluster(t, bin, n)
		if err == nil {
			return c
		}
		for _, m := range c.members {
			m.stop(syscall.SIGKILL)
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

func startCluster(t testing.TB, bin string, n int) (*Cluster, error) {
	c := &Cluster{}
	var initial []string
	type urls struct{ client, peer string }
	var us []urls
	for i := range n {
		u := urls{fmt.Sprintf("http://127.0.0.1:%d", testtool.FreePort(t)), fmt.Sprintf("http://127.0.0.1:%d", testtool.FreePort(t))}
		us = append(us, u)
		initial = append(initial, fmt.Sprintf("m%d=%s", i, u.peer))
		c.Endpoints = append(c.Endpoints, u.client)
	}
	dir := t.TempDir()
	for i, u := range us {
		m := &member{args: []string{bin, "-name", fmt.Sprintf("m%d", i), "-dir", filepath.Join(dir, fmt.Sprintf("m%d", i)),
			"-client", u.client, "-peer", u.peer, "-cluster", strings.Join(initial, ",")}}
		c.members = append(c.members, m)
		t.Cleanup(func() { m.stop(syscall.SIGKILL) })
	}
	ready := make([]<-chan error, n)
	for i, m := range c.members {
		ready[i] = m.start(t, "new")
	}
	var first error
	for i, r := range ready {
		if err := <-r; err != nil && first == nil {
			first = fmt.Errorf("etcd member m%d: %v", i, err)
		}
	}
	return c, first
}

// start runs the member and returns a channel that says when it serves
// (nil) or why it does not, within 60 s.
func (m *member) start(t testing.TB, state string) <-chan error {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	cmd := exec.Command(m.args[0], append(m.args[1:], "-state", state)...)
	cmd.Stderr = &m.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m.proc, m.done = cmd.Process, make(chan struct{})
	ready := make(chan error, 2)
	go func(done chan struct{}) {
		sc := bufio.NewScanner(out)
		if sc.Scan() && sc.Text() == "ready" {
			ready <- nil
		}
		for sc.Scan() {
		}
		err := cmd.Wait()
		close(done)
		ready <- fmt.Errorf("exited before it was ready (%v): %s", err, m.logs.String())
	}(m.done)
	timed := make(chan error, 1)
	go func() {
		select {
		case err := <-ready:
			timed <- err
		case <-time.After(60 * time.Second):
			timed <- fmt.Errorf("not ready within 60 s: %s", m.logs.String())
		}
	}()
	return timed
}

// stop signals the member's process and waits for it to end.
func (m *member) stop(sig syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil {
		return
	}
	m.proc.Signal(sig)
	<-m.done
	m.proc = nil
}

// Stop stops member i (SIGTERM), as an operator's service manager does.
func (c *Cluster) Stop(i int) { c.members[i].stop(syscall.SIGTERM) }

// Kill kills member i (SIGKILL).
func (c *Cluster) Kill(i int) { c.members[i].stop(syscall.SIGKILL) }

// Restart starts stopped members again on their data directories, all
// at once (a quorum may need several before any serves), and returns
// once every one serves.
func (c *Cluster) Restart(t testing.TB, members ...int) {
	t.Helper()
	var ready []<-chan error
	for _, i := range members {
		ready = append(ready, c.members[i].start(t, "existing"))
	}
	for k, r := range ready {
		if err := <-r; err != nil {
			t.Fatalf("etcd member m%d: %v", members[k], err)
		}
	}
}

// Session is a new session (lease) of ttl seconds on a new client of
// every member, both closed when the test ends.
func (c *Cluster) Session(t testing.TB, ttl int) (*clientv3.Client, *concurrency.Session) {
	t.Helper()
	client, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	s, err := concurrency.NewSession(client, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return client, s
}

// Leader is the index of the member that leads, as the members say.
func (c *Cluster) Leader(t testing.TB, client *clientv3.Client) int {
	t.Helper()
	for i, ep := range c.Endpoints {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := client.Status(ctx, ep)
		cancel()
		if err == nil && st.Leader == st.Header.MemberId {
			return i
		}
	}
	t.Fatal("no member says it leads")
	return -1
}
