package localca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/atomicfile"
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
// into separate lineages in one process, whose total the README's target
// puts under 10 s, beside BenchmarkIssueFloor.
func BenchmarkIssue(b *testing.B) {
	ca := openTestCA(b, Options{})
	store := acme.DiskStore{Dir: b.TempDir()}
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := issueInto(ctx, store, ca, fmt.Sprintf("h%d.example.org", i)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssueFloor is what any issuance of the same certificate pays
// without xmppcert, measured beside BenchmarkIssue by bench/issue.sh: a
// P-256 key generated, a certificate for the same names signed by the
// same intermediate key with crypto/x509, and the key, certificate and
// chain written as durable files (atomicfile: temp file, fsync, rename,
// directory fsync) into a fresh directory. Its ratio to BenchmarkIssue
// is what a loaded machine cannot fake: both slow down together.
func BenchmarkIssueFloor(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "ca")
	if err := Init(dir); err != nil {
		b.Fatal(err)
	}
	inter, interKey, err := intermediate(dir)
	if err != nil {
		b.Fatal(err)
	}
	out := b.TempDir()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		host := fmt.Sprintf("h%d.example.org", i)
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i) + 1),
			NotBefore:    time.Now(), NotAfter: time.Now().Add(90 * 24 * time.Hour),
			DNSNames:    []string{host, "conference." + host},
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, inter, key.Public(), interKey)
		if err != nil {
			b.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			b.Fatal(err)
		}
		lineage := filepath.Join(out, host)
		if err := os.Mkdir(lineage, 0o700); err != nil {
			b.Fatal(err)
		}
		leaf := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: inter.Raw})
		for name, data := range map[string][]byte{
			"privkey.pem":   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
			"cert.pem":      leaf,
			"fullchain.pem": append(leaf, chain...),
		} {
			if err := atomicfile.WriteFile(filepath.Join(lineage, name), data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		if err := atomicfile.SyncDir(out); err != nil {
			b.Fatal(err)
		}
	}
}
