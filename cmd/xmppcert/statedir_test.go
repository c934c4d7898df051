package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostileStateDir: a state directory another user could write to is
// refused (exit 2, one line saying what to chown or chmod) before
// anything in it is read or run, so that a lineage planted there with a
// hook never runs that hook as root; and a lock file that is a symbolic
// link is not written through.
func TestHostileStateDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to give the state directory to another user")
	}
	base := t.TempDir()
	state := filepath.Join(base, "state")
	ran := filepath.Join(base, "hook-ran")
	mustRun(t, "--state-dir", state, "issue", "example.org", "-q", "--hook", "echo ran >> "+ran)
	if err := os.Remove(ran); err != nil {
		t.Fatalf("the hook did not run at issuance: %v", err)
	}
	chownTree := func(uid int) {
		t.Helper()
		err := filepath.Walk(state, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, -1)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	refused := func(name, want string) {
		t.Helper()
		code, out, errOut := runCLI(t, nil, "--state-dir", state, "renew", "--force")
		if code != exitUsage || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, want) {
			t.Errorf("%s: exit %d\n%s%s\nwant exit 2, one line saying %q", name, code, out, errOut, want)
		}
		if _, err := os.Stat(ran); err == nil {
			t.Errorf("%s: the planted hook ran", name)
			os.Remove(ran)
		}
	}

	chownTree(65534)
	refused("owned by nobody", "is owned by uid 65534, not by uid 0, which runs this: another user could plant what this runs; use a directory of your own with --state-dir, or chown -R 0 "+state)
	// The same directory named by a configuration's state_dir.
	cfg := filepath.Join(t.TempDir(), "xmppcert.toml")
	writeFile(t, cfg, []byte(fmt.Sprintf("state_dir = %q\n[[watch.peer]]\ndomain = \"peer.example\"\n", state)), 0o600)
	if code, _, errOut := runCLI(t, nil, "--config", cfg, "status", "--listen", freeAddr(t)); code != exitUsage || !strings.Contains(errOut, "is owned by uid 65534") {
		t.Errorf("status with the hostile directory as state_dir: exit %d: %s", code, errOut)
	}
	chownTree(0)

	archive := filepath.Join(state, "archive", "example.org")
	if err := os.Chmod(archive, 0o775); err != nil {
		t.Fatal(err)
	}
	refused("a group-writable lineage directory", archive+" is writable by group or others (mode 0775): another user could plant what this runs; chmod -R go-w "+state)
	if err := os.Chmod(archive, 0o700); err != nil {
		t.Fatal(err)
	}
	// A version, checked by its number without reading the lineage's
	// directory, and a directory beside the versions, found by reading it.
	version := filepath.Join(archive, "000001")
	if err := os.Lchown(version, 65534, -1); err != nil {
		t.Fatal(err)
	}
	refused("a version directory of another user", version+" is owned by uid 65534, not by uid 0, which runs this")
	if err := os.Lchown(version, 0, -1); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(archive, "planted")
	if err := os.Mkdir(planted, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(planted, 0o777); err != nil {
		t.Fatal(err)
	}
	refused("a directory planted beside the versions", planted+" is writable by group or others (mode 0777)")
	if err := os.Remove(planted); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	refused("a world-writable parent", base+" is writable by group or others (mode 0777), who could replace it")
	// Sticky, as /tmp is: others cannot rename what is not theirs.
	if err := os.Chmod(base, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "--state-dir", state, "renew", "--force", "-q")
	if err := os.Remove(ran); err != nil {
		t.Errorf("the hook of a safe state directory did not run: %v", err)
	}
	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}

	// A lock file replaced by a link to a file root owns: the link is
	// not followed, the file keeps its content.
	victim := filepath.Join(t.TempDir(), "precious")
	writeFile(t, victim, []byte("precious\n"), 0o600)
	lock := filepath.Join(state, "locks", "example.org.lock")
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, lock); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCLI(t, nil, "--state-dir", state, "renew", "--force")
	if code != exitFailed || !strings.Contains(errOut, "lock file "+lock+" is a symbolic link, which is not followed; nothing was done") {
		t.Errorf("renew through a lock symlink: exit %d: %s; want exit 1 saying the link is not followed", code, errOut)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the lock symlink's target was written: %q", b)
	}
}
