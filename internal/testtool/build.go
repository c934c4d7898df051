package testtool

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// built holds the programs BuildProgram made in this test process, by
// name.
var built sync.Map // name -> *builtProgram

type builtProgram struct {
	once sync.Once
	path string
	err  error
}

// BuildProgram builds the Go program in dir (a test fixture's main
// package) once per test process into the user's cache, under
// xmppcert-tests/NAME, and returns its path. It builds under a temporary
// name and renames it into place, so that the test processes of several
// packages building at once never run half a file.
func BuildProgram(t testing.TB, dir, name string) string {
	t.Helper()
	v, _ := built.LoadOrStore(name, &builtProgram{})
	b := v.(*builtProgram)
	b.once.Do(func() {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		out := filepath.Join(cache, "xmppcert-tests")
		if b.err = os.MkdirAll(out, 0o755); b.err != nil {
			return
		}
		tmp := filepath.Join(out, fmt.Sprintf("%s.%d", name, os.Getpid()))
		cmd := exec.Command("go", "build", "-o", tmp, ".")
		cmd.Dir = dir
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("building %s: %v\n%s", name, err, msg)
			return
		}
		b.path = filepath.Join(out, name)
		b.err = os.Rename(tmp, b.path)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}
