package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/internal/testxmpp"
)

// TestProsodyReload deploys to a real Prosody started from a
// configuration in a non-default place, given with --prosody-config,
// and checks what its c2s and s2s ports serve (--serve-check): issue
// before Prosody runs says "not reloaded" (exit 1) and deploy once it
// runs says "reloaded" and "served"; renew --force deploys, reloads, and
// both ports serve the new version. A prosodyctl that exits 1 (through
// PATH) makes the renewal "not reloaded", exit 1, while Prosody still
// presents the old version. A prosodyctl that says it reloaded but did
// nothing leaves both ports "stale" (exit 1). The next renew, with
// nothing due, deploys again once prosodyctl works, and the ports serve
// the version then.
func TestProsodyReload(t *testing.T) {
	dir := serverTempDir(t)
	state := filepath.Join(dir, "state")
	certs := filepath.Join(dir, "certs")
	names := []string{"example.org", "conference.example.org"}
	p := newProsody(t, certs, names)
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, nil, append([]string{"--state-dir", state}, args...)...)
	}
	leaf := func() *x509.Certificate {
		t.Helper()
		c, err := certfile.Read(filepath.Join(state, "live", names[0], "cert.pem"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return c[0]
	}
	target := "prosody " + certs
	notRunning := "not reloaded: 'prosodyctl --config " + p.Config + " status' says Prosody is not running"

	c2s, s2s := "xmpp-client:"+p.C2SAddr, "xmpp-server:"+p.S2SAddr
	served := func(v int) string {
		return fmt.Sprintf("  served    %s: version %d\n  served    %s: version %d\n", c2s, v, s2s, v)
	}
	code, out, errs := cli("issue", names[0], "--component", names[1], "--deploy", "prosody:"+certs, "--prosody-config", p.Config,
		"--serve-check", c2s, "--serve-check", s2s)
	if code != exitFailed || !strings.Contains(out, "  FAILED    "+target+": "+notRunning) {
		t.Fatalf("issue before Prosody runs: exit %d; want 1 and %q\n%s%s", code, notRunning, out, errs)
	}
	p.Start(t)
	if code, out, errs := cli("deploy"); code != exitOK || out != names[0]+": version 1\n  deployed  "+target+": reloaded\n"+served(1) {
		t.Fatalf("deploy once Prosody runs: exit %d; want 0, reloaded and served\n%s%s", code, out, errs)
	}
	awaitServed(t, p, names, leaf())

	code, out, errs = cli("renew", "--force")
	if code != exitOK || !strings.Contains(out, "  deployed  "+target+": reloaded\n"+served(2)) {
		t.Fatalf("renew --force: exit %d; want 0, reloaded and served\n%s%s", code, out, errs)
	}
	v2 := leaf()
	awaitServed(t, p, names, v2)

	// A prosodyctl that exits 1 for everything: status says Prosody is
	// not running, so nothing reloads it.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "prosodyctl"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := os.Getenv("PATH")
	t.Setenv("PATH", bin+string(os.PathListSeparator)+path)
	code, out, errs = cli("renew", "--force")
	if code != exitFailed || !strings.Contains(out, "  FAILED    "+target+": not reloaded: 'prosodyctl --config "+p.Config+" status' says Prosody is not running (exit 1)\n") {
		t.Fatalf("renew --force with a failing prosodyctl: exit %d; want 1 and not reloaded\n%s%s", code, out, errs)
	}
	v3 := leaf()
	if v3.Equal(v2) {
		t.Fatal("renew --force made no new version")
	}
	for _, svc := range []bool{false, true} {
		if got := presented(t, p, names[0], svc); !got.Equal(v2) {
			t.Errorf("without a reload, Prosody (server %v) presents serial %s; want the old version's %s", svc, got.SerialNumber, v2.SerialNumber)
		}
	}

	// A prosodyctl that says Prosody runs and reloaded, and did nothing:
	// the deploy looks fine, but both ports still serve version 2.
	if err := os.WriteFile(filepath.Join(bin, "prosodyctl"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errs = cli("renew", "--serve-grace", "1s")
	stale := fmt.Sprintf("  STALE     %s still serves version 2 (stale: the reload did not take)\n  STALE     %s still serves version 2 (stale: the reload did not take)\n", c2s, s2s)
	if code != exitFailed || !strings.Contains(out, "  deployed  "+target+": reloaded\n"+stale) || !strings.Contains(out, names[0]+": FAILED: version 3 is deployed, but "+c2s+" still serves version 2") {
		t.Fatalf("renew with a prosodyctl that does not reload: exit %d; want 1 and both ports stale\n%s%s", code, out, errs)
	}

	t.Setenv("PATH", path)
	code, out, errs = cli("renew")
	if code != exitOK || !strings.Contains(out, names[0]+": deployed version 3") || !strings.Contains(out, "  deployed  "+target+": reloaded\n"+served(3)) {
		t.Fatalf("renew once prosodyctl works: exit %d; want 0, version 3 deployed and reloaded\n%s%s", code, out, errs)
	}
	awaitServed(t, p, names, v3)

	// certificates shows the same from the state directory alone.
	code, out, errs = cli("certificates")
	for _, want := range []string{
		names[0] + ": version 3, ECDSA P-256, from the embedded CA\n",
		"  names     example.org (host), conference.example.org (component)\n",
		"  deploy    " + target + ": version 3, reloaded ",
		"  served    " + c2s + " serves version 3 (checked ",
		"  served    " + s2s + " serves version 3 (checked ",
	} {
		if code != exitOK || !strings.Contains(out, want) {
			t.Errorf("certificates: exit %d; lacks %q\n%s%s", code, want, out, errs)
		}
	}
}

// presented is the leaf Prosody presents after STARTTLS on its s2s
// (server) or c2s port for domain.
func presented(t *testing.T, p *testxmpp.Prosody, domain string, server bool) *x509.Certificate {
	t.Helper()
	if server {
		return startTLSLeaf(t, p.S2SAddr, domain, true)
	}
	return startTLSLeaf(t, p.C2SAddr, domain, false)
}

// awaitServed waits (a reload is asynchronous) until Prosody presents
// want on c2s for the host and on s2s for every name.
func awaitServed(t *testing.T, p *testxmpp.Prosody, names []string, want *x509.Certificate) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var stale []string
		if got := presented(t, p, names[0], false); !got.Equal(want) {
			stale = append(stale, fmt.Sprintf("c2s %s: serial %s", names[0], got.SerialNumber))
		}
		for _, n := range names {
			if got := presented(t, p, n, true); !got.Equal(want) {
				stale = append(stale, fmt.Sprintf("s2s %s: serial %s", n, got.SerialNumber))
			}
		}
		if stale == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prosody does not present serial %s: %s\n%s", want.SerialNumber, strings.Join(stale, "; "), p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestEjabberdReload deploys to a real ejabberd with its ejabberdctl.cfg
// given (--ejabberd-ctl-config): the deploy says "reloaded", and
// ejabberd's c2s port presents the new version.
func TestEjabberdReload(t *testing.T) {
	dir := serverTempDir(t)
	state := filepath.Join(dir, "state")
	const domain = "example.org"
	if code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", domain, "-q"); code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
	}
	live := filepath.Join(state, "live", domain)
	e := testxmpp.StartEjabberd(t, testxmpp.EjabberdOptions{Hosts: []testxmpp.EjabberdHost{
		{Domain: domain, CertFile: filepath.Join(live, "fullchain.pem"), KeyFile: filepath.Join(live, "privkey.pem")}}})
	// ejabberd reads this file (certfiles): the target replaces it.
	file := e.Options.Hosts[0].CertFile
	if e.Dir != "" && os.Geteuid() != 0 {
		// As another user the system ejabberdctl refuses to run; the
		// harness's copy runs as the current user.
		t.Setenv("PATH", e.Dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", domain, "--deploy", "ejabberd:"+file, "--ejabberd-ctl-config", e.CtlConfig())
	if code != exitOK || !strings.Contains(out, "  deployed  ejabberd "+file+": reloaded\n") {
		t.Fatalf("issue --deploy ejabberd: exit %d; want 0 and reloaded\n%s%s\n%s", code, out, errs, e.Log())
	}
	c, err := certfile.Read(filepath.Join(live, "cert.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := startTLSLeaf(t, e.C2SAddr, domain, false)
		if got.Equal(c[0]) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ejabberd presents serial %s after the reload; want the new version's %s\n%s", got.SerialNumber, c[0].SerialNumber, e.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startTLSLeaf is the leaf a server presents after STARTTLS at addr for
// domain, on a server-to-server stream or a client one.
func startTLSLeaf(t *testing.T, addr, domain string, server bool) *x509.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := testxmpp.StreamOptions{Server: server, To: domain}
	if server {
		opts.From = "remote.example"
	}
	s, err := testxmpp.OpenStream(ctx, addr, opts)
	if err != nil {
		t.Fatalf("stream to %s at %s: %v", domain, addr, err)
	}
	defer s.Close()
	if err := s.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("STARTTLS to %s at %s: %v", domain, addr, err)
	}
	return s.TLS.PeerCertificates[0]
}
