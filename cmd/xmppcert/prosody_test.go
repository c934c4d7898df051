package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestProsody loads a certificate issued with --deploy prosody:DIR into
// a real Prosody (Debian's prosody 0.12): `prosodyctl check certs`
// reports no problem for the host and its component, the s2s port
// presents the issued certificate after STARTTLS for either name, and
// `xmppcert check --service xmpp-server` passes on what it presents.
// As root Prosody runs as the prosody user (it refuses to run as root),
// so the test also shows that the deployed key is readable by that user
// alone. It takes about a second.
func TestProsody(t *testing.T) {
	prosody := testtool.Require(t, "prosody", "prosody")
	prosodyctl := testtool.Require(t, "prosodyctl", "prosody")
	dir := serverTempDir(t)
	state := filepath.Join(dir, "state")
	certs := filepath.Join(dir, "certs")
	names := []string{"example.org", "conference.example.org"}

	code, out, errs := runCLI(t, nil, "--state-dir", state, "issue", names[0], "--component", names[1], "--deploy", "prosody:"+certs)
	if code != exitOK {
		t.Fatalf("issue: exit %d\n%s%s", code, out, errs)
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

	p := newProsody(t, dir, certs, names)

	// prosodyctl drops to the prosody user when run as root, like Prosody
	// itself: "Could not open" or "Error: error loading private key" is
	// what an unreadable key gives.
	cmd := exec.Command(prosodyctl, "--config", p.config, "check", "certs")
	report, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("prosodyctl check certs: %v\n%s", err, report)
	}
	checkCertsReport(t, string(report), certs, names)

	p.start(t, prosody)
	for _, name := range names {
		chain := s2sStartTLS(t, p.s2s, name, p.log)
		if !chain[0].Equal(issued[0]) {
			t.Errorf("s2s STARTTLS for %s presented %q (serial %s), not the issued certificate (serial %s)\n%s",
				name, chain[0].Subject, chain[0].SerialNumber, issued[0].SerialNumber, p.log())
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
	p := newProsody(t, dir, certs, names)
	hook := fmt.Sprintf("%s --config '%s' --root cert import \"$RENEWED_LINEAGE\"", prosodyctl, p.config)
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
	report, err := exec.Command(prosodyctl, "--config", p.config, "check", "certs").CombinedOutput()
	if err != nil {
		t.Fatalf("prosodyctl check certs: %v\n%s", err, report)
	}
	checkCertsReport(t, string(report), certs, names)
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

// prosodyInstance is a Prosody configuration in a test directory.
type prosodyInstance struct {
	config string
	run    string // data, pid and log, owned by the user Prosody runs as
	s2s    string // loopback address of the s2s port
	// cred is the prosody user when the test runs as root, else nil.
	cred *syscall.Credential
}

// newProsody writes a configuration that serves names[0] as a
// VirtualHost and names[1:] as MUC components on free loopback ports,
// with certificates = certs.
func newProsody(t *testing.T, dir, certs string, names []string) *prosodyInstance {
	t.Helper()
	p := &prosodyInstance{config: filepath.Join(dir, "prosody.cfg.lua"), run: filepath.Join(dir, "run")}
	if err := os.MkdirAll(filepath.Join(p.run, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("prosody")
		if err != nil {
			t.Fatalf("running as root, Prosody must run as the prosody user, which the prosody package creates: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{p.run, filepath.Join(p.run, "data")} {
			if err := os.Chown(d, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	c2s := freePort(t)
	s2s := freePort(t)
	p.s2s = net.JoinHostPort("127.0.0.1", strconv.Itoa(s2s))
	var cfg strings.Builder
	fmt.Fprintf(&cfg, `-- written by xmppcert's TestProsody
interfaces = { "127.0.0.1" }
c2s_ports = { %d }
s2s_ports = { %d }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
http_ports = { }
https_ports = { }
data_path = %q
pidfile = %q
log = { debug = %q }
certificates = %q
modules_enabled = { "tls", "dialback", "saslauth", "disco" }
VirtualHost %q
`, c2s, s2s, filepath.Join(p.run, "data"), filepath.Join(p.run, "prosody.pid"), filepath.Join(p.run, "prosody.log"), certs, names[0])
	for _, c := range names[1:] {
		fmt.Fprintf(&cfg, "Component %q \"muc\"\n", c)
	}
	if err := os.WriteFile(p.config, []byte(cfg.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// log returns the end of Prosody's log and of its output, for failure
// messages.
func (p *prosodyInstance) log() string {
	var b strings.Builder
	for _, f := range []string{"prosody.log", "output"} {
		data, err := os.ReadFile(filepath.Join(p.run, f))
		if err != nil {
			continue
		}
		fmt.Fprintf(&b, "--- %s (end) ---\n%s\n", f, tail(data, 6000))
	}
	return b.String()
}

// start runs Prosody in the foreground until the test ends and waits
// until its s2s port accepts connections.
func (p *prosodyInstance) start(t *testing.T, prosody string) {
	t.Helper()
	output, err := os.Create(filepath.Join(p.run, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer output.Close()
	cmd := exec.Command(prosody, "-F", "--config", p.config)
	cmd.Dir = p.run
	cmd.Stdout, cmd.Stderr = output, output
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Errorf("prosody did not exit within 5s of SIGTERM\n%s", p.log())
		}
	})
	for deadline := time.Now().Add(15 * time.Second); ; {
		c, err := net.DialTimeout("tcp", p.s2s, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			t.Fatalf("prosody exited before listening on %s: %v\n%s", p.s2s, waitErr, p.log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prosody does not listen on %s after 15s: %v\n%s", p.s2s, err, p.log())
		}
	}
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

// s2sStartTLS opens an XMPP server-to-server stream to domain at addr,
// negotiates STARTTLS (RFC 6120 §5.4) with domain as SNI and returns
// the chain the server presents.
func s2sStartTLS(t *testing.T, addr, domain string, log func() string) []*x509.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("s2s stream to %s at %s: %s\n%s", domain, addr, fmt.Sprintf(format, args...), log())
	}
	fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "+
		"xmlns:db='jabber:server:dialback' to='%s' from='remote.example' version='1.0'>", domain)
	// One byte at a time: nothing past <proceed/> may be read, the TLS
	// handshake follows it on the same connection.
	dec := xml.NewDecoder(oneByteReader{conn})
	const tlsNS = "urn:ietf:params:xml:ns:xmpp-tls"
	starttls := false
features:
	for inFeatures := false; ; {
		tok, err := dec.Token()
		if err != nil {
			fail("reading the stream features: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			switch {
			case el.Name.Local == "features":
				inFeatures = true
			case el.Name.Local == "error":
				fail("stream error before features")
			case inFeatures && el.Name.Space == tlsNS && el.Name.Local == "starttls":
				starttls = true
			}
		case xml.EndElement:
			if el.Name.Local == "features" {
				if !starttls {
					fail("the stream features offer no STARTTLS")
				}
				break features
			}
		}
	}
	fmt.Fprintf(conn, "<starttls xmlns='%s'/>", tlsNS)
proceed:
	for {
		tok, err := dec.Token()
		if err != nil {
			fail("waiting for <proceed/>: %v", err)
		}
		if el, ok := tok.(xml.StartElement); ok {
			if el.Name.Space == tlsNS && el.Name.Local == "proceed" {
				break proceed
			}
			fail("got <%s xmlns='%s'> instead of <proceed/>", el.Name.Local, el.Name.Space)
		}
	}
	// Verification is xmppcert check's job: take what is presented.
	tc := tls.Client(conn, &tls.Config{ServerName: domain, InsecureSkipVerify: true})
	if err := tc.HandshakeContext(ctx); err != nil {
		fail("TLS handshake: %v", err)
	}
	return tc.ConnectionState().PeerCertificates
}

// oneByteReader reads one byte per Read call, so that a decoder on top
// of it never reads ahead.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}
