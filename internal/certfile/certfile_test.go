package certfile

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testpki"
)

func TestParse(t *testing.T) {
	root := testpki.NewRoot("Root", nil)
	leaf, key := root.Leaf(nil)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	chainPEM := testpki.PEM(leaf, root.Cert)
	showcerts := "CONNECTED(00000003)\ndepth=0\n---\nCertificate chain\n 0 s:\n" + string(chainPEM) + "---\nServer certificate\n"
	good := map[string][]byte{
		"PEM chain":             chainPEM,
		"s_client -showcerts":   []byte(showcerts),
		"DER chain":             append(append([]byte{}, leaf.Raw...), root.Cert.Raw...),
		"key then certificates": append([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), chainPEM...),
	}
	for name, data := range good {
		certs, err := Parse(data)
		if err != nil || len(certs) != 2 || !certs[0].Equal(leaf) {
			t.Errorf("%s: %d certificates, %v", name, len(certs), err)
		}
	}
	bad := map[string]struct {
		data []byte
		want string
	}{
		"empty":         {nil, "empty input"},
		"blank":         {[]byte(" \n\t"), "empty input"},
		"text":          {[]byte("hello"), "no certificate found"},
		"truncated DER": {leaf.Raw[:40], "not a valid DER certificate"},
		"DER key":       {keyDER, "private key"},
		"PEM key":       {[]byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), "private key"},
		"CSR only":      {[]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"), "only CERTIFICATE REQUEST"},
		"broken PEM":    {[]byte("-----BEGIN CERTIFICATE-----\nAAAA"), "truncated or corrupt"},
		"bad cert PEM":  {[]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "certificate 1 is not a valid X.509 certificate"},
	}
	for name, tc := range bad {
		_, err := Parse(tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line containing %q", name, err, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	root := testpki.NewRoot("Root", nil)
	leaf, _ := root.Leaf(nil)
	f.Add(testpki.PEM(leaf, root.Cert))
	f.Add(leaf.Raw)
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := Parse(data)
		if err != nil {
			if certs != nil || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q with %d certificates", err, len(certs))
			}
			return
		}
		if len(certs) == 0 {
			t.Fatalf("%d certificates without an error", len(certs))
		}
	})
}

// TestReadPoolBundle: a system trust bundle (Debian's ca-certificates.crt
// holds 144 roots, some bundles put a comment before each) is read
// whole; the bound is the file's size, not how many certificates it holds.
func TestReadPoolBundle(t *testing.T) {
	var bundle bytes.Buffer
	var roots []*testpki.CA
	for i := range 150 {
		r := testpki.NewRoot(fmt.Sprintf("Bundle Root %d", i), nil)
		roots = append(roots, r)
		fmt.Fprintf(&bundle, "# Issuer: CN=Bundle Root %d\n", i)
		bundle.Write(testpki.PEM(r.Cert))
	}
	path := filepath.Join(t.TempDir(), "ca-certificates.crt")
	if err := os.WriteFile(path, bundle.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pool, err := ReadPool(path, nil)
	if err != nil {
		t.Fatalf("a bundle of 150 roots: %v", err)
	}
	for _, i := range []int{0, 149} {
		leaf, _ := roots[i].Leaf(nil)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: testpki.At}); err != nil {
			t.Errorf("a leaf of root %d does not verify against the pool: %v", i, err)
		}
	}

	big := filepath.Join(t.TempDir(), "big.pem")
	if err := os.WriteFile(big, bytes.Repeat(bundle.Bytes(), MaxSize/bundle.Len()+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPool(big, nil); err == nil || !strings.Contains(err.Error(), "larger than 1024 KiB") {
		t.Errorf("a file over MaxSize: %v; want it refused by size", err)
	}
}
