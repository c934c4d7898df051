package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestSystemdUnit: contrib/xmppcert.service passes systemd-analyze
// verify without a word, and systemd-analyze security rates its
// hardening at an exposure below 2 (of 10).
func TestSystemdUnit(t *testing.T) {
	analyze := testtool.Require(t, "systemd-analyze", "systemd")
	bin := buildXmppcert(t)
	unit, err := os.ReadFile("../../contrib/xmppcert.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart names an executable.
	path := filepath.Join(t.TempDir(), "xmppcert.service")
	writeFile(t, path, []byte(strings.ReplaceAll(string(unit), "/usr/local/bin/xmppcert", bin)), 0o644)
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	out, err := exec.Command(analyze, "security", "--offline=yes", path).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for xmppcert.service: ([0-9.]+)`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level >= 2 {
		t.Errorf("exposure level %.1f; want under 2:\n%s", level, out)
	}
}

// TestDaemonSystemd: the daemon run as systemd runs a Type=notify
// service (NOTIFY_SOCKET, WATCHDOG_USEC, JOURNAL_STREAM naming its
// standard error) says READY=1 with a status line once it serves, pings
// the watchdog at half its interval, says RELOADING=1 (with the
// monotonic time) then READY=1 around a SIGHUP and STOPPING=1 at
// SIGTERM, and prefixes every log line with its syslog priority.
func TestDaemonSystemd(t *testing.T) {
	bin := buildXmppcert(t)
	dir := t.TempDir()
	sock, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "notify"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	cfg := filepath.Join(dir, "xmppcert.toml")
	writeFile(t, cfg, []byte(fmt.Sprintf("[watch]\ninterval = \"1h\"\nown_hosts = false\n[[watch.peer]]\ndomain = \"peer.example\"\nconnect = \"127.0.0.1:1\"\n[http]\nlisten = %q\n", freeAddr(t))), 0o600)
	logFile, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(logFile.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--state-dir", filepath.Join(dir, "state"), "--config", cfg, "daemon")
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock.LocalAddr().String(), "WATCHDOG_USEC=200000",
		fmt.Sprintf("JOURNAL_STREAM=%d:%d", st.Dev, st.Ino))
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		cmd.Process.Kill()
		<-exited
	}()
	// next waits for the next message other than a watchdog ping,
	// counting the pings.
	pings := 0
	next := func(what string) string {
		t.Helper()
		for {
			select {
			case m := <-msgs:
				if m == "WATCHDOG=1" {
					pings++
					continue
				}
				return m
			case <-time.After(20 * time.Second):
				logs, _ := os.ReadFile(logFile.Name())
				t.Fatalf("no %s within 20 s\n%s", what, logs)
			}
		}
	}
	if m := next("READY=1"); !regexp.MustCompile(`^READY=1\nSTATUS=watching 1 targets every 1h0m0s$`).MatchString(m) {
		t.Errorf("first message %q; want READY=1 with the status", m)
	}
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGHUP)
	if m := next("RELOADING=1"); !regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[0-9]+\n$`).MatchString(m) {
		t.Errorf("at SIGHUP %q; want RELOADING=1 with MONOTONIC_USEC", m)
	}
	if m := next("READY=1 after the reload"); !strings.HasPrefix(m, "READY=1\n") {
		t.Errorf("after the reload %q; want READY=1", m)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if m := next("STOPPING=1"); m != "STOPPING=1" {
		t.Errorf("at SIGTERM %q; want STOPPING=1", m)
	}
	<-exited
	if waitErr != nil {
		t.Errorf("exit: %v", waitErr)
	}
	if pings < 3 {
		t.Errorf("%d watchdog pings in over half a second at 100 ms; want more", pings)
	}
	f, err := os.Open(logFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, started := 0, false
	for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
		line := sc.Text()
		if !regexp.MustCompile(`^<[3467]>time=`).MatchString(line) {
			t.Errorf("log line without its priority: %q", line)
		}
		started = started || strings.HasPrefix(line, "<6>") && strings.Contains(line, "daemon started")
	}
	if lines == 0 || !started {
		t.Errorf("%d log lines; want \"daemon started\" at priority 6 among them", lines)
	}
}
