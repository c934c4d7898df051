package testtool

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Proxy is a running SOCKS5 proxy.
type Proxy struct {
	// URL is its socks5://127.0.0.1:PORT.
	URL string
	cmd *exec.Cmd
}

// Stop kills the proxy (also done when the test ends).
func (p *Proxy) Stop() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// SOCKS5 starts Debian's microsocks on a free loopback port; it is
// stopped when the test ends. With bind set,
// the proxy's outgoing connections leave from that address (127.0.0.2,
// say), so that a server on loopback can tell them apart: a vantage
// point on another network path.
func SOCKS5(t testing.TB, bind string) *Proxy {
	t.Helper()
	bin := Require(t, "microsocks", "microsocks")
	port := FreePort(t)
	args := []string{"-i", "127.0.0.1", "-p", strconv.Itoa(port)}
	if bind != "" {
		args = append(args, "-b", bind)
	}
	var out LockedBuffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting microsocks: %v", err)
	}
	p := &Proxy{cmd: cmd}
	t.Cleanup(p.Stop)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			p.URL = fmt.Sprintf("socks5://%s", addr)
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("microsocks %v does not accept connections after 30 s: %v\n%s", args, err, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
