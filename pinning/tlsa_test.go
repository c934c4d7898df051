package pinning

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
)

// TestTLSAEqualsHashSlinger checks every usage/selector/matching type
// combination against Debian's hash-slinger: `tlsa --create` prints the
// same zone-file line for the same certificate (the CA's for usages 0
// and 2, the server's for 1 and 3).
func TestTLSAEqualsHashSlinger(t *testing.T) {
	tlsa := testtool.Require(t, "tlsa", "hash-slinger")
	root := testpki.NewRoot("tlsa test root", nil)
	inter := root.Intermediate("tlsa test intermediate", nil)
	leaf, _ := inter.Leaf(nil)
	dir := t.TempDir()
	files := map[string]string{"leaf": filepath.Join(dir, "leaf.pem"), "ca": filepath.Join(dir, "ca.pem")}
	os.WriteFile(files["leaf"], testpki.PEM(leaf), 0o644)
	os.WriteFile(files["ca"], testpki.PEM(inter.Cert), 0o644)
	ep := Endpoint{Target: "xmpp.example.org", Port: 5269}
	for usage := uint8(0); usage <= 3; usage++ {
		for selector := uint8(0); selector <= 1; selector++ {
			for mtype := uint8(0); mtype <= 2; mtype++ {
				t.Run(fmt.Sprintf("%d%d%d", usage, selector, mtype), func(t *testing.T) {
					t.Parallel()
					cert, file := leaf, files["leaf"]
					if usage == UsagePKIXTA || usage == UsageDANETA {
						cert, file = inter.Cert, files["ca"]
					}
					rec, err := NewTLSA(cert, usage, selector, mtype)
					if err != nil {
						t.Fatal(err)
					}
					ours := Records([]Endpoint{ep}, []TLSA{rec})[0].String()
					cmd := exec.Command(tlsa, "--create", "--certificate", file, "--port", "5269", "--output", "rfc",
						"--usage", fmt.Sprint(usage), "--selector", fmt.Sprint(selector), "--mtype", fmt.Sprint(mtype), "xmpp.example.org")
					out, err := cmd.CombinedOutput()
					if err != nil {
						t.Fatalf("tlsa --create: %v\n%s", err, out)
					}
					theirs := recordLine(out, "_5269._tcp.")
					if theirs != ours {
						t.Errorf("hash-slinger: %q\nours:         %q", theirs, ours)
					}
					back, err := ParseTLSA(theirs)
					if err != nil || !back.Equal(Records([]Endpoint{ep}, []TLSA{rec})[0]) || !back.Matches(cert) {
						t.Errorf("ParseTLSA(hash-slinger's line) = %+v, %v; want our record, matching the certificate", back, err)
					}
				})
			}
		}
	}
}

// recordLine finds the line of tlsa's output that starts with prefix.
func recordLine(out []byte, prefix string) string {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), prefix) {
			return strings.TrimSpace(sc.Text())
		}
	}
	return ""
}

func TestTLSAMatching(t *testing.T) {
	root := testpki.NewRoot("root", nil)
	inter := root.Intermediate("intermediate", nil)
	leaf, key := inter.Leaf(nil)
	other, _ := inter.Leaf(nil)
	chain := []*x509.Certificate{leaf, inter.Cert}
	ee, _ := NewTLSA(leaf, UsageDANEEE, SelectorSPKI, MatchSHA256)
	byKey, _ := NewKeyTLSA(key.Public(), UsageDANEEE, MatchSHA256)
	ta, _ := NewTLSA(inter.Cert, UsageDANETA, SelectorCert, MatchSHA512)
	if ee != byKey {
		t.Errorf("NewKeyTLSA = %v; want the certificate's SPKI record %v", byKey, ee)
	}
	for _, tc := range []struct {
		name  string
		rec   TLSA
		chain []*x509.Certificate
		want  bool
	}{
		{"3 1 1 leaf", ee, chain, true},
		{"3 1 1 other leaf", ee, []*x509.Certificate{other, inter.Cert}, false},
		{"2 0 2 intermediate", ta, chain, true},
		{"2 0 2 leaf only", ta, chain[:1], false},
		{"empty chain", ee, nil, false},
		{"bad hex", TLSA{Usage: 3, Selector: 1, MatchingType: 1, Data: "zz"}, chain, false},
	} {
		if got := tc.rec.MatchesChain(tc.chain); got != tc.want {
			t.Errorf("%s: MatchesChain = %v; want %v", tc.name, got, tc.want)
		}
	}
}

func TestParseTLSA(t *testing.T) {
	sha := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "3 1 1 " + sha, want: "3 1 1 " + sha},
		{in: "_5222._tcp.Example.ORG. 3600 IN TLSA 3 1 1 " + strings.ToUpper(sha), want: "_5222._tcp.example.org. IN TLSA 3 1 1 " + sha},
		{in: "_5222._tcp.example.org. TLSA 3 1 1 " + sha[:20] + " " + sha[20:], want: "_5222._tcp.example.org. IN TLSA 3 1 1 " + sha},
		{in: "3 0 0 3082", want: "3 0 0 3082"},
		{in: "4 1 1 " + sha, err: "usage 4"},
		{in: "3 2 1 " + sha, err: "selector 2"},
		{in: "3 1 3 " + sha, err: "matching type 3"},
		{in: "3 1 1 abcd", err: "SHA-256 data has 2 bytes"},
		{in: "3 1 2 " + sha, err: "SHA-512 data has 32 bytes"},
		{in: "3 1 1", err: "four fields"},
		{in: "3 1 1 xyz", err: "not hex"},
		{in: "300 1 1 " + sha, err: "not a number"},
		{in: "TLSA 3 1 1 " + sha, err: "without an owner"},
		{in: "_5222._tcp.example.org IN TLSA 3 1 1 " + sha, err: "fully qualified"},
		{in: strings.Repeat("a", MaxTLSALine+1), err: "at most"},
	} {
		got, err := ParseTLSA(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseTLSA(%.40q) = %v, %v; want an error containing %q", tc.in, got, err, tc.err)
		case tc.err == "" && (err != nil || got.String() != tc.want):
			t.Errorf("ParseTLSA(%.40q) = %q, %v; want %q", tc.in, got.String(), err, tc.want)
		}
	}
}

// FuzzParseTLSA checks that any input either fails to parse or gives a
// record whose presentation form parses back to the same record.
func FuzzParseTLSA(f *testing.F) {
	f.Add("_5222._tcp.example.org. 3600 IN TLSA 3 1 1 " + strings.Repeat("ab", 32))
	f.Add("2 0 0 3082")
	f.Add("3 1 2 " + strings.Repeat("0", 128))
	f.Add("x. TLSA 1 1 1 ")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseTLSA(s)
		if err != nil {
			return
		}
		back, err := ParseTLSA(r.String())
		if err != nil || !back.Equal(r) {
			t.Fatalf("ParseTLSA(%q) = %+v, but its String %q parses to %+v, %v", s, r, r.String(), back, err)
		}
		if rr := r.RR(60); rr.Usage != r.Usage || FromRR(rr).Data != r.Data {
			t.Fatalf("RR round trip of %+v changed it", r)
		}
	})
}
