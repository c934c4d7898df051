package main

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/xmppsim"
	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/daemon"
	"github.com/xmppcert/xmppcert/watcher/history"
	"github.com/xmppcert/xmppcert/watcher/probe"
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
	leaf, _ := hostileLeaf(root, "example.org")
	file, roots := filepath.Join(dir, "hostile.pem"), filepath.Join(dir, "root.pem")
	for p, data := range map[string][]byte{file: testpki.PEM(leaf), roots: testpki.PEM(root.Cert)} {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	safe := func(what, s string) { t.Helper(); assertSafeText(t, what, s) }
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

// hostileCN is a subject CN that acts on a terminal printed raw: a window
// title, a clear screen, an OSC 52 clipboard write and a bidi override.
const hostileCN = "\x1b]0;owned\x07\x1b[2J\x1b]52;c;Y2xpcA==\x07evil\u202egro.elpmaxe"

// hostileLeaf is a certificate for name whose subject carries hostileCN
// and a C1 CSI in its organisation.
func hostileLeaf(root *testpki.CA, name string) (*x509.Certificate, crypto.Signer) {
	return root.Leaf(func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: hostileCN, Organization: []string{"\u009b31mred"}}
		c.DNSNames = []string{name}
	})
}

// assertSafeText fails when s holds what a terminal would act on: a byte
// below 0x20 other than newline and tab, DEL, a C1 control, a bidi
// control, or bytes that are not UTF-8.
func assertSafeText(t *testing.T, what, s string) {
	t.Helper()
	for i, r := range s {
		if r == utf8.RuneError || (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			t.Errorf("%s holds %U at byte %d", what, r, i)
			return
		}
	}
}

// TestHostileTextPeer: a server presenting that certificate. probe (text
// and --json) and status (from the history the daemon keeps, reporting
// the certificate change) print nothing a terminal acts on, and their
// JSON decodes to the exact subject.
func TestHostileTextPeer(t *testing.T) {
	sim, err := xmppsim.New(xmppsim.Config{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	domain := sim.Domain(0)
	root := testpki.NewRoot("Hostile Test Root", nil)
	leaf, key := hostileLeaf(root, domain)
	dir := t.TempDir()
	roots := filepath.Join(dir, "root.pem")
	writeFile(t, roots, testpki.PEM(root.Cert), 0o644)

	// The first sweep sees the simulator's own certificate, the second
	// the hostile one: a change that status reports in words.
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := history.Open(filepath.Join(state, daemon.HistoryFile), history.Options{})
	if err != nil {
		t.Fatal(err)
	}
	record := func() {
		t.Helper()
		code, out, errs := runCLI(t, nil, "probe", domain, "--connect", sim.Addr(), "--roots", roots, "--json")
		var res probe.Result
		if err := json.Unmarshal([]byte(out), &res); err != nil || code == exitUsage {
			t.Fatalf("probe --json: exit %d, %v\n%s%s", code, err, out, errs)
		}
		for _, o := range watcher.Observations(res) {
			if _, _, err := st.Record(o); err != nil {
				t.Fatal(err)
			}
		}
	}
	record()
	if err := sim.SetCertificate(domain, &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	record()
	st.Close()

	code, out, errs := runCLI(t, nil, "probe", domain, "--connect", sim.Addr(), "--roots", roots)
	assertSafeText(t, "probe stdout", out)
	assertSafeText(t, "probe stderr", errs)
	if !strings.Contains(out, `\x1b]0`) {
		t.Errorf("probe (exit %d) does not show the subject's escapes visibly:\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, nil, "probe", domain, "--connect", sim.Addr(), "--roots", roots, "--json")
	assertSafeText(t, "probe --json", out)
	var res probe.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Endpoints) == 0 || res.Endpoints[0].TLS == nil || len(res.Endpoints[0].TLS.Chain) == 0 {
		t.Fatalf("probe --json: exit %d, %v\n%s%s", code, err, out, errs)
	}
	if got, want := res.Endpoints[0].TLS.Chain[0].Subject, leaf.Subject.String(); got != want {
		t.Errorf("probe --json subject %q; want exactly %q", got, want)
	}

	listen := freeAddr(t)
	code, out, errs = runCLI(t, nil, "--state-dir", state, "status", "--listen", listen)
	assertSafeText(t, "status stdout", out)
	assertSafeText(t, "status stderr", errs)
	if code != exitOK || !strings.Contains(out, domain) || !strings.Contains(out, `\x1b]0`) {
		t.Errorf("status: exit %d, the endpoint or its subject (escaped) missing:\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, nil, "--state-dir", state, "status", "--listen", listen, "--json")
	assertSafeText(t, "status --json", out)
	var rep statusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitOK || len(rep.Endpoints) == 0 {
		t.Fatalf("status --json: exit %d, %v\n%s%s", code, err, out, errs)
	}
	if got, want := rep.Endpoints[0].Leaf().Subject, leaf.Subject.String(); got != want {
		t.Errorf("status --json subject %q; want exactly %q", got, want)
	}
}
