// Package atomicfile writes files and directories so that a reader, or a
// process that starts after a crash, sees either the old content or the
// new one, never a mix: write a temporary file in the same directory,
// fsync it, rename it over the target, fsync the directory.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data, created with perm. The temporary
// file is created with perm from the start, so a private key is never
// readable by others, not even for a moment.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making the renames and creations in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Symlink points link at target, replacing what link pointed at before in
// one rename, so that link always resolves to the old or the new target.
func Symlink(target, link string) error {
	dir, base := filepath.Split(link)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.MkdirTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	// The temporary symlink lives inside a fresh directory so that its
	// name cannot collide with another writer's.
	defer os.RemoveAll(tmp)
	l := filepath.Join(tmp, "link")
	if err := os.Symlink(target, l); err != nil {
		return err
	}
	if err := os.Rename(l, link); err != nil {
		return err
	}
	return SyncDir(dir)
}
