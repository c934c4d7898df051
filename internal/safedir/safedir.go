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
	"runtime"
	"slices"
	"strings"
	"sync"
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
// it would be created in. A directory whose subdirectories layout names
// (Layout) is not read where the file system's link counts say how many
// it has; a nil layout names none.
func Check(root string, layout Layout) error {
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
	fi, err := os.Lstat(real)
	if err != nil {
		return err
	}
	t := tree{euid: euid, root: real, layout: layout}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && countsSubdirs(real) {
		t.countedDev, t.counted = st.Dev, true
	}
	return t.check(real, fi)
}

// Layout names the subdirectories that a directory of the tree has when
// the tree is as its program writes it: for the directory at rel (its
// path below the root, slash-separated; "." for the root) holding n
// subdirectories, n distinct names, or nil when it cannot tell. The
// lineage store numbers the versions of a lineage, for instance: the n
// subdirectories of archive/NAME are 000001 to n.
type Layout func(rel string, n int) []string

// tree is one Check's walk below the root.
type tree struct {
	euid   uint32
	root   string
	layout Layout
	// counted says that the root's file system keeps st_nlink of a
	// directory at 2 plus its subdirectories (countsSubdirs), for the
	// directories on device countedDev.
	counted    bool
	countedDev uint64
}

// check refuses dir (whose lstat is fi) when another user could write to
// it, then every directory below it. A directory whose link count says
// it has no subdirectory is not read: the version directories of a
// lineage, most of a large state directory, cost one lstat each.
func (t tree) check(dir string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if (st.Uid != t.euid && st.Uid != 0) || fi.Mode().Perm()&0o022 != 0 {
		return &UnsafeError{Path: dir, Owner: st.Uid, Want: t.euid, Mode: fi.Mode()}
	}
	if t.counted && st.Dev == t.countedDev && st.Nlink >= 2 {
		if st.Nlink == 2 {
			return nil
		}
		if paths, infos, ok := t.named(dir, int(st.Nlink-2)); ok {
			for i, path := range paths {
				if err := t.check(path, infos[i]); err != nil {
					return err
				}
			}
			return nil
		}
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed meanwhile: nothing left to plant in
	}
	if err != nil {
		return err
	}
	var subdirs []string
	for _, e := range ents {
		if e.IsDir() {
			subdirs = append(subdirs, filepath.Join(dir, e.Name()))
		}
	}
	if len(subdirs) < parallelFrom {
		return t.checkEach(subdirs)
	}
	// A directory of many lineages: its subdirectories are checked in
	// as many contiguous runs as Go runs threads at once, and the
	// first run's refusal is returned, as a walk in order would.
	runs := runtime.GOMAXPROCS(0)
	errs := make([]error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			errs[i] = t.checkEach(subdirs[i*len(subdirs)/runs : (i+1)*len(subdirs)/runs])
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// named returns the paths of dir's n subdirectories as the layout names
// them, with their lstat, when every one is a directory: the link count
// says that there are n, so these are all, and dir need not be read (a
// lineage's archive directory costs an lstat per version instead of
// four more system calls to read it). Not ok when the layout does not
// name n distinct entries of dir or one of them is not a directory: dir
// is then read.
func (t tree) named(dir string, n int) ([]string, []fs.FileInfo, bool) {
	if t.layout == nil {
		return nil, nil, false
	}
	rel, err := filepath.Rel(t.root, dir)
	if err != nil {
		return nil, nil, false
	}
	names := t.layout(filepath.ToSlash(rel), n)
	if len(names) != n || len(slices.Compact(slices.Sorted(slices.Values(names)))) != n {
		return nil, nil, false
	}
	paths := make([]string, n)
	infos := make([]fs.FileInfo, n)
	for i, name := range names {
		if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
			return nil, nil, false
		}
		paths[i] = filepath.Join(dir, name)
		if infos[i], err = os.Lstat(paths[i]); err != nil || !infos[i].IsDir() {
			return nil, nil, false
		}
	}
	return paths, infos, true
}

// parallelFrom is how many subdirectories a directory has before check
// spreads them over threads.
const parallelFrom = 64

// checkEach checks the directories at paths, in order, and what is below
// them.
func (t tree) checkEach(paths []string) error {
	for _, path := range paths {
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile: nothing left to plant in
		}
		if err != nil {
			return err
		}
		if err := t.check(path, fi); err != nil {
			return err
		}
	}
	return nil
}

// Linux file system magic numbers (statfs(2)) of the file systems whose
// directories' link counts are 2 plus their subdirectories: ext2/3/4
// (up to 65,000 subdirectories, above which the count is 1), XFS and
// tmpfs. Others (btrfs counts 1; NFS, CIFS, AFS and /proc may count
// wrongly, as gnulib's fts notes) are read whole.
const (
	magicExt   = 0xEF53
	magicXFS   = 0x58465342
	magicTmpfs = 0x01021994
)

// countsSubdirs reports whether the file system holding dir is one whose
// link counts say how many subdirectories a directory has.
func countsSubdirs(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	switch st.Type {
	case magicExt, magicXFS, magicTmpfs:
		return true
	}
	return false
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
