package main

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/xmppcert/xmppcert/internal/testpki"
)

// TestHostileText: a certificate whose subject carries terminal escapes
// (window title, clear screen, an OSC 52 clipboard write), a C1 CSI and
// a bidi override: inspect and check print nothing a terminal acts on
// (no byte below 0x20 but newline and tab, no DEL, no C1, no bidi
// control), show the escapes visibly, and inspect --json still decodes
// to the exact subject.
func TestHostileText(t *testing.T) {
	dir := t.TempDir()
	root := testpki.NewRoot("Hostile Test Root", nil)
	cn := "\x1b]0;owned\x07\x1b[2J\x1b]52;c;Y2xpcA==\x07evil\u202egro.elpmaxe"
	leaf, _ := root.Leaf(func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: cn, Organization: []string{"\u009b31mred"}}
		c.DNSNames = []string{"example.org"}
	})
	file, roots := filepath.Join(dir, "hostile.pem"), filepath.Join(dir, "root.pem")
	for p, data := range map[string][]byte{file: testpki.PEM(leaf), roots: testpki.PEM(root.Cert)} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	safe := func(what, s string) {
		t.Helper()
		for i, r := range s {
			if r == utf8.RuneError || (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) {
				t.Errorf("%s holds %U at byte %d", what, r, i)
				return
			}
		}
	}
	for _, args := range [][]string{
		{"inspect", file},
		{"check", "--domain", "example.org", "--service", "xmpp-client", "--roots", roots, file},
		{"check", "--domain", "other.example", "--service", "xmpp-client", "--roots", roots, file},
	} {
		_, out, errs := runCLI(t, nil, args...)
		safe(strings.Join(args[:1], " ")+" stdout", out)
		safe(strings.Join(args[:1], " ")+" stderr", errs)
		if args[0] != "inspect" {
			continue
		}
		for _, want := range []string{`subject      CN=\x1b]0\;owned\x07\x1b[2J\x1b]52\;c\;Y2xpcA==\x07evil\u202egro.elpmaxe,O=\u009b31mred`, `evil\u202egro.elpmaxe  ignored`} {
			if !strings.Contains(out, want) {
				t.Errorf("inspect does not show %s visibly:\n%s", want, out)
			}
		}
	}
	code, out, errs := runCLI(t, nil, "inspect", "--json", file)
	safe("inspect --json", out)
	var doc struct {
		Certificates []struct{ Subject string }
	}
	if err := json.Unmarshal([]byte(out), &doc); code != exitOK || err != nil || len(doc.Certificates) != 1 {
		t.Fatalf("inspect --json: exit %d, %v\n%s%s", code, err, out, errs)
	}
	if got, want := doc.Certificates[0].Subject, leaf.Subject.String(); got != want {
		t.Errorf("inspect --json subject %q; want exactly %q", got, want)
	}
}
