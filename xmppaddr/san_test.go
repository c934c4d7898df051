package xmppaddr_test

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"slices"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testpki"
	. "github.com/xmppcert/xmppcert/xmppaddr"
)

func codes(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return out
}

func TestParseSANHostile(t *testing.T) {
	many := make([][]byte, MaxSANEntries+5)
	for i := range many {
		many[i] = testpki.DNS("example.org")
	}
	cases := []struct {
		name   string
		der    []byte
		ids    int
		code   string
		usable int
	}{
		{"not DER", []byte("example.org"), 0, CodeSANMalformed, 0},
		{"empty", testpki.SAN(false).Value, 0, CodeSANEmpty, 0},
		{"trailing data after the names", append(testpki.SAN(false, testpki.DNS("example.org")).Value, 0, 0), 1, CodeSANTrailingData, 1},
		{"truncated entry", testpki.SAN(false, testpki.DNS("example.org"), []byte{0x82, 0x10, 'a'}).Value, 1, CodeSANMalformed, 1},
		{"UTF-8 dNSName", testpki.SAN(false, testpki.DNS("😜.example.org")).Value, 1, CodeDNSNameInvalid, 0},
		{"IP of 5 bytes", testpki.SAN(false, testpki.IP([]byte{1, 2, 3, 4, 5})).Value, 1, CodeSANMalformed, 0},
		{"otherName without value", testpki.SAN(false, []byte{0xa0, 0x05, 0x06, 0x03, 0x2a, 0x03, 0x04}).Value, 1, CodeOtherNameInvalid, 0},
		{"too many entries", testpki.SAN(false, many...).Value, MaxSANEntries, CodeSANTooMany, MaxSANEntries},
		{"universal tag instead of a GeneralName", testpki.SAN(false, []byte{0x04, 0x01, 0x00}).Value, 1, CodeSANMalformed, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ids, fs := ParseSAN(tc.der)
			if len(ids) != tc.ids {
				t.Errorf("%d identifiers, want %d", len(ids), tc.ids)
			}
			usable := 0
			for _, id := range ids {
				if id.Ignored == "" {
					usable++
				}
			}
			if usable != tc.usable {
				t.Errorf("%d usable identifiers, want %d", usable, tc.usable)
			}
			if !slices.Contains(codes(fs), tc.code) {
				t.Errorf("findings %v lack %s", codes(fs), tc.code)
			}
		})
	}
}

func TestParseSANEscapesValues(t *testing.T) {
	ids, _ := ParseSAN(testpki.SAN(false, testpki.Xmpp("evil\x1b[2J\nexample.org")).Value)
	if len(ids) != 1 || bytes.ContainsAny([]byte(ids[0].Value), "\x1b\n") {
		t.Fatalf("control characters reach the output: %+v", ids)
	}
}

func TestSANExtensionRolePolicy(t *testing.T) {
	names := []Name{{"Example.ORG", RoleHost}, {"conference.example.org", RoleComponent}, {"anon.example.org", RoleAnonymousHost}, {"bücher.example", RoleHost}}
	ext, err := SANExtension(names, false)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := root.Leaf(func(c *x509.Certificate) { c.ExtraExtensions = []pkix.Extension{ext} })
	for _, n := range names {
		for _, svc := range []Service{ServiceClient, ServiceServer, ServiceHTTPS} {
			res, err := Verify([]*x509.Certificate{leaf}, Options{Domain: n.Domain, Service: svc, Roots: root.Pool(), CurrentTime: testpki.At})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Valid {
				t.Errorf("%s (%s) for %s: not valid:\n%s", n.Domain, n.Role, svc, findingsText(res))
			}
			// XmppAddr is not bound to a service; SRV-IDs are, per role.
			want := map[RefType]bool{RefDNSID: true, RefXmppAddr: svc != ServiceHTTPS}
			want[RefSRVID] = slices.Contains(n.Role.Services(), svc)
			got := map[RefType]bool{}
			for _, m := range res.Matched {
				got[m.ReferenceType] = true
			}
			for _, rt := range []RefType{RefDNSID, RefSRVID, RefXmppAddr} {
				if got[rt] != want[rt] {
					t.Errorf("%s (%s) for %s: matched %v, want %v", n.Domain, n.Role, svc, got, want)
				}
			}
			// The only note: an SRV-ID of the other service, for a role that does not serve this one.
			wantNote := svc != ServiceHTTPS && !want[RefSRVID]
			if len(res.Findings) != btoi(wantNote) || wantNote && !hasCode(res, CodeWrongService) {
				t.Errorf("%s (%s) for %s: findings:\n%s", n.Domain, n.Role, svc, findingsText(res))
			}
		}
	}
	ids, _ := ParseSAN(ext.Value)
	idn := slices.IndexFunc(ids, func(id Identifier) bool { return id.Type == TypeXmppAddr && id.Domain == "xn--bcher-kva.example" })
	if idn < 0 || ids[idn].Value != "bücher.example" {
		t.Errorf("the IDN host's XmppAddr is missing or not written in U-labels: %+v", ids)
	}
}

func TestCertificateRequestTemplate(t *testing.T) {
	tmpl, err := CertificateRequestTemplate([]Name{{"example.org", RoleHost}})
	if err != nil {
		t.Fatal(err)
	}
	if tmpl.Subject.CommonName != "example.org" || len(tmpl.ExtraExtensions) != 1 || tmpl.ExtraExtensions[0].Critical {
		t.Fatalf("template = %+v", tmpl)
	}
	if _, err := CertificateRequestTemplate([]Name{{"exa mple.org", RoleHost}}); err == nil {
		t.Fatal("an invalid domain was encoded")
	}
	if _, err := SANExtension(nil, false); err == nil {
		t.Fatal("an empty name list was encoded")
	}
}

func TestCanonicalDomain(t *testing.T) {
	good := map[string]string{"Example.ORG.": "example.org", "bücher.example": "xn--bcher-kva.example", "localhost": "localhost", "XN--BCHER-KVA.example": "xn--bcher-kva.example"}
	for in, want := range good {
		if got, err := CanonicalDomain(in); err != nil || got != want {
			t.Errorf("CanonicalDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".", "example..org", "exa mple.org", "_xmpp-client.example.org", "-example.org", "xn--zz.example", "b\xfccher.example", string(make([]byte, 64)) + ".org", "a.b.c." + string(bytes.Repeat([]byte("a."), 130)) + "org"} {
		if got, err := CanonicalDomain(bad); err == nil {
			t.Errorf("CanonicalDomain(%q) = %q, want an error", bad, got)
		}
	}
}

func FuzzParseSAN(f *testing.F) {
	f.Add(testpki.SAN(false, testpki.DNS("*.example.org"), testpki.SRV("_xmpp-client.example.org"), testpki.Xmpp("bücher.example")).Value)
	f.Add(testpki.SAN(false, testpki.IP([]byte{127, 0, 0, 1}), testpki.URI("xmpp:example.org"), malformedOtherName()).Value)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, der []byte) {
		ids, fs := ParseSAN(der)
		if len(ids) > MaxSANEntries {
			t.Fatalf("%d identifiers, more than MaxSANEntries", len(ids))
		}
		for _, id := range ids {
			if id.Ignored == "" && id.Type != TypeIPAddress && id.Domain == "" {
				t.Fatalf("usable identifier without a domain: %+v", id)
			}
			if bytes.ContainsAny([]byte(id.Value), "\x00\x1b\n\r") {
				t.Fatalf("unescaped value %q", id.Value)
			}
		}
		for _, f := range fs {
			if f.Code == "" || f.Text == "" {
				t.Fatalf("empty finding %+v", f)
			}
		}
	})
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
