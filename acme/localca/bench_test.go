package localca

import (
	"context"
	"fmt"
	"testing"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// issueInto is one full local issuance as `xmppcert issue` does it once
// the CA is open: take the lineage's lock, generate a key, sign through
// the ACME provisioner's template, write the lineage atomically (temp
// files, fsync, rename, symlink swap).
func issueInto(ctx context.Context, store acme.Store, ca *CA, host string) error {
	req, err := acme.NewRequest(host, xmppaddr.RoleHost, []string{"conference." + host}, acme.KeyECDSAP256)
	if err != nil {
		return err
	}
	unlock, err := store.Lock(req.Host())
	if err != nil {
		return err
	}
	defer unlock()
	_, err = acme.Obtain(ctx, store, ca, req)
	return err
}

// BenchmarkIssue measures one issuance into a fresh lineage (key
// generation, signing with the CA's database write, lock, atomic lineage
// writes). bench/issue.sh runs it with -benchtime=1000x: 1,000 issuances
// into separate lineages in one process, whose total the target bounds
// at 10 s.
func BenchmarkIssue(b *testing.B) {
	ca := openTestCA(b, Options{})
	store := acme.Store{Dir: b.TempDir()}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := issueInto(ctx, store, ca, fmt.Sprintf("h%d.example.org", i)); err != nil {
			b.Fatal(err)
		}
	}
}
