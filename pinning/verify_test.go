package pinning

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testdns"
	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// vtPKI is a CA, the current and the next certificate of the domain, and
// an old one, as a lineage would have them.
type vtPKI struct {
	ca                 *testpki.CA
	current, next, old *x509.Certificate
	currentKey         crypto.Signer
}

func vtNewPKI(domain string) *vtPKI {
	ca := testpki.NewRoot("verify test CA", nil)
	leaf := func() (*x509.Certificate, crypto.Signer) {
		return ca.Leaf(func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false,
				testpki.DNS(domain), testpki.SRV("_xmpp-client."+domain), testpki.SRV("_xmpp-server."+domain), testpki.Xmpp(domain)))
		})
	}
	p := &vtPKI{ca: ca}
	p.current, p.currentKey = leaf()
	p.next, _ = leaf()
	p.old, _ = leaf()
	return p
}

func (p *vtPKI) tlsCert() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{p.current.Raw, p.ca.Cert.Raw}, PrivateKey: p.currentKey, Leaf: p.current}
}

// pin is the 3 1 1 record data of cert.
func vtPin(t *testing.T, cert *x509.Certificate) TLSA {
	t.Helper()
	r, err := NewTLSA(cert, UsageDANEEE, SelectorSPKI, MatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func vtTLSA(owner string, r TLSA) string {
	r.Name = owner
	return r.String()
}

func vtVerifier(z *testdns.Fake, p *vtPKI) *Verifier {
	return &Verifier{
		Resolver:    z.Addr,
		Timeout:     3 * time.Second,
		Deadline:    20 * time.Second,
		Roots:       p.ca.Pool(),
		CurrentTime: testpki.At,
		NoPOSH:      true,
	}
}

// vtSetup is a signed domain whose c2s service has a STARTTLS and a
// direct TLS target on xmpp.signed.test, and whose s2s service has a
// STARTTLS target there, each with the given records at its TLSA owner.
type vtSetup struct {
	dns              *testdns.Fake
	pki              *vtPKI
	starttls, direct *xmpptlstest.Server
}

const vtDomain = "signed.test"

func vtStart(t *testing.T, records ...TLSA) *vtSetup {
	t.Helper()
	s := &vtSetup{dns: testdns.StartFake(t, "signed.test."), pki: vtNewPKI(vtDomain)}
	s.starttls = xmpptlstest.Start(t, xmpptlstest.Config{Certificate: s.pki.tlsCert()})
	s.direct = xmpptlstest.Start(t, xmpptlstest.Config{Certificate: s.pki.tlsCert(), DirectTLS: true})
	s.dns.Add(t,
		fmt.Sprintf("_xmpp-client._tcp.signed.test. 300 IN SRV 5 10 %d xmpp.signed.test.", s.starttls.Port()),
		fmt.Sprintf("_xmpps-client._tcp.signed.test. 300 IN SRV 0 10 %d xmpp.signed.test.", s.direct.Port()),
		fmt.Sprintf("_xmpp-server._tcp.signed.test. 300 IN SRV 5 10 %d xmpp.signed.test.", s.starttls.Port()),
		"xmpp.signed.test. 300 IN A 127.0.0.1",
	)
	for _, port := range []uint16{s.starttls.Port(), s.direct.Port()} {
		owner := Endpoint{Target: "xmpp.signed.test", Port: port}.Owner()
		for _, r := range records {
			s.dns.Add(t, vtTLSA(owner, r))
		}
	}
	return s
}

// vtSeen waits until the server has finished n connections (it records
// one once the client has gone) and returns what they sent.
func vtSeen(t *testing.T, s *xmpptlstest.Server, n int) []xmpptlstest.Hello {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if seen := s.Seen(); len(seen) >= n {
			return seen
		}
	}
	t.Fatalf("the server finished %d connections, want %d", len(s.Seen()), n)
	return nil
}

func vtDump(t *testing.T, rep Report) {
	t.Helper()
	b, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("report:\n%s", b)
}

func TestVerifyAllMatch(t *testing.T) {
	s := vtStart(t)
	cur, next := vtPin(t, s.pki.current), vtPin(t, s.pki.next)
	for _, port := range []uint16{s.starttls.Port(), s.direct.Port()} {
		owner := Endpoint{Target: "xmpp.signed.test", Port: port}.Owner()
		s.dns.Add(t, vtTLSA(owner, cur), vtTLSA(owner, next))
	}
	v := vtVerifier(s.dns, s.pki)
	v.From = "us.example"
	rep := v.Verify(t.Context(), "Signed.Test.", nil, Expectation{Current: []TLSA{cur}, Next: []TLSA{next}})
	if !rep.OK || rep.Error != "" || rep.Domain != vtDomain || len(rep.Services) != 2 {
		vtDump(t, rep)
		t.Fatalf("ok=%v error=%q domain=%q services=%d, want ok for both services", rep.OK, rep.Error, rep.Domain, len(rep.Services))
	}
	c2s := rep.Services[0]
	if c2s.Service != xmppaddr.ServiceClient || !c2s.SRV.Validated || c2s.SRV.Fallback || len(c2s.SRV.Records) != 2 {
		t.Errorf("c2s SRV %+v", c2s.SRV)
	}
	// XEP-0368 order: the direct TLS record has the better priority.
	if len(c2s.Targets) != 2 || !c2s.Targets[0].DirectTLS || c2s.Targets[1].DirectTLS {
		t.Fatalf("c2s targets %+v, want direct TLS first, then STARTTLS", c2s.Targets)
	}
	for _, tr := range slices.Concat(c2s.Targets, rep.Services[1].Targets) {
		if tr.Status != StatusMatch || !tr.OK || !tr.DANEApplies || !tr.TLSAValidated || !tr.AddressesValidated {
			t.Errorf("%s: status %s ok=%v dane=%v, want a validated match", tr.Owner, tr.Status, tr.OK, tr.DANEApplies)
		}
		if len(tr.Matching) != 1 || !tr.Matching[0].samePin(cur) || len(tr.Stale) != 0 || len(tr.MissingCurrent)+len(tr.MissingNext) != 0 || tr.RenewalWouldBreak {
			t.Errorf("%s: matching %v stale %v missing %v %v renewal_would_break %v", tr.Owner, tr.Matching, tr.Stale, tr.MissingCurrent, tr.MissingNext, tr.RenewalWouldBreak)
		}
		if len(tr.Records) != 2 || tr.Records[0].Expected != "current" || tr.Records[1].Expected != "next" || tr.Records[1].Matches {
			t.Errorf("%s: records %+v", tr.Owner, tr.Records)
		}
		c := tr.Connections
		if len(c) != 1 || c[0].Failure != "" || !c[0].Matched || c[0].PKIX == nil || !c[0].PKIX.Valid || c[0].Chain[0].SHA256 != Hex(DigestsOf(s.pki.current).CertSHA256) {
			t.Errorf("%s: connections %+v", tr.Owner, c)
		}
	}
	if alpn := c2s.Targets[0].Connections[0].ALPN; alpn != "xmpp-client" {
		t.Errorf("direct TLS negotiated ALPN %q", alpn)
	}
	// What the servers saw: SNI and stream to are the domain, s2s sends
	// the configured from.
	var sawServer bool
	for _, h := range slices.Concat(vtSeen(t, s.starttls, 2), vtSeen(t, s.direct, 1)) {
		if h.SNI != vtDomain || (h.StartTLS && h.To != vtDomain) {
			t.Errorf("server saw %+v", h)
		}
		if h.StreamNS == "jabber:server" {
			sawServer = true
			if h.From != "us.example" || h.DialbackNS != "jabber:server:dialback" {
				t.Errorf("s2s stream header %+v", h)
			}
		}
	}
	if !sawServer {
		t.Error("no s2s connection seen")
	}
	// Every query asked for DNSSEC.
	n := len(s.dns.Queries())
	if n < 8 {
		t.Errorf("%d DNS queries, want SRV, TLSA, A and AAAA for every target", n)
	}
}

func TestVerifyStaleRecord(t *testing.T) {
	s := vtStart(t)
	cur, next, old := vtPin(t, s.pki.current), vtPin(t, s.pki.next), vtPin(t, s.pki.old)
	owner := Endpoint{Target: "xmpp.signed.test", Port: s.starttls.Port()}.Owner()
	s.dns.Add(t, vtTLSA(owner, old), vtTLSA(owner, cur), vtTLSA(owner, next))
	rep := vtVerifier(s.dns, s.pki).Verify(t.Context(), vtDomain, []string{"xmpp-server"}, Expectation{Current: []TLSA{cur}, Next: []TLSA{next}})
	tr := rep.Services[0].Targets[0]
	if tr.Status != StatusMatch || len(tr.Stale) != 1 || !tr.Stale[0].samePin(old) || tr.RenewalWouldBreak {
		vtDump(t, rep)
		t.Fatalf("status %s stale %v renewal %v, want a match with the old record stale", tr.Status, tr.Stale, tr.RenewalWouldBreak)
	}
	if !tr.Records[0].Stale || tr.Records[1].Stale || tr.Records[2].Stale {
		t.Errorf("records %+v: only the first is stale", tr.Records)
	}
	// A stale record is cruft, not a failure.
	if !tr.OK || !rep.OK {
		t.Errorf("ok=%v/%v, want true", tr.OK, rep.OK)
	}
}

func TestVerifyNextKeyMissing(t *testing.T) {
	s := vtStart(t)
	cur, next := vtPin(t, s.pki.current), vtPin(t, s.pki.next)
	owner := Endpoint{Target: "xmpp.signed.test", Port: s.starttls.Port()}.Owner()
	s.dns.Add(t, vtTLSA(owner, cur))
	rep := vtVerifier(s.dns, s.pki).Verify(t.Context(), vtDomain, []string{"xmpp-server"}, Expectation{Current: []TLSA{cur}, Next: []TLSA{next}})
	tr := rep.Services[0].Targets[0]
	if tr.Status != StatusMatch || !tr.RenewalWouldBreak || len(tr.MissingNext) != 1 || !tr.MissingNext[0].samePin(next) || len(tr.MissingCurrent) != 0 {
		vtDump(t, rep)
		t.Fatalf("status %s renewal %v missing next %v current %v", tr.Status, tr.RenewalWouldBreak, tr.MissingNext, tr.MissingCurrent)
	}
	if tr.OK || rep.OK {
		t.Error("a renewal that would break DANE is reported OK")
	}
	if !slices.ContainsFunc(tr.Notes, func(n string) bool { return strings.Contains(n, "renewal would break") }) {
		t.Errorf("notes %q do not say the renewal would break", tr.Notes)
	}
}

// A CA pin (2 1 1) that matches today's chain survives a key change.
func TestVerifyCAPinSurvivesRenewal(t *testing.T) {
	s := vtStart(t)
	next := vtPin(t, s.pki.next)
	ta, err := NewTLSA(s.pki.ca.Cert, UsageDANETA, SelectorSPKI, MatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	owner := Endpoint{Target: "xmpp.signed.test", Port: s.starttls.Port()}.Owner()
	s.dns.Add(t, vtTLSA(owner, ta))
	rep := vtVerifier(s.dns, s.pki).Verify(t.Context(), vtDomain, []string{"xmpp-server"}, Expectation{Next: []TLSA{next}})
	tr := rep.Services[0].Targets[0]
	if tr.Status != StatusMatch || tr.RenewalWouldBreak || len(tr.MissingNext) != 1 {
		vtDump(t, rep)
		t.Fatalf("status %s renewal %v missing next %v: want a DANE-TA match that survives, the next pin still missing", tr.Status, tr.RenewalWouldBreak, tr.MissingNext)
	}
}

func TestVerifyUsages(t *testing.T) {
	pki := vtNewPKI(vtDomain)
	otherCA := testpki.NewRoot("someone else", nil)
	rec := func(c *x509.Certificate, usage, sel, mt uint8) TLSA {
		r, err := NewTLSA(c, usage, sel, mt)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	for _, tc := range []struct {
		name  string
		rec   TLSA
		roots *x509.CertPool
		want  TargetStatus
		note  string
	}{
		{"3 0 1", rec(pki.current, 3, 0, 1), nil, StatusMatch, ""},
		{"3 1 2", rec(pki.current, 3, 1, 2), nil, StatusMatch, ""},
		{"3 1 0", rec(pki.current, 3, 1, 0), nil, StatusMatch, ""},
		{"1 1 1 PKIX valid", rec(pki.current, 1, 1, 1), pki.ca.Pool(), StatusMatch, ""},
		{"1 1 1 PKIX invalid", rec(pki.current, 1, 1, 1), otherCA.Pool(), StatusNoMatch, "PKIX"},
		{"0 1 1 PKIX valid", rec(pki.ca.Cert, 0, 1, 1), pki.ca.Pool(), StatusMatch, ""},
		{"0 1 1 PKIX invalid", rec(pki.ca.Cert, 0, 1, 1), otherCA.Pool(), StatusNoMatch, "PKIX"},
		{"2 0 1", rec(pki.ca.Cert, 2, 0, 1), otherCA.Pool(), StatusMatch, ""},
		{"2 1 1 of another CA", rec(otherCA.Cert, 2, 1, 1), nil, StatusNoMatch, ""},
		{"3 1 1 of another key", rec(pki.old, 3, 1, 1), nil, StatusNoMatch, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := testdns.StartFake(t, "signed.test.")
			srv := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: pki.tlsCert()})
			z.Add(t, fmt.Sprintf("_xmpp-server._tcp.signed.test. 300 IN SRV 0 0 %d xmpp.signed.test.", srv.Port()),
				"xmpp.signed.test. 300 IN A 127.0.0.1",
				vtTLSA(Endpoint{Target: "xmpp.signed.test", Port: srv.Port()}.Owner(), tc.rec))
			v := vtVerifier(z, pki)
			v.Roots = tc.roots
			rep := v.Verify(t.Context(), vtDomain, []string{"xmpp-server"}, Expectation{})
			tr := rep.Services[0].Targets[0]
			if tr.Status != tc.want || !strings.Contains(tr.Records[0].Note, tc.note) {
				vtDump(t, rep)
				t.Fatalf("status %s note %q, want %s with a note about %q", tr.Status, tr.Records[0].Note, tc.want, tc.note)
			}
			if tc.want == StatusNoMatch && (rep.OK || len(tr.Stale) != 1) {
				t.Errorf("ok=%v stale=%v: a record that matches nothing is stale and not OK", rep.OK, tr.Stale)
			}
		})
	}
}

func TestVerifyUnvalidated(t *testing.T) {
	pki := vtNewPKI("unsigned.test")
	cur := vtPin(t, pki.current)
	t.Run("unsigned domain", func(t *testing.T) {
		z := testdns.StartFake(t, "signed.test.")
		srv := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: pki.tlsCert()})
		z.Add(t, fmt.Sprintf("_xmpp-client._tcp.unsigned.test. 300 IN SRV 0 0 %d xmpp.unsigned.test.", srv.Port()),
			"xmpp.unsigned.test. 300 IN A 127.0.0.1",
			vtTLSA(Endpoint{Target: "xmpp.unsigned.test", Port: srv.Port()}.Owner(), cur))
		rep := vtVerifier(z, pki).Verify(t.Context(), "unsigned.test", []string{"xmpp-client"}, Expectation{Current: []TLSA{cur}})
		svc := rep.Services[0]
		tr := svc.Targets[0]
		if svc.SRV.Validated || tr.TLSAValidated || tr.DANEApplies || tr.Status != StatusUnvalidated || rep.OK {
			vtDump(t, rep)
			t.Fatalf("srv validated %v, tlsa validated %v, status %s, ok %v", svc.SRV.Validated, tr.TLSAValidated, tr.Status, rep.OK)
		}
		if !slices.ContainsFunc(svc.SRV.Notes, func(n string) bool { return strings.Contains(n, "not DNSSEC-validated: TLSA cannot be trusted") }) ||
			!slices.ContainsFunc(tr.Notes, func(n string) bool { return strings.Contains(n, "not DNSSEC-validated: TLSA cannot be trusted") }) {
			t.Errorf("notes %q / %q do not say plainly that nothing is validated", svc.SRV.Notes, tr.Notes)
		}
		// The record still matches the bytes, and says so.
		if len(tr.Matching) != 1 {
			t.Errorf("matching %v", tr.Matching)
		}
	})
	t.Run("signed SRV, unsigned target", func(t *testing.T) {
		z := testdns.StartFake(t, "signed.test.")
		srv := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: pki.tlsCert()})
		z.Add(t, fmt.Sprintf("_xmpp-client._tcp.signed.test. 300 IN SRV 0 0 %d xmpp.unsigned.test.", srv.Port()),
			"xmpp.unsigned.test. 300 IN A 127.0.0.1",
			vtTLSA(Endpoint{Target: "xmpp.unsigned.test", Port: srv.Port()}.Owner(), cur))
		rep := vtVerifier(z, pki).Verify(t.Context(), vtDomain, []string{"xmpp-client"}, Expectation{})
		svc := rep.Services[0]
		tr := svc.Targets[0]
		if !svc.SRV.Validated || tr.TLSAValidated || tr.Status != StatusUnvalidated || tr.AddressesValidated {
			vtDump(t, rep)
			t.Fatalf("srv validated %v, tlsa validated %v, status %s", svc.SRV.Validated, tr.TLSAValidated, tr.Status)
		}
	})
}

func TestVerifyUnreachable(t *testing.T) {
	pki := vtNewPKI(vtDomain)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	z := testdns.StartFake(t, "signed.test.")
	z.Add(t, fmt.Sprintf("_xmpp-client._tcp.signed.test. 300 IN SRV 0 0 %d xmpp.signed.test.", closed),
		fmt.Sprintf("_xmpps-client._tcp.signed.test. 300 IN SRV 0 0 %d nowhere.signed.test.", closed),
		"xmpp.signed.test. 300 IN A 127.0.0.1",
		vtTLSA(Endpoint{Target: "xmpp.signed.test", Port: closed}.Owner(), vtPin(t, pki.current)))
	rep := vtVerifier(z, pki).Verify(t.Context(), vtDomain, []string{"xmpp-client"}, Expectation{})
	if rep.OK || len(rep.Services[0].Targets) != 2 {
		vtDump(t, rep)
		t.Fatalf("ok=%v targets=%d", rep.OK, len(rep.Services[0].Targets))
	}
	for _, tr := range rep.Services[0].Targets {
		if tr.Status != StatusUnreachable {
			t.Errorf("%s: status %s, want unreachable", tr.Owner, tr.Status)
		}
		if tr.Target == "xmpp.signed.test" && (len(tr.Connections) != 1 || tr.Connections[0].Failure != StatusUnreachable || tr.Connections[0].Error == "") {
			t.Errorf("connections %+v", tr.Connections)
		}
		if tr.Target == "nowhere.signed.test" && !strings.Contains(tr.Error, "no A or AAAA") {
			t.Errorf("error %q, want no addresses", tr.Error)
		}
		// Nothing was presented, so nothing can be called stale.
		if len(tr.Stale) != 0 {
			t.Errorf("stale %v", tr.Stale)
		}
	}
}

func TestVerifySRVDot(t *testing.T) {
	pki := vtNewPKI(vtDomain)
	t.Run("not offered", func(t *testing.T) {
		z := testdns.StartFake(t, "signed.test.")
		z.Add(t, "_xmpp-client._tcp.signed.test. 300 IN SRV 0 0 0 .")
		rep := vtVerifier(z, pki).Verify(t.Context(), vtDomain, []string{"xmpp-client"}, Expectation{})
		svc := rep.Services[0]
		if !svc.SRV.NotOffered || svc.SRV.Fallback || len(svc.Targets) != 0 || !rep.OK {
			vtDump(t, rep)
			t.Fatalf("srv %+v targets %d ok %v: want not offered, no fallback", svc.SRV, len(svc.Targets), rep.OK)
		}
	})
	t.Run("STARTTLS not offered, direct TLS is", func(t *testing.T) {
		z := testdns.StartFake(t, "signed.test.")
		srv := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: pki.tlsCert(), DirectTLS: true})
		z.Add(t, "_xmpp-client._tcp.signed.test. 300 IN SRV 0 0 0 .",
			fmt.Sprintf("_xmpps-client._tcp.signed.test. 300 IN SRV 0 0 %d xmpp.signed.test.", srv.Port()),
			"xmpp.signed.test. 300 IN A 127.0.0.1")
		rep := vtVerifier(z, pki).Verify(t.Context(), vtDomain, []string{"xmpp-client"}, Expectation{})
		svc := rep.Services[0]
		if svc.SRV.NotOffered || len(svc.Targets) != 1 || !svc.Targets[0].DirectTLS || svc.Targets[0].Status != StatusNoTLSA || !rep.OK {
			vtDump(t, rep)
			t.Fatalf("want the direct TLS target alone, without TLSA, OK")
		}
	})
}

// Without SRV records the domain itself is checked, on the port Ports
// names, with STARTTLS.
func TestVerifyFallback(t *testing.T) {
	pki := vtNewPKI(vtDomain)
	srv := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: pki.tlsCert()})
	z := testdns.StartFake(t, "signed.test.")
	z.Add(t, "signed.test. 300 IN A 127.0.0.1",
		vtTLSA(Endpoint{Target: vtDomain, Port: srv.Port()}.Owner(), vtPin(t, pki.current)))
	v := vtVerifier(z, pki)
	v.Ports = map[xmppaddr.Service]uint16{xmppaddr.ServiceClient: srv.Port()}
	rep := v.Verify(t.Context(), vtDomain, []string{"xmpp-client"}, Expectation{Current: []TLSA{vtPin(t, pki.current)}})
	svc := rep.Services[0]
	if !svc.SRV.Fallback || !svc.SRV.Validated || len(svc.Targets) != 1 || svc.Targets[0].Target != vtDomain || svc.Targets[0].Status != StatusMatch || !rep.OK {
		vtDump(t, rep)
		t.Fatal("want a validated fallback to the domain that matches")
	}
}

func TestVerifyTLSError(t *testing.T) {
	pki := vtNewPKI(vtDomain)
	srv := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: pki.tlsCert(), Features: "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"})
	z := testdns.StartFake(t, "signed.test.")
	z.Add(t, fmt.Sprintf("_xmpp-client._tcp.signed.test. 300 IN SRV 0 0 %d xmpp.signed.test.", srv.Port()),
		"xmpp.signed.test. 300 IN A 127.0.0.1")
	rep := vtVerifier(z, pki).Verify(t.Context(), vtDomain, []string{"xmpp-client"}, Expectation{})
	tr := rep.Services[0].Targets[0]
	if tr.Status != StatusTLSError || rep.OK || !strings.Contains(tr.Connections[0].Error, "did not offer STARTTLS") {
		vtDump(t, rep)
		t.Fatalf("status %s, connection %+v", tr.Status, tr.Connections)
	}
}

func TestVerifyDNSError(t *testing.T) {
	pki := vtNewPKI(vtDomain)
	srv := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: pki.tlsCert()})
	z := testdns.StartFake(t, "signed.test.")
	z.ServFail("_tcp.xmpp.signed.test.")
	z.Add(t, fmt.Sprintf("_xmpp-client._tcp.signed.test. 300 IN SRV 0 0 %d xmpp.signed.test.", srv.Port()),
		"xmpp.signed.test. 300 IN A 127.0.0.1")
	rep := vtVerifier(z, pki).Verify(t.Context(), vtDomain, []string{"xmpp-client"}, Expectation{})
	tr := rep.Services[0].Targets[0]
	if tr.Status != StatusDNSError || !strings.Contains(tr.Error, "SERVFAIL") || rep.OK {
		vtDump(t, rep)
		t.Fatalf("status %s error %q", tr.Status, tr.Error)
	}

	// So does a failing address lookup.
	z.ServFail("=xmpp.signed.test.")
	rep = vtVerifier(z, pki).Verify(t.Context(), vtDomain, []string{"xmpp-client"}, Expectation{})
	tr = rep.Services[0].Targets[0]
	if tr.Status != StatusDNSError || !strings.Contains(tr.Error, "xmpp.signed.test. A") || !tr.TLSAValidated || rep.OK {
		vtDump(t, rep)
		t.Fatalf("status %s error %q, want a DNS error for the addresses", tr.Status, tr.Error)
	}

	// A failing SRV lookup fails the service.
	z.ServFail("signed.test.")
	rep = vtVerifier(z, pki).Verify(t.Context(), vtDomain, []string{"xmpp-client"}, Expectation{})
	if rep.OK || !strings.Contains(rep.Services[0].SRV.Error, "SERVFAIL") {
		vtDump(t, rep)
		t.Fatal("want the SRV error")
	}
}

func TestVerifyPOSH(t *testing.T) {
	s := vtStart(t)
	web := s.pki.ca
	webCert, webKey := web.Leaf(func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS(vtDomain)))
	})
	docs := map[string]string{}
	var mu sync.Mutex
	h := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		doc, ok := docs[r.URL.Path]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, doc)
	}))
	h.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{webCert.Raw}, PrivateKey: webKey}}}
	h.Config.ErrorLog = log.New(io.Discard, "", 0)
	h.StartTLS()
	t.Cleanup(h.Close)

	good, err := NewPOSH([]*x509.Certificate{s.pki.current, s.pki.next}, time.Hour, POSHOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad, _ := NewPOSH([]*x509.Certificate{s.pki.old}, time.Hour, POSHOptions{})
	gj, _ := json.Marshal(good)
	bj, _ := json.Marshal(bad)
	docs["/.well-known/posh/xmpp-client.json"] = string(gj)
	docs["/.well-known/posh/xmpp-server.json"] = string(bj)

	v := vtVerifier(s.dns, s.pki)
	v.NoPOSH = false
	v.POSH = &POSHFetcher{
		RootCAs: web.Pool(),
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != vtDomain+":443" {
				return nil, fmt.Errorf("test: no route to %s", addr)
			}
			var d net.Dialer
			return d.DialContext(ctx, network, h.Listener.Addr().String())
		},
		Timeout: 3 * time.Second,
		Now:     func() time.Time { return testpki.At },
	}
	rep := v.Verify(t.Context(), vtDomain, nil, Expectation{})
	c2s, s2s := rep.Services[0].POSH, rep.Services[1].POSH
	if c2s == nil || s2s == nil {
		vtDump(t, rep)
		t.Fatal("no POSH section")
	}
	if c2s.Document.Code != POSHValid || !c2s.OK || len(c2s.Pins) != 2 || c2s.Pins[0].Code != POSHPinMatch {
		vtDump(t, rep)
		t.Errorf("c2s POSH %+v, want both targets pinned", c2s)
	}
	if s2s.Document.Code != POSHValid || s2s.OK || len(s2s.Pins) != 1 || s2s.Pins[0].Code != POSHPinNoMatch {
		vtDump(t, rep)
		t.Errorf("s2s POSH %+v, want the target not pinned", s2s)
	}
	if rep.OK || !rep.Services[0].OK || rep.Services[1].OK {
		t.Errorf("ok %v/%v/%v: the wrong s2s document fails s2s only", rep.OK, rep.Services[0].OK, rep.Services[1].OK)
	}

	// No POSH published is fine.
	mu.Lock()
	clear(docs)
	mu.Unlock()
	rep = v.Verify(t.Context(), vtDomain, []string{"xmpp-client"}, Expectation{})
	if p := rep.Services[0].POSH; p == nil || p.Document.Code != POSHNotFound || !p.OK || !rep.OK {
		vtDump(t, rep)
		t.Error("an unpublished POSH document should be reported and be OK")
	}
}

func TestVerifyBadInput(t *testing.T) {
	v := &Verifier{Resolver: "127.0.0.1:1", NoPOSH: true}
	for _, tc := range []struct {
		domain   string
		services []string
		want     string
	}{
		{"", nil, "domain"},
		{"bad..domain", nil, "domain"},
		{vtDomain, []string{"https"}, "xmpp-client and xmpp-server"},
		{vtDomain, []string{"smtp"}, "xmpp-client and xmpp-server"},
	} {
		rep := v.Verify(t.Context(), tc.domain, tc.services, Expectation{})
		if rep.OK || !strings.Contains(rep.Error, tc.want) {
			t.Errorf("%q %q: ok=%v error %q, want one about %s", tc.domain, tc.services, rep.OK, rep.Error, tc.want)
		}
	}
	v.Resolver = "not a host port"
	if rep := v.Verify(t.Context(), vtDomain, nil, Expectation{}); !strings.Contains(rep.Error, "HOST:PORT") {
		t.Errorf("error %q", rep.Error)
	}
}

func TestVerifyResolverUnreachable(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close() // never answers
	v := &Verifier{Resolver: pc.LocalAddr().String(), Timeout: 200 * time.Millisecond, NoPOSH: true}
	begin := time.Now()
	rep := v.Verify(t.Context(), vtDomain, nil, Expectation{})
	if rep.OK || rep.Services[0].SRV.Error == "" || time.Since(begin) > 5*time.Second {
		vtDump(t, rep)
		t.Fatalf("ok=%v after %v", rep.OK, time.Since(begin))
	}
}

func TestResolverFrom(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	os.WriteFile(conf, []byte("# comment\nsearch example.org\nnameserver 2001:db8::53\nnameserver 192.0.2.1\n"), 0o644)
	got, err := resolverFrom(conf)
	if err != nil || got != "[2001:db8::53]:53" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := resolverFrom(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "HOST:PORT") {
		t.Errorf("error %v", err)
	}
	if resolverNote("127.0.0.1:53") != "" || resolverNote("[::1]:5353") != "" || resolverNote("192.0.2.1:53") == "" {
		t.Error("resolverNote: only a resolver off this host deserves a warning")
	}
}

// The JSON form is a contract: snake_case keys, lists never null.
func TestVerifyReportJSON(t *testing.T) {
	s := vtStart(t)
	owner := Endpoint{Target: "xmpp.signed.test", Port: s.starttls.Port()}.Owner()
	s.dns.Add(t, vtTLSA(owner, vtPin(t, s.pki.current)))
	rep := vtVerifier(s.dns, s.pki).Verify(t.Context(), vtDomain, []string{"xmpp-client"}, Expectation{})
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"domain", "resolver", "checked_at", "ok", "services", "notes"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	tr := m["services"].([]any)[0].(map[string]any)["targets"].([]any)[1].(map[string]any)
	for _, k := range []string{"target", "port", "direct_tls", "owner", "status", "ok", "tlsa_validated", "dane_applies",
		"addresses", "addresses_validated", "connections", "records", "matching", "stale", "missing_current", "missing_next", "renewal_would_break", "notes"} {
		if _, ok := tr[k]; !ok {
			t.Errorf("target has no %q: %v", k, tr)
		}
	}
	if strings.Contains(string(b), "null") {
		t.Errorf("a list is null: %s", b)
	}
	rec := tr["records"].([]any)[0].(map[string]any)
	if r := rec["record"].(map[string]any); r["usage"] != 3.0 || r["data"] == "" || r["name"] != owner {
		t.Errorf("record %v", rec)
	}
}

// FuzzVerifyRecord feeds arbitrary published records to the comparison
// with a presented chain and the expectation: no panic, and a record is
// stale exactly when it neither matches nor is expected.
func FuzzVerifyRecord(f *testing.F) {
	pki := vtNewPKI(vtDomain)
	chain := []*x509.Certificate{pki.current, pki.ca.Cert}
	cur, _ := NewTLSA(pki.current, 3, 1, 1)
	next, _ := NewTLSA(pki.next, 3, 1, 1)
	f.Add(uint8(3), uint8(1), uint8(1), cur.Data)
	f.Add(uint8(2), uint8(0), uint8(0), Hex(pki.ca.Cert.Raw))
	f.Add(uint8(1), uint8(1), uint8(2), "zz")
	f.Add(uint8(255), uint8(7), uint8(9), "")
	f.Fuzz(func(t *testing.T, usage, selector, mtype uint8, data string) {
		r := TLSA{Name: "_5222._tcp.xmpp.signed.test.", Usage: usage, Selector: selector, MatchingType: mtype, Data: data}
		tr := &TargetReport{Connections: []Connection{{chain: chain}}}
		evaluate(tr, []TLSA{r}, vtDomain, "xmpp.signed.test", xmppaddr.ServiceClient, pki.ca.Pool(), testpki.At, Expectation{Current: []TLSA{cur}, Next: []TLSA{next}})
		rc := tr.Records[0]
		if rc.Stale != (!rc.Matches && rc.Expected == "") {
			t.Fatalf("record %+v", rc)
		}
		if rc.Matches != tr.Connections[0].Matched {
			t.Fatalf("record matches %v, connection matched %v", rc.Matches, tr.Connections[0].Matched)
		}
	})
}

// TestEndpoints checks where TLSA records belong: every SRV target and
// port (STARTTLS and direct TLS), or the domain itself on
// the fallback port without SRV records, and nowhere when "." says the
// service is not offered.
func TestEndpoints(t *testing.T) {
	pki := vtNewPKI(vtDomain)
	z := testdns.StartFake(t, "signed.test.")
	z.Add(t, "_xmpp-client._tcp.signed.test. 300 IN SRV 5 0 5222 a.signed.test.",
		"_xmpp-client._tcp.signed.test. 300 IN SRV 10 0 5222 b.signed.test.",
		"_xmpps-client._tcp.signed.test. 300 IN SRV 0 0 443 a.signed.test.")
	v := vtVerifier(z, pki)
	got, rep, err := v.Endpoints(t.Context(), vtDomain, xmppaddr.ServiceClient)
	want := []Endpoint{{"a.signed.test", 443}, {"a.signed.test", 5222}, {"b.signed.test", 5222}}
	if err != nil || !slices.Equal(got, want) || !rep.Validated {
		t.Errorf("xmpp-client: %v, %v, validated %v; want %v", got, err, rep.Validated, want)
	}
	got, rep, err = v.Endpoints(t.Context(), vtDomain, xmppaddr.ServiceServer)
	if err != nil || !slices.Equal(got, []Endpoint{{vtDomain, 5269}}) || !rep.Fallback {
		t.Errorf("xmpp-server without SRV: %v, %v, fallback %v; want the domain on 5269", got, err, rep.Fallback)
	}
	z.Add(t, "_xmpp-server._tcp.signed.test. 300 IN SRV 0 0 0 .")
	got, rep, err = v.Endpoints(t.Context(), vtDomain, xmppaddr.ServiceServer)
	if err != nil || len(got) != 0 || !rep.NotOffered {
		t.Errorf("xmpp-server with target \".\": %v, %v, not offered %v; want no endpoints", got, err, rep.NotOffered)
	}
}
