package xmppaddr_test

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/testtool"
	. "github.com/xmppcert/xmppcert/xmppaddr"
)

// chainCase is a chain a peer is shown, the trust anchors it holds, the
// time it judges at, and the domain it wants ("" when the case has no
// DNS name).
type chainCase struct {
	id                 string
	leaf               *x509.Certificate
	untrusted, anchors []*x509.Certificate
	at                 time.Time
	host               string
}

// chainCases are every x509-limbo SERVER case whose certificates
// crypto/x509 parses, and chains made for what XMPP operators meet: a
// CA's DNS name constraint that an SRV-ID escapes, an intermediate
// configured as the only trust anchor, an intermediate left out. It also
// returns how many limbo cases hold a certificate Go cannot parse.
func chainCases(t *testing.T) ([]chainCase, int) {
	var cases []chainCase
	unparsed := 0
	for _, tc := range readLimbo(t) {
		if tc.ValidationKind != "SERVER" {
			continue
		}
		leaf, untrusted, anchors, err := limboChain(tc)
		if err != nil {
			unparsed++
			continue
		}
		c := chainCase{id: tc.ID, leaf: leaf, untrusted: untrusted, anchors: anchors, at: limboTime(t, tc)}
		if tc.ExpectedPeerName != nil && tc.ExpectedPeerName.Kind == "DNS" {
			c.host = tc.ExpectedPeerName.Value
		}
		cases = append(cases, c)
	}
	constrained := root.Intermediate("Constrained to example.org", func(c *x509.Certificate) {
		c.PermittedDNSDomains, c.PermittedDNSDomainsCritical = []string{"example.org"}, true
	})
	srvOutside, _ := constrained.Leaf(san(testpki.DNS("example.org"), testpki.SRV("_xmpp-server.other.example")))
	dnsOutside, _ := constrained.Leaf(san(testpki.DNS("other.example")))
	plain := root.Intermediate("Plain", nil)
	leaf, _ := plain.Leaf(san(testpki.DNS("example.org")))
	anchors := []*x509.Certificate{root.Cert}
	return append(cases,
		chainCase{"SRV-ID outside a DNS name constraint", srvOutside, []*x509.Certificate{constrained.Cert}, anchors, testpki.At, "other.example"},
		chainCase{"dNSName outside a DNS name constraint", dnsOutside, []*x509.Certificate{constrained.Cert}, anchors, testpki.At, "other.example"},
		chainCase{"an intermediate as the only trust anchor", leaf, nil, []*x509.Certificate{plain.Cert}, testpki.At, "example.org"},
		chainCase{"the intermediate left out", leaf, nil, anchors, testpki.At, "example.org"},
		chainCase{"leaf, intermediate, root", leaf, []*x509.Certificate{plain.Cert}, anchors, testpki.At, "example.org"},
	), unparsed
}

// TestOpenSSLDifferential runs `openssl verify` (OpenSSL's
// X509_verify_cert, the chain check of Prosody and ejabberd) over the
// chain cases, at authentication security level 2 as Debian's TLS
// contexts run it and with no purpose, and asserts that the OpenSSL
// chain model decides as OpenSSL did, every time.
func TestOpenSSLDifferential(t *testing.T) {
	openssl := testtool.Require(t, "openssl", "openssl")
	dir := t.TempDir()
	cases, unparsed := chainCases(t)
	agree := 0
	for i, c := range cases {
		ok, out := opensslVerify(t, openssl, filepath.Join(dir, fmt.Sprint(i)), c)
		if model := OpenSSLVerify(c.leaf, c.untrusted, c.anchors, c.at); ok != (model == "") {
			t.Errorf("%s: the model says %q, openssl verify %v: %s", c.id, model, ok, out)
			continue
		}
		agree++
	}
	t.Logf("OpenSSL differential (x509-limbo and XMPP chains): %d comparable cases, %d agree; %d x509-limbo cases hold a certificate crypto/x509 cannot parse", len(cases), agree, unparsed)
}

// TestProsodyWholeVerdict holds the whole "Prosody 0.12" prediction,
// chain and name together, to what Prosody does with a connecting
// server's chain: OpenSSL's verification (openssl verify, as above) and
// then its own util.x509.verify_identity with "xmpp-server" (the Lua
// harness), over every chain case with a DNS name.
func TestProsodyWholeVerdict(t *testing.T) {
	openssl := testtool.Require(t, "openssl", "openssl")
	lua := requireProsody(t)
	type query struct {
		id          string
		opensslOK   bool
		opensslSays string
		predicted   PeerVerdict
	}
	dir := t.TempDir()
	var queries []query
	var input bytes.Buffer
	cases, _ := chainCases(t)
	invalid := 0
	for i, c := range cases {
		if c.host == "" {
			continue
		}
		pool := x509.NewCertPool()
		for _, a := range c.anchors {
			pool.AddCert(a)
		}
		res, err := Verify(append([]*x509.Certificate{c.leaf}, c.untrusted...), Options{Domain: c.host, Service: ServiceServer, Roots: pool, Anchors: c.anchors, CurrentTime: c.at})
		if err != nil {
			invalid++ // not a domain xmppcert takes as an XMPP domain
			continue
		}
		prefix := filepath.Join(dir, fmt.Sprint(i))
		ok, out := opensslVerify(t, openssl, prefix, c)
		queries = append(queries, query{c.id, ok, out, peerVerdict(t, res, "Prosody 0.12")})
		fmt.Fprintf(&input, "%s\txmpp-server\t%s\n", c.host, prefix+"-leaf.pem")
	}
	got := runHarness(t, &input, len(queries), lua, "testdata/prosody_verify_identity.lua")
	agree, accepted := 0, 0
	for i, q := range queries {
		prosody := q.opensslOK && got[i] == "true"
		if q.predicted.Accepts != prosody {
			t.Errorf("%s: predicted accepts=%v (%s); openssl verify %v (%s), verify_identity %s", q.id, q.predicted.Accepts, q.predicted.Reason, q.opensslOK, q.opensslSays, got[i])
			continue
		}
		if prosody {
			accepted++
		}
		agree++
	}
	t.Logf("Prosody whole-verdict differential (openssl verify, then verify_identity): %d comparable cases, %d agree (%d accepted); %d peer names are not XMPP domains", len(queries), agree, accepted, invalid)
}

// limboChain parses a case's leaf, intermediates and trust anchors.
func limboChain(tc limboCase) (leaf *x509.Certificate, untrusted, anchors []*x509.Certificate, err error) {
	if leaf, err = parsePEMCert(tc.PeerCertificate); err != nil {
		return nil, nil, nil, err
	}
	for _, list := range []struct {
		pems []string
		to   *[]*x509.Certificate
	}{{tc.UntrustedIntermediates, &untrusted}, {tc.TrustedCerts, &anchors}} {
		for _, p := range list.pems {
			c, err := parsePEMCert(p)
			if err != nil {
				return nil, nil, nil, err
			}
			*list.to = append(*list.to, c)
		}
	}
	return leaf, untrusted, anchors, nil
}

// opensslVerify runs openssl verify on the case's chain, with its anchors
// as the only trust store, writing the files under prefix (the leaf to
// prefix-leaf.pem), and returns whether it verified and its output.
func opensslVerify(t *testing.T, openssl, prefix string, c chainCase) (bool, string) {
	t.Helper()
	write := func(name string, certs []*x509.Certificate) string {
		var pem []byte
		for _, c := range certs {
			pem = append(pem, testpki.PEM(c)...)
		}
		file := prefix + "-" + name + ".pem"
		if err := os.WriteFile(file, pem, 0o644); err != nil {
			t.Fatal(err)
		}
		return file
	}
	args := []string{"verify", "-auth_level", "2", "-no-CApath", "-no-CAstore", "-attime", fmt.Sprint(c.at.Unix())}
	if len(c.anchors) > 0 {
		args = append(args, "-CAfile", write("anchors", c.anchors))
	} else {
		args = append(args, "-no-CAfile")
	}
	if len(c.untrusted) > 0 {
		args = append(args, "-untrusted", write("untrusted", c.untrusted))
	}
	out, err := exec.Command(openssl, append(args, write("leaf", []*x509.Certificate{c.leaf}))...).CombinedOutput()
	return err == nil, strings.TrimSpace(string(out))
}

// TestOpenSSLDifferentialBetterTLS holds the OpenSSL chain model to
// `openssl verify` over every BetterTLS name-constraint and path-building
// case whose certificates crypto/x509 parses (strict or not: the point is
// OpenSSL's verdict, not BetterTLS's), one openssl process per case.
func TestOpenSSLDifferentialBetterTLS(t *testing.T) {
	openssl := testtool.Require(t, "openssl", "openssl")
	exp := testtool.BetterTLS(t)
	anchor, err := x509.ParseCertificate(exp.TrustRoot)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	total, agreeAll, unparsed := 0, 0, 0
	for name, suite := range exp.Suites {
		agree := 0
	cases:
		for _, tc := range suite.TestCases {
			var certs []*x509.Certificate
			for _, der := range tc.Certificates {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					unparsed++
					continue cases
				}
				certs = append(certs, c)
			}
			total++
			c := chainCase{id: fmt.Sprintf("%s %d", name, tc.ID), leaf: certs[0], untrusted: certs[1:], anchors: []*x509.Certificate{anchor}, at: time.Now()}
			ok, out := opensslVerify(t, openssl, filepath.Join(dir, "case"), c)
			if model := OpenSSLVerify(c.leaf, c.untrusted, c.anchors, c.at); ok != (model == "") {
				t.Errorf("%s: the model says %q, openssl verify %v: %s", c.id, model, ok, out)
				continue
			}
			agree++
		}
		t.Logf("OpenSSL differential over BetterTLS %s: %d agree", name, agree)
		agreeAll += agree
	}
	t.Logf("OpenSSL differential over BetterTLS: %d comparable cases, %d agree; %d cases hold a certificate crypto/x509 cannot parse", total, agreeAll, unparsed)
}
