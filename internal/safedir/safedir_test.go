package safedir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCheck(t *testing.T) {
	base := t.TempDir() // 0700, ours, under a sticky /tmp or a private directory
	root := filepath.Join(base, "state")
	if err := Check(root, nil); err != nil {
		t.Errorf("a state directory not created yet: %v", err)
	}
	sub := filepath.Join(root, "archive", "example.org")
	if err := os.MkdirAll(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Check(root, nil); err != nil {
		t.Errorf("a private tree: %v", err)
	}

	// A link inside to a world-writable directory is not followed.
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(open, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := Check(root, nil); err != nil {
		t.Errorf("a link under the root: %v", err)
	}
	// A link as the root is resolved: what it points to is checked.
	var ue *UnsafeError
	if err := Check(filepath.Join(root, "link"), nil); !errors.As(err, &ue) || ue.Path != open || ue.OtherOwner() {
		t.Errorf("a root linking to a world-writable directory: %v", err)
	}

	if err := os.Chmod(sub, 0o770); err != nil {
		t.Fatal(err)
	}
	if err := Check(root, nil); !errors.As(err, &ue) || ue.Path != sub || ue.Mode.Perm() != 0o770 || ue.OtherOwner() {
		t.Errorf("a group-writable directory inside: %v; want %s refused", err, sub)
	}
	if err := os.Chmod(sub, 0o700); err != nil {
		t.Fatal(err)
	}

	// Above the root: writable by others only when sticky.
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := Check(root, nil); !errors.As(err, &ue) || ue.Path != base {
		t.Errorf("a world-writable parent: %v; want %s refused", err, base)
	}
	if err := os.Chmod(base, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := Check(root, nil); err != nil {
		t.Errorf("a sticky world-writable parent: %v", err)
	}
}

// A state directory not created yet is checked by where it would be:
// under a world-writable, non-sticky directory it is refused before it
// exists.
func TestCheckNotCreated(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := Check(filepath.Join(open, "state", "deeper"), nil); err != nil {
		t.Errorf("under a private directory: %v", err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	var ue *UnsafeError
	if err := Check(filepath.Join(open, "state", "deeper"), nil); !errors.As(err, &ue) || ue.Path != open {
		t.Errorf("under a world-writable directory: %v; want %s refused", err, open)
	}
}

// TestWritable: a directory, or the nearest existing parent of one to be
// created, that takes a probe passes and is left as it was, without the
// probes a killed run left; a file, a path under one and a directory that
// refuses the probe (/proc refuses root too) are named.
func TestWritable(t *testing.T) {
	dir := t.TempDir()
	left := filepath.Join(dir, ProbePrefix+"killed")
	if err := os.Mkdir(left, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "new", "state")} {
		if err := Writable(d); err != nil {
			t.Errorf("Writable(%s): %v", d, err)
		}
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("left in %s: %v, %v; want nothing", dir, entries, err)
	}

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var notDir *NotDirError
	if err := Writable(file); !errors.As(err, &notDir) || notDir.Path != file {
		t.Errorf("a file: %v; want a NotDirError naming %s", err, file)
	}
	if err := Writable(filepath.Join(file, "state")); err == nil {
		t.Error("under a file: no error")
	}
	var notWritable *NotWritableError
	if err := Writable("/proc/xmppcert-state"); !errors.As(err, &notWritable) || notWritable.Dir != "/proc" {
		t.Errorf("under /proc: %v; want a NotWritableError naming /proc", err)
	}
}

// TestCheckDeep: a directory that another user could write to is found
// at any depth, beside files and among many safe leaves, whether or not
// the file system's link counts let the walk skip reading leaves.
func TestCheckDeep(t *testing.T) {
	root := t.TempDir()
	t.Logf("link counts say how many subdirectories a directory has here: %v", countsSubdirs(root))
	for i := range 50 {
		leaf := filepath.Join(root, "archive", fmt.Sprintf("h%d.example.org", i), "000001")
		if err := os.MkdirAll(leaf, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(leaf, "cert.pem"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := Check(root, nil); err != nil {
		t.Fatalf("a private tree: %v", err)
	}
	deep := filepath.Join(root, "archive", "h7.example.org", "000001", "planted", "deeper")
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(deep, 0o777); err != nil {
		t.Fatal(err)
	}
	var ue *UnsafeError
	if err := Check(root, nil); !errors.As(err, &ue) || ue.Path != deep {
		t.Errorf("a world-writable directory five levels down: %v; want %s refused", err, deep)
	}
}

// TestCheckLayout: where the layout names a directory's subdirectories
// and the link counts say how many there are, the named ones are checked
// without reading the directory, and whatever the layout does not
// account for sends the walk back to reading it: a directory planted
// beside the named ones, a named entry that is not a directory, a layout
// that names one entry twice or a path.
func TestCheckLayout(t *testing.T) {
	root := t.TempDir()
	counted := countsSubdirs(root)
	t.Logf("link counts say how many subdirectories a directory has here: %v", counted)
	versions := func(n int) []string {
		var names []string
		for i := range n {
			names = append(names, fmt.Sprintf("%06d", i+1))
		}
		return names
	}
	var asked []string
	numbered := func(rel string, n int) []string {
		asked = append(asked, fmt.Sprintf("%s %d", rel, n))
		if dir, _ := filepath.Split(rel); dir == "archive/" {
			return versions(n)
		}
		return nil
	}
	lineage := filepath.Join(root, "archive", "a.example")
	for _, v := range versions(3) {
		if err := os.MkdirAll(filepath.Join(lineage, v), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := Check(root, numbered); err != nil {
		t.Fatalf("a private tree: %v", err)
	}
	if want := []string{". 1", "archive 1", "archive/a.example 3"}; counted && !slices.Equal(asked, want) {
		t.Errorf("the layout was asked %q; want %q", asked, want)
	}

	var ue *UnsafeError
	second := filepath.Join(lineage, "000002")
	if err := os.Chmod(second, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := Check(root, numbered); !errors.As(err, &ue) || ue.Path != second {
		t.Errorf("a named directory writable by others: %v; want %s refused", err, second)
	}
	if err := os.Chmod(second, 0o700); err != nil {
		t.Fatal(err)
	}

	planted := filepath.Join(lineage, "planted")
	if err := os.Mkdir(planted, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(planted, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := Check(root, numbered); !errors.As(err, &ue) || ue.Path != planted {
		t.Errorf("a directory beside the named ones: %v; want %s refused", err, planted)
	}
	// Four subdirectories, the fourth named a file: read after all.
	if err := os.WriteFile(filepath.Join(lineage, "000004"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Check(root, numbered); !errors.As(err, &ue) || ue.Path != planted {
		t.Errorf("a named entry that is a file: %v; want %s refused", err, planted)
	}
	for what, names := range map[string][]string{
		"one name twice": {"000001", "000001", "000002", "000003"},
		"a path":         {"000001", "000002", "000003", "../a.example"},
		"too few":        {"000001", "000002", "000003"},
	} {
		layout := func(rel string, n int) []string {
			if rel == "archive/a.example" {
				return names
			}
			return nil
		}
		if err := Check(root, layout); !errors.As(err, &ue) || ue.Path != planted {
			t.Errorf("a layout naming %s: %v; want %s refused", what, err, planted)
		}
	}
}
