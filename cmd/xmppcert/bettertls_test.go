package main

import (
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestBetterTLS runs every strict case of the BetterTLS name-constraint
// and path-building suites, exported by BetterTLS's own command, through
// 'xmppcert check --service https' (the hostnames are DNS names and IP
// addresses): the verdict (exit 0 or 1) equals BetterTLS's expectation
// on every one, and no certificate input is answered as unreadable
// (exit 2), including the certificates crypto/x509 refuses to parse.
func TestBetterTLS(t *testing.T) {
	exp := testtool.BetterTLS(t)
	dir := t.TempDir()
	roots := filepath.Join(dir, "root.pem")
	writeFile(t, roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: exp.TrustRoot}), 0o644)

	total, unparseable := 0, 0
	for name, suite := range exp.Suites {
		agree := 0
		for _, tc := range suite.TestCases {
			if tc.FailureIsWarning {
				continue
			}
			var chain []byte
			for _, der := range tc.Certificates {
				chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
			}
			code, stdout, stderr := runCLI(t, chain, "check", "--domain", tc.Hostname, "--service", "https", "--roots", roots, "--json", "-")
			want := exitFailed
			if tc.Expected == "ACCEPT" {
				want = exitOK
			}
			if code != want {
				t.Errorf("%s case %d (%s, %d certificates): exit %d, BetterTLS expects %s\n%s%s", name, tc.ID, tc.Hostname, len(tc.Certificates), code, tc.Expected, stdout, stderr)
				continue
			}
			if strings.Contains(stdout, `"code": "unparseable"`) {
				unparseable++
			}
			agree++
		}
		t.Logf("BetterTLS %s: %d strict cases agree", name, agree)
		total += agree
	}
	t.Logf("BetterTLS: %d strict cases agree (%d of them with a certificate crypto/x509 refuses to parse: exit 1, not 2)", total, unparseable)
	if total == 0 {
		t.Fatal("no BetterTLS case was run")
	}
}
