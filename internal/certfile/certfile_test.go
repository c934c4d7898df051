package certfile

import (
	"bytes"
	"crypto/x509"
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
		"too many":      {bytes.Repeat(testpki.PEM(leaf), MaxCerts+1), "more than 32 certificates"},
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
		if len(certs) == 0 || len(certs) > MaxCerts {
			t.Fatalf("%d certificates without an error", len(certs))
		}
	})
}
