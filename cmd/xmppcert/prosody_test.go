package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/internal/testxmpp"
)

// TestProsody loads a certificate issued with --deploy prosody:DIR into
// a real Prosody (Debian's prosody 0.12, run on loopback by
// internal/testxmpp): `prosodyctl check certs` reports no problem for
// the host and its component, the s2s port presents the issued
// certificate after STARTTLS for either name, and `xmppcert check
// --service xmpp-server` passes on what it presents.
// As root Prosody runs as the prosody user (it refuses to run as root),
// so the test also shows that the deployed key is readable by that user
// alone. It takes about a second.
func TestProsody(t *testing.T) {
	dir := serverTempDir(t)
	state := filepath.Join(dir, "state")
	certs := filepath.Join(dir, "certs")
	names := []string{"example.org", "conference.example.org"}
	p := newProsody(t, certs, names)

	// Prosody does not run yet: the files are written, and the deploy
	// says it reloaded nothing (exit 1).
	code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", names[0], "--component", names[1], "--deploy", "prosody:"+certs, "--prosody-config", p.Config)
	if code != exitFailed || !strings.Contains(out, "FAILED    prosody "+certs+": not reloaded: ") {
		t.Fatalf("issue: exit %d; want 1, not reloaded\n%s%s", code, out, errs)
	}
	issued, err := certfile.Read(filepath.Join(state, "live", names[0], "fullchain.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	code, rootPEM, errs := runCLI(t, nil, "--state-dir", state, "ca", "root")
	if code != exitOK {
		t.Fatalf("ca root: exit %d\n%s", code, errs)
	}
	roots := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(roots, []byte(rootPEM), 0o644); err != nil {
		t.Fatal(err)
	}

	// prosodyctl drops to the prosody user when run as root, like Prosody
	// itself: "Could not open" or "Error: error loading private key" is
	// what an unreadable key gives.
	report, err := p.Prosodyctl("check", "certs")
	if err != nil {
		t.Fatalf("prosodyctl check certs: %v\n%s", err, report)
	}
	checkCertsReport(t, report, certs, names)

	p.Start(t)
	for _, name := range names {
		chain := s2sStartTLS(t, p, name)
		if !chain[0].Equal(issued[0]) {
			t.Errorf("s2s STARTTLS for %s presented %q (serial %s), not the issued certificate (serial %s)\n%s",
				name, chain[0].Subject, chain[0].SerialNumber, issued[0].SerialNumber, p.Log())
		}
		presented := filepath.Join(dir, name+".presented.pem")
		var buf bytes.Buffer
		for _, c := range chain {
			pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
		}
		if err := os.WriteFile(presented, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCLI(t, nil, "check", "--service", "xmpp-server", "--domain", name, "--roots", roots, presented)
		if code != exitOK {
			t.Errorf("xmppcert check --service xmpp-server --domain %s on the chain Prosody presents: exit %d\n%s%s", name, code, out, errs)
		}
	}
}

// TestProsodyCertImportHook runs the deploy hook certbot users have,
// `prosodyctl --root cert import $RENEWED_LINEAGE`, as an issue --hook:
// Prosody's own importer finds the lineage through certbot's
// variables, and `prosodyctl check certs` then passes for the host and
// its component. Like certbot's hooks it needs root: as another user
// prosodyctl imports into data_path instead of the certificates
// directory (Prosody 0.12, util/prosodyctl/cert.lua).
func TestProsodyCertImportHook(t *testing.T) {
	prosodyctl := testtool.Require(t, "prosodyctl", "prosody")
	if os.Geteuid() != 0 {
		t.Skip("prosodyctl cert import installs into the certificates directory only when run as root")
	}
	dir := serverTempDir(t)
	state := filepath.Join(dir, "state")
	certs := filepath.Join(dir, "certs")
	if err := os.Mkdir(certs, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"example.org", "conference.example.org"}
	p := newProsody(t, certs, names)
	hook := fmt.Sprintf("%s --config '%s' --root cert import \"$RENEWED_LINEAGE\"", prosodyctl, p.Config)
	code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", names[0], "--component", names[1], "--hook", hook)
	if code != exitOK {
		t.Fatalf("issue --hook %q: exit %d\n%s%s", hook, code, out, errs)
	}
	issued, err := certfile.Read(filepath.Join(state, "live", names[0], "cert.pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	imported, err := certfile.Read(filepath.Join(certs, names[0]+".crt"), nil)
	if err != nil {
		t.Fatalf("the hook imported nothing: %v\n%s%s", err, out, errs)
	}
	if !imported[0].Equal(issued[0]) {
		t.Errorf("prosodyctl cert import installed %q, not the issued certificate", imported[0].Subject)
	}
	report, err := p.Prosodyctl("check", "certs")
	if err != nil {
		t.Fatalf("prosodyctl check certs: %v\n%s", err, report)
	}
	checkCertsReport(t, report, certs, names)
}

// serverTempDir is a temporary directory that a server running as its
// own user (prosody, when the test runs as root) can reach: Go creates
// test directories 0700.
func serverTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		return dir
	}
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for d := filepath.Dir(filepath.Dir(dir)); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o001 == 0 {
			t.Fatalf("%s (mode %v) is closed to other users, so the prosody user cannot reach the test's files under it; set TMPDIR to a directory such as /tmp", d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return dir
		}
	}
}

// newProsody writes (with internal/testxmpp) a configuration that
// serves names[0] as a VirtualHost and names[1:] as MUC components on
// free loopback ports, with certificates = certs and Prosody's defaults
// for encryption (required on c2s and s2s).
func newProsody(t *testing.T, certs string, names []string) *testxmpp.Prosody {
	t.Helper()
	opts := testxmpp.ProsodyOptions{
		VirtualHosts:         []testxmpp.VirtualHost{{Domain: names[0], C2SRequireEncryption: true}},
		CertificatesDir:      certs,
		S2SRequireEncryption: true,
	}
	for _, c := range names[1:] {
		opts.Components = append(opts.Components, testxmpp.Component{Domain: c, Module: "muc"})
	}
	return testxmpp.NewProsody(t, opts)
}

// checkCertsReport fails unless `prosodyctl check certs` found, for
// every name, a certificate in certs and said nothing else about it.
func checkCertsReport(t *testing.T, report, certs string, names []string) {
	t.Helper()
	sections := map[string][]string{}
	var cur string
	for _, line := range strings.Split(report, "\n") {
		if name, ok := strings.CutPrefix(line, "Checking certificate for "); ok {
			cur = name
			sections[cur] = nil
			continue
		}
		if cur != "" && strings.HasPrefix(line, " ") {
			sections[cur] = append(sections[cur], strings.TrimSpace(line))
		} else {
			cur = ""
		}
	}
	for _, name := range names {
		lines, ok := sections[name]
		if !ok {
			t.Errorf("prosodyctl check certs did not check %s:\n%s", name, report)
			continue
		}
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "Certificate: "+certs+"/") {
			t.Errorf("prosodyctl check certs for %s: %q; want only the certificate found in %s\n%s", name, lines, certs, report)
		}
	}
	if !strings.Contains(report, "All checks passed") || strings.Contains(strings.ToLower(report), "error") {
		t.Errorf("prosodyctl check certs does not pass cleanly:\n%s", report)
	}
}

// s2sStartTLS opens an XMPP server-to-server stream to domain on
// Prosody's s2s port, negotiates STARTTLS (RFC 6120 §5.4) with domain
// as SNI and returns the chain the server presents.
func s2sStartTLS(t *testing.T, p *testxmpp.Prosody, domain string) []*x509.Certificate {
	t.Helper()
	s, err := testxmpp.OpenStream(context.Background(), p.S2SAddr, testxmpp.StreamOptions{Server: true, To: domain, From: "remote.example"})
	if err != nil {
		t.Fatalf("s2s stream to %s at %s: %v\n%s", domain, p.S2SAddr, err, p.Log())
	}
	defer s.Close()
	if !s.Features.StartTLS {
		t.Fatalf("s2s stream to %s: the stream features offer no STARTTLS: %s", domain, s.Features.Raw)
	}
	// Verification is xmppcert check's job: take what is presented.
	if err := s.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("s2s stream to %s at %s: %v\n%s", domain, p.S2SAddr, err, p.Log())
	}
	return s.TLS.PeerCertificates
}
