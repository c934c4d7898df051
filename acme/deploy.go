package acme

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xmppcert/xmppcert/internal/atomicfile"
)

// Events passed to hooks in XMPPCERT_EVENT.
const (
	EventIssued  = "issued"
	EventRenewed = "renewed"
)

// Target installs a lineage's current version where a server reads it,
// and reloads the server. Targets run after every issuance and renewal.
type Target interface {
	// String names the target in output: "prosody /etc/prosody/certs".
	String() string
	// Deploy installs l and says what became of the server's reload. An
	// error means the files could not be installed or the reload
	// command failed. A failure leaves the lineage as it is.
	Deploy(ctx context.Context, l *Lineage, event string) (Reload, error)
}

// Reload is what a deploy target did about its server once the files
// were in place.
type Reload struct {
	// Server is true for a target that reloads a server (Prosody,
	// ejabberd), false for one that does not (a hook).
	Server bool
	// Done is true when the server was reloaded.
	Done bool
	// NotDone says why a server was not reloaded: not running by its
	// own status command, or no such command on this machine.
	NotDone string
}

// Default deploy locations, those of Debian's packages.
const (
	DefaultProsodyDir  = "/etc/prosody/certs"
	DefaultEjabberdDir = "/etc/ejabberd"
)

// ParseTarget reads a --deploy value: prosody[:CERTDIR] or
// ejabberd[:FILE]. The server's own configuration, for its status and
// reload, is set on the result by Request.Targets. Plain prosody and ejabberd deploy to the default
// locations, but a colon with nothing after it is refused: it is what
// `--deploy prosody:$DIR` becomes when DIR is unset, and quietly
// deploying to the default directory instead would put the
// certificate where the operator did not ask for it.
func ParseTarget(spec string) (Target, error) {
	kind, arg, colon := strings.Cut(spec, ":")
	switch kind {
	case "prosody":
		if colon && arg == "" {
			return nil, fmt.Errorf("deploy target %q has an empty path after the colon; give prosody:CERTDIR, or plain prosody for %s", spec, DefaultProsodyDir)
		}
		if arg == "" {
			arg = DefaultProsodyDir
		}
		return &ProsodyTarget{Dir: arg}, nil
	case "ejabberd":
		if colon && arg == "" {
			return nil, fmt.Errorf("deploy target %q has an empty path after the colon; give ejabberd:FILE, or plain ejabberd for %s", spec, filepath.Join(DefaultEjabberdDir, "HOST.pem"))
		}
		return &EjabberdTarget{File: arg}, nil
	}
	return nil, fmt.Errorf("unknown deploy target %q; use prosody[:CERTDIR] or ejabberd[:FILE]", spec)
}

// Targets builds a request's stored deploy targets and hooks, in the
// order issue ran them: --deploy targets, then --hook commands.
func (r Request) Targets() ([]Target, error) {
	var targets []Target
	for _, spec := range r.Deploy {
		t, err := ParseTarget(spec)
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case *ProsodyTarget:
			t.Config = r.ProsodyConfig
		case *EjabberdTarget:
			t.CtlConfig = r.EjabberdCtlConfig
		}
		targets = append(targets, t)
	}
	for _, h := range r.Hooks {
		if strings.TrimSpace(h) == "" {
			return nil, errors.New("empty hook command; give a shell command")
		}
		targets = append(targets, &HookTarget{Command: h})
	}
	return targets, nil
}

// ProsodyTarget writes HOST.crt (full chain) and HOST.key for the host
// and every component into Dir, where Prosody's certificate discovery
// finds them, then runs `prosodyctl reload` when `prosodyctl status`
// says Prosody is running, both with --config Config when set: without
// its configuration prosodyctl looks for the default one and may say
// that a Prosody started from another is not running. A missing Dir is
// created as Debian creates /etc/prosody/certs (see serverDir).
type ProsodyTarget struct {
	Dir string
	// Config is Prosody's configuration file; empty for the default.
	Config string
}

func (t *ProsodyTarget) String() string { return "prosody " + t.Dir }

// Deploy implements Target.
func (t *ProsodyTarget) Deploy(ctx context.Context, l *Lineage, _ string) (Reload, error) {
	full, key, err := lineagePEM(l)
	if err != nil {
		return Reload{}, err
	}
	if err := serverDir(t.Dir, "prosody"); err != nil {
		return Reload{}, err
	}
	for _, n := range l.Request.Names {
		base := filepath.Join(t.Dir, n.Domain)
		if err := atomicfile.WriteFile(base+".crt", full, 0o644); err != nil {
			return Reload{}, err
		}
		if err := writeServerKey(base+".key", key, "prosody"); err != nil {
			return Reload{}, err
		}
	}
	var global []string
	if t.Config != "" {
		global = []string{"--config", t.Config}
	}
	return reloadIfRunning(ctx, "Prosody", "prosodyctl", global, []string{"status"}, []string{"reload"})
}

// EjabberdTarget writes one PEM file with the key and the full chain (the
// form ejabberd's certfiles take), then runs `ejabberdctl reload_config`
// when `ejabberdctl status` says ejabberd is running, both with
// --ctl-config CtlConfig when set (ejabberdctl.cfg names the node to
// talk to). File defaults to /etc/ejabberd/HOST.pem; a missing directory
// is created (see serverDir).
type EjabberdTarget struct {
	File string
	// CtlConfig is ejabberdctl's configuration (ejabberdctl.cfg); empty
	// for the default.
	CtlConfig string
}

func (t *EjabberdTarget) String() string {
	if t.File == "" {
		return "ejabberd " + filepath.Join(DefaultEjabberdDir, "HOST.pem")
	}
	return "ejabberd " + t.File
}

// Deploy implements Target.
func (t *EjabberdTarget) Deploy(ctx context.Context, l *Lineage, _ string) (Reload, error) {
	full, key, err := lineagePEM(l)
	if err != nil {
		return Reload{}, err
	}
	file := t.File
	if file == "" {
		file = filepath.Join(DefaultEjabberdDir, l.Name+".pem")
	}
	if err := serverDir(filepath.Dir(file), "ejabberd"); err != nil {
		return Reload{}, err
	}
	if err := writeServerKey(file, append(key, full...), "ejabberd"); err != nil {
		return Reload{}, err
	}
	var global []string
	if t.CtlConfig != "" {
		global = []string{"--ctl-config", t.CtlConfig}
	}
	return reloadIfRunning(ctx, "ejabberd", "ejabberdctl", global, []string{"status"}, []string{"reload_config"})
}

// HookTarget runs a shell command with certbot's deploy-hook environment
// (RENEWED_LINEAGE, RENEWED_DOMAINS), so existing scripts such as
// `prosodyctl --root cert import $RENEWED_LINEAGE` work unchanged, plus
// XMPPCERT_* variables naming each file.
type HookTarget struct {
	Command string
	// Timeout bounds the command; HookTimeout when zero.
	Timeout time.Duration
}

// HookTimeout is how long a hook may run.
const HookTimeout = 5 * time.Minute

func (t *HookTarget) String() string { return "hook " + t.Command }

// Deploy implements Target. A hook reloads no server of its own.
func (t *HookTarget) Deploy(ctx context.Context, l *Lineage, event string) (Reload, error) {
	return Reload{}, t.run(ctx, l, event)
}

// run runs the hook's command with its environment, bounded in time.
func (t *HookTarget) run(ctx context.Context, l *Lineage, event string) error {
	timeout := t.Timeout
	if timeout == 0 {
		timeout = HookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := command(ctx, "/bin/sh", "-c", t.Command)
	cmd.Env = append(os.Environ(), HookEnv(l, event)...)
	cmd.Stdout = os.Stderr // stdout is for xmppcert's own output (--json)
	if err := runCommand(cmd); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("hook %q did not finish within %v and was killed: %w", t.Command, timeout, err)
		}
		return err
	}
	return nil
}

// HookEnv is the environment a hook gets.
func HookEnv(l *Lineage, event string) []string {
	domains := strings.Join(l.Request.Domains(), " ")
	return []string{
		"RENEWED_LINEAGE=" + l.Path,
		"RENEWED_DOMAINS=" + domains,
		"XMPPCERT_LINEAGE=" + l.Path,
		"XMPPCERT_CERT=" + l.File(CertFile),
		"XMPPCERT_CHAIN=" + l.File(ChainFile),
		"XMPPCERT_FULLCHAIN=" + l.File(FullchainFile),
		"XMPPCERT_KEY=" + l.File(KeyFile),
		"XMPPCERT_DOMAINS=" + domains,
		"XMPPCERT_EVENT=" + event,
	}
}

// lineagePEM encodes the full chain and the key of l in the form the
// lineage stores them. They come from l itself, not from live/NAME, so
// that what is deployed is the certificate and key that belong together
// even if live/NAME moves on meanwhile.
func lineagePEM(l *Lineage) (full, key []byte, err error) {
	if len(l.Chain) == 0 || l.Key == nil {
		return nil, nil, fmt.Errorf("lineage %s has no certificate or key to deploy", l.Name)
	}
	der, err := x509.MarshalPKCS8PrivateKey(l.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("lineage %s: %w", l.Name, err)
	}
	for _, c := range l.Chain {
		full = append(full, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return full, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// serverGID is the id of group when running as root and that group
// exists, the group of the server that must read what a target writes;
// else -1.
func serverGID(group string) int {
	if os.Geteuid() != 0 {
		return -1
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return -1
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1
	}
	return gid
}

// serverDir makes sure that dir exists. A missing dir is created as
// Debian creates /etc/prosody/certs: mode 0750 with group group when
// serverGID finds it, else 0700 for the current user; missing parents
// get 0755, so that the server's user can reach dir.
func serverDir(dir, group string) error {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if err := atomicfile.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	gid := serverGID(group)
	perm := os.FileMode(0o700)
	if gid >= 0 {
		perm = 0o750
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // created meanwhile; whoever did owns its mode
		}
		return err
	}
	if gid >= 0 {
		if err := atomicfile.ChmodDir(dir, perm, gid); err != nil {
			return err
		}
	}
	return atomicfile.SyncDir(parent)
}

// writeServerKey writes a file holding a private key: 0640 and group
// group when serverGID finds it (the server's user must read it), else
// 0600 for the current user.
func writeServerKey(path string, data []byte, group string) error {
	gid := serverGID(group)
	if gid < 0 {
		return atomicfile.WriteFile(path, data, 0o600)
	}
	return atomicfile.WriteFileGroup(path, data, 0o640, gid)
}

// reloadTimeout bounds `tool status` and `tool reload` together.
const reloadTimeout = time.Minute

// reloadIfRunning runs `tool GLOBAL... reload...` when `tool GLOBAL...
// status...` says the server is running (exits 0), and says what it
// did. A missing tool, or a status that exits non-zero, is a server not
// reloaded, with the reason; a status command that cannot be run or does
// not finish, and a reload that fails, are errors: the server may be
// running the old certificate.
func reloadIfRunning(ctx context.Context, server, tool string, global, status, reload []string) (Reload, error) {
	r := Reload{Server: true}
	path, err := exec.LookPath(tool)
	if err != nil {
		r.NotDone = fmt.Sprintf("%s is not installed here, so there is no %s to reload", tool, server)
		return r, nil
	}
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	statusArgs := append(append([]string{}, global...), status...)
	shown := strings.Join(append([]string{tool}, statusArgs...), " ")
	err = command(ctx, path, statusArgs...).Run()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return r, fmt.Errorf("%s: %w; the new certificate may not be loaded", shown, ctx.Err())
	case errors.As(err, &exit):
		r.NotDone = fmt.Sprintf("'%s' says %s is not running (exit %d)", shown, server, exit.ExitCode())
		return r, nil
	case err != nil:
		return r, fmt.Errorf("%s: %w; the new certificate may not be loaded", shown, err)
	}
	if err := runCommand(command(ctx, path, append(append([]string{}, global...), reload...)...)); err != nil {
		return r, err
	}
	r.Done = true
	return r, nil
}

// waitDelay is how long a killed command's children may keep its output
// open before Wait gives up on them.
const waitDelay = time.Second

// command is exec.CommandContext for a shell command or server tool that
// may start children: it runs in its own process group, and when ctx
// ends the whole group is killed, so that no `sleep` or stuck reload is
// left behind writing to xmppcert's stderr. Should a child have left the
// group, Wait still returns within waitDelay.
func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	return cmd
}

// maxStderr bounds what a failing command's stderr adds to an error.
const maxStderr = 2000

// runCommand runs cmd and, when it fails, returns an error that carries
// the command's stderr.
func runCommand(cmd *exec.Cmd) error {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(stderr.String())
	if len(msg) > maxStderr {
		msg = "..." + msg[len(msg)-maxStderr:]
	}
	if errors.Is(cmd.Err, exec.ErrNotFound) || msg == "" {
		return fmt.Errorf("%s: %w", strings.Join(cmd.Args, " "), err)
	}
	return fmt.Errorf("%s: %w: %s", strings.Join(cmd.Args, " "), err, msg)
}
