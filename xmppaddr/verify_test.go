package xmppaddr_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/xmppcert/xmppcert/internal/testpki"
	. "github.com/xmppcert/xmppcert/xmppaddr"
)

var root = testpki.NewRoot("Test Root", nil)

// san returns a leaf edit that installs a hand-built SAN extension.
func san(names ...[]byte) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, names...))
	}
}

func withCN(cn string, edit func(*x509.Certificate)) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		c.Subject.CommonName = cn
		if edit != nil {
			edit(c)
		}
	}
}

func eku(usages ...x509.ExtKeyUsage) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		c.ExtKeyUsage = usages
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS("example.org")))
	}
}

type verifyCase struct {
	name    string
	leaf    func(*x509.Certificate)
	domain  string
	service Service
	profile Profile
	valid   bool
	via     IDType   // the type of the first match, when valid
	codes   []string // finding codes that must be present
}

func runVerifyCases(t *testing.T, cases []verifyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leaf, _ := root.Leaf(tc.leaf)
			svc := tc.service
			if svc == "" {
				svc = ServiceClient
			}
			domain := tc.domain
			if domain == "" {
				domain = "example.org"
			}
			res, err := Verify([]*x509.Certificate{leaf}, Options{
				Domain: domain, Service: svc, Profile: tc.profile, Roots: root.Pool(), CurrentTime: testpki.At,
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != tc.valid {
				t.Errorf("valid = %v, want %v; findings:\n%s", res.Valid, tc.valid, findingsText(res))
			}
			if tc.valid && tc.via != "" && (len(res.Matched) == 0 || res.Matched[0].Type != tc.via) {
				t.Errorf("matched = %+v, want a match through %s", res.Matched, tc.via)
			}
			if !tc.valid && len(res.Matched) > 0 && slices.Contains(tc.codes, CodeNoMatch) {
				t.Errorf("matched = %+v, want none", res.Matched)
			}
			for _, code := range tc.codes {
				if !hasCode(res, code) {
					t.Errorf("finding %s missing; findings:\n%s", code, findingsText(res))
				}
			}
		})
	}
}

func hasCode(res *Result, code string) bool {
	return slices.ContainsFunc(res.Findings, func(f Finding) bool { return f.Code == code })
}

func findingsText(res *Result) string {
	var b strings.Builder
	for _, f := range res.Findings {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}

func TestWildcardRules(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{name: "left-most wildcard matches one label", leaf: san(testpki.DNS("*.example.org")), domain: "chat.example.org", valid: true, via: TypeDNSName},
		{name: "wildcard never matches the apex", leaf: san(testpki.DNS("*.example.org")), domain: "example.org", codes: []string{CodeNoMatch, CodeWildcardApex}},
		{name: "wildcard matches exactly one label", leaf: san(testpki.DNS("*.example.org")), domain: "a.b.example.org", codes: []string{CodeNoMatch, CodeWildcardDepth}},
		{name: "wildcard only in the left-most label", leaf: san(testpki.DNS("chat.*.example.org")), domain: "chat.x.example.org", codes: []string{CodeNoMatch, CodeWildcardInvalid}},
		{name: "two wildcards", leaf: san(testpki.DNS("*.*.example.org")), domain: "a.b.example.org", codes: []string{CodeNoMatch, CodeWildcardInvalid}},
		{name: "partial-label wildcard", leaf: san(testpki.DNS("ch*.example.org")), domain: "chat.example.org", codes: []string{CodeNoMatch, CodeWildcardInvalid}},
		{name: "wildcard inside an A-label", leaf: san(testpki.DNS("xn--*-1b3c148a.example.org")), domain: "xn--bliss-1b3c148a.example.org", codes: []string{CodeNoMatch, CodeWildcardInvalid}},
		{name: "wildcard may stand for an A-label", leaf: san(testpki.DNS("*.example.org")), domain: "bücher.example.org", valid: true, via: TypeDNSName},
		{name: "bare wildcard", leaf: san(testpki.DNS("*")), domain: "localhost", codes: []string{CodeNoMatch, CodeWildcardInvalid}},
		{name: "single-label reference and its wildcard", leaf: san(testpki.DNS("*.localhost")), domain: "localhost", codes: []string{CodeNoMatch, CodeWildcardApex}},
		{name: "wildcard below a single label", leaf: san(testpki.DNS("*.localhost")), domain: "chat.localhost", valid: true},
		{name: "wildcard over a public suffix", leaf: san(testpki.DNS("*.org")), domain: "example.org", codes: []string{CodeNoMatch, CodeWildcardInvalid}},
		{name: "wildcard in an SRV-ID name", leaf: san(testpki.SRV("_xmpp-client.*.example.org")), domain: "chat.example.org", valid: true, via: TypeSRVName},
		{name: "wildcard never in an XmppAddr", leaf: san(testpki.Xmpp("*.example.org")), domain: "chat.example.org", codes: []string{CodeNoMatch, CodeXmppAddrInvalid}},
	})
}

func TestSRVIDAndOtherNames(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{name: "SRV-ID proves c2s", leaf: san(testpki.SRV("_xmpp-client.example.org")), valid: true, via: TypeSRVName},
		{name: "SRV-ID proves s2s", leaf: san(testpki.SRV("_xmpp-server.example.org")), service: ServiceServer, valid: true, via: TypeSRVName},
		{name: "_xmpp-server SRV-ID never proves c2s", leaf: san(testpki.SRV("_xmpp-server.example.org")), service: ServiceClient, codes: []string{CodeNoMatch, CodeWrongService}},
		{name: "_xmpp-client SRV-ID never proves s2s", leaf: san(testpki.SRV("_xmpp-client.example.org")), service: ServiceServer, codes: []string{CodeNoMatch, CodeWrongService}},
		{name: "SRV-ID never proves HTTPS", leaf: san(testpki.SRV("_xmpp-client.example.org")), service: ServiceHTTPS, codes: []string{CodeNoMatch}},
		{name: "SRVName with _tcp", leaf: san(testpki.SRV("_xmpp-client._tcp.example.org")), codes: []string{CodeNoMatch, CodeSRVNameProto}},
		{name: "UTF8String SRVName", leaf: san(testpki.OtherName(testpki.OIDSRVName, cbasn1.UTF8String, "_xmpp-client.example.org")), codes: []string{CodeNoMatch, CodeSRVNameType}},
		{name: "SRVName without service label", leaf: san(testpki.SRV("example.org")), codes: []string{CodeNoMatch, CodeSRVNameInvalid}},
		{name: "IA5String XmppAddr", leaf: san(testpki.OtherName(testpki.OIDXmppAddr, cbasn1.IA5String, "example.org")), codes: []string{CodeNoMatch, CodeXmppAddrType}},
		{name: "XmppAddr proves c2s", leaf: san(testpki.Xmpp("example.org")), valid: true, via: TypeXmppAddr},
		{name: "XmppAddr proves s2s", leaf: san(testpki.Xmpp("example.org")), service: ServiceServer, valid: true, via: TypeXmppAddr},
		{name: "XmppAddr never proves HTTPS", leaf: san(testpki.Xmpp("example.org")), service: ServiceHTTPS, codes: []string{CodeNoMatch}},
		{name: "XmppAddr with localpart", leaf: san(testpki.Xmpp("user@example.org")), codes: []string{CodeNoMatch, CodeXmppAddrNotDomain}},
		{name: "XmppAddr with resource", leaf: san(testpki.Xmpp("example.org/res")), codes: []string{CodeNoMatch, CodeXmppAddrNotDomain}},
		{name: "unknown otherName holding the domain", leaf: san(testpki.OtherName(asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, cbasn1.UTF8String, "example.org")), codes: []string{CodeNoMatch, CodeOtherNameUnknown}},
		{name: "otherName with trailing data", leaf: san(append(testpki.Xmpp("example.org")[:0:0], malformedOtherName()...)), codes: []string{CodeNoMatch, CodeOtherNameInvalid}},
		{name: "bad entry beside a good one", leaf: san(testpki.SRV("_xmpp-client._tcp.example.org"), testpki.DNS("example.org")), valid: true, via: TypeDNSName, codes: []string{CodeSRVNameProto}},
	})
}

// malformedOtherName is an XmppAddr whose [0] EXPLICIT wrapper holds a
// second value after the UTF8String.
func malformedOtherName() []byte {
	v := []byte{0x0c, 0x0b}
	v = append(v, "example.org"...)
	v = append(v, 0x05, 0x00) // a trailing NULL
	inner := append([]byte{0xa0, byte(len(v))}, v...)
	oid := []byte{0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05}
	body := append(oid, inner...)
	return append([]byte{0xa0, byte(len(body))}, body...)
}

func TestCanonicalization(t *testing.T) {
	runVerifyCases(t, []verifyCase{
		{name: "U-label XmppAddr, A-label reference", leaf: san(testpki.Xmpp("bücher.example")), domain: "xn--bcher-kva.example", valid: true, via: TypeXmppAddr},
		{name: "A-label XmppAddr, U-label reference", leaf: san(testpki.Xmpp("xn--bcher-kva.example")), domain: "Bücher.example", valid: true, via: TypeXmppAddr},
		{name: "A-label dNSName, U-label reference", leaf: san(testpki.DNS("xn--bcher-kva.example")), domain: "bücher.example", valid: true, via: TypeDNSName},
		{name: "upper-case reference with trailing dot", leaf: san(testpki.DNS("example.org")), domain: "EXAMPLE.Org.", valid: true, via: TypeDNSName},
		{name: "upper-case presented dNSName", leaf: san(testpki.DNS("EXAMPLE.ORG")), valid: true, via: TypeDNSName},
		{name: "upper-case SRVName", leaf: san(testpki.SRV("_XMPP-CLIENT.Example.Org")), valid: true, via: TypeSRVName},
		{name: "upper-case XmppAddr", leaf: san(testpki.Xmpp("Example.ORG")), valid: true, via: TypeXmppAddr},
		{name: "presented trailing dot is not a name", leaf: san(testpki.DNS("example.org.")), codes: []string{CodeNoMatch, CodeDNSNameInvalid}},
		{name: "IP reference against iPAddress", leaf: san(testpki.IP([]byte{192, 0, 2, 1})), domain: "192.0.2.1", valid: true, via: TypeIPAddress},
		{name: "IP reference never against dNSName", leaf: san(testpki.DNS("192.0.2.1")), domain: "192.0.2.1", codes: []string{CodeNoMatch}},
	})
}

func TestCommonName(t *testing.T) {
	injected := func(c *x509.Certificate) {
		c.Subject = pkix.Name{CommonName: "attacker.example", OrganizationalUnit: []string{"CN=victim.example,"}}
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS("attacker.example")))
	}
	runVerifyCases(t, []verifyCase{
		{name: "CN beside SANs is ignored", leaf: withCN("other.example", san(testpki.DNS("example.org"))), valid: true, via: TypeDNSName, codes: []string{CodeCNIgnored}},
		{name: "CN beside SANs never matches (rfc9525)", leaf: withCN("example.org", san(testpki.DNS("other.example"))), codes: []string{CodeNoMatch, CodeCNIgnored}},
		{name: "CN beside SANs never matches (rfc6125)", profile: ProfileRFC6125, leaf: withCN("example.org", san(testpki.DNS("other.example"))), codes: []string{CodeNoMatch, CodeCNIgnored}},
		{name: "CN beside an XmppAddr never matches (rfc6125)", profile: ProfileRFC6125, leaf: withCN("example.org", san(testpki.Xmpp("other.example"))), codes: []string{CodeNoMatch}},
		{name: "CN only, rfc9525", leaf: withCN("example.org", nil), codes: []string{CodeNoMatch, CodeCNOnly, CodeSANAbsent}},
		{name: "CN only, rfc6125", profile: ProfileRFC6125, leaf: withCN("example.org", nil), valid: true, via: TypeCN, codes: []string{CodeCNUsed}},
		{name: "CN wildcard, rfc6125", profile: ProfileRFC6125, leaf: withCN("*.example.org", nil), domain: "chat.example.org", valid: true, via: TypeCN},
		{name: "empty SAN, rfc9525", leaf: withCN("example.org", san()), codes: []string{CodeNoMatch, CodeSANEmpty}},
		{name: "empty SAN, rfc6125 falls back to CN", profile: ProfileRFC6125, leaf: withCN("example.org", san()), valid: true, via: TypeCN, codes: []string{CodeSANEmpty, CodeCNUsed}},
		{name: "CN injected through OU", leaf: injected, domain: "victim.example", codes: []string{CodeNoMatch, CodeSubjectInjection}},
	})
}

func TestNameConstraints(t *testing.T) {
	constrained := root.Intermediate("Constrained CA", func(c *x509.Certificate) {
		c.PermittedDNSDomainsCritical = true
		c.PermittedDNSDomains = []string{"example.org"}
	})
	excluding := root.Intermediate("Excluding CA", func(c *x509.Certificate) {
		c.ExcludedDNSDomains = []string{"victim.example"}
	})
	cases := []struct {
		name   string
		ca     *testpki.CA
		domain string
		sans   [][]byte
		valid  bool
	}{
		{"SRV-ID inside the constraint", constrained, "chat.example.org", [][]byte{testpki.SRV("_xmpp-client.chat.example.org")}, true},
		{"XmppAddr inside the constraint", constrained, "chat.example.org", [][]byte{testpki.Xmpp("chat.example.org")}, true},
		{"SRV-ID for a foreign domain", constrained, "victim.example", [][]byte{testpki.SRV("_xmpp-client.victim.example")}, false},
		{"XmppAddr for a foreign domain", constrained, "victim.example", [][]byte{testpki.Xmpp("victim.example")}, false},
		{"foreign XmppAddr beside a permitted dNSName", constrained, "chat.example.org", [][]byte{testpki.DNS("chat.example.org"), testpki.Xmpp("victim.example")}, false},
		{"excluded XmppAddr", excluding, "victim.example", [][]byte{testpki.Xmpp("victim.example")}, false},
		{"excluded SRV-ID below the excluded domain", excluding, "a.victim.example", [][]byte{testpki.SRV("_xmpp-client.a.victim.example")}, false},
		{"not excluded", excluding, "example.org", [][]byte{testpki.Xmpp("example.org")}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leaf, _ := tc.ca.Leaf(san(tc.sans...))
			res, err := Verify([]*x509.Certificate{leaf, tc.ca.Cert}, Options{Domain: tc.domain, Service: ServiceClient, Roots: root.Pool(), CurrentTime: testpki.At})
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != tc.valid {
				t.Fatalf("valid = %v, want %v:\n%s", res.Valid, tc.valid, findingsText(res))
			}
			if !tc.valid && !hasCode(res, CodeNameConstraint) {
				t.Errorf("no %s finding:\n%s", CodeNameConstraint, findingsText(res))
			}
		})
	}
}

func TestEKUMatrix(t *testing.T) {
	s, c, any := x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageAny
	cases := []struct {
		name   string
		usages []x509.ExtKeyUsage
		// valid for c2s and s2s, and whether s2s warns about clientAuth
		c2s, s2s, s2sWarn bool
	}{
		{"serverAuth only", []x509.ExtKeyUsage{s}, true, true, true},
		{"clientAuth only", []x509.ExtKeyUsage{c}, false, false, false},
		{"both", []x509.ExtKeyUsage{s, c}, true, true, false},
		{"none", nil, true, true, false},
		{"anyExtendedKeyUsage", []x509.ExtKeyUsage{any}, true, true, false},
	}
	for _, tc := range cases {
		leaf, _ := root.Leaf(eku(tc.usages...))
		for _, svc := range []Service{ServiceClient, ServiceServer} {
			t.Run(tc.name+"/"+string(svc), func(t *testing.T) {
				res, err := Verify([]*x509.Certificate{leaf}, Options{Domain: "example.org", Service: svc, Roots: root.Pool(), CurrentTime: testpki.At})
				if err != nil {
					t.Fatal(err)
				}
				want := tc.c2s
				if svc == ServiceServer {
					want = tc.s2s
				}
				if res.Valid != want {
					t.Errorf("valid = %v, want %v:\n%s", res.Valid, want, findingsText(res))
				}
				if got := hasCode(res, CodeEKUNoServerAuth); got == want {
					t.Errorf("%s finding present = %v, want %v", CodeEKUNoServerAuth, got, !want)
				}
				warn := hasCode(res, CodeEKUNoClientAuth)
				if wantWarn := svc == ServiceServer && tc.s2sWarn; warn != wantWarn {
					t.Errorf("%s finding present = %v, want %v", CodeEKUNoClientAuth, warn, wantWarn)
				}
				if warn {
					f := res.Findings[slices.IndexFunc(res.Findings, func(f Finding) bool { return f.Code == CodeEKUNoClientAuth })]
					if !strings.Contains(f.Text, "ejabberd") || !strings.Contains(f.Text, "Metronome") || f.Severity != Warning {
						t.Errorf("clientAuth finding does not name the refusing peers as a warning: %s", f)
					}
				}
			})
		}
	}
}

func TestChainHandling(t *testing.T) {
	inter := root.Intermediate("Issuing CA", nil)
	xmppOnly := func(c *x509.Certificate) {
		c.Subject = pkix.Name{} // empty subject: RFC 5280 wants the SAN critical
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(true, testpki.Xmpp("example.org")))
	}
	leaf, _ := inter.Leaf(xmppOnly)
	verify := func(chain ...*x509.Certificate) *Result {
		t.Helper()
		res, err := Verify(chain, Options{Domain: "example.org", Service: ServiceServer, Roots: root.Pool(), CurrentTime: testpki.At})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	// crypto/x509 alone refuses a critical SAN it finds no name in.
	pool := x509.NewCertPool()
	pool.AddCert(inter.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: root.Pool(), Intermediates: pool, CurrentTime: testpki.At}); err == nil {
		t.Fatal("crypto/x509 accepted a critical otherName-only SAN; the test premise is gone")
	}
	res := verify(leaf, inter.Cert)
	if !res.Valid || len(res.Chain) != 3 || !hasCode(res, CodeCriticalSANOtherOnly) {
		t.Fatalf("critical XmppAddr-only SAN: valid=%v chain=%d\n%s", res.Valid, len(res.Chain), findingsText(res))
	}
	if res.Chain[0] != leaf {
		t.Error("the verified chain does not start with the presented leaf")
	}

	res = verify(leaf) // intermediate missing
	if res.Valid || !hasCode(res, CodeChainUntrusted) || res.Chain != nil {
		t.Fatalf("missing intermediate: valid=%v\n%s", res.Valid, findingsText(res))
	}

	if _, err := Verify(nil, Options{Domain: "example.org", Service: ServiceClient}); err == nil {
		t.Error("an empty chain is not an error")
	}
	if _, err := Verify([]*x509.Certificate{leaf}, Options{Domain: "example.org", Service: "smtp"}); err == nil {
		t.Error("an unknown service is not an error")
	}
}

func TestExpiryWarning(t *testing.T) {
	leaf, _ := root.Leaf(san(testpki.DNS("example.org"))) // 90 days from Epoch
	for _, tc := range []struct {
		daysLeft int
		warn     bool
	}{{60, false}, {31, false}, {29, true}, {1, true}} {
		at := leaf.NotAfter.AddDate(0, 0, -tc.daysLeft)
		res, err := Verify([]*x509.Certificate{leaf}, Options{Domain: "example.org", Service: ServiceClient, Roots: root.Pool(), CurrentTime: at})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Valid || hasCode(res, CodeExpiresSoon) != tc.warn {
			t.Errorf("%d days left: valid=%v, warning=%v, want warning=%v", tc.daysLeft, res.Valid, hasCode(res, CodeExpiresSoon), tc.warn)
		}
	}
}

func TestSeverityJSON(t *testing.T) {
	for _, s := range []Severity{Info, Warning, Error} {
		b, _ := json.Marshal(s)
		var back Severity
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("%s: round trip gave %v, %v", s, back, err)
		}
	}
	var s Severity
	if err := json.Unmarshal([]byte(`"fatal"`), &s); err == nil {
		t.Errorf("unknown severity accepted")
	}
}
