package lifecycle

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/testetcd"
)

// rootPEM is the root certificate of the embedded CA in e's state
// directory.
func rootPEM(t *testing.T, e *Engine) []byte {
	t.Helper()
	b, err := localca.RootPEM(CADir(e.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInitCA: on one machine InitCA creates the embedded CA once and
// then changes nothing. On a cluster, the first node's new CA (its root
// key written elsewhere) becomes the cluster's; another node asked to
// write a new root key is refused and writes nothing, installs the
// cluster's CA when not asked, and then changes nothing; a node whose
// own CA was made before it joined keeps it and is told it is not the
// cluster's.
func TestInitCA(t *testing.T) {
	t.Run("disk", func(t *testing.T) {
		e := OnDisk(t.TempDir())
		if created, err := e.InitCA(""); err != nil || !created {
			t.Fatalf("InitCA: %v, %v; want created", created, err)
		}
		root := rootPEM(t, e)
		var exists *CAExistsError
		if created, err := e.InitCA(""); !errors.As(err, &exists) || exists.Cluster || created || !errors.Is(err, localca.ErrExists) {
			t.Errorf("InitCA again: %v, %v; want a CAExistsError that is not the cluster's", created, err)
		}
		if !bytes.Equal(rootPEM(t, e), root) {
			t.Error("InitCA again replaced the CA")
		}
	})
	t.Run("cluster", func(t *testing.T) {
		etcd := testetcd.Start(t)
		clock := &fakeClock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
		n0 := clusterEngine(t, etcd, clock, nil, "node-0")
		keyOut := filepath.Join(t.TempDir(), "root.key")
		if created, err := n0.InitCA(keyOut); err != nil || !created {
			t.Fatalf("node-0's InitCA: %v, %v; want created", created, err)
		}
		if _, err := os.Stat(keyOut); err != nil {
			t.Errorf("the root's key: %v", err)
		}
		root := rootPEM(t, n0)

		n1 := clusterEngine(t, etcd, clock, nil, "node-1")
		other := filepath.Join(t.TempDir(), "root.key")
		if _, err := n1.InitCA(other); !errors.Is(err, ErrClusterKeepsCA) {
			t.Errorf("node-1's InitCA with a root key out: %v; want ErrClusterKeepsCA", err)
		}
		for _, p := range []string{other, CADir(n1.StateDir)} {
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the refused InitCA wrote %s (%v)", p, err)
			}
		}
		if created, err := n1.InitCA(""); err != nil || created {
			t.Fatalf("node-1's InitCA: %v, %v; want the cluster's CA installed", created, err)
		}
		if !bytes.Equal(rootPEM(t, n1), root) {
			t.Error("node-1's CA is not node-0's")
		}
		var exists *CAExistsError
		if _, err := n1.InitCA(""); !errors.As(err, &exists) || !exists.Cluster {
			t.Errorf("node-1's InitCA again: %v; want a CAExistsError naming the cluster's CA", err)
		}

		n2 := clusterEngine(t, etcd, clock, nil, "node-2")
		if _, err := OnDisk(n2.StateDir).InitCA(""); err != nil {
			t.Fatal(err)
		}
		own := rootPEM(t, n2)
		var mismatch *CAMismatchError
		if _, err := n2.InitCA(""); !errors.As(err, &mismatch) || mismatch.Dir != CADir(n2.StateDir) {
			t.Errorf("node-2's InitCA over its own CA: %v; want a CAMismatchError", err)
		}
		if !bytes.Equal(rootPEM(t, n2), own) {
			t.Error("node-2's own CA was replaced")
		}
	})
}
