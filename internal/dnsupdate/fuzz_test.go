package dnsupdate_test

import (
	"encoding/base64"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/dnsupdate"
)

var secretErrRE = regexp.MustCompile(`^(empty: it should hold the base64 secret|not base64: it should hold the secret as tsig-keygen or keymgr print it|holds [0-9]+ secrets: give a file with one key)$`)

// FuzzParseTSIGSecret holds the secret-file parser to its contract: no
// panic; a result is canonical, non-empty base64; an error is one line
// and never repeats the file's content.
func FuzzParseTSIGSecret(f *testing.F) {
	for _, seed := range []string{
		"3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhs=\n",
		"3q2+7wABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhs",
		`key "acme" { algorithm hmac-sha256; secret "c2VjcmV0"; };`,
		"key:\n  - id: acme\n    algorithm: hmac-sha256\n    secret: c2VjcmV0\n",
		"secret: a\nsecret: b",
		"secretc2VjcmV0",
		"secret \"\";",
		"",
		"\x00\xff",
		"hunter2 is my password",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		secret, err := dnsupdate.ParseTSIGSecret(data)
		if err != nil {
			// Fixed messages only: nothing of the content can leak.
			if !secretErrRE.MatchString(err.Error()) {
				t.Fatalf("unexpected error %q", err)
			}
			return
		}
		b, derr := base64.StdEncoding.DecodeString(secret)
		if derr != nil || len(b) == 0 {
			t.Fatalf("result %q is not non-empty base64: %v", secret, derr)
		}
		if base64.StdEncoding.EncodeToString(b) != secret {
			t.Fatalf("result %q is not canonical", secret)
		}
	})
}

// FuzzTSIGAlgorithm: only the five HMAC-SHA names come out; errors are
// one line whatever the input.
func FuzzTSIGAlgorithm(f *testing.F) {
	for _, seed := range []string{"", "hmac-sha256", "HMAC-SHA512.", "hmac-md5", "a\nb", "hmac-sha1.."} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		alg, err := dnsupdate.TSIGAlgorithm(name)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error not one line: %q", err)
			}
			return
		}
		switch alg {
		case "hmac-sha1.", "hmac-sha224.", "hmac-sha256.", "hmac-sha384.", "hmac-sha512.":
		default:
			t.Fatalf("TSIGAlgorithm(%q) = %q", name, alg)
		}
	})
}

// FuzzHostPort: an accepted server address is host:port with a port in
// range; an error is one line.
func FuzzHostPort(f *testing.F) {
	for _, seed := range []string{"ns1.example.org", "127.0.0.1:5353", "::1", "[::1]:53", "[::1", "a:b:c", ":53", "host:0", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hp, err := dnsupdate.HostPort(s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error not one line: %q", err)
			}
			return
		}
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" || port == "" {
			t.Fatalf("HostPort(%q) = %q: %v", s, hp, err)
		}
	})
}
