package testxmpp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// VirtualHost is a Prosody VirtualHost for StartProsody.
type VirtualHost struct {
	// Domain is the host's domain, e.g. "example.org".
	Domain string
	// CertFile and KeyFile are PEM files: the chain (leaf first) and its
	// key. They are copied into the server's directory, owned by the
	// user Prosody runs as, so the test may write them readable by
	// itself alone, and are then the host's `ssl` (STARTTLS on c2s and
	// s2s) and its `c2s_direct_tls_ssl` and `s2s_direct_tls_ssl` (what
	// the direct TLS ports present when the client's SNI names the
	// host). Both empty: Prosody looks for the certificate itself in
	// ProsodyOptions.CertificatesDir.
	CertFile, KeyFile string
	// C2SRequireEncryption is the host's c2s_require_encryption: true
	// makes STARTTLS <required/> on c2s and refuses authentication
	// before TLS; false offers STARTTLS without <required/> and lets
	// clients authenticate in plaintext. (Prosody's own default is
	// true; the harness writes the option for every host.)
	C2SRequireEncryption bool
	// SSL is more Lua fields for the host's ssl table (and its direct
	// TLS ones), e.g. `protocol = "tlsv1+"; ciphers = "DEFAULT";`.
	SSL string
	// Config is more Lua lines for the VirtualHost section.
	Config string
}

// Component is a Prosody Component for StartProsody, e.g. a MUC
// service; its certificate is found in ProsodyOptions.CertificatesDir
// or, when both are set, is CertFile and KeyFile (copied like a
// VirtualHost's).
type Component struct {
	Domain, Module    string
	CertFile, KeyFile string
}

// ProsodyOptions configures NewProsody and StartProsody.
type ProsodyOptions struct {
	// VirtualHosts are the hosts served; at least one.
	VirtualHosts []VirtualHost
	// Components are served beside them.
	Components []Component
	// CertificatesDir is Prosody's `certificates` directory, used as it
	// is (not copied): Prosody looks there for hosts without CertFile,
	// and `prosodyctl cert import` installs there. When empty, it is
	// the server's own certs directory (where CertFile copies go).
	CertificatesDir string
	// CAFile, when set, is a PEM file of CA certificates (copied) that
	// Prosody trusts for peer certificates, as global `ssl = { cafile =
	// ... }` and in every host's ssl: an incoming s2s stream whose
	// client certificate chains to one of them and names the stream's
	// from domain is offered SASL EXTERNAL and authenticated by it
	// (mod_saslauth and mod_s2s_auth_certs, which Prosody loads
	// itself); one from another CA is not offered EXTERNAL and is
	// refused when it tries. Debian's /etc/ssl/certs stays trusted too
	// (Prosody's default capath).
	CAFile string
	// S2SRequireEncryption is s2s_require_encryption: true makes
	// STARTTLS <required/> on s2s and refuses dialback before TLS.
	// (Prosody's default is true; the harness writes the option.)
	S2SRequireEncryption bool
	// S2SSecureAuth is s2s_secure_auth: remote servers must present a
	// valid certificate (dialback alone is refused). Prosody then
	// requires encryption whatever S2SRequireEncryption says.
	S2SSecureAuth bool
	// TLSProfile is tls_profile ("modern", "intermediate", "old",
	// "legacy"); Prosody's default, "intermediate" (TLS 1.2+), when
	// empty.
	TLSProfile string
	// Modules are enabled besides those the harness always enables:
	// tls, dialback, saslauth, disco (c2s, s2s and s2s_auth_certs load
	// by themselves).
	Modules []string
	// Config is more global Lua lines, written before the hosts.
	Config string
}

// Prosody is a Prosody server configured in a directory of its own on
// free loopback ports: written by NewProsody, running after Start.
type Prosody struct {
	// Dir holds the configuration, the certificate copies (Dir/certs)
	// and Prosody's state and log (DataDir's parent, Dir/run).
	Dir string
	// Config is the configuration file (for prosody and prosodyctl
	// --config).
	Config string
	// DataDir is Prosody's data_path.
	DataDir string
	// The ports (all on 127.0.0.1): c2s and s2s with STARTTLS, and
	// their direct TLS (XEP-0368) counterparts.
	C2SPort, S2SPort, C2SDirectTLSPort, S2SDirectTLSPort int
	// The same as "127.0.0.1:PORT" addresses.
	C2SAddr, S2SAddr, C2SDirectTLSAddr, S2SDirectTLSAddr string
	// Options are the options the configuration was written from, with
	// certificate paths rewritten to the copies in Dir/certs.
	Options ProsodyOptions
	// StartupTime is how long the last Start took from exec until the
	// server answered on every port for every host.
	StartupTime time.Duration

	prosody, prosodyctl string
	user                *serviceUser
	run                 string // Dir/run: pid, log, data
	output              *testtool.LockedBuffer
	proc                *process
}

// StartProsody is NewProsody followed by Start: a running Prosody that
// stops when the test ends.
func StartProsody(t testing.TB, opts ProsodyOptions) *Prosody {
	t.Helper()
	p := NewProsody(t, opts)
	p.Start(t)
	return p
}

// NewProsody writes a Prosody configuration for opts in a new
// directory, on free ports of 127.0.0.1, without starting Prosody (so
// that a test may run prosodyctl on it first). When the test runs as
// root, Prosody is to run as the prosody user (it refuses to run as
// root): the run directory and the certificate copies are given to it.
func NewProsody(t testing.TB, opts ProsodyOptions) *Prosody {
	t.Helper()
	p := &Prosody{
		prosody:    testtool.Require(t, "prosody", "prosody"),
		prosodyctl: testtool.Require(t, "prosodyctl", "prosody"),
		user:       lookupServiceUser(t, "prosody", "prosody"),
	}
	if len(opts.VirtualHosts) == 0 {
		t.Fatal("testxmpp.NewProsody: no VirtualHosts")
	}
	p.Dir = serverDir(t, "prosody")
	p.Config = filepath.Join(p.Dir, "prosody.cfg.lua")
	p.run = filepath.Join(p.Dir, "run")
	p.DataDir = filepath.Join(p.run, "data")
	certs := filepath.Join(p.Dir, "certs")
	for _, d := range []string{p.run, p.DataDir, certs} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	p.user.chown(t, p.run, p.DataDir, certs)

	// Copies of the certificates, readable by the server's user.
	copyPair := func(domain, cert, key string) (string, string) {
		if cert == "" && key == "" {
			return "", ""
		}
		if cert == "" || key == "" {
			t.Fatalf("testxmpp: %s has a certificate or a key file but not both", domain)
		}
		c, k := filepath.Join(certs, domain+".crt"), filepath.Join(certs, domain+".key")
		copyFile(t, cert, c, 0o644)
		copyFile(t, key, k, 0o600)
		p.user.chown(t, c, k)
		return c, k
	}
	opts.VirtualHosts = append([]VirtualHost(nil), opts.VirtualHosts...)
	for i := range opts.VirtualHosts {
		h := &opts.VirtualHosts[i]
		if h.Domain == "" {
			t.Fatal("testxmpp.NewProsody: a VirtualHost without Domain")
		}
		h.CertFile, h.KeyFile = copyPair(h.Domain, h.CertFile, h.KeyFile)
	}
	opts.Components = append([]Component(nil), opts.Components...)
	for i := range opts.Components {
		c := &opts.Components[i]
		c.CertFile, c.KeyFile = copyPair(c.Domain, c.CertFile, c.KeyFile)
	}
	if opts.CAFile != "" {
		ca := filepath.Join(p.Dir, "trusted-ca.pem")
		copyFile(t, opts.CAFile, ca, 0o644)
		opts.CAFile = ca
	}
	if opts.CertificatesDir == "" {
		opts.CertificatesDir = certs
	}
	p.Options = opts
	p.writeConfig(t)
	return p
}

// writeConfig picks free ports and writes the configuration.
func (p *Prosody) writeConfig(t testing.TB) {
	t.Helper()
	ports, err := freePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	p.C2SPort, p.S2SPort, p.C2SDirectTLSPort, p.S2SDirectTLSPort = ports[0], ports[1], ports[2], ports[3]
	p.C2SAddr, p.S2SAddr = addr(p.C2SPort), addr(p.S2SPort)
	p.C2SDirectTLSAddr, p.S2SDirectTLSAddr = addr(p.C2SDirectTLSPort), addr(p.S2SDirectTLSPort)
	if err := os.WriteFile(p.Config, []byte(p.config()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func luaBool(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// config is the configuration file's text.
func (p *Prosody) config() string {
	o := p.Options
	var b strings.Builder
	fmt.Fprintf(&b, `-- written by xmppcert's internal/testxmpp
interfaces = { %q }
c2s_ports = { %d }
s2s_ports = { %d }
c2s_direct_tls_ports = { %d }
s2s_direct_tls_ports = { %d }
http_ports = { }
https_ports = { }
data_path = %q
pidfile = %q
log = { debug = %q }
certificates = %q
modules_enabled = { "tls", "dialback", "saslauth", "disco"`,
		Loopback, p.C2SPort, p.S2SPort, p.C2SDirectTLSPort, p.S2SDirectTLSPort,
		p.DataDir, filepath.Join(p.run, "prosody.pid"), filepath.Join(p.run, "prosody.log"), o.CertificatesDir)
	for _, m := range o.Modules {
		fmt.Fprintf(&b, ", %q", m)
	}
	b.WriteString(" }\n")
	fmt.Fprintf(&b, "s2s_require_encryption = %s\ns2s_secure_auth = %s\n", luaBool(o.S2SRequireEncryption), luaBool(o.S2SSecureAuth))
	if o.TLSProfile != "" {
		fmt.Fprintf(&b, "tls_profile = %q\n", o.TLSProfile)
	}
	if o.CAFile != "" {
		fmt.Fprintf(&b, "ssl = { cafile = %q; }\n", o.CAFile)
	}
	if o.Config != "" {
		b.WriteString(o.Config + "\n")
	}
	// mod_c2s is global, but c2s_require_encryption is read per host
	// by mod_tls (whether <starttls/> has <required/>) and mod_saslauth
	// (whether SASL needs TLS), the two modules that enforce it in 0.12.
	for _, h := range o.VirtualHosts {
		fmt.Fprintf(&b, "\nVirtualHost %q\n", h.Domain)
		fmt.Fprintf(&b, "  c2s_require_encryption = %s\n", luaBool(h.C2SRequireEncryption))
		if ssl := p.sslTable(h.CertFile, h.KeyFile, h.SSL); ssl != "" {
			// The direct TLS ports pick their context per host by SNI
			// from <service>_ssl (portmanager), not from ssl.
			fmt.Fprintf(&b, "  ssl = %s\n  c2s_direct_tls_ssl = %[1]s\n  s2s_direct_tls_ssl = %[1]s\n", ssl)
		}
		if h.Config != "" {
			b.WriteString(h.Config + "\n")
		}
	}
	for _, c := range o.Components {
		fmt.Fprintf(&b, "\nComponent %q %q\n", c.Domain, c.Module)
		if ssl := p.sslTable(c.CertFile, c.KeyFile, ""); ssl != "" {
			fmt.Fprintf(&b, "  ssl = %s\n", ssl)
		}
	}
	return b.String()
}

func (p *Prosody) sslTable(cert, key, extra string) string {
	var fields []string
	if cert != "" {
		fields = append(fields, fmt.Sprintf("certificate = %q;", cert), fmt.Sprintf("key = %q;", key))
	}
	if p.Options.CAFile != "" {
		fields = append(fields, fmt.Sprintf("cafile = %q;", p.Options.CAFile))
	}
	if extra != "" {
		fields = append(fields, extra)
	}
	if len(fields) == 0 {
		return ""
	}
	return "{ " + strings.Join(fields, " ") + " }"
}

// Start runs Prosody in the foreground (-F) with the configuration and
// waits until every host answers a stream header on the c2s port and
// the s2s and direct TLS ports accept connections (direct TLS
// handshakes succeed with the first host as SNI). If another process
// took one of the ports, it starts again on fresh ports (rewriting the
// configuration). Prosody stops when the test ends, or at Stop; its log
// is printed when the test failed.
func (p *Prosody) Start(t testing.TB) {
	t.Helper()
	if p.proc != nil {
		t.Fatal("testxmpp: Prosody started twice")
	}
	if err := p.launch(t, 5); err != nil {
		t.Fatalf("prosody did not start: %v\n%s", err, p.Log())
	}
	t.Cleanup(func() {
		if p.proc.stop(stopTimeout) && !t.Failed() {
			t.Errorf("prosody did not exit within %v of SIGTERM\n%s", stopTimeout, p.Log())
		}
		if t.Failed() {
			t.Logf("prosody (%s) log:\n%s", p.Config, p.Log())
		}
	})
}

// Restart stops Prosody if it runs (see Stop) and starts it again on
// the same ports, e.g. to see a client log in again.
func (p *Prosody) Restart(t testing.TB) {
	t.Helper()
	if p.proc == nil {
		t.Fatal("testxmpp: Prosody restarted before Start")
	}
	p.proc.stop(stopTimeout)
	if err := p.launch(t, 1); err != nil {
		t.Fatalf("prosody did not start again: %v\n%s", err, p.Log())
	}
}

// launch starts Prosody and waits until it is ready, making up to
// attempts attempts, each after the first on fresh ports.
func (p *Prosody) launch(t testing.TB, attempts int) error {
	var lastErr error
	for attempt := range attempts {
		if attempt > 0 {
			p.writeConfig(t)
		}
		os.Remove(filepath.Join(p.run, "prosody.log"))
		p.output = &testtool.LockedBuffer{}
		cmd := exec.Command(p.prosody, "-F", "--config", p.Config)
		cmd.Dir = p.run
		cmd.Stdout, cmd.Stderr = p.output, p.output
		if cred := p.user.credential(); cred != nil {
			cmd.SysProcAttr = sysProcAttr(cred)
		}
		start := time.Now()
		proc, err := startProcess(cmd, false)
		if err != nil {
			return fmt.Errorf("starting prosody: %w", err)
		}
		// Prosody 0.12 stopped just after a stream closed (a test's
		// last one) sometimes finishes its shutdown but does not exit
		// until the next signal (or a second later): ask again.
		proc.repeat = 25 * time.Millisecond
		lastErr = proc.waitReady("prosody", startTimeout, p.ready)
		if lastErr == nil {
			p.StartupTime = time.Since(start)
			p.proc = proc
			return nil
		}
		proc.stop(stopTimeout)
		if !errors.Is(lastErr, errPortTaken) {
			break
		}
	}
	return lastErr
}

// Stop stops Prosody (SIGTERM, then SIGKILL after 5 s) before the test
// ends, e.g. to see what a client does when the server is gone.
func (p *Prosody) Stop() {
	if p.proc != nil {
		p.proc.stop(stopTimeout)
	}
}

// ready checks what Start waits for.
func (p *Prosody) ready() error {
	if log := p.fileLog(); strings.Contains(log, "Failed to open server port") {
		return fmt.Errorf("%w: %s", errPortTaken, firstLineWith(log, "Failed to open server port"))
	}
	ctx := context.Background()
	for _, h := range p.Options.VirtualHosts {
		s, err := OpenStream(ctx, p.C2SAddr, StreamOptions{To: h.Domain, Timeout: 2 * time.Second})
		if err != nil {
			return fmt.Errorf("c2s stream to %s: %w", h.Domain, err)
		}
		s.Close()
	}
	first := p.Options.VirtualHosts[0].Domain
	s, err := OpenStream(ctx, p.S2SAddr, StreamOptions{Server: true, To: first, From: "readiness.invalid", Timeout: 2 * time.Second})
	if err := answered(s, err); err != nil {
		return fmt.Errorf("s2s stream to %s: %w", first, err)
	}
	// A whole stream, not just a handshake: Prosody 0.12 stopped while
	// a TLS handshake is unfinished on its side hits an error in its
	// event loop and lingers for a second.
	for _, a := range []string{p.C2SDirectTLSAddr, p.S2SDirectTLSAddr} {
		s, err := OpenStream(ctx, a, StreamOptions{Server: a == p.S2SDirectTLSAddr, To: first, From: "readiness.invalid",
			DirectTLS: &tls.Config{InsecureSkipVerify: true}, Timeout: 2 * time.Second})
		if err := answered(s, err); err != nil {
			return fmt.Errorf("direct TLS on %s: %w", a, err)
		}
	}
	return nil
}

// fileLog is Prosody's log file.
func (p *Prosody) fileLog() string {
	data, _ := os.ReadFile(filepath.Join(p.run, "prosody.log"))
	return string(data)
}

// Log returns the end of Prosody's log file and its output, for
// failure messages.
func (p *Prosody) Log() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- prosody.log (end) ---\n%s\n", tail(p.fileLog(), 16000))
	if p.output != nil {
		if out := p.output.String(); out != "" {
			fmt.Fprintf(&b, "--- prosody output (end) ---\n%s\n", tail(out, 4000))
		}
	}
	return b.String()
}

// Register creates the account user@domain with password, through
// prosodyctl (before or after Start).
func (p *Prosody) Register(t testing.TB, user, domain, password string) {
	t.Helper()
	if out, err := p.Prosodyctl("register", user, domain, password); err != nil {
		t.Fatalf("prosodyctl register %s@%s: %v\n%s", user, domain, err, out)
	}
}

// Prosodyctl runs prosodyctl --config p.Config with args (as root,
// prosodyctl itself drops to the prosody user for most commands) and
// returns its combined output.
func (p *Prosody) Prosodyctl(args ...string) (string, error) {
	out, err := exec.Command(p.prosodyctl, append([]string{"--config", p.Config}, args...)...).CombinedOutput()
	return string(out), err
}

func firstLineWith(s, sub string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}
