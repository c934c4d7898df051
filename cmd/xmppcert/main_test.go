package main

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func TestMain(m *testing.M) {
	testscript.Main(removeBuilt{m}, map[string]func(){
		"xmppcert": func() { os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// removeBuilt runs the tests, then removes the binary buildXmppcert built.
type removeBuilt struct{ m *testing.M }

func (r removeBuilt) Run() int {
	code := r.m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	return code
}

// TestScripts runs the end-to-end CLI scripts in testdata/*.txtar against
// certificates made fresh for each script by writeFixtures.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Setup: func(env *testscript.Env) error {
			return writeFixtures(env.WorkDir)
		},
		// [missing:PROGRAM] is true when PROGRAM is not installed, for
		// a script to skip naming its Debian package; in CI, whose test
		// command installs it, a missing program fails the script, as
		// testtool.Require does.
		Condition: func(cond string) (bool, error) {
			name, ok := strings.CutPrefix(cond, "missing:")
			if !ok {
				return false, fmt.Errorf("unknown condition %q", cond)
			}
			if _, found := testtool.Find(name); found {
				return false, nil
			}
			if os.Getenv("CI") != "" {
				return false, fmt.Errorf("%s not found in CI: the test command must install it", name)
			}
			return true, nil
		},
	})
}

// writeFixtures writes the certificates the scripts use. Every
// certificate is valid at testpki.At (2026-01-31); the scripts pass --at.
func writeFixtures(dir string) error {
	root := testpki.NewRoot("xmppcert Test Root", nil)
	inter := root.Intermediate("xmppcert Test Intermediate", nil)
	sanExt := func(names ...xmppaddr.Name) func(*x509.Certificate) {
		return func(c *x509.Certificate) {
			ext, err := xmppaddr.SANExtension(names, false)
			if err != nil {
				panic(err)
			}
			c.Subject = pkix.Name{CommonName: names[0].Domain}
			c.ExtraExtensions = append(c.ExtraExtensions, ext)
		}
	}
	host, key := inter.Leaf(sanExt(xmppaddr.Name{Domain: "example.org", Role: xmppaddr.RoleHost}, xmppaddr.Name{Domain: "conference.example.org", Role: xmppaddr.RoleComponent}))
	serverOnly, _ := inter.Leaf(func(c *x509.Certificate) {
		sanExt(xmppaddr.Name{Domain: "example.org"})(c)
		c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	})
	srvOnly, _ := inter.Leaf(func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.SRV("_xmpp-client.example.org")))
	})
	cnOnly, _ := inter.Leaf(func(c *x509.Certificate) { c.Subject.CommonName = "example.org" })
	hostile, _ := inter.Leaf(func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false,
			testpki.SRV("_xmpp-client._tcp.example.org"), testpki.Xmpp("admin@example.org"), testpki.DNS("*.org")))
	})
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	garbage := make([]byte, 10<<20)
	rng := rand.NewChaCha8([32]byte{1})
	_, _ = rng.Read(garbage)
	hostDER := append(append([]byte{}, host.Raw...), inter.Cert.Raw...)
	files := map[string][]byte{
		"root.pem":       testpki.PEM(root.Cert),
		"host.pem":       testpki.PEM(host, inter.Cert),
		"host.der":       hostDER,
		"serveronly.pem": testpki.PEM(serverOnly, inter.Cert),
		"srvonly.pem":    testpki.PEM(srvOnly, inter.Cert),
		"cnonly.pem":     testpki.PEM(cnOnly, inter.Cert),
		"hostile.pem":    testpki.PEM(hostile, inter.Cert),
		"combined.pem":   append(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), testpki.PEM(host, inter.Cert)...),
		"key.pem":        pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"key.der":        keyDER,
		"truncated.der":  host.Raw[:len(host.Raw)/2],
		"garbage.bin":    garbage,
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
