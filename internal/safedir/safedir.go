// Package safedir refuses a directory tree that another user could write
// to. The state directory holds what root acts on (requests that name
// hooks, deploy targets, lock files): a directory owned by someone else,
// or writable by group or others, lets that someone plant a lineage whose
// hook root runs, or a symlink that root writes through. Only directories
// are checked: a file can only be planted or replaced through a
// directory that permits it, and the program writes its own files 0600 or
// 0644.
package safedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// UnsafeError names a directory another user could write to and why.
type UnsafeError struct {
	// Path is the directory.
	Path string
	// Owner is its owner's uid; Want the uid of the user running the
	// program.
	Owner, Want uint32
	// Mode is its permission bits.
	Mode fs.FileMode
}

// OtherOwner says whether the directory belongs to another user (else it
// is writable by group or others).
func (e *UnsafeError) OtherOwner() bool { return e.Owner != e.Want }

func (e *UnsafeError) Error() string {
	if e.OtherOwner() {
		return fmt.Sprintf("%s is owned by uid %d, not by uid %d, which runs this", e.Path, e.Owner, e.Want)
	}
	return fmt.Sprintf("%s is writable by group or others (mode %04o)", e.Path, uint32(e.Mode.Perm()))
}

// Check returns an *UnsafeError for the first directory of the tree at
// root that another user could write to: root itself (a symbolic link to
// it resolved) and every directory under it must be owned by the
// effective user and not writable by group or others; the directories
// above it must be owned by that user or by root and, unless sticky (as
// /tmp is), not writable by group or others either, or their owner could
// swap root for a tree of theirs. Symbolic links under root are not
// followed. A root that does not exist yet is fine: the program creates
// it private.
func Check(root string) error {
	euid := uint32(os.Geteuid())
	real, err := filepath.EvalSymlinks(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return err
	}
	for dir := filepath.Dir(real); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			groupOther := fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0
			if (st.Uid != euid && st.Uid != 0) || groupOther {
				return &UnsafeError{Path: dir, Owner: st.Uid, Want: euid, Mode: fi.Mode()}
			}
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	return filepath.WalkDir(real, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Uid != euid || fi.Mode().Perm()&0o022 != 0 {
			return &UnsafeError{Path: path, Owner: st.Uid, Want: euid, Mode: fi.Mode()}
		}
		return nil
	})
}
