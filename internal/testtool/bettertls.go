package testtool

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// betterTLS is the BetterTLS release whose own export the tests read
// (github.com/Netflix/bettertls, test-suites/cmd/bettertls export-tests).
const betterTLS = "github.com/Netflix/bettertls/test-suites/cmd/bettertls@v0.0.0-20250909192348-e1e99e353074"

// BetterTLSExport is what `bettertls export-tests` writes: the suites'
// trust root and, per suite, every case's chain (leaf first, DER), host
// name and expected verdict.
type BetterTLSExport struct {
	TrustRoot []byte `json:"trustRoot"`
	Suites    map[string]struct {
		TestCases []struct {
			ID           uint     `json:"id"`
			Certificates [][]byte `json:"certificates"`
			Hostname     string   `json:"hostname"`
			Expected     string   `json:"expected"`
			// FailureIsWarning marks a case BetterTLS does not hold an
			// implementation to: not a strict case.
			FailureIsWarning bool `json:"failureIsWarning"`
		} `json:"testCases"`
	} `json:"suites"`
}

// BetterTLS exports the BetterTLS name-constraint and path-building
// suites with BetterTLS's own command (go run through the module proxy,
// about 15 s) and returns them. It skips the test in -short mode, and
// when the export cannot run it skips, or fails in CI.
func BetterTLS(t *testing.T) *BetterTLSExport {
	t.Helper()
	SkipShort(t, "it exports the BetterTLS suites")
	out := filepath.Join(t.TempDir(), "bettertls.json")
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
	var exp BetterTLSExport
	if err := json.Unmarshal(b, &exp); err != nil {
		t.Fatal(err)
	}
	return &exp
}
