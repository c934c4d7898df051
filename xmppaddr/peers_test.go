package xmppaddr_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testpki"
	. "github.com/xmppcert/xmppcert/xmppaddr"
)

// TestPeerPredictions pins the documented departures of real XMPP software
// from RFC 9525, each of which an operator meets in the field.
func TestPeerPredictions(t *testing.T) {
	cnOnly := func(cn string) func(*x509.Certificate) { return withCN(cn, nil) }
	cases := []struct {
		name    string
		leaf    func(*x509.Certificate)
		domain  string
		service Service
		valid   bool
		accepts map[string]bool // peer name prefix -> prediction
	}{
		{"SRV-ID only, c2s: Smack ignores SRV-IDs", san(testpki.SRV("_xmpp-client.example.org")), "example.org", ServiceClient, true,
			map[string]bool{"Smack": false, "Conversations": true}},
		{"SRV-ID only, s2s: ejabberd ignores SRV-IDs", san(testpki.SRV("_xmpp-server.example.org")), "example.org", ServiceServer, true,
			map[string]bool{"ejabberd": false, "Prosody": true, "Openfire": true}},
		{"XmppAddr only, c2s: Smack reads only dNSName and CN", san(testpki.Xmpp("example.org")), "example.org", ServiceClient, true,
			map[string]bool{"Smack": false, "Conversations": true}},
		{"multi-label wildcard: Conversations accepts", san(testpki.DNS("*.example.org")), "a.b.example.org", ServiceClient, false,
			map[string]bool{"Conversations": true, "Smack": false}},
		{"partial wildcard: Smack accepts", san(testpki.DNS("ch*.example.org")), "chat.example.org", ServiceClient, false,
			map[string]bool{"Smack": true, "Conversations": false}},
		{"*.localhost for localhost: Prosody accepts", san(testpki.DNS("*.localhost")), "localhost", ServiceServer, false,
			map[string]bool{"Prosody": true, "ejabberd": false, "Openfire": true}},
		{"wildcard any depth: Openfire accepts", san(testpki.DNS("*.example.org")), "a.b.example.org", ServiceServer, false,
			map[string]bool{"Openfire": true, "Prosody": false, "ejabberd": false}},
		{"_xmpp-client SRV-ID for s2s: Openfire accepts", san(testpki.SRV("_xmpp-client.example.org")), "example.org", ServiceServer, false,
			map[string]bool{"Openfire": true, "Prosody": false}},
		{"CN beside SANs: ejabberd always reads the CN", withCN("example.org", san(testpki.DNS("other.example"))), "example.org", ServiceServer, false,
			map[string]bool{"ejabberd": true, "Prosody": false, "Openfire": false}},
		{"XmppAddr beside the dNSName, s2s: ejabberd's check crashes", san(testpki.DNS("example.org"), testpki.Xmpp("example.org")), "example.org", ServiceServer, true,
			map[string]bool{"ejabberd": false, "Prosody": true, "Openfire": true}},
		{"CN only, c2s", cnOnly("example.org"), "example.org", ServiceClient, false,
			map[string]bool{"Smack": true, "Conversations": true}},
		{"two CNs: Prosody refuses", func(c *x509.Certificate) {
			c.Subject.ExtraNames = []pkix.AttributeTypeAndValue{{Type: []int{2, 5, 4, 3}, Value: "example.org"}, {Type: []int{2, 5, 4, 3}, Value: "other.example"}}
		}, "example.org", ServiceServer, false, map[string]bool{"Prosody": false, "ejabberd": true}},
		{"CN injected through OU: Openfire accepts the victim", func(c *x509.Certificate) {
			c.Subject = pkix.Name{OrganizationalUnit: []string{"CN=victim.example,"}, CommonName: "attacker.example"}
		}, "victim.example", ServiceServer, false, map[string]bool{"Openfire": true, "ejabberd": false, "Prosody": false}},
		{"serverAuth only, s2s: ejabberd refuses", eku(x509.ExtKeyUsageServerAuth), "example.org", ServiceServer, true,
			map[string]bool{"ejabberd": false, "Prosody": true, "Openfire": true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leaf, _ := root.Leaf(tc.leaf)
			res, err := Verify([]*x509.Certificate{leaf}, Options{Domain: tc.domain, Service: tc.service, Roots: root.Pool(), CurrentTime: testpki.At})
			if err != nil {
				t.Fatal(err)
			}
			if res.Valid != tc.valid {
				t.Fatalf("valid = %v, want %v:\n%s", res.Valid, tc.valid, findingsText(res))
			}
			seen := 0
			for _, v := range res.Peers {
				for prefix, want := range tc.accepts {
					if !strings.HasPrefix(v.Peer, prefix) {
						continue
					}
					seen++
					if v.Accepts != want || v.Differs != (want != tc.valid) || v.Reason == "" {
						t.Errorf("%s: accepts=%v differs=%v (%s); want accepts=%v", v.Peer, v.Accepts, v.Differs, v.Reason, want)
					}
				}
			}
			if seen != len(tc.accepts) {
				t.Errorf("saw %d of the %d peers expected for %s: %+v", seen, len(tc.accepts), tc.service, res.Peers)
			}
		})
	}
}

func TestPeersRefuseUntrustedChains(t *testing.T) {
	other := testpki.NewRoot("Other Root", nil)
	leaf, _ := other.Leaf(san(testpki.DNS("example.org")))
	res, err := Verify([]*x509.Certificate{leaf}, Options{Domain: "example.org", Service: ServiceServer, Roots: root.Pool(), CurrentTime: testpki.At})
	if err != nil {
		t.Fatal(err)
	}
	if res.Valid || !hasCode(res, CodeChainUntrusted) || len(res.Peers) != 4 {
		t.Fatalf("valid=%v peers=%d:\n%s", res.Valid, len(res.Peers), findingsText(res))
	}
	for _, v := range res.Peers {
		if v.Accepts || v.Differs {
			t.Errorf("%s accepts an untrusted chain: %+v", v.Peer, v)
		}
	}
}

// TestOpenSSLPeersJudgeTheChain: the peers whose TLS is OpenSSL judge the
// chain as OpenSSL does, where it parts from crypto/x509. An SRV-ID
// outside a CA's DNS name constraint is refused by xmppcert but accepted
// by Prosody (OpenSSL applies no DNS constraint to an otherName); an
// intermediate given as the only trust anchor satisfies crypto/x509 but
// not OpenSSL, which wants a self-signed anchor.
func TestOpenSSLPeersJudgeTheChain(t *testing.T) {
	constrained := root.Intermediate("Constrained", func(c *x509.Certificate) {
		c.PermittedDNSDomains, c.PermittedDNSDomainsCritical = []string{"example.org"}, true
	})
	srvOutside, _ := constrained.Leaf(san(testpki.DNS("example.org"), testpki.SRV("_xmpp-server.other.example")))
	plain := root.Intermediate("Plain", nil)
	leaf, _ := plain.Leaf(san(testpki.DNS("example.org")))
	for _, tc := range []struct {
		name    string
		chain   []*x509.Certificate
		anchors []*x509.Certificate
		domain  string
		valid   bool
		prosody string // the start of the Prosody 0.12 reason
	}{
		{"SRV-ID outside the constraint", []*x509.Certificate{srvOutside, constrained.Cert}, []*x509.Certificate{root.Cert}, "other.example", false, "accepts through SRVName"},
		{"intermediate as the only anchor", []*x509.Certificate{leaf}, []*x509.Certificate{plain.Cert}, "example.org", true, "refuses: OpenSSL's chain check fails (unable to get issuer certificate)"},
	} {
		pool := x509.NewCertPool()
		for _, a := range tc.anchors {
			pool.AddCert(a)
		}
		res, err := Verify(tc.chain, Options{Domain: tc.domain, Service: ServiceServer, Roots: pool, Anchors: tc.anchors, CurrentTime: testpki.At})
		if err != nil {
			t.Fatal(err)
		}
		if res.Valid != tc.valid {
			t.Errorf("%s: valid=%v:\n%s", tc.name, res.Valid, findingsText(res))
		}
		for _, v := range res.Peers {
			if v.Peer == "Prosody 0.12" && (!strings.HasPrefix(v.Reason, tc.prosody) || v.Differs != true) {
				t.Errorf("%s: Prosody 0.12 %+v; want a reason starting %q, differing from the verdict", tc.name, v, tc.prosody)
			}
		}
	}
}

// TestProsodyLocalhostBug: Prosody's acceptance of *.localhost for
// localhost is its bug, and the prediction says so and names its code.
func TestProsodyLocalhostBug(t *testing.T) {
	leaf, _ := root.Leaf(san(testpki.DNS("*.localhost")))
	res, err := Verify([]*x509.Certificate{leaf}, Options{Domain: "localhost", Service: ServiceServer, Roots: root.Pool(), CurrentTime: testpki.At})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.Peers {
		if v.Peer == "Prosody 0.12" && (!v.Accepts || !strings.Contains(v.Reason, "util/x509.lua") || !strings.Contains(v.Reason, "a bug in its wildcard rule")) {
			t.Errorf("Prosody 0.12: %+v", v)
		}
	}
}
