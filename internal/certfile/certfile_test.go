package certfile

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
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

// TestUnparseable: a certificate crypto/x509 refuses (an iPAddress SAN of
// five bytes) is an *UnparseableError naming its position, in PEM and in
// DER, with the certificates before it; a PEM block of garbage is not.
func TestUnparseable(t *testing.T) {
	root := testpki.NewRoot("Root", nil)
	tmpl := testpki.LeafTemplate()
	tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, testpki.SAN(false, testpki.IP([]byte{192, 0, 2, 1, 9})))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad, err := x509.CreateCertificate(rand.Reader, tmpl, root.Cert, key.Public(), root.Key)
	if err != nil {
		t.Fatal(err)
	}
	pemChain := append(testpki.PEM(root.Cert), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: bad})...)
	for name, data := range map[string][]byte{"PEM": pemChain, "DER": append(append([]byte(nil), root.Cert.Raw...), bad...)} {
		certs, err := Parse(data)
		var ue *UnparseableError
		if !errors.As(err, &ue) || ue.Index != 1 || ue.Count != 2 || len(certs) != 1 || !strings.Contains(err.Error(), "certificate 2 is not a valid X.509 certificate: x509: cannot parse IP address of length 5") {
			t.Errorf("%s: %d certificates, %v", name, len(certs), err)
		}
	}
	garbage := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x01}})
	if _, err := Parse(garbage); err == nil || errors.As(err, new(*UnparseableError)) {
		t.Errorf("garbage in a CERTIFICATE block: %v; want a plain error", err)
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
		var ue *UnparseableError
		switch {
		case errors.As(err, &ue):
			if len(certs) != ue.Index || ue.Index >= ue.Count || ue.Err == nil {
				t.Fatalf("unparseable certificate %d of %d with %d before it", ue.Index, ue.Count, len(certs))
			}
			return
		case err != nil:
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

// TestReadErrors: what is not a certificate file is named as such, in one
// line that starts with the path.
func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		path  string
		stdin io.Reader
		want  string
	}{
		{dir, nil, dir + ": is a directory, not a certificate file"},
		{filepath.Join(dir, "missing.pem"), nil, filepath.Join(dir, "missing.pem") + ": cannot read: no such file or directory"},
		{"-", bytes.NewReader(make([]byte, MaxSize+1)), "stdin: larger than 1024 KiB"},
		{"-", strings.NewReader(""), "stdin: empty input"},
	} {
		if _, err := Read(c.path, c.stdin); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("Read(%s): %v; want %q", c.path, err, c.want)
		}
	}
}
