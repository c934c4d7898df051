package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// TestCertbot has a real ACME client, Debian's certbot, obtain a
// certificate from 'xmppcert ca serve' over http-01 (certbot --standalone
// on a free loopback port, the CA's validation pointed at it with
// --validate-ip and --http-01-port) for a host and a component, and checks
// that the lineage certbot writes carries the XMPP identities of each role.
// certbot takes about 3 seconds.
func TestCertbot(t *testing.T) {
	certbot := testtool.Require(t, "certbot", "certbot")
	// TestMain (testscript.Main) puts this test binary in $PATH as
	// xmppcert, running the real CLI: no separate build is needed.
	xmppcert, err := exec.LookPath("xmppcert")
	if err != nil {
		t.Fatalf("xmppcert is not in $PATH (TestMain puts it there): %v", err)
	}
	// A race-enabled binary sleeps a second at exit unless told not to.
	t.Setenv("GORACE", strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	httpPort := testtool.FreePort(t)

	directory, _ := startCAServe(t, xmppcert, "--state-dir", state, "ca", "serve", "--listen", "127.0.0.1:0",
		"--validate-ip", "127.0.0.1", "--http-01-port", strconv.Itoa(httpPort), "--component", "conference.example.org")
	rootFile, _ := caRootFile(t, xmppcert, state, dir)
	start := time.Now()
	live, err := certbotOrder(certbot, dir, directory, rootFile, httpPort, "example.org", "conference.example.org")
	t.Logf("certbot took %v", time.Since(start).Round(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}

	pemBytes, err := os.ReadFile(filepath.Join(live, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := certfile.Parse(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, id := range xmppaddr.Identities(certs[0]).Identifiers {
		if id.Type != xmppaddr.TypeCN {
			got = append(got, string(id.Type)+"::"+id.Value)
		}
	}
	// A host gets both SRV-IDs and XmppAddr; the component no
	// _xmpp-client SRV-ID.
	want := []string{
		"dNSName::example.org", "SRVName::_xmpp-client.example.org", "SRVName::_xmpp-server.example.org", "XmppAddr::example.org",
		"dNSName::conference.example.org", "SRVName::_xmpp-server.conference.example.org", "XmppAddr::conference.example.org",
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("identities of certbot's cert.pem:\n got %q\nwant %q", got, want)
	}

	for _, domain := range []string{"example.org", "conference.example.org"} {
		check := exec.Command(xmppcert, "check", "--service", "xmpp-server", "--domain", domain, "--roots", rootFile, filepath.Join(live, "fullchain.pem"))
		if out, err := check.CombinedOutput(); err != nil {
			t.Errorf("xmppcert check --service xmpp-server --domain %s fullchain.pem: %v\n%s", domain, err, out)
		}
	}
}

// caRootFile writes the root of the CA in state (xmppcert ca root) to
// dir/root.pem and returns the file and the PEM.
func caRootFile(t testing.TB, xmppcert, state, dir string) (string, []byte) {
	t.Helper()
	root, err := exec.Command(xmppcert, "--state-dir", state, "ca", "root").Output()
	if err != nil {
		t.Fatalf("xmppcert ca root: %v", err)
	}
	rootFile := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, root, 0o644); err != nil {
		t.Fatal(err)
	}
	return rootFile, root
}

// certbotOrder has Debian's certbot obtain a certificate for domains from
// the ACME directory (trusting rootFile), answering http-01 itself
// (--standalone) on 127.0.0.1:httpPort, with its state under
// dir/certbot. It returns certbot's live directory for the first domain,
// or an error with certbot's output and the end of its log.
func certbotOrder(certbot, dir, directory, rootFile string, httpPort int, domains ...string) (string, error) {
	cb := filepath.Join(dir, "certbot")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"certonly", "--standalone",
		"--http-01-port", strconv.Itoa(httpPort), "--http-01-address", "127.0.0.1", "--server", directory,
		"--non-interactive", "--agree-tos", "--register-unsafely-without-email",
		"--config-dir", filepath.Join(cb, "config"), "--work-dir", filepath.Join(cb, "work"), "--logs-dir", filepath.Join(cb, "logs")}
	for _, d := range domains {
		args = append(args, "-d", d)
	}
	cmd := exec.CommandContext(ctx, certbot, args...)
	cmd.Env = append(os.Environ(), "REQUESTS_CA_BUNDLE="+rootFile)
	if out, err := cmd.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(cb, "logs", "letsencrypt.log"))
		return "", fmt.Errorf("certbot: %v\n%s\n--- letsencrypt.log (end) ---\n%s", err, out, tail(log, 4000))
	}
	return filepath.Join(cb, "config", "live", domains[0]), nil
}

// startCAServe runs 'xmppcert ca serve' until the test ends and returns
// the ACME directory URL it prints on its first line, and its process.
func startCAServe(t *testing.T, xmppcert string, args ...string) (string, *os.Process) {
	t.Helper()
	dir := t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := exec.Command(xmppcert, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	serverLog := func() string {
		b, _ := os.ReadFile(stderr.Name())
		return string(b)
	}
	t.Cleanup(func() {
		select {
		case <-done:
			if !t.Failed() {
				t.Errorf("ca serve exited before the test ended: %v\n%s", waitErr, serverLog())
			}
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			if waitErr != nil {
				t.Errorf("ca serve did not exit cleanly on SIGTERM: %v\n%s", waitErr, serverLog())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("ca serve did not exit within 15s of SIGTERM")
		}
	})
	const prefix = "ACME directory "
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(stdout.Name())
		if line, _, ok := strings.Cut(string(b), "\n"); ok {
			if !strings.HasPrefix(line, prefix) {
				t.Fatalf("ca serve printed %q first; want %q and the URL", line, prefix)
			}
			return strings.TrimPrefix(line, prefix), cmd.Process
		}
		select {
		case <-done:
			t.Fatalf("ca serve exited before printing its directory: %v\n%s", waitErr, serverLog())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("ca serve printed no directory within 30s\n%s", serverLog())
		}
	}
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
