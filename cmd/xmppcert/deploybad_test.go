package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestDeployEmptyPath: --deploy prosody: and ejabberd: with nothing
// after the colon, what `--deploy prosody:$DIR` gives when DIR is unset,
// are a usage error (exit 2, one line naming the value) before anything
// is written: an existing state directory stays empty, a fresh one is
// not created. --state-dir after the command name is honoured on the way.
func TestDeployEmptyPath(t *testing.T) {
	// Were --state-dir not honoured, the default would be written to.
	other := filepath.Join(t.TempDir(), "default")
	t.Setenv("XMPPCERT_STATE_DIR", other)
	for _, c := range []struct{ spec, want string }{
		{"prosody:", `^xmppcert: --deploy: deploy target "prosody:" has an empty path after the colon; give prosody:CERTDIR, or plain prosody for /etc/prosody/certs\n$`},
		{"ejabberd:", `^xmppcert: --deploy: deploy target "ejabberd:" has an empty path after the colon; give ejabberd:FILE, or plain ejabberd for /etc/ejabberd/HOST.pem\n$`},
	} {
		t.Run(c.spec, func(t *testing.T) {
			existing, fresh := t.TempDir(), filepath.Join(t.TempDir(), "fresh")
			for _, state := range []string{existing, fresh} {
				code, stdout, stderr := runCLI(t, nil, "issue", "example.org", "--deploy", c.spec, "--state-dir", state)
				if code != exitUsage || stdout != "" {
					t.Errorf("state %s: exit %d, stdout %q; want exit 2 and nothing on stdout", state, code, stdout)
				}
				if !regexp.MustCompile(c.want).MatchString(stderr) {
					t.Errorf("state %s: stderr %q does not match %q", state, stderr, c.want)
				}
			}
			if entries, err := os.ReadDir(existing); err != nil || len(entries) != 0 {
				t.Errorf("the existing state directory changed: %v %v", entries, err)
			}
			for _, dir := range []string{fresh, other} {
				if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s was created: %v", dir, err)
				}
			}
		})
	}
}
