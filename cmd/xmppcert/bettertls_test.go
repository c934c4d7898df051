package main

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

// betterTLS is the BetterTLS release the test exports its suites from
// (github.com/Netflix/bettertls, test-suites/cmd/bettertls export-tests).
const betterTLS = "github.com/Netflix/bettertls/test-suites/cmd/bettertls@v0.0.0-20250909192348-e1e99e353074"

// betterTLSExport is what export-tests writes.
type betterTLSExport struct {
	TrustRoot []byte `json:"trustRoot"`
	Suites    map[string]struct {
		TestCases []struct {
			ID               uint     `json:"id"`
			Certificates     [][]byte `json:"certificates"`
			Hostname         string   `json:"hostname"`
			Expected         string   `json:"expected"`
			FailureIsWarning bool     `json:"failureIsWarning"`
		} `json:"testCases"`
	} `json:"suites"`
}

// TestBetterTLS runs every strict case of the BetterTLS name-constraint
// and path-building suites, exported by BetterTLS's own command, through
// 'xmppcert check --service https' (the hostnames are DNS names and IP
// addresses): the verdict (exit 0 or 1) equals BetterTLS's expectation
// on every one, and no certificate input is answered as unreadable
// (exit 2), including the certificates crypto/x509 refuses to parse.
func TestBetterTLS(t *testing.T) {
	testtool.SkipShort(t, "it exports and checks 8,430 BetterTLS cases")
	dir := t.TempDir()
	out := filepath.Join(dir, "bettertls.json")
	cmd := exec.Command("go", "run", betterTLS, "export-tests", "--out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		msg := fmt.Sprintf("exporting the BetterTLS suites (go run %s) needs the Go module proxy: %v\n%s", betterTLS, err, b)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var exp betterTLSExport
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
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
