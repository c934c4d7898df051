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

// OtherOwner says whether the directory belongs to another user than the
// one running the program and root (else it is writable by group or
// others).
func (e *UnsafeError) OtherOwner() bool { return e.Owner != e.Want && e.Owner != 0 }

// checkAbove checks dir and every directory above it: owned by euid or
// root, and not writable by group or others unless sticky.
func checkAbove(dir string, euid uint32) error {
	for ; ; dir = filepath.Dir(dir) {
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
			return nil
		}
	}
}

func (e *UnsafeError) Error() string {
	switch {
	case e.OtherOwner() && e.Want == 0:
		return fmt.Sprintf("%s is owned by uid %d, not by uid %d, which runs this", e.Path, e.Owner, e.Want)
	case e.OtherOwner():
		return fmt.Sprintf("%s is owned by uid %d, neither by uid %d, which runs this, nor by root", e.Path, e.Owner, e.Want)
	}
	return fmt.Sprintf("%s is writable by group or others (mode %04o)", e.Path, uint32(e.Mode.Perm()))
}

// Check returns an *UnsafeError for the first directory of the tree at
// root that another user could write to: root itself (a symbolic link to
// it resolved) and every directory under it must be owned by the
// effective user or by root (whom every user trusts: a user may read the
// state of root's daemon) and not writable by group or others; the
// directories above it likewise, except that those may be writable by
// others when sticky (as /tmp is), or their owner could swap root for a
// tree of theirs. Symbolic links under root are not
// followed. A root that does not exist yet is checked by the directories
// it would be created in.
func Check(root string) error {
	euid := uint32(os.Geteuid())
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if errors.Is(err, fs.ErrNotExist) {
		// Not created yet: the nearest directory that exists is where
		// it will be, and must be as safe as a parent.
		existing := filepath.Dir(abs)
		for {
			if real, err = filepath.EvalSymlinks(existing); !errors.Is(err, fs.ErrNotExist) || existing == filepath.Dir(existing) {
				break
			}
			existing = filepath.Dir(existing)
		}
		if err != nil {
			return err
		}
		return checkAbove(real, euid)
	}
	if err != nil {
		return err
	}
	if err := checkAbove(filepath.Dir(real), euid); err != nil {
		return err
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
		if (st.Uid != euid && st.Uid != 0) || fi.Mode().Perm()&0o022 != 0 {
			return &UnsafeError{Path: path, Owner: st.Uid, Want: euid, Mode: fi.Mode()}
		}
		return nil
	})
}

// NotDirError names a path that is not a directory where one is needed.
type NotDirError struct{ Path string }

func (e *NotDirError) Error() string { return e.Path + " is not a directory" }

// NotWritableError is a directory in which nothing can be created.
type NotWritableError struct {
	Dir string
	Err error
}

func (e *NotWritableError) Error() string { return e.Dir + " is not writable: " + e.Err.Error() }

// Unwrap returns the error of the attempt to create in Dir.
func (e *NotWritableError) Unwrap() error { return e.Err }

// ProbePrefix names the directories Writable creates and removes; a
// killed run may leave one behind until the next Writable.
const ProbePrefix = ".xmppcert-probe-"

// Writable proves that dir can be written, before anything is written:
// it creates and removes a probe directory in dir, or in the nearest
// existing parent dir would be created in. access(2) is not enough: it
// says yes to root on /proc. Probes that a killed run left are removed
// too; removing a concurrent run's probe is harmless, since its own
// attempt has already answered. A path on the way that is not a
// directory is a *NotDirError, a directory that refuses the probe a
// *NotWritableError.
func Writable(dir string) error {
	probe := dir
	for {
		st, err := os.Stat(probe)
		if err == nil {
			if !st.IsDir() {
				return &NotDirError{Path: probe}
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			break
		}
		probe = parent
	}
	tmp, err := os.MkdirTemp(probe, ProbePrefix+"*")
	if err != nil {
		return &NotWritableError{Dir: probe, Err: err}
	}
	left, _ := filepath.Glob(filepath.Join(probe, ProbePrefix+"*"))
	for _, d := range append(left, tmp) {
		os.Remove(d)
	}
	return nil
}
