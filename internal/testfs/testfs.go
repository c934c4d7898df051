// Package testfs helps tests show what an operation did to a directory
// tree, and what it did not.
package testfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Snapshot describes every entry under dir by its path relative to dir:
// mode, symlink target, and file content (hex). Two equal snapshots mean
// that nothing a reader relies on changed; directory times are left out.
// A missing dir gives nil.
func Snapshot(t testing.TB, dir string) map[string]string {
	t.Helper()
	return walk(t, dir, func(path string, _ fs.FileInfo) (string, error) {
		b, err := os.ReadFile(path)
		return fmt.Sprintf("%x", b), err
	})
}

// Stamps is Snapshot with each regular file described by its size and
// modification time instead of its content: enough to see that nothing
// was written, for a tree whose contents would not fit in memory as hex.
func Stamps(t testing.TB, dir string) map[string]string {
	t.Helper()
	return walk(t, dir, func(_ string, info fs.FileInfo) (string, error) {
		return fmt.Sprintf("%d %d", info.Size(), info.ModTime().UnixNano()), nil
	})
}

// walk describes every entry under dir as Snapshot does, each regular
// file by file.
func walk(t testing.TB, dir string, file func(path string, info fs.FileInfo) (string, error)) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := info.Mode().String()
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case d.Type().IsRegular():
			f, err := file(path, info)
			if err != nil {
				return err
			}
			desc += " " + f
		}
		out[strings.TrimPrefix(path, dir)] = desc
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return out
}
