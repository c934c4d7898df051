// Package atomicfile writes files and directories so that a reader, or a
// process that starts after a crash, sees either the old content or the
// new one, never a mix: write a temporary file in the same directory,
// fsync it, rename it over the target, fsync the directory.
//
// A process killed between creating a temporary and the rename leaves it
// behind, next to the target: "." + base + ".tmp-" + random digits for
// WriteFile, "." + base + ".tmp" for Symlink (which the next Symlink call
// for the same link replaces).
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// tempPrefix is how the temporaries for base are named: WriteFile
// appends "-" and random digits, Symlink nothing.
func tempPrefix(base string) string { return "." + base + ".tmp" }

// WriteFile replaces path with data, created with perm. The temporary
// file is created with mode 0600 and changed to perm before any data is
// written, so a private key is never readable by others, not even for a
// moment.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFileGroup(path, data, perm, -1)
}

// WriteFileGroup is WriteFile that also gives the file to group gid (when
// gid >= 0). Group and mode are set on the open temporary file before
// the rename, never by path afterwards: in a directory someone else can
// write, the path may meanwhile be a symbolic link to a file of root's.
func WriteFileGroup(path string, data []byte, perm os.FileMode, gid int) error {
	return writeFile(path, data, perm, gid, os.Rename)
}

// WriteNew creates path with data, whole or not at all, and refuses a
// path that exists already, as a file or as a symbolic link (an error
// that errors.Is os.ErrExist): the temporary file is hard-linked into
// place, which neither replaces nor follows what is there.
func WriteNew(path string, data []byte, perm os.FileMode) error {
	return writeFile(path, data, perm, -1, func(tmp, path string) error {
		if err := os.Link(tmp, path); err != nil {
			return err
		}
		return os.Remove(tmp)
	})
}

// writeFile writes a temporary file beside path and puts it in place
// with place.
func writeFile(path string, data []byte, perm os.FileMode, gid int, place func(tmp, path string) error) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	f, err := os.CreateTemp(dir, tempPrefix(base)+"-*")
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
	if gid >= 0 {
		if err := f.Chown(-1, gid); err != nil {
			return err
		}
	}
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
	if err := place(tmp, path); err != nil {
		return err
	}
	ok = true
	return SyncDir(dir)
}

// ChmodDir sets the permission bits of dir, and its group when gid >= 0,
// through a descriptor opened without following a symbolic link: if
// someone replaced the directory with a link since it was made, the
// change fails (ELOOP) instead of reaching the link's target.
func ChmodDir(dir string, perm os.FileMode, gid int) error {
	d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if gid >= 0 {
		if err := d.Chown(-1, gid); err != nil {
			return err
		}
	}
	return d.Chmod(perm)
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
// The temporary link has a fixed name, "." + base + ".tmp" next to link,
// so that a leftover from a crash is replaced by the next call instead of
// accumulating; the caller makes sure that no two calls for one link run
// at the same time, by holding a lock for it.
func Symlink(target, link string) error {
	dir, base := filepath.Dir(link), filepath.Base(link)
	tmp := filepath.Join(dir, tempPrefix(base))
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// MkdirAll is os.MkdirAll that also fsyncs the parent of every directory
// it creates, so that the new directories survive a power cut together
// with the files later written and synced in them.
func MkdirAll(dir string, perm os.FileMode) error {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Created meanwhile by another process, which syncs it.
			if st, serr := os.Stat(dir); serr == nil && st.IsDir() {
				return nil
			}
		}
		return err
	}
	return SyncDir(parent)
}
