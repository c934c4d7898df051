package xmppaddr_test

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	. "github.com/xmppcert/xmppcert/xmppaddr"
)

// identityVector is a certificate and the domain a peer looks for in it.
type identityVector struct {
	name   string
	leaf   func(*x509.Certificate)
	domain string
}

// identityVectors are the identity cases where a peer's own code and
// RFC 9525 could part: case, wildcards, SRV-ID service labels and string
// types, XmppAddr forms, the CN fallback, IDNA on either side, a trailing
// dot. The Prosody and ejabberd differentials run them all.
func identityVectors() []identityVector {
	cn := func(cns ...string) func(*x509.Certificate) {
		return func(c *x509.Certificate) {
			for _, v := range cns {
				c.Subject.ExtraNames = append(c.Subject.ExtraNames, pkix.AttributeTypeAndValue{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: v})
			}
		}
	}
	both := func(a, b func(*x509.Certificate)) func(*x509.Certificate) {
		return func(c *x509.Certificate) { a(c); b(c) }
	}
	srvUTF8 := testpki.OtherName(testpki.OIDSRVName, cbasn1.UTF8String, "_xmpp-server.example.org")
	xmppIA5 := testpki.OtherName(testpki.OIDXmppAddr, cbasn1.IA5String, "example.org")
	return []identityVector{
		{"dNSName", san(testpki.DNS("example.org")), "example.org"},
		{"dNSName, other name", san(testpki.DNS("other.example")), "example.org"},
		{"dNSName upper case", san(testpki.DNS("Example.ORG")), "example.org"},
		{"wildcard", san(testpki.DNS("*.example.org")), "xmpp.example.org"},
		{"wildcard, apex", san(testpki.DNS("*.example.org")), "example.org"},
		{"wildcard, two labels", san(testpki.DNS("*.example.org")), "a.b.example.org"},
		{"wildcard over a single label", san(testpki.DNS("*.localhost")), "localhost"},
		{"wildcard over a TLD", san(testpki.DNS("*.org")), "example.org"},
		{"partial wildcard", san(testpki.DNS("x*.example.org")), "xmpp.example.org"},
		{"U-label reference", san(testpki.DNS("xn--bcher-kva.example")), "bücher.example"},
		{"trailing dot on the reference", san(testpki.DNS("example.org")), "example.org."},
		{"SRVName s2s", san(testpki.SRV("_xmpp-server.example.org")), "example.org"},
		{"SRVName c2s", san(testpki.SRV("_xmpp-client.example.org")), "example.org"},
		{"SRVName upper-case service", san(testpki.SRV("_XMPP-SERVER.example.org")), "example.org"},
		{"SRVName upper-case name", san(testpki.SRV("_xmpp-server.EXAMPLE.org")), "example.org"},
		{"SRVName wildcard", san(testpki.SRV("_xmpp-server.*.example.org")), "chat.example.org"},
		{"SRVName in a UTF8String", san(srvUTF8), "example.org"},
		{"SRVName with a protocol label", san(testpki.SRV("_xmpp-server._tcp.example.org")), "example.org"},
		{"XmppAddr", san(testpki.Xmpp("example.org")), "example.org"},
		{"XmppAddr upper case", san(testpki.Xmpp("EXAMPLE.org")), "example.org"},
		{"XmppAddr as a U-label", san(testpki.Xmpp("bücher.example")), "xn--bcher-kva.example"},
		{"XmppAddr with a localpart", san(testpki.Xmpp("admin@example.org")), "example.org"},
		{"XmppAddr in an IA5String", san(xmppIA5), "example.org"},
		{"XmppAddr beside another dNSName", san(testpki.Xmpp("example.org"), testpki.DNS("other.example")), "example.org"},
		{"CN only, no SAN", withCN("example.org", nil), "example.org"},
		{"CN beside an iPAddress SAN", withCN("example.org", san(testpki.IP([]byte{192, 0, 2, 1}))), "example.org"},
		{"CN beside a dNSName", withCN("example.org", san(testpki.DNS("other.example"))), "example.org"},
		{"CN beside a URI", withCN("example.org", san(testpki.URI("xmpp:other.example"))), "example.org"},
		{"two CNs", cn("example.org", "other.example"), "example.org"},
		{"two CNs, the second names it", cn("other.example", "example.org"), "example.org"},
		{"CN as a U-label", withCN("bücher.example", nil), "xn--bcher-kva.example"},
		{"XmppAddr with a resource, dNSName beside", san(testpki.Xmpp("example.org/res"), testpki.DNS("example.org")), "example.org"},
		{"XmppAddr for another domain, dNSName beside", san(testpki.Xmpp("other.example"), testpki.DNS("example.org")), "example.org"},
		{"wildcard CN", withCN("*.example.org", nil), "xmpp.example.org"},
		{"everything for another domain", san(testpki.DNS("other.example"), testpki.SRV("_xmpp-server.other.example"), testpki.Xmpp("other.example")), "example.org"},
		{"SRVName c2s beside XmppAddr", san(testpki.SRV("_xmpp-client.example.org"), testpki.Xmpp("example.org")), "example.org"},
		{"SRVName s2s, CN beside", both(san(testpki.SRV("_xmpp-server.example.org")), withCN("other.example", nil)), "example.org"},
	}
}

// TestProsodyDifferential runs Prosody's own util.x509.verify_identity
// (the installed Prosody 0.12, through lua5.4 and LuaSec) over the
// vectors with the service strings Prosody passes: "xmpp-server" from
// mod_s2s_auth_certs, "_xmpp-server" and "_xmpp-client" from prosodyctl
// check. The "Prosody 0.12" (s2s) and "prosodyctl check" predictions of
// Verify must equal what that code decided, every time.
func TestProsodyDifferential(t *testing.T) {
	lua := requireProsody(t)
	type run struct {
		vector  identityVector
		leaf    *x509.Certificate
		service string // as Prosody passes it
		peer    string
		svc     Service
	}
	dir := t.TempDir()
	var runs []run
	var input bytes.Buffer
	for i, v := range identityVectors() {
		leaf, _ := root.Leaf(v.leaf)
		file := filepath.Join(dir, fmt.Sprintf("%02d.pem", i))
		if err := os.WriteFile(file, testpki.PEM(leaf), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, r := range []run{
			{v, leaf, "xmpp-server", "Prosody 0.12", ServiceServer},
			{v, leaf, "_xmpp-server", "prosodyctl check", ServiceServer},
			{v, leaf, "_xmpp-client", "prosodyctl check", ServiceClient},
		} {
			runs = append(runs, r)
			fmt.Fprintf(&input, "%s\t%s\t%s\n", v.domain, r.service, file)
		}
	}
	got := runHarness(t, &input, len(runs), lua, "testdata/prosody_verify_identity.lua")
	agree := 0
	for i, r := range runs {
		res, err := Verify([]*x509.Certificate{r.leaf}, Options{Domain: r.vector.domain, Service: r.svc, Roots: root.Pool(), CurrentTime: testpki.At})
		if err != nil {
			t.Fatalf("%s: %v", r.vector.name, err)
		}
		var pred *PeerVerdict
		for j := range res.Peers {
			if res.Peers[j].Peer == r.peer {
				pred = &res.Peers[j]
			}
		}
		if pred == nil {
			t.Fatalf("%s: no %s prediction for %s", r.vector.name, r.peer, r.svc)
		}
		if got[i] == "error" {
			t.Fatalf("%s: Prosody could not judge it", r.vector.name)
		}
		if prosody := got[i] == "true"; pred.Accepts != prosody {
			t.Errorf("%s, %s for %s %q: predicted accepts=%v (%s); Prosody's verify_identity(%q) says %v",
				r.vector.name, r.peer, r.svc, r.vector.domain, pred.Accepts, pred.Reason, r.service, prosody)
			continue
		}
		agree++
	}
	t.Logf("Prosody differential: %d comparable cases (%d certificates, 3 service strings), %d agree", len(runs), len(runs)/3, agree)
}

// requireProsody returns lua5.4, or skips (fails in CI) when it or
// Prosody's util/x509.lua is missing.
func requireProsody(t *testing.T) string {
	lua := testtool.Require(t, "lua5.4", "lua5.4")
	if _, err := os.Stat("/usr/lib/prosody/util/x509.lua"); err != nil {
		testtool.Require(t, "prosody", "prosody")
		t.Fatalf("prosody is installed but /usr/lib/prosody/util/x509.lua is not there: %v", err)
	}
	return lua
}

// runHarness feeds input (one query per line) to a peer's harness,
// command and arguments, and returns its n answers: "true", "false" or
// "error".
func runHarness(t *testing.T, input *bytes.Buffer, n int, command ...string) []string {
	t.Helper()
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin = input
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(command, " "), err, stderrOf(err))
	}
	got := strings.Fields(string(out))
	if len(got) != n {
		t.Fatalf("%s answered %d of %d: %q", strings.Join(command, " "), len(got), n, out)
	}
	return got
}

// TestProsodyDifferentialLimbo runs Prosody's own verify_identity over
// the leaf certificate and DNS peer name of every x509-limbo SERVER case
// whose leaf crypto/x509 parses, with the three service strings Prosody
// passes, and compares the port's answer with it. The chains are not
// the point here: only the identity check is compared.
func TestProsodyDifferentialLimbo(t *testing.T) {
	lua := requireProsody(t)
	type query struct {
		limboLeaf
		service string
	}
	var queries []query
	var input bytes.Buffer
	for _, l := range limboLeaves(t) {
		for _, svc := range []string{"xmpp-server", "_xmpp-server", "_xmpp-client"} {
			queries = append(queries, query{l, svc})
			fmt.Fprintf(&input, "%s\t%s\t%s\n", l.host, svc, l.file)
		}
	}
	got := runHarness(t, &input, len(queries), lua, "testdata/prosody_verify_identity.lua")
	agree, unjudged := 0, 0
	for i, q := range queries {
		if got[i] == "error" {
			unjudged++
			continue
		}
		if port, prosody := ProsodyVerifyIdentity(q.host, q.service, q.leaf), got[i] == "true"; port != prosody {
			t.Errorf("%s, verify_identity(%q, %q): the port says %v, Prosody %v", q.id, q.host, q.service, port, prosody)
			continue
		}
		agree++
	}
	t.Logf("Prosody differential over x509-limbo: %d comparable cases (%d leaves, 3 service strings), %d agree; %d Prosody could not judge", len(queries)-unjudged, len(queries)/3, agree, unjudged)
}

// limboLeaf is the leaf certificate and DNS peer name of one x509-limbo
// SERVER case, with the leaf written to file for a peer's harness.
type limboLeaf struct {
	id, host, file string
	leaf           *x509.Certificate
}

// limboLeaves returns every x509-limbo SERVER case with a DNS peer name
// whose leaf crypto/x509 parses, its leaf written to a temporary file.
func limboLeaves(t *testing.T) []limboLeaf {
	t.Helper()
	dir := t.TempDir()
	var out []limboLeaf
	for i, tc := range readLimbo(t) {
		if tc.ValidationKind != "SERVER" || tc.ExpectedPeerName == nil || tc.ExpectedPeerName.Kind != "DNS" {
			continue
		}
		leaf, err := parsePEMCert(tc.PeerCertificate)
		if err != nil {
			continue
		}
		file := filepath.Join(dir, fmt.Sprintf("%03d.pem", i))
		if err := os.WriteFile(file, testpki.PEM(leaf), 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, limboLeaf{tc.ID, tc.ExpectedPeerName.Value, file, leaf})
	}
	return out
}

func stderrOf(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}
