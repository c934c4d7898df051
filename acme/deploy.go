package acme

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
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
	// Deploy installs l. A failure leaves the lineage as it is.
	Deploy(ctx context.Context, l *Lineage, event string) error
}

// Default deploy locations, those of Debian's packages.
const (
	DefaultProsodyDir  = "/etc/prosody/certs"
	DefaultEjabberdDir = "/etc/ejabberd"
)

// ParseTarget reads a --deploy value: prosody[:CERTDIR] or
// ejabberd[:FILE].
func ParseTarget(spec string) (Target, error) {
	kind, arg, _ := strings.Cut(spec, ":")
	switch kind {
	case "prosody":
		if arg == "" {
			arg = DefaultProsodyDir
		}
		return &ProsodyTarget{Dir: arg}, nil
	case "ejabberd":
		return &EjabberdTarget{File: arg}, nil
	}
	return nil, fmt.Errorf("unknown deploy target %q; use prosody[:CERTDIR] or ejabberd[:FILE]", spec)
}

// ProsodyTarget writes HOST.crt (full chain) and HOST.key for the host
// and every component into Dir, where Prosody's certificate discovery
// finds them, then runs `prosodyctl reload` when Prosody is running.
type ProsodyTarget struct{ Dir string }

func (t *ProsodyTarget) String() string { return "prosody " + t.Dir }

// Deploy implements Target.
func (t *ProsodyTarget) Deploy(ctx context.Context, l *Lineage, _ string) error {
	full, key, err := lineagePEM(l)
	if err != nil {
		return err
	}
	for _, n := range l.Request.Names {
		base := filepath.Join(t.Dir, n.Domain)
		if err := atomicfile.WriteFile(base+".crt", full, 0o644); err != nil {
			return err
		}
		if err := writeServerKey(base+".key", key, "prosody"); err != nil {
			return err
		}
	}
	return reloadIfRunning(ctx, "prosodyctl", []string{"status"}, []string{"reload"})
}

// EjabberdTarget writes one PEM file with the key and the full chain (the
// form ejabberd's certfiles take), then runs `ejabberdctl reload_config`
// when ejabberd is running. File defaults to /etc/ejabberd/HOST.pem.
type EjabberdTarget struct{ File string }

func (t *EjabberdTarget) String() string {
	if t.File == "" {
		return "ejabberd " + filepath.Join(DefaultEjabberdDir, "HOST.pem")
	}
	return "ejabberd " + t.File
}

// Deploy implements Target.
func (t *EjabberdTarget) Deploy(ctx context.Context, l *Lineage, _ string) error {
	full, key, err := lineagePEM(l)
	if err != nil {
		return err
	}
	file := t.File
	if file == "" {
		file = filepath.Join(DefaultEjabberdDir, l.Name+".pem")
	}
	if err := writeServerKey(file, append(key, full...), "ejabberd"); err != nil {
		return err
	}
	return reloadIfRunning(ctx, "ejabberdctl", []string{"status"}, []string{"reload_config"})
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

// Deploy implements Target.
func (t *HookTarget) Deploy(ctx context.Context, l *Lineage, event string) error {
	timeout := t.Timeout
	if timeout == 0 {
		timeout = HookTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", t.Command)
	cmd.Env = append(os.Environ(), HookEnv(l, event)...)
	cmd.Stdout = os.Stderr // stdout is for xmppcert's own output (--json)
	return runCommand(cmd)
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

// lineagePEM returns the full chain and the key as the lineage stores
// them.
func lineagePEM(l *Lineage) (full, key []byte, err error) {
	if full, err = os.ReadFile(l.File(FullchainFile)); err != nil {
		return nil, nil, err
	}
	if key, err = os.ReadFile(l.File(KeyFile)); err != nil {
		return nil, nil, err
	}
	return full, key, nil
}

// writeServerKey writes a file holding a private key: 0640 and group
// group when running as root and that group exists (the server's user
// must read it), else 0600 for the current user.
func writeServerKey(path string, data []byte, group string) error {
	gid := -1
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup(group); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	if gid < 0 {
		return atomicfile.WriteFile(path, data, 0o600)
	}
	if err := atomicfile.WriteFile(path, data, 0o640); err != nil {
		return err
	}
	return os.Chown(path, -1, gid)
}

// reloadIfRunning runs `tool reload...` when `tool status...` says the
// server is running. A missing tool means there is no server to reload.
func reloadIfRunning(ctx context.Context, tool string, status, reload []string) error {
	path, err := exec.LookPath(tool)
	if err != nil {
		return nil
	}
	if exec.CommandContext(ctx, path, status...).Run() != nil {
		return nil
	}
	return runCommand(exec.CommandContext(ctx, path, reload...))
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
