package testxmpp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// EjabberdHost is a host ejabberd serves.
type EjabberdHost struct {
	// Domain is the host's domain.
	Domain string
	// CertFile and KeyFile are PEM files, the chain (leaf first) and its
	// key, copied into the server's directory and listed in certfiles:
	// ejabberd picks the certificate for a host by the names in it.
	CertFile, KeyFile string
}

// EjabberdOptions configures StartEjabberd.
type EjabberdOptions struct {
	// Hosts are the hosts served; at least one.
	Hosts []EjabberdHost
	// StartTLSRequired is the c2s listener's starttls_required: STARTTLS
	// offered with <required/>, and nothing else before TLS. False
	// offers STARTTLS without <required/> (starttls: true).
	StartTLSRequired bool
	// S2SUseStartTLS is s2s_use_starttls: "false", "optional", "true"
	// or "required"; "required" (Debian's default configuration) when
	// empty. With "required", the s2s port offers STARTTLS <required/>
	// and nothing else before TLS, and dialback (with <errors/>) and SASL
	// EXTERNAL after it; with "optional", dialback and an empty SASL
	// mechanisms list before TLS too.
	S2SUseStartTLS string
	// CAFile, when set, is ca_file (copied): the CAs ejabberd trusts for
	// s2s peer certificates instead of the system's.
	CAFile string
	// Config is more top-level YAML, e.g. "c2s_ciphers: \"HIGH\"".
	Config string
}

// Ejabberd is a running ejabberd on free loopback ports, with its
// configuration, Mnesia spool and logs in a directory of its own.
type Ejabberd struct {
	// Dir holds ejabberd.yml, ejabberdctl.cfg, the certificate copies
	// (Dir/certs), the spool (Dir/db) and the logs (Dir/log).
	Dir string
	// ConfigFile is Dir/ejabberd.yml.
	ConfigFile string
	// Node is the Erlang node name, unique per start
	// ("xmppcert-HEX@localhost").
	Node string
	// The ports (all on 127.0.0.1): c2s (STARTTLS), s2s (ejabberd_s2s_in,
	// STARTTLS per S2SUseStartTLS), and direct TLS c2s and s2s
	// (listeners with tls: true).
	C2SPort, S2SPort, C2SDirectTLSPort, S2SDirectTLSPort int
	// The same as "127.0.0.1:PORT" addresses.
	C2SAddr, S2SAddr, C2SDirectTLSAddr, S2SDirectTLSAddr string
	// DistPort is the Erlang distribution port (ERL_DIST_PORT): the
	// node listens there on 127.0.0.1 and needs no epmd.
	DistPort int
	// Options are the options the configuration was written from, with
	// certificate paths rewritten to the copies.
	Options EjabberdOptions
	// StartupTime is how long the start took from exec until every host
	// answered a stream header and the direct TLS ports a handshake.
	StartupTime time.Duration

	ctl    string
	user   *serviceUser
	output *testtool.LockedBuffer
	proc   *process
}

// StartEjabberd is NewEjabberd followed by Start: a running ejabberd
// that stops when the test ends.
func StartEjabberd(t testing.TB, opts EjabberdOptions) *Ejabberd {
	t.Helper()
	e := NewEjabberd(t, opts)
	e.Start(t)
	return e
}

// NewEjabberd writes an ejabberd configuration for opts in a new
// directory, on free ports of 127.0.0.1, without starting ejabberd: the
// hosts and their certfiles, a c2s listener with STARTTLS (required or
// not), an ejabberd_s2s_in listener, direct TLS listeners for both,
// s2s_use_starttls, and mod_s2s_dialback (with mod_disco). ejabberdctl.cfg
// in the directory sets ERL_DIST_PORT and INET_DIST_INTERFACE, so that
// the node uses a free loopback port for Erlang distribution and neither
// starts nor needs epmd: nothing is left running after the test, and
// concurrent tests share nothing. It also names the node, its spool,
// logs and configuration, so that `ejabberdctl --ctl-config
// DIR/ejabberdctl.cfg` alone reaches it (CtlConfig).
func NewEjabberd(t testing.TB, opts EjabberdOptions) *Ejabberd {
	t.Helper()
	ctl := testtool.Require(t, "ejabberdctl", "ejabberd")
	if len(opts.Hosts) == 0 {
		t.Fatal("testxmpp.NewEjabberd: no hosts")
	}
	if opts.S2SUseStartTLS == "" {
		opts.S2SUseStartTLS = "required"
	}
	e := &Ejabberd{ctl: ctl, user: lookupServiceUser(t, "ejabberd", "ejabberd")}
	e.Dir = serverDir(t, "ejabberd")
	e.ConfigFile = filepath.Join(e.Dir, "ejabberd.yml")
	certs := filepath.Join(e.Dir, "certs")
	for _, d := range []string{"db", "log", "certs"} {
		if err := os.Mkdir(filepath.Join(e.Dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	opts.Hosts = append([]EjabberdHost(nil), opts.Hosts...)
	for i := range opts.Hosts {
		h := &opts.Hosts[i]
		if h.Domain == "" || h.CertFile == "" || h.KeyFile == "" {
			t.Fatalf("testxmpp.NewEjabberd: host %+v needs Domain, CertFile and KeyFile", *h)
		}
		c, k := filepath.Join(certs, h.Domain+".crt"), filepath.Join(certs, h.Domain+".key")
		copyFile(t, h.CertFile, c, 0o644)
		copyFile(t, h.KeyFile, k, 0o600)
		h.CertFile, h.KeyFile = c, k
	}
	if opts.CAFile != "" {
		ca := filepath.Join(e.Dir, "trusted-ca.pem")
		copyFile(t, opts.CAFile, ca, 0o644)
		opts.CAFile = ca
	}
	e.Options = opts
	if e.user == nil {
		e.ctl = e.userCtl(t)
	}
	// Erlang's inet configuration: without the file the VM complains.
	if err := os.WriteFile(filepath.Join(e.Dir, "inetrc"), []byte("{lookup,[\"file\",\"native\"]}.\n{host,{127,0,0,1}, [\"localhost\"]}.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.writeConfig(t)
	return e
}

// Start runs ejabberd in the foreground, as an operator runs it by hand:
//
//	ejabberdctl --config-dir D --config D/ejabberd.yml --spool D/db --logs D/log --node N@localhost foreground
//
// and waits until every host answers a c2s stream header, the s2s port
// a server stream header, and the direct TLS ports a handshake. If
// another process took one of the ports, it starts again on fresh ports
// (rewriting the configuration). As root, ejabberdctl runs as the
// ejabberd user (it would otherwise re-run itself through su, which
// does not pass signals on to ejabberd); as another user, a copy of
// ejabberdctl that runs ejabberd as the current user. ejabberd stops
// when the test ends, or at Stop (SIGTERM to the Erlang VM, which then
// stops cleanly in about a second); its log is printed when the test
// failed.
func (e *Ejabberd) Start(t testing.TB) {
	t.Helper()
	if e.proc != nil {
		t.Fatal("testxmpp: ejabberd started twice")
	}
	var lastErr error
	for attempt := range 5 {
		if attempt > 0 {
			e.writeConfig(t)
		}
		e.user.chownTree(t, e.Dir)
		lastErr = e.start(t)
		if lastErr == nil {
			return
		}
		if !errors.Is(lastErr, errPortTaken) {
			break
		}
	}
	t.Fatalf("ejabberd did not start: %v\n%s", lastErr, e.Log())
}

// userCtl writes a copy of ejabberdctl that runs ejabberd as the
// current user: the script runs only as root or as the ejabberd user
// (INSTALLUSER) otherwise.
func (e *Ejabberd) userCtl(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(e.ctl)
	if err != nil {
		t.Fatal(err)
	}
	const line = "\nINSTALLUSER=ejabberd\n"
	if !strings.Contains(string(data), line) {
		t.Fatalf("%s has no %q line to replace: run the test as root so that ejabberd runs as the ejabberd user", e.ctl, strings.TrimSpace(line))
	}
	path := filepath.Join(e.Dir, "ejabberdctl")
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), line, "\nINSTALLUSER=\n", 1)), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeConfig picks free ports and a node name and writes ejabberd.yml
// and ejabberdctl.cfg.
func (e *Ejabberd) writeConfig(t testing.TB) {
	t.Helper()
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	e.C2SPort, e.S2SPort, e.C2SDirectTLSPort, e.S2SDirectTLSPort, e.DistPort = ports[0], ports[1], ports[2], ports[3], ports[4]
	e.C2SAddr, e.S2SAddr = addr(e.C2SPort), addr(e.S2SPort)
	e.C2SDirectTLSAddr, e.S2SDirectTLSAddr = addr(e.C2SDirectTLSPort), addr(e.S2SDirectTLSPort)
	var id [4]byte
	rand.Read(id[:])
	e.Node = "xmppcert-" + hex.EncodeToString(id[:]) + "@localhost"
	if err := os.WriteFile(e.ConfigFile, []byte(e.config()), 0o644); err != nil {
		t.Fatal(err)
	}
	// ejabberdctl sources this file: with the node, its spool and logs,
	// the configuration and the Erlang cookie, any `ejabberdctl
	// --ctl-config FILE status|reload_config` reaches this ejabberd, as
	// an operator's ejabberdctl.cfg does theirs. The cookie is given
	// outright: as root ejabberdctl runs erl through su, which resets
	// HOME, where the cookie file would be.
	d := e.Dir
	var cookie [12]byte
	rand.Read(cookie[:])
	ctlcfg := fmt.Sprintf("# written by xmppcert's internal/testxmpp\nERL_DIST_PORT=%d\nINET_DIST_INTERFACE=%s\n"+
		"ERLANG_NODE=%s\nCONFIG_DIR=%s\nEJABBERD_CONFIG_PATH=%s\nSPOOL_DIR=%s\nLOGS_DIR=%s\nERL_OPTIONS=\"-setcookie %s\"\n",
		e.DistPort, Loopback, e.Node, d, e.ConfigFile, filepath.Join(d, "db"), filepath.Join(d, "log"), hex.EncodeToString(cookie[:]))
	if err := os.WriteFile(filepath.Join(e.Dir, "ejabberdctl.cfg"), []byte(ctlcfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// config is ejabberd.yml.
func (e *Ejabberd) config() string {
	o := e.Options
	var b strings.Builder
	b.WriteString("# written by xmppcert's internal/testxmpp\nloglevel: info\nlog_rotate_count: 0\nhosts:\n")
	for _, h := range o.Hosts {
		fmt.Fprintf(&b, "  - %s\n", strconv.Quote(h.Domain))
	}
	b.WriteString("certfiles:\n")
	for _, h := range o.Hosts {
		fmt.Fprintf(&b, "  - %s\n  - %s\n", strconv.Quote(h.CertFile), strconv.Quote(h.KeyFile))
	}
	if o.CAFile != "" {
		fmt.Fprintf(&b, "ca_file: %s\n", strconv.Quote(o.CAFile))
	}
	fmt.Fprintf(&b, `s2s_use_starttls: %[1]s
listen:
  -
    port: %[2]d
    ip: %[6]q
    module: ejabberd_c2s
    starttls: true
    starttls_required: %[7]t
  -
    port: %[3]d
    ip: %[6]q
    module: ejabberd_s2s_in
  -
    port: %[4]d
    ip: %[6]q
    module: ejabberd_c2s
    tls: true
  -
    port: %[5]d
    ip: %[6]q
    module: ejabberd_s2s_in
    tls: true
modules:
  mod_s2s_dialback: {}
  mod_disco: {}
`, o.S2SUseStartTLS, e.C2SPort, e.S2SPort, e.C2SDirectTLSPort, e.S2SDirectTLSPort, Loopback, o.StartTLSRequired)
	if o.Config != "" {
		b.WriteString(o.Config + "\n")
	}
	return b.String()
}

// chownTree gives dir and everything under it to the service user.
func (u *serviceUser) chownTree(t testing.TB, dir string) {
	t.Helper()
	if u == nil {
		return
	}
	err := filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, u.uid, u.gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// start runs ejabberdctl foreground and waits until it is ready.
func (e *Ejabberd) start(t testing.TB) error {
	t.Helper()
	// A fresh spool and log: a failed start leaves both behind.
	for _, d := range []string{"db", "log"} {
		os.RemoveAll(filepath.Join(e.Dir, d))
		os.Mkdir(filepath.Join(e.Dir, d), 0o750)
		e.user.chown(t, filepath.Join(e.Dir, d))
	}
	e.output = &testtool.LockedBuffer{}
	d := e.Dir
	cmd := exec.Command(e.ctl, "--config-dir", d, "--config", e.ConfigFile, "--spool", filepath.Join(d, "db"),
		"--logs", filepath.Join(d, "log"), "--node", e.Node, "foreground")
	cmd.Dir = d
	cmd.Stdout, cmd.Stderr = e.output, e.output
	// HOME: where the Erlang VM keeps its .erlang.cookie.
	cmd.Env = append(os.Environ(), "HOME="+d)
	if cred := e.user.credential(); cred != nil {
		cmd.SysProcAttr = sysProcAttr(cred)
		cmd.Env = append(cmd.Env, "USER="+e.user.name, "LOGNAME="+e.user.name)
	}
	start := time.Now()
	proc, err := startProcess(cmd, true)
	if err != nil {
		t.Fatalf("starting ejabberdctl: %v", err)
	}
	// ejabberdctl is a shell script that waits for the Erlang VM: TERM
	// the VM alone, which stops ejabberd cleanly, and the script then
	// exits (a TERM to the script would leave the VM running).
	proc.term = func() { signalGroupExceptLeader(proc.cmd.Process.Pid, syscall.SIGTERM) }
	err = proc.waitReady("ejabberd", startTimeout, e.ready)
	if err == nil {
		e.StartupTime = time.Since(start)
		e.proc = proc
		t.Cleanup(func() {
			if e.proc.stop(stopTimeout) && !t.Failed() {
				t.Errorf("ejabberd did not exit within %v of SIGTERM\n%s", stopTimeout, e.Log())
			}
			if t.Failed() {
				t.Logf("ejabberd (%s) log:\n%s", e.ConfigFile, e.Log())
			}
		})
		return nil
	}
	proc.stop(stopTimeout)
	return err
}

// CtlConfig is Dir/ejabberdctl.cfg, with which ejabberdctl reaches this
// ejabberd: `ejabberdctl --ctl-config CtlConfig() status`.
func (e *Ejabberd) CtlConfig() string { return filepath.Join(e.Dir, "ejabberdctl.cfg") }

// Restart stops ejabberd and starts it again with the same
// configuration and ports, so that files changed in Dir (the copy of
// CAFile) are read anew.
func (e *Ejabberd) Restart(t testing.TB) {
	t.Helper()
	if e.proc == nil {
		t.Fatal("testxmpp: ejabberd restarted before Start")
	}
	e.proc.stop(stopTimeout)
	e.proc = nil
	e.Start(t)
}

// Stop stops ejabberd before the test ends.
func (e *Ejabberd) Stop() {
	if e.proc != nil {
		e.proc.stop(stopTimeout)
	}
}

// ready checks that every host answers a c2s stream header, the s2s
// port a server stream header, and the direct TLS ports a handshake.
func (e *Ejabberd) ready() error {
	if out := e.output.String() + e.fileLog(); strings.Contains(out, "eaddrinuse") {
		return fmt.Errorf("%w: %s", errPortTaken, firstLineWith(out, "eaddrinuse"))
	}
	ctx := context.Background()
	for _, h := range e.Options.Hosts {
		s, err := OpenStream(ctx, e.C2SAddr, StreamOptions{To: h.Domain, Timeout: 2 * time.Second})
		if err != nil {
			return fmt.Errorf("c2s stream to %s: %w", h.Domain, err)
		}
		s.Close()
	}
	first := e.Options.Hosts[0].Domain
	s, err := OpenStream(ctx, e.S2SAddr, StreamOptions{Server: true, To: first, From: "readiness.invalid", Timeout: 2 * time.Second})
	if err := answered(s, err); err != nil {
		return fmt.Errorf("s2s stream to %s: %w", first, err)
	}
	// A whole stream, not just a handshake: Prosody 0.12 stopped while
	// a TLS handshake is unfinished on its side hits an error in its
	// event loop and lingers for a second.
	for _, a := range []string{e.C2SDirectTLSAddr, e.S2SDirectTLSAddr} {
		s, err := OpenStream(ctx, a, StreamOptions{Server: a == e.S2SDirectTLSAddr, To: first, From: "readiness.invalid",
			DirectTLS: &tls.Config{InsecureSkipVerify: true}, Timeout: 2 * time.Second})
		if err := answered(s, err); err != nil {
			return fmt.Errorf("direct TLS on %s: %w", a, err)
		}
	}
	return nil
}

func (e *Ejabberd) fileLog() string {
	data, _ := os.ReadFile(filepath.Join(e.Dir, "log", "ejabberd.log"))
	return string(data)
}

// Log returns the end of ejabberd's log file and of its output, for
// failure messages.
func (e *Ejabberd) Log() string {
	var b strings.Builder
	fmt.Fprintf(&b, "--- ejabberd.log (end) ---\n%s\n", tail(e.fileLog(), 12000))
	if e.output != nil {
		fmt.Fprintf(&b, "--- ejabberdctl output (end) ---\n%s\n", tail(e.output.String(), 6000))
	}
	return b.String()
}

// signalGroupExceptLeader sends sig to every process in the process
// group pgid except its leader.
func signalGroupExceptLeader(pgid int, sig syscall.Signal) {
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == pgid {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid {
			syscall.Kill(pid, sig)
		}
	}
}
