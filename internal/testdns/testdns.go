// Package testdns runs real DNS servers on loopback for tests: Knot DNS
// (knotd) as the authoritative primary that accepts dynamic updates and
// signs zones with DNSSEC, and Unbound as a validating resolver in front
// of it. Tests of code that updates zones (dns-01, TLSA publishing) or
// relies on DNSSEC (DANE) run against the software operators run,
// not against a mock that agrees with our own reading of the RFCs.
//
// Every server gets its own configuration and state in a temporary
// directory, listens on loopback only, is stopped when the test ends,
// and has its log printed when the test failed. A missing program skips
// the test with the Debian package to install, except in CI (CI set),
// where it fails: the test command installs the packages there.
//
// The package is only for tests; nothing else imports it.
package testdns

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// FreePort returns a port that is free for both TCP and UDP on
// 127.0.0.1 at the time of the call, for servers that must be told
// their port in advance (a DNS server listens on both). Another process
// may take it before the caller binds it, so callers retry.
func FreePort() (int, error) {
	return freePortOn("127.0.0.1")
}

func freePortOn(host string) (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(port)))
		ln.Close()
		if err == nil {
			pc.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no port free for both TCP and UDP on %s", host)
}

// process is a started server: stop ends it (SIGTERM, then SIGKILL after
// 5 s) and waits for it.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func startProcess(log *testtool.LockedBuffer, name string, args ...string) (*process, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// waitReady polls ready every 20 ms until it succeeds, the process
// exits, or a minute passes: far above what a start takes under load,
// so that only a server that hangs reaches it.
func (p *process) waitReady(name string, ready func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := ready()
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited: %v", name, err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shortTempDir makes a temporary directory with a short path (server
// control sockets live there and Unix socket paths are limited to 107
// bytes), removed when the test ends.
func shortTempDir(t testing.TB, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
