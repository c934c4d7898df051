package testtool

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// swapEnv carries a Swapper's orders to the re-executed test binary.
const swapEnv = "XMPPCERT_TEST_SWAP"

type swapOrders struct {
	Dir, Target string
	Names       []string
}

// Nobody is the uid and gid a Swapper runs as: another user than root.
const Nobody = 65534

// Swapper is another user's process that replaces names in a directory
// with symbolic links, round after round, as fast as it can (see
// StartSwapper).
type Swapper struct {
	cmd   *exec.Cmd
	in    io.Closer
	swaps atomic.Int64
	done  chan struct{}
	out   LockedBuffer
	once  sync.Once
}

// Swaps is how many swaps it has made so far.
func (s *Swapper) Swaps() int { return int(s.swaps.Load()) }

// Stop ends it and returns how many swaps it made.
func (s *Swapper) Stop(t testing.TB) int {
	s.once.Do(func() {
		s.in.Close()
		<-s.done
		if err := s.cmd.Wait(); err != nil {
			t.Errorf("swapper: %v\n%s", err, s.out.String())
		}
	})
	return s.Swaps()
}

// StartSwapper starts, as user Nobody, a process that replaces each of
// names in dir (which that user must be able to write) with a symbolic
// link to target, round after round, as fast as it can: a directory or
// file there is first renamed away. It plays the other user of a
// directory root writes into. The process is the test binary itself,
// run with -test.run=^helper$: the package must have a test named helper
// that calls SwapHelper. It needs root; the caller skips otherwise.
func StartSwapper(t testing.TB, helper, dir, target string, names []string) *Swapper {
	t.Helper()
	// The test binary lives in a directory only root may enter: run a
	// copy from one Nobody can reach.
	binDir := SharedDir(t)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(binDir, "helper.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	orders, err := json.Marshal(swapOrders{Dir: dir, Target: target, Names: names})
	if err != nil {
		t.Fatal(err)
	}
	s := &Swapper{cmd: exec.Command(bin, "-test.run=^"+helper+"$", "-test.count=1"), done: make(chan struct{})}
	s.cmd.Dir = binDir
	s.cmd.Env = append(os.Environ(), swapEnv+"="+string(orders))
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: Nobody, Gid: Nobody}}
	s.cmd.Stderr = &s.out
	if s.in, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.out.Write(append(sc.Bytes(), '\n'))
			if n, ok := strings.CutPrefix(sc.Text(), "swaps "); ok {
				if v, err := strconv.ParseInt(n, 10, 64); err == nil {
					s.swaps.Store(v)
				}
			}
		}
	}()
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// SwapHelper is the body of the helper test StartSwapper runs; outside a
// Swapper it skips.
func SwapHelper(t *testing.T) {
	raw := os.Getenv(swapEnv)
	if raw == "" {
		t.Skip("the swapper of a symbolic link race test; it runs only as that")
	}
	var o swapOrders
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		t.Fatal(err)
	}
	var done atomic.Bool
	go func() {
		io.Copy(io.Discard, os.Stdin)
		done.Store(true)
	}()
	swaps := 0
	for round := 0; !done.Load(); round++ {
		for _, name := range o.Names {
			path := filepath.Join(o.Dir, name)
			os.Rename(path, fmt.Sprintf("%s.moved-%d", path, round))
			link := path + ".link"
			os.Remove(link)
			if os.Symlink(o.Target, link) == nil && os.Rename(link, path) == nil {
				swaps++
				if swaps%100 == 0 {
					fmt.Printf("swaps %d\n", swaps)
				}
			}
		}
	}
	fmt.Printf("swaps %d\n", swaps)
}

// NobodysDir returns a new directory named name, owned by Nobody and
// reachable by every user: the directory another user writes into while
// root writes there too. It needs root.
func NobodysDir(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(SharedDir(t), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, Nobody, Nobody); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Victim writes a file only root may read (0600, root:root) where no other
// user can reach it, the target of a Swapper's links, and returns its path
// and a check that fails the test if its owner, group, mode or content
// has changed.
func Victim(t testing.TB) (path string, unchanged func()) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "shadow")
	secret := []byte("root's secret\n")
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, func() {
		t.Helper()
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if b, _ := os.ReadFile(path); fi.Mode().Perm() != 0o600 || st.Uid != 0 || st.Gid != 0 || !bytes.Equal(b, secret) {
			t.Errorf("the root file behind the links changed: mode %v, owner %d:%d, content %q", fi.Mode().Perm(), st.Uid, st.Gid, b)
		}
	}
}
