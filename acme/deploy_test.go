package acme_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// deployCA is the embedded CA, created fresh for one test.
func deployCA(t *testing.T) *localca.CA {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := localca.Init(dir); err != nil {
		t.Fatal(err)
	}
	ca, err := localca.Open(dir, localca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ca.Close() })
	return ca
}

// issueLineage issues a new version of the lineage of host with
// conference.HOST as a component, holding the lock as issue does.
func issueLineage(t *testing.T, store acme.Store, ca acme.Issuer, host string) *acme.Lineage {
	t.Helper()
	req, err := acme.NewRequest(host, xmppaddr.RoleHost, []string{"conference." + host}, acme.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := store.Lock(host)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	got, err := acme.Obtain(context.Background(), store, ca, req)
	if err != nil {
		t.Fatal(err)
	}
	return got.Lineage
}

// newLineage is one issued lineage for example.org and
// conference.example.org in a fresh state directory.
func newLineage(t *testing.T) *acme.Lineage {
	t.Helper()
	return issueLineage(t, acme.DiskStore{Dir: t.TempDir()}, deployCA(t), "example.org")
}

// fakeTool puts a script named name first in $PATH for the rest of the
// test. `name [OPTIONS] status` sleeps statusSleep seconds (when not zero) and
// exits statusExit; any other command writes stderr and exits
// otherExit. Every call appends its arguments as one line to the file
// whose path fakeTool returns.
func fakeTool(t *testing.T, name string, statusExit, statusSleep, otherExit int, stderr string) (log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "calls")
	script := fmt.Sprintf(`#!/bin/sh
echo "$*" >> '%s'
for last; do :; done
if [ "$last" = status ]; then
	if [ %d -gt 0 ]; then sleep %d; fi
	exit %d
fi
printf '%%s' '%s' >&2
exit %d
`, log, statusSleep, statusSleep, statusExit, stderr, otherExit)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

// calls lists the argument lines a fake tool recorded.
func calls(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// wantKeyMode is what a deployed key must look like: 0640 with the
// server's group when running as root and that group exists, else 0600
// (gid -1: not checked).
func wantKeyMode(group string) (fs.FileMode, int) {
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup(group); err == nil {
			gid, _ := strconv.Atoi(g.Gid)
			return 0o640, gid
		}
	}
	return 0o600, -1
}

// checkMode fails unless path has mode perm and, when gid >= 0, that
// group.
func checkMode(t *testing.T, path string, perm fs.FileMode, gid int) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != perm {
		t.Errorf("%s: mode %v, want %v", path, st.Mode().Perm(), perm)
	}
	if gid >= 0 {
		if got := int(st.Sys().(*syscall.Stat_t).Gid); got != gid {
			t.Errorf("%s: group %d, want %d", path, got, gid)
		}
	}
}

// readPEM splits a PEM file into its certificates and its private key,
// in file order ("CERTIFICATE" or "PRIVATE KEY" per block).
func readPEM(t *testing.T, path string) (types []string, certs []*x509.Certificate, key any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		types = append(types, block.Type)
		switch block.Type {
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			certs = append(certs, c)
		case "PRIVATE KEY":
			if key, err = x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		}
	}
	if len(bytes.TrimSpace(b)) != 0 {
		t.Errorf("%s: trailing data after the PEM blocks", path)
	}
	return types, certs, key
}

// checkDeployed fails unless certs is l's full chain (leaf, then
// intermediates) and key is l's key.
func checkDeployed(t *testing.T, what string, l *acme.Lineage, certs []*x509.Certificate, key any) {
	t.Helper()
	if len(certs) != len(l.Chain) || len(certs) < 2 {
		t.Fatalf("%s: %d certificates, want the full chain of %d (leaf and intermediate)", what, len(certs), len(l.Chain))
	}
	for i := range certs {
		if !certs[i].Equal(l.Chain[i]) {
			t.Errorf("%s: certificate %d is %q, want %q", what, i, certs[i].Subject, l.Chain[i].Subject)
		}
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		t.Fatalf("%s: no private key", what)
	}
	if !l.Key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
		t.Errorf("%s: the key is not the lineage's", what)
	}
}

func TestParseTarget(t *testing.T) {
	good := []struct {
		spec string
		want acme.Target
		str  string
	}{
		{"prosody", &acme.ProsodyTarget{Dir: acme.DefaultProsodyDir}, "prosody /etc/prosody/certs"},
		{"prosody:/srv/xmpp/certs", &acme.ProsodyTarget{Dir: "/srv/xmpp/certs"}, "prosody /srv/xmpp/certs"},
		{"ejabberd", &acme.EjabberdTarget{}, "ejabberd /etc/ejabberd/HOST.pem"},
		{"prosody:certs", &acme.ProsodyTarget{Dir: "certs"}, "prosody certs"},
		{"ejabberd:xmpp.pem", &acme.EjabberdTarget{File: "xmpp.pem"}, "ejabberd xmpp.pem"},
		{"ejabberd:/etc/ejabberd/xmpp.pem", &acme.EjabberdTarget{File: "/etc/ejabberd/xmpp.pem"}, "ejabberd /etc/ejabberd/xmpp.pem"},
	}
	for _, c := range good {
		got, err := acme.ParseTarget(c.spec)
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", c.spec, err)
			continue
		}
		if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", c.want) {
			t.Errorf("ParseTarget(%q) = %#v, want %#v", c.spec, got, c.want)
		}
		if got.String() != c.str {
			t.Errorf("ParseTarget(%q).String() = %q, want %q", c.spec, got.String(), c.str)
		}
	}
	for _, spec := range []string{"", ":", ":/etc/prosody/certs", "nginx", "nginx:/etc/nginx/cert.pem", "prosodyctl", "hook:reload.sh", " prosody"} {
		got, err := acme.ParseTarget(spec)
		if err == nil {
			t.Errorf("ParseTarget(%q) = %v, want an error", spec, got)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("%q", spec)) || !strings.Contains(msg, "prosody[:CERTDIR]") || !strings.Contains(msg, "ejabberd[:FILE]") {
			t.Errorf("ParseTarget(%q): error %q does not name the spec and the accepted forms", spec, msg)
		}
	}
	// A colon with nothing after it is what `--deploy prosody:$DIR` gives
	// when DIR is unset: an error naming the value and both ways out,
	// never the default location.
	for _, c := range []struct{ spec, want string }{
		{"prosody:", `deploy target "prosody:" has an empty path after the colon; give prosody:CERTDIR, or plain prosody for /etc/prosody/certs`},
		{"ejabberd:", `deploy target "ejabberd:" has an empty path after the colon; give ejabberd:FILE, or plain ejabberd for /etc/ejabberd/HOST.pem`},
	} {
		got, err := acme.ParseTarget(c.spec)
		if err == nil {
			t.Errorf("ParseTarget(%q) = %v, want an error", c.spec, got)
			continue
		}
		if err.Error() != c.want {
			t.Errorf("ParseTarget(%q): error %q, want %q", c.spec, err, c.want)
		}
	}
}

// TestProsodyTarget deploys two versions of a lineage into an existing
// directory while Prosody is not running: HOST.crt (full chain) and
// HOST.key for the host and its component, nothing else, replaced by the
// second version, and no reload, said with the status command that said
// so (given Prosody's configuration).
func TestProsodyTarget(t *testing.T) {
	log := fakeTool(t, "prosodyctl", 3, 0, 0, "")
	store := acme.DiskStore{Dir: t.TempDir()}
	ca := deployCA(t)
	dir := t.TempDir()
	target := &acme.ProsodyTarget{Dir: dir, Config: "/srv/prosody/prosody.cfg.lua"}
	keyPerm, keyGID := wantKeyMode("prosody")
	for version := 1; version <= 2; version++ {
		l := issueLineage(t, store, ca, "example.org")
		r, err := target.Deploy(context.Background(), l, acme.EventIssued)
		if err != nil {
			t.Fatalf("version %d: %v", version, err)
		}
		if want := (acme.Reload{Server: true, NotDone: "'prosodyctl --config /srv/prosody/prosody.cfg.lua status' says Prosody is not running (exit 3)"}); r != want {
			t.Errorf("version %d: %+v; want %+v", version, r, want)
		}
		var files []string
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			files = append(files, e.Name())
		}
		want := []string{"conference.example.org.crt", "conference.example.org.key", "example.org.crt", "example.org.key"}
		if !slices.Equal(files, want) {
			t.Fatalf("version %d: %s holds %q, want %q", version, dir, files, want)
		}
		for _, name := range []string{"example.org", "conference.example.org"} {
			crt, key := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
			types, certs, _ := readPEM(t, crt)
			if slices.Contains(types, "PRIVATE KEY") {
				t.Errorf("%s holds a private key", crt)
			}
			types, _, k := readPEM(t, key)
			if !slices.Equal(types, []string{"PRIVATE KEY"}) {
				t.Errorf("%s holds %q, want one PRIVATE KEY", key, types)
			}
			checkDeployed(t, fmt.Sprintf("version %d, %s", version, name), l, certs, k)
			checkMode(t, crt, 0o644, -1)
			checkMode(t, key, keyPerm, keyGID)
		}
	}
	if got, want := calls(t, log), []string{"--config /srv/prosody/prosody.cfg.lua status", "--config /srv/prosody/prosody.cfg.lua status"}; !slices.Equal(got, want) {
		t.Errorf("prosodyctl was called with %q; want %q: only status, once per deploy (Prosody is not running)", got, want)
	}
}

// TestTargetCreatesDir deploys into directories that do not exist yet:
// the last one gets 0750 and the server's group as root (Debian's
// /etc/prosody/certs), else 0700; its parents are traversable.
func TestTargetCreatesDir(t *testing.T) {
	fakeTool(t, "prosodyctl", 3, 0, 0, "")
	fakeTool(t, "ejabberdctl", 3, 0, 0, "")
	l := newLineage(t)
	base := t.TempDir()
	for _, c := range []struct {
		target acme.Target
		dir    string
		group  string
		file   string
	}{
		{&acme.ProsodyTarget{Dir: filepath.Join(base, "srv", "prosody", "certs")}, filepath.Join(base, "srv", "prosody", "certs"), "prosody", "example.org.key"},
		{&acme.EjabberdTarget{File: filepath.Join(base, "srv", "ejabberd", "tls", "xmpp.pem")}, filepath.Join(base, "srv", "ejabberd", "tls"), "ejabberd", "xmpp.pem"},
	} {
		if _, err := c.target.Deploy(context.Background(), l, acme.EventIssued); err != nil {
			t.Fatalf("%s: %v", c.target, err)
		}
		perm, gid := wantKeyMode(c.group)
		dirPerm := fs.FileMode(0o700)
		if perm == 0o640 {
			dirPerm = 0o750
		}
		checkMode(t, c.dir, dirPerm, gid)
		checkMode(t, filepath.Dir(c.dir), 0o755, -1)
		checkMode(t, filepath.Join(c.dir, c.file), perm, gid)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := (&acme.ProsodyTarget{Dir: file}).Deploy(context.Background(), l, acme.EventIssued)
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("deploying into a file: %v; want a not-a-directory error", err)
	}
}

// TestEjabberdTarget checks the one-file form ejabberd's certfiles take:
// the key, then the leaf and the intermediates.
func TestEjabberdTarget(t *testing.T) {
	log := fakeTool(t, "ejabberdctl", 3, 0, 0, "")
	l := newLineage(t)
	file := filepath.Join(t.TempDir(), "example.org.pem")
	r, err := (&acme.EjabberdTarget{File: file, CtlConfig: "/srv/ejabberd/ejabberdctl.cfg"}).Deploy(context.Background(), l, acme.EventIssued)
	if err != nil {
		t.Fatal(err)
	}
	if want := (acme.Reload{Server: true, NotDone: "'ejabberdctl --ctl-config /srv/ejabberd/ejabberdctl.cfg status' says ejabberd is not running (exit 3)"}); r != want {
		t.Errorf("%+v; want %+v", r, want)
	}
	types, certs, key := readPEM(t, file)
	if want := []string{"PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"}; !slices.Equal(types, want) {
		t.Errorf("%s holds %q, want %q", file, types, want)
	}
	checkDeployed(t, file, l, certs, key)
	perm, gid := wantKeyMode("ejabberd")
	checkMode(t, file, perm, gid)
	if got := calls(t, log); !slices.Equal(got, []string{"--ctl-config /srv/ejabberd/ejabberdctl.cfg status"}) {
		t.Errorf("ejabberdctl was called with %q; want only status, with the ctl config (ejabberd is not running)", got)
	}
}

// TestReload checks that the server is reloaded only when `TOOL status`
// says it runs, that a missing tool is no error, and that a failing
// reload is reported with the tool's stderr after the files are in
// place.
func TestReload(t *testing.T) {
	l := newLineage(t)
	for _, c := range []struct {
		tool, server, reload string
		target               func(dir string) acme.Target
		deployed             string
	}{
		{"prosodyctl", "Prosody", "reload", func(dir string) acme.Target { return &acme.ProsodyTarget{Dir: dir} }, "example.org.crt"},
		{"ejabberdctl", "ejabberd", "reload_config", func(dir string) acme.Target { return &acme.EjabberdTarget{File: filepath.Join(dir, "x.pem")} }, "x.pem"},
	} {
		t.Run(c.tool, func(t *testing.T) {
			t.Run("running", func(t *testing.T) {
				log := fakeTool(t, c.tool, 0, 0, 0, "")
				r, err := c.target(t.TempDir()).Deploy(context.Background(), l, acme.EventRenewed)
				if err != nil {
					t.Fatal(err)
				}
				if r != (acme.Reload{Server: true, Done: true}) {
					t.Errorf("%+v; want reloaded", r)
				}
				if got, want := calls(t, log), []string{"status", c.reload}; !slices.Equal(got, want) {
					t.Errorf("%s calls %q, want %q", c.tool, got, want)
				}
			})
			t.Run("stopped", func(t *testing.T) {
				log := fakeTool(t, c.tool, 3, 0, 0, "")
				r, err := c.target(t.TempDir()).Deploy(context.Background(), l, acme.EventRenewed)
				if err != nil {
					t.Fatal(err)
				}
				if r.Done || !strings.Contains(r.NotDone, "status' says") || !strings.Contains(r.NotDone, "is not running (exit 3)") {
					t.Errorf("%+v; want not reloaded, saying status said not running", r)
				}
				if got, want := calls(t, log), []string{"status"}; !slices.Equal(got, want) {
					t.Errorf("%s calls %q, want %q", c.tool, got, want)
				}
			})
			t.Run("not installed", func(t *testing.T) {
				t.Setenv("PATH", t.TempDir())
				dir := t.TempDir()
				r, err := c.target(dir).Deploy(context.Background(), l, acme.EventRenewed)
				if err != nil {
					t.Fatal(err)
				}
				if r.Done || r.NotDone != c.tool+" is not installed here, so there is no "+c.server+" to reload" {
					t.Errorf("%+v; want not reloaded: the tool is not installed", r)
				}
				if _, err := os.Stat(filepath.Join(dir, c.deployed)); err != nil {
					t.Error(err)
				}
			})
			t.Run("reload fails", func(t *testing.T) {
				const msg = "Prosody is not responding to signals (pid 4242)"
				fakeTool(t, c.tool, 0, 0, 1, msg)
				dir := t.TempDir()
				_, err := c.target(dir).Deploy(context.Background(), l, acme.EventRenewed)
				if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), c.tool+" "+c.reload) || !strings.Contains(err.Error(), "exit status 1") {
					t.Errorf("error %v; want the command, its exit status and its stderr %q", err, msg)
				}
				if _, err := os.Stat(filepath.Join(dir, c.deployed)); err != nil {
					t.Errorf("files not deployed before the reload: %v", err)
				}
			})
			t.Run("status cannot run", func(t *testing.T) {
				bin := t.TempDir()
				if err := os.WriteFile(filepath.Join(bin, c.tool), []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
					t.Fatal(err)
				}
				t.Setenv("PATH", bin)
				_, err := c.target(t.TempDir()).Deploy(context.Background(), l, acme.EventRenewed)
				if err == nil || !strings.Contains(err.Error(), c.tool+" status") || !strings.Contains(err.Error(), "may not be loaded") {
					t.Errorf("error %v; want a status that cannot run reported, not taken for a stopped server", err)
				}
			})
			t.Run("status hangs", func(t *testing.T) {
				log := fakeTool(t, c.tool, 0, 30, 0, "")
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				start := time.Now()
				_, err := c.target(t.TempDir()).Deploy(ctx, l, acme.EventRenewed)
				if err == nil || !strings.Contains(err.Error(), c.tool+" status") || !strings.Contains(err.Error(), "deadline exceeded") {
					t.Errorf("error %v; want status named as not finishing", err)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("Deploy returned after %v; the sleeping child held it", d)
				}
				if got := calls(t, log); slices.Contains(got, c.reload) {
					t.Errorf("%s calls %q: reload without a status", c.tool, got)
				}
			})
		})
	}
}

// TestHookEnv checks the environment a hook sees: certbot's deploy-hook
// variables, so that certbot hooks run unchanged, and XMPPCERT_*.
func TestHookEnv(t *testing.T) {
	store := acme.DiskStore{Dir: t.TempDir()}
	l := issueLineage(t, store, deployCA(t), "example.org")
	live := filepath.Join(store.Dir, "live", "example.org")
	for _, event := range []string{acme.EventIssued, acme.EventRenewed} {
		out := filepath.Join(t.TempDir(), "env")
		hook := &acme.HookTarget{Command: "env > '" + out + "'"}
		if _, err := hook.Deploy(context.Background(), l, event); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				env[k] = v
			}
		}
		want := map[string]string{
			"RENEWED_LINEAGE":    live,
			"RENEWED_DOMAINS":    "example.org conference.example.org",
			"XMPPCERT_LINEAGE":   live,
			"XMPPCERT_CERT":      filepath.Join(live, "cert.pem"),
			"XMPPCERT_CHAIN":     filepath.Join(live, "chain.pem"),
			"XMPPCERT_FULLCHAIN": filepath.Join(live, "fullchain.pem"),
			"XMPPCERT_KEY":       filepath.Join(live, "privkey.pem"),
			"XMPPCERT_DOMAINS":   "example.org conference.example.org",
			"XMPPCERT_EVENT":     event,
		}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("event %s: hook got %s=%q, want %q", event, k, env[k], v)
			}
		}
		for _, f := range []string{"RENEWED_LINEAGE", "XMPPCERT_FULLCHAIN", "XMPPCERT_KEY"} {
			if _, err := os.Stat(env[f]); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
		if env["PATH"] != os.Getenv("PATH") {
			t.Errorf("hook PATH %q, want the inherited %q", env["PATH"], os.Getenv("PATH"))
		}
	}
}

// TestHookFailure checks that a failing hook's error carries its exit
// status and stderr, the end of it when it is long, and that a hook
// that runs too long is killed and reported.
func TestHookFailure(t *testing.T) {
	l := newLineage(t)
	_, err := (&acme.HookTarget{Command: "echo 'deploy.sh: cannot reach xmpp1.example.org' >&2; exit 3"}).Deploy(context.Background(), l, acme.EventIssued)
	if err == nil || !strings.Contains(err.Error(), "deploy.sh: cannot reach xmpp1.example.org") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("error %v; want the exit status and the hook's stderr", err)
	}

	_, err = (&acme.HookTarget{Command: "i=0; while [ $i -lt 500 ]; do echo noise $i >&2; i=$((i+1)); done; echo last words >&2; exit 1"}).Deploy(context.Background(), l, acme.EventIssued)
	if err == nil || !strings.HasSuffix(err.Error(), "last words") || strings.Contains(err.Error(), "noise 0\n") || len(err.Error()) > 2500 {
		t.Errorf("long stderr: error of %d bytes ending %q; want it cut to the end of the stderr", len(err.Error()), err.Error()[max(0, len(err.Error())-40):])
	}

	// The hook's child must die with it: left running, it would hold
	// xmppcert's stderr and outlive the deploy.
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	_, err = (&acme.HookTarget{Command: "sleep 30 & echo $! > '" + pidFile + "'; echo started >&2; wait", Timeout: 200 * time.Millisecond}).Deploy(context.Background(), l, acme.EventIssued)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("a hook past its timeout returned after %v", d)
	}
	if err == nil || !strings.Contains(err.Error(), "did not finish within 200ms") || !strings.Contains(err.Error(), "started") {
		t.Errorf("error %v; want the timeout named, with the hook's stderr", err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); processAlive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the hook's child %d still runs after the hook timed out", pid)
		}
	}
}

// processAlive reports whether process pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}
