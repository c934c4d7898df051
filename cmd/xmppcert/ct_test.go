package main

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/certfile"
	"github.com/xmppcert/xmppcert/internal/testct"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestCTCheck searches a real CT log (TesseraCT) holding our lineage's
// certificate and another CA's for our domain: ours is named as ours,
// the other as not issued by xmppcert (exit 1); --json says the same;
// bad input is exit 2.
func TestCTCheck(t *testing.T) {
	state, _ := probeState(t, "example.org")
	l, err := acme.DiskStore{Dir: state}.Load("example.org")
	if err != nil {
		t.Fatal(err)
	}
	root, err := certfile.Read(filepath.Join(state, "ca", "root.crt"), nil)
	if err != nil {
		t.Fatal(err)
	}
	other := testpki.NewRoot("Interceptor Root", nil)
	leaf, _ := other.Leaf(func(c *x509.Certificate) {
		c.SerialNumber = big.NewInt(4242)
		c.NotBefore, c.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
		c.Subject = pkix.Name{CommonName: "*.example.org"}
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS("*.example.org")))
	})
	log := testct.Start(t, root[0], other.Cert)
	log.Add(t, false, l.Chain[0].Raw, l.Chain[1].Raw)
	log.Add(t, false, leaf.Raw, other.Cert.Raw)

	// Our own certificate only: the wildcard covers the names one label
	// below example.org, not example.org itself.
	code, out, errs := runCLI(t, nil, "--state-dir", state, "ct", "check", "example.org", "--log", log.MonitoringURL)
	if code != exitOK || errs != "" || !regexp.MustCompile(`(?m)^CT log \S+ entry 0: a certificate for example\.org issued by xmppcert \(lineage example\.org\)$`).MatchString(out) ||
		strings.Contains(out, "entry 1") || !strings.HasSuffix(out, "1 matches for example.org, 0 not issued by xmppcert\n") {
		t.Errorf("ct check example.org: exit %d\n%s%s", code, out, errs)
	}
	// A component name is covered by the wildcard.
	code, out, errs = runCLI(t, nil, "--state-dir", state, "ct", "check", "muc.example.org", "--log", log.MonitoringURL)
	if code != exitFailed || !regexp.MustCompile(`(?m)^CT log \S+ entry 1: a certificate for \*\.example\.org that xmppcert did not issue: issuer CN=Interceptor Root,O=xmppcert tests \(an issuer that never issued for us\), serial 1092, `).MatchString(out) ||
		!strings.HasSuffix(out, "1 matches for muc.example.org, 1 not issued by xmppcert\n") {
		t.Errorf("ct check muc.example.org: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCLI(t, nil, "--state-dir", state, "ct", "check", "muc.example.org", "--log", log.MonitoringURL, "--from", "1", "--count", "1", "--json")
	if code != exitFailed || !strings.Contains(out, `"index": 1`) || !strings.Contains(out, `"names": [`) {
		t.Errorf("--json: exit %d\n%s", code, out)
	}
	// A log that cannot be read fails the check and is named; the
	// others are searched all the same.
	closed := fmt.Sprintf("http://127.0.0.1:%d/log/", testtool.FreePort(t))
	code, out, errs = runCLI(t, nil, "--state-dir", state, "ct", "check", "example.org", "--log", closed, "--log", log.MonitoringURL)
	if code != exitFailed || !strings.Contains(out, "issued by xmppcert (lineage example.org)") || !strings.Contains(out, "1 matches for example.org, 0 not issued by xmppcert") ||
		!strings.Contains(errs, closed) || strings.Count(errs, "\n") != 1 {
		t.Errorf("an unreadable log beside a readable one: exit %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCLI(t, nil, "--state-dir", state, "ct", "check", "example.org", "--log", closed, "--json")
	var rep struct {
		Findings []json.RawMessage `json:"findings"`
		Errors   []string          `json:"errors"`
	}
	if code != exitFailed || json.Unmarshal([]byte(out), &rep) != nil || len(rep.Findings) != 0 || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], closed) {
		t.Errorf("--json with an unreadable log: exit %d\n%s", code, out)
	}
	for _, args := range [][]string{{"ct", "check"}, {"ct", "check", "example.org"}, {"ct", "check", "a..b", "--log", "http://x/"}, {"ct", "check", "example.org", "--log", "http://x/", "--count", "0"}} {
		if code, out, errs := runCLI(t, nil, append([]string{"--state-dir", state}, args...)...); code != exitUsage || out != "" || strings.Count(errs, "\n") != 1 {
			t.Errorf("%q: exit %d, %q %q; want a usage error", args, code, out, errs)
		}
	}
}
