//go:build unix

package challenge

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

func writeScript(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// The command gets action, name and value as $1 $2 $3 (appended to the
// command line, after any arguments of its own), in order.
func TestDNSHookArguments(t *testing.T) {
	log := filepath.Join(t.TempDir(), "calls")
	script := writeScript(t, "hook", `printf '%s|' "$@" >> "$LOG"; echo >> "$LOG"`)
	t.Setenv("LOG", log)
	s := &DNSHook{Command: script + " --zone 'example org'", Propagation: Propagation{Timeout: -1}}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	c := dnsChallenge("*.example.org")
	if err := s.Present(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(t.Context(), c); err != nil { // Timeout < 0: no check
		t.Fatal(err)
	}
	// CleanUp runs even after the caller gave up.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.CleanUp(ctx, c); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	v := c.DNS01KeyAuthorization()
	want := "--zone|example org|present|_acme-challenge.example.org|" + v + "|\n" +
		"--zone|example org|cleanup|_acme-challenge.example.org|" + v + "|\n"
	if string(got) != want {
		t.Fatalf("hook calls:\n%s\nwant:\n%s", got, want)
	}
}

// A failing hook's error has its exit status and stderr (stdout when
// stderr is empty), on one line.
func TestDNSHookFailure(t *testing.T) {
	s := &DNSHook{Command: writeScript(t, "hook", "echo 'progress...'\necho 'API said: 403 forbidden' >&2\necho 'token expired' >&2\nexit 3\n")}
	testtool.OneLineError(t, s.Present(t.Context(), dnsChallenge("example.org")),
		"present for _acme-challenge.example.org", "exit status 3", "API said: 403 forbidden | token expired")
	s = &DNSHook{Command: writeScript(t, "hook", "echo 'only stdout'\nexit 1\n")}
	testtool.OneLineError(t, s.CleanUp(t.Context(), dnsChallenge("example.org")), "cleanup", "exit status 1", "only stdout")
	s = &DNSHook{Command: filepath.Join(t.TempDir(), "missing")}
	testtool.OneLineError(t, s.Present(t.Context(), dnsChallenge("example.org")), "exit status 127", "not found")
	testtool.OneLineError(t, (&DNSHook{Command: " "}).Validate(), "no command")
}

// A hung hook is killed at its timeout, with the processes it started.
func TestDNSHookTimeout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := &DNSHook{
		Command: writeScript(t, "hook", "sleep 60 &\necho $! > "+pidFile+"\necho 'waiting for the API' >&2\nwait\n"),
		Timeout: 300 * time.Millisecond,
	}
	start := time.Now()
	testtool.OneLineError(t, s.Present(t.Context(), dnsChallenge("example.org")), "did not finish within 300ms and was killed", "waiting for the API")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Present took %s with a 300ms timeout", d)
	} else {
		t.Logf("Present returned after %s", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the hook's child %d outlived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A hook that publishes the record with knsupdate into a real Knot:
// Wait sees it on the given authoritative server, and through NS
// discovery; CleanUp removes it; a hook that claims success without
// publishing times out in Wait.
func TestDNSHookKnsupdate(t *testing.T) {
	k := startKnot(t)
	knsupdate := testtool.Require(t, "knsupdate", "knot-dnsutils")
	host, port, _ := net.SplitHostPort(k.Addr)
	script := writeScript(t, "nsupdate-hook", fmt.Sprintf(`set -e
case "$1" in
present) op=add ;;
cleanup) op=delete ;;
*) echo "unknown action $1" >&2; exit 2 ;;
esac
printf 'server %s %s\nzone example.org\nupdate %%s %%s. 60 TXT "%%s"\nsend\n' "$op" "$2" "$3" |
	%s -y hmac-sha256:%s:%s
`, host, port, knsupdate, k.KeyName, k.Secret))

	s := &DNSHook{Command: script, Timeout: 10 * time.Second,
		Propagation: Propagation{Nameservers: []string{k.Addr}, Timeout: 5 * time.Second, Interval: 20 * time.Millisecond}}
	c := dnsChallenge("conference.example.org")
	if err := s.Present(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if got := k.TXT(t, "_acme-challenge.conference.example.org"); len(got) != 1 || got[0] != c.DNS01KeyAuthorization() {
		t.Fatalf("TXT = %q", got)
	}
	if err := s.Wait(t.Context(), c); err != nil {
		t.Fatal(err)
	}

	// The zone's NS found through a resolver (Knot answers for its zone).
	d := &DNSHook{Command: script, Propagation: Propagation{Resolver: k.Addr, nsPort: port, Timeout: 5 * time.Second, Interval: 20 * time.Millisecond}}
	if err := d.Wait(t.Context(), c); err != nil {
		t.Fatal(err)
	}

	if err := s.CleanUp(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if got := k.TXT(t, "_acme-challenge.conference.example.org"); len(got) != 0 {
		t.Fatalf("TXT after cleanup = %q", got)
	}

	liar := &DNSHook{Command: "true", Propagation: Propagation{Nameservers: []string{k.Addr}, Timeout: 200 * time.Millisecond, Interval: 20 * time.Millisecond}}
	if err := liar.Present(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	testtool.OneLineError(t, liar.Wait(t.Context(), c), "not visible after 200ms on "+k.Addr+": ", "hook really publishes")

	// Discovery through a resolver that does not know the zone fails
	// clearly.
	d.Propagation.Timeout = 2 * time.Second
	testtool.OneLineError(t, d.Wait(t.Context(), dnsChallenge("xmpp.nothere.test")), "REFUSED")
}

// alive reports whether pid runs; a zombie (killed, not yet reaped by a
// PID 1 that may never reap) counts as dead.
func alive(pid int) bool {
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
			return b[i+2] != 'Z' && b[i+2] != 'X'
		}
	}
	return syscall.Kill(pid, 0) == nil
}
