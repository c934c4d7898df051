package atomicfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestWriteFileModes checks that the mode is exactly the one asked for,
// whatever the umask, on creation and on replacement, and that no
// temporary file remains.
func TestWriteFileModes(t *testing.T) {
	dir := t.TempDir()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	for _, c := range []struct {
		name string
		perm fs.FileMode
	}{{"privkey.pem", 0o600}, {"cert.pem", 0o644}, {"privkey.pem", 0o600}, {"cert.pem", 0o640}} {
		path := filepath.Join(dir, c.name)
		if err := WriteFile(path, []byte(c.name), c.perm); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != c.perm {
			t.Errorf("%s: mode %v; want %v", c.name, st.Mode().Perm(), c.perm)
		}
	}
	if got := names(t, dir); !slices.Equal(got, []string{"cert.pem", "privkey.pem"}) {
		t.Errorf("directory holds %q; want only the two files", got)
	}
}

// TestWriteFileAtomic replaces a file over and over with one of two
// contents of different sizes while readers read it: every read sees one
// of them whole, never a mix, a truncation or a missing file.
func TestWriteFileAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fullchain.pem")
	a := bytes.Repeat([]byte("a"), 64<<10)
	b := bytes.Repeat([]byte("b"), 3<<10)
	if err := WriteFile(path, a, 0o644); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var bad atomic.Value
	var reads atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				got, err := os.ReadFile(path)
				reads.Add(1)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					bad.Store("a read saw " + string(got[:1]) + "... of " + strconv.Itoa(len(got)) + " bytes")
					return
				}
			}
		}()
	}
	for i := 0; i < 200 && bad.Load() == nil; i++ {
		data := a
		if i%2 == 0 {
			data = b
		}
		if err := WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
	if reads.Load() == 0 {
		t.Fatal("no read ran")
	}
}

// TestWriteFileFailure checks that a write that fails (here beyond the
// file size limit, as on a full disk) leaves the old content and no
// temporary file.
func TestWriteFileFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "privkey.pem")
	if err := WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 100, Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(path, bytes.Repeat([]byte("n"), 1000), 0o600)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, syscall.EFBIG) {
		t.Fatalf("WriteFile beyond the size limit: %v; want EFBIG", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("content after a failed write: %q; want the old one", got)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"privkey.pem"}) {
		t.Errorf("directory holds %q after a failed write", got)
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), nil, 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile into a missing directory: %v", err)
	}
}

// TestSymlinkAtomic switches a link between two targets while readers
// resolve it: it always resolves, to one of them. No temporary remains.
func TestSymlinkAtomic(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []string{"000001", "000002"} {
		if err := os.Mkdir(filepath.Join(dir, v), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, v, "cert.pem"), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "live")
	if err := Symlink("000001", link); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var bad atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			got, err := os.ReadFile(filepath.Join(link, "cert.pem"))
			if err != nil || (string(got) != "000001" && string(got) != "000002") {
				bad.Store(err)
				return
			}
		}
	}()
	for i := 0; i < 300 && bad.Load() == nil; i++ {
		target := "000001"
		if i%2 == 0 {
			target = "000002"
		}
		if err := Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.Readlink(link); got != target {
			t.Fatalf("link points at %q; want %q", got, target)
		}
	}
	stop.Store(true)
	wg.Wait()
	if err := bad.Load(); err != nil {
		t.Fatalf("a reader did not resolve the link: %v", err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"000001", "000002", "live"}) {
		t.Errorf("directory holds %q; want no temporaries", got)
	}
	// A leftover temporary from a crash is replaced, not an obstacle.
	if err := os.Symlink("000001", filepath.Join(dir, ".live.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := Symlink("000002", link); err != nil {
		t.Fatalf("Symlink over a leftover temporary: %v", err)
	}
	if got, _ := os.Readlink(link); got != "000002" {
		t.Errorf("link points at %q; want 000002", got)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"000001", "000002", "live"}) {
		t.Errorf("directory holds %q; want the leftover gone", got)
	}
	// A directory in the way: the switch fails and leaves no temporary.
	if err := os.Mkdir(filepath.Join(dir, "blocked"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "blocked", "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Symlink("000001", filepath.Join(dir, "blocked")); err == nil {
		t.Error("Symlink over a non-empty directory succeeded")
	}
	if got := names(t, dir); !slices.Equal(got, []string{"000001", "000002", "blocked", "live"}) {
		t.Errorf("directory holds %q after a failed switch", got)
	}
}

// TestMkdirAll checks the mode of every directory created, that an
// existing directory is fine and that a file in the way is an error.
func TestMkdirAll(t *testing.T) {
	base := t.TempDir()
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	deep := filepath.Join(base, "state", "archive", "example.org")
	if err := MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"state", "state/archive", "state/archive/example.org"} {
		st, err := os.Stat(filepath.Join(base, d))
		if err != nil || st.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a 0700 directory", d, st.Mode(), err)
		}
	}
	if err := MkdirAll(deep, 0o700); err != nil {
		t.Errorf("MkdirAll of an existing directory: %v", err)
	}
	if err := os.WriteFile(filepath.Join(base, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(filepath.Join(base, "file"), 0o700); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("MkdirAll onto a file: %v; want ENOTDIR", err)
	}
	if err := MkdirAll(filepath.Join(base, "file", "sub"), 0o700); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("MkdirAll below a file: %v; want ENOTDIR", err)
	}
}

// TestWriteNew creates a file with its mode, refuses an existing file
// and a symbolic link (dangling or not) without touching either, and
// leaves no temporary behind.
func TestWriteNew(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "root.key")
	if err := WriteNew(path, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	if err := WriteNew(path, []byte("other"), 0o600); !errors.Is(err, os.ErrExist) {
		t.Errorf("over an existing file: %v; want os.ErrExist", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "key" {
		t.Errorf("the existing file now holds %q", got)
	}
	victim := filepath.Join(dir, "victim")
	for _, target := range []string{path, victim} {
		link := filepath.Join(dir, "link-"+filepath.Base(target))
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := WriteNew(link, []byte("other"), 0o600); !errors.Is(err, os.ErrExist) {
			t.Errorf("over a link to %s: %v; want os.ErrExist", target, err)
		}
	}
	if _, err := os.Lstat(victim); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a dangling link's target was created: %v", err)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"link-root.key", "link-victim", "root.key"}) {
		t.Errorf("directory holds %q", got)
	}
}
