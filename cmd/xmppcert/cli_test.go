package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// runCLI runs xmppcert in-process and returns its exit code and output.
func runCLI(t testing.TB, stdin []byte, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"xmppcert"}, args...), bytes.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// fakeClock sets the commands' clock to real time plus an offset and
// returns the function that moves the offset forward: tests step over
// pin holds and POSH lifetimes of realistic length without sleeping.
func fakeClock(t *testing.T) (advance func(time.Duration)) {
	var offset atomic.Int64
	clock = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	t.Cleanup(func() { clock = time.Now })
	return func(d time.Duration) { offset.Add(int64(d)) }
}

// TestBadInput holds every kind of bad input to the contract: exit 2, one
// line on stderr, nothing on stdout, quickly.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	if err := writeFixtures(dir); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"empty.pem": nil, "notpem.txt": []byte("hello\n"), "binary.bin": {0x00, 0xff, 0x13}}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	cases := [][]string{
		{"inspect", p("empty.pem")},
		{"inspect", p("notpem.txt")},
		{"inspect", p("binary.bin")},
		{"inspect", p("truncated.der")},
		{"inspect", p("key.pem")},
		{"inspect", p("key.der")},
		{"inspect", p("garbage.bin")},
		{"inspect", p("missing.pem")},
		{"inspect", dir},
		{"inspect"},
		{"check", "--domain", "example.org", p("garbage.bin")},
		{"check", "--domain", "example.org", p("truncated.der")},
		{"check", "--domain", "example.org", p("key.pem")},
		{"check", "--domain", "example.org", p("empty.pem")},
		{"check", "--domain", "example.org", "--roots", p("garbage.bin"), p("host.pem")},
		{"check", "--domain", "", p("host.pem")},
		{"check", "--domain", "a..b", p("host.pem")},
		{"check", "--domain", "example.org", "--service", "smtp", p("host.pem")},
		{"check", "--domain", "example.org", "--at", "soon", p("host.pem")},
		{"check", "--domain", "example.org", "--no-such-flag", p("host.pem")},
		{"frobnicate"},
		// ca serve refuses to listen beyond loopback for any name.
		{"--state-dir", p("state"), "ca", "serve", "--listen", "0.0.0.0:0"},
		{"--state-dir", p("state"), "ca", "serve", "--listen", "127.0.0.1"},
		{"--state-dir", p("state"), "ca", "serve", "--allow-domain", "a..b"},
	}
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			start := time.Now()
			code, stdout, stderr := runCLI(t, nil, args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout not empty: %q", stdout)
			}
			if lines := strings.Count(stderr, "\n"); lines != 1 || !strings.HasPrefix(stderr, "xmppcert") {
				t.Errorf("stderr is not one xmppcert line: %q", stderr)
			}
			if strings.Contains(stderr, "PRIVATE KEY") || strings.Contains(stderr, "MII") {
				t.Errorf("stderr quotes the input: %q", stderr)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	if _, err := os.Stat(p("state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused ca serve wrote its state directory: %v", err)
	}
}

// TestExitCodes pins 0 for valid and 1 for not valid.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	if err := writeFixtures(dir); err != nil {
		t.Fatal(err)
	}
	base := []string{"check", "--roots", filepath.Join(dir, "root.pem"), "--at", "2026-02-01"}
	if code, out, errs := runCLI(t, nil, append(base, "--domain", "example.org", filepath.Join(dir, "host.pem"))...); code != exitOK {
		t.Errorf("valid certificate: exit %d\n%s%s", code, out, errs)
	}
	if code, _, errs := runCLI(t, nil, append(base, "--domain", "example.net", filepath.Join(dir, "host.pem"))...); code != exitFailed || errs != "" {
		t.Errorf("wrong domain: exit %d, stderr %q; want 1 and nothing on stderr", code, errs)
	}
	if code, _, _ := runCLI(t, nil, "inspect", filepath.Join(dir, "hostile.pem")); code != exitOK {
		t.Errorf("inspect of a certificate with bad entries: exit %d, want 0", code)
	}
}

// TestOpenSSLInterop checks a certificate made by openssl with the
// otherName syntax operators copy from the Prosody documentation.
func TestOpenSSLInterop(t *testing.T) {
	openssl := testtool.Require(t, "openssl", "openssl")
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	cmd := exec.Command(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", filepath.Join(dir, "key.pem"), "-out", cert, "-days", "30", "-subj", "/CN=example.org",
		"-addext", "subjectAltName=DNS:example.org,"+
			"otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-client.example.org,"+
			"otherName:1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-server.example.org,"+
			"otherName:1.3.6.1.5.5.7.8.5;UTF8:example.org,"+
			"otherName:1.3.6.1.5.5.7.8.7;UTF8:_xmpp-client.wrongtype.example",
		"-addext", "extendedKeyUsage=serverAuth")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	code, out, errs := runCLI(t, nil, "check", "--domain", "example.org", "--service", "xmpp-server", "--roots", cert, cert)
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{`through dNSName "example.org"`, `through SRVName "_xmpp-server.example.org"`, `through XmppAddr "example.org"`,
		"srvname-not-ia5string", "eku-no-client-auth"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// FuzzCheck feeds arbitrary input to 'xmppcert check -' and holds it to
// the exit-code contract: 0, 1 or 2, never a panic, and input errors as
// one line.
func FuzzCheck(f *testing.F) {
	dir := f.TempDir()
	if err := writeFixtures(dir); err != nil {
		f.Fatal(err)
	}
	for _, name := range []string{"host.pem", "host.der", "hostile.pem", "cnonly.pem", "truncated.der", "key.der"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Add(testpki.PEM())
	roots := filepath.Join(dir, "root.pem")
	f.Fuzz(func(t *testing.T, data []byte) {
		var code int
		var stderr string
		done := make(chan struct{})
		go func() {
			defer close(done)
			code, _, stderr = runCLI(t, data, "check", "--json", "--domain", "example.org", "--service", "xmpp-server", "--roots", roots, "--at", "2026-02-01", "-")
		}()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("check did not finish within 2s on %d bytes of input", len(data))
		}
		switch code {
		case exitOK, exitFailed:
			if stderr != "" {
				t.Fatalf("exit %d with stderr %q", code, stderr)
			}
		case exitUsage:
			if strings.Count(stderr, "\n") != 1 {
				t.Fatalf("input error is not one line: %q", stderr)
			}
		default:
			t.Fatalf("exit %d", code)
		}
	})
}
