package lifecycle

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testpki"
)

// Mirror writes a shared store's lineages into certbot's layout under
// the same version numbers, staged versions included and the shared
// current one made current; a layout already up to date is left alone,
// and one whose versions are not the shared store's is not touched.
func TestMirror(t *testing.T) {
	ca := testpki.NewRoot("mirror root", nil)
	write := func(s acme.Store, stage bool) *acme.Lineage {
		t.Helper()
		req, err := acme.NewRequest("example.org", 0, nil, acme.KeyECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		req.Stage = stage
		leaf, key := ca.Leaf(nil)
		next, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		l, err := s.Write(req, &acme.Issued{Chain: []*x509.Certificate{leaf, ca.Cert}, Key: key}, next)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	src := newMemStore()
	write(src, false)
	v2 := write(src, true) // staged: version 1 stays current
	dst := acme.DiskStore{Dir: t.TempDir()}

	changed, err := Mirror(src, dst)
	if err != nil || !slices.Equal(changed, []string{"example.org"}) {
		t.Fatalf("first mirror: %v, %v", changed, err)
	}
	cur, err := dst.Load("example.org")
	if err != nil || cur.Version != 1 {
		t.Fatalf("local current %+v, %v; want version 1", cur, err)
	}
	if leaf, err := dst.VersionLeaf("example.org", 2); err != nil || !leaf.Equal(v2.Chain[0]) {
		t.Errorf("local version 2: %v", err)
	}
	if changed, err := Mirror(src, dst); err != nil || len(changed) != 0 {
		t.Errorf("mirror of an up-to-date layout: %v, %v; want nothing done", changed, err)
	}
	if _, err := src.Promote("example.org", 2); err != nil {
		t.Fatal(err)
	}
	if changed, err := Mirror(src, dst); err != nil || len(changed) != 1 {
		t.Fatalf("after the promotion: %v, %v", changed, err)
	}
	if cur, _ := dst.Load("example.org"); cur == nil || cur.Version != 2 {
		t.Errorf("local current after the promotion: %+v; want version 2", cur)
	}

	// A layout of this machine's own with another certificate as version
	// 1 is not overwritten.
	other := acme.DiskStore{Dir: t.TempDir()}
	write(other, false)
	before, _ := os.ReadFile(filepath.Join(other.Dir, "live", "example.org", "cert.pem"))
	_, err = Mirror(src, other)
	var me *MirrorError
	if !errors.Is(err, ErrDiverged) || !errors.As(err, &me) || me.Name != "example.org" {
		t.Errorf("mirror over a diverged layout: %v; want ErrDiverged naming the lineage", err)
	}
	if after, _ := os.ReadFile(filepath.Join(other.Dir, "live", "example.org", "cert.pem")); string(after) != string(before) {
		t.Errorf("the diverged layout was changed")
	}
}
