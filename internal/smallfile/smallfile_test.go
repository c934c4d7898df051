package smallfile

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 4095, 4096, 4097, 100_000} {
		data := bytes.Repeat([]byte("0123456789abcdef"), size/16+1)[:size]
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := Read(path, size)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%d bytes, limit %d: got %d bytes, %v", size, size, len(got), err)
		}
		if size == 0 {
			continue
		}
		_, err = Read(path, size-1)
		var tl *TooLargeError
		if !errors.As(err, &tl) || tl.Path != path || tl.Limit != size-1 {
			t.Errorf("%d bytes, limit %d: %v, want a TooLargeError", size, size-1, err)
		}
	}
}

func TestReadFailures(t *testing.T) {
	dir := t.TempDir()
	if _, err := Read(filepath.Join(dir, "missing"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	var pe *fs.PathError
	if _, err := Read(dir, 10); !errors.As(err, &pe) || pe.Err != syscall.EISDIR || pe.Path != dir {
		t.Errorf("directory: %v, want EISDIR naming it", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.WriteFile(filepath.Join(dir, "target"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	if got, err := Read(link, 10); err != nil || string(got) != "x" {
		t.Errorf("through a symbolic link: %q, %v", got, err)
	}
}

// BenchmarkRead compares Read with os.ReadFile on a file the size of a
// lineage's request.json.
func BenchmarkRead(b *testing.B) {
	path := filepath.Join(b.TempDir(), "request.json")
	if err := os.WriteFile(path, bytes.Repeat([]byte("x"), 600), 0o600); err != nil {
		b.Fatal(err)
	}
	b.Run("smallfile", func(b *testing.B) {
		for b.Loop() {
			if _, err := Read(path, 1<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("os.ReadFile", func(b *testing.B) {
		for b.Loop() {
			if _, err := os.ReadFile(path); err != nil {
				b.Fatal(err)
			}
		}
	})
}
