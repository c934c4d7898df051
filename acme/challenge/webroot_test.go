//go:build unix

package challenge

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// Webroot files are served by a real web server over the document root,
// get 0644 (dirs 0755) even under umask 077, and CleanUp removes them
// and the directories it created, leaving what was there before.
func TestWebroot(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	root := t.TempDir()
	srv := httptest.NewServer(http.FileServer(http.Dir(root)))
	defer srv.Close()
	s := &Webroot{Dir: root}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	a, b := httpChallenge("example.org"), httpChallenge("upload.example.org")
	for _, c := range []acme.Challenge{a, b} {
		if err := s.Present(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []acme.Challenge{a, b} {
		if code, _, body := get(t, "GET", srv.URL+c.HTTP01ResourcePath()); code != 200 || body != c.KeyAuthorization {
			t.Fatalf("GET %s = %d %q", c.HTTP01ResourcePath(), code, body)
		}
	}
	dir := filepath.Join(root, ".well-known", "acme-challenge")
	for path, want := range map[string]os.FileMode{
		filepath.Join(root, ".well-known"): 0o755 | os.ModeDir,
		dir:                                0o755 | os.ModeDir,
		filepath.Join(dir, a.Token):        0o644,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("challenge dir holds %d entries, want the 2 tokens (no temp files)", len(entries))
	}
	if err := s.CleanUp(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, a.Token)); !os.IsNotExist(err) {
		t.Fatalf("token file still there: %v", err)
	}
	if code, _, _ := get(t, "GET", srv.URL+b.HTTP01ResourcePath()); code != 200 {
		t.Fatal("the other token went with the first CleanUp")
	}
	if err := s.CleanUp(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, ".well-known")); !os.IsNotExist(err) {
		t.Fatalf(".well-known created by Present is still there: %v", err)
	}

	// Directories that existed stay.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c := httpChallenge("example.org")
	if err := s.Present(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if err := s.CleanUp(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("pre-existing dir: %v %v", fi, err)
	}
}

func TestWebrootErrors(t *testing.T) {
	root := t.TempDir()
	testtool.OneLineError(t, (&Webroot{Dir: filepath.Join(root, "missing")}).Present(t.Context(), httpChallenge("example.org")), "webroot", "no such file or directory")
	file := filepath.Join(root, "file")
	os.WriteFile(file, nil, 0o644)
	testtool.OneLineError(t, (&Webroot{Dir: file}).Validate(), "not a directory")
	testtool.OneLineError(t, (&Webroot{}).Validate(), "no directory given")

	s := &Webroot{Dir: root}
	c := httpChallenge("example.org")
	c.Token = "../../escape"
	testtool.OneLineError(t, s.Present(t.Context(), c), "invalid token")
	if err := s.CleanUp(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(root); len(entries) != 1 {
		t.Fatalf("an invalid token wrote into the webroot: %v", entries)
	}
}

// TestSwapHelper is the other user's process of TestWebrootSymlinkRace.
func TestSwapHelper(t *testing.T) { testtool.SwapHelper(t) }

// TestWebrootSymlinkRace: root presents and cleans up challenges under a
// web root that another user (the web server's) owns, while that user
// swaps the .well-known directory for a symbolic link to a root-only
// file thousands of times: the root file's owner, group, mode and
// content never change.
func TestWebrootSymlinkRace(t *testing.T) {
	testtool.SkipShort(t, "it races another user's process for thousands of swaps")
	if os.Geteuid() != 0 {
		t.Skip("needs root: the race is root's writes against another user's links")
	}
	root := testtool.NobodysDir(t, "www")
	victim, unchanged := testtool.Victim(t)
	s := &Webroot{Dir: root}
	sw := testtool.StartSwapper(t, "TestSwapHelper", root, victim, []string{".well-known"})
	c := httpChallenge("example.org")
	rounds := 0
	// At least 1,000 rounds, and on until the other user has swapped
	// 2,000 times, however fast either side runs.
	for ; rounds < 1000 || sw.Swaps() < 2000; rounds++ {
		// Errors are expected: the other user moves things away.
		s.Present(t.Context(), c)
		s.CleanUp(t.Context(), c)
	}
	t.Logf("%d challenges presented and cleaned up against %d swaps", rounds, sw.Stop(t))
	unchanged()
}
