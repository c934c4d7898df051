package challenge

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/asn1"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/internal/testtool"
)

var idPeAcmeIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

func alpnChallenge(typ, value string) acme.Challenge {
	c := httpChallenge(value)
	c.Type = acme.ChallengeTypeTLSALPN01
	c.Identifier.Type = typ
	return c
}

// alpnDial performs a handshake as an ACME validator does (or, with
// other protos, as a stray client) and returns the state.
func alpnDial(addr, sni string, protos ...string) (tls.ConnectionState, error) {
	d := &tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 5 * time.Second},
		Config:    &tls.Config{ServerName: sni, NextProtos: protos, InsecureSkipVerify: true},
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState(), nil
}

// checkALPNCert verifies what RFC 8737 §3 asks of the certificate: the
// single identifier as SAN and a critical acmeIdentifier extension
// holding the SHA-256 of the key authorization as an OCTET STRING.
func checkALPNCert(t *testing.T, st tls.ConnectionState, c acme.Challenge) {
	t.Helper()
	if st.NegotiatedProtocol != acmez.ACMETLS1Protocol {
		t.Errorf("negotiated %q, want %q", st.NegotiatedProtocol, acmez.ACMETLS1Protocol)
	}
	if len(st.PeerCertificates) != 1 {
		t.Fatalf("%d certificates", len(st.PeerCertificates))
	}
	cert := st.PeerCertificates[0]
	switch c.Identifier.Type {
	case "dns":
		if !slices.Equal(cert.DNSNames, []string{c.Identifier.Value}) || len(cert.IPAddresses) != 0 {
			t.Errorf("SANs %v %v, want only %s", cert.DNSNames, cert.IPAddresses, c.Identifier.Value)
		}
	case "ip":
		if len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != c.Identifier.Value || len(cert.DNSNames) != 0 {
			t.Errorf("SANs %v %v, want only IP %s", cert.DNSNames, cert.IPAddresses, c.Identifier.Value)
		}
	}
	sum := sha256.Sum256([]byte(c.KeyAuthorization))
	found := false
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(idPeAcmeIdentifier) {
			continue
		}
		found = true
		if !ext.Critical {
			t.Error("acmeIdentifier extension is not critical")
		}
		var got []byte
		if rest, err := asn1.Unmarshal(ext.Value, &got); err != nil || len(rest) != 0 {
			t.Fatalf("acmeIdentifier is not an OCTET STRING: %v", err)
		}
		if !bytes.Equal(got, sum[:]) {
			t.Error("acmeIdentifier does not hold SHA-256(key authorization)")
		}
	}
	if !found {
		t.Error("no acmeIdentifier extension")
	}
}

func TestTLSALPN01(t *testing.T) {
	addr := freeAddr(t)
	s := &TLSALPN01{Addr: addr}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	a := alpnChallenge("dns", "xmpp.example.org")
	b := alpnChallenge("dns", "conference.example.org")
	ip := alpnChallenge("ip", "127.0.0.1")
	for _, c := range []acme.Challenge{a, b, ip} {
		if err := s.Present(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []acme.Challenge{a, b} {
		st, err := alpnDial(addr, c.Identifier.Value, acmez.ACMETLS1Protocol)
		if err != nil {
			t.Fatalf("%s: %v", c.Identifier.Value, err)
		}
		checkALPNCert(t, st, c)
	}
	// An IP identifier is asked for under its reverse name (RFC 8738).
	st, err := alpnDial(addr, "1.0.0.127.in-addr.arpa", acmez.ACMETLS1Protocol)
	if err != nil {
		t.Fatal(err)
	}
	checkALPNCert(t, st, ip)
	// Upper case SNI matches too.
	if _, err := alpnDial(addr, strings.ToUpper(a.Identifier.Value), acmez.ACMETLS1Protocol); err != nil {
		t.Errorf("upper-case SNI: %v", err)
	}

	// Handshakes that are not tls-alpn-01 get nothing.
	if _, err := alpnDial(addr, a.Identifier.Value); err == nil {
		t.Error("handshake without ALPN succeeded")
	}
	if _, err := alpnDial(addr, a.Identifier.Value, "h2", "http/1.1"); err == nil {
		t.Error("handshake with h2 succeeded")
	}
	if _, err := alpnDial(addr, "other.example.org", acmez.ACMETLS1Protocol); err == nil {
		t.Error("handshake for a name not presented succeeded")
	}

	for _, c := range []acme.Challenge{a, ip} {
		if err := s.CleanUp(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := alpnDial(addr, a.Identifier.Value, acmez.ACMETLS1Protocol); err == nil {
		t.Error("cleaned-up name still answered")
	}
	if _, err := alpnDial(addr, b.Identifier.Value, acmez.ACMETLS1Protocol); err != nil {
		t.Errorf("remaining name: %v", err)
	}
	if err := s.CleanUp(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Fatal("listener still up after the last CleanUp")
	}
}

func TestTLSALPN01Errors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &TLSALPN01{Addr: ln.Addr().String()}
	testtool.OneLineError(t, s.Present(t.Context(), alpnChallenge("dns", "example.org")), "address in use", "use http-01 or dns-01")
	testtool.OneLineError(t, s.Present(t.Context(), alpnChallenge("ip", "not-an-ip")), "invalid IP identifier")
	testtool.OneLineError(t, s.Present(t.Context(), alpnChallenge("email", "a@b")), "cannot validate a email identifier")
	testtool.OneLineError(t, (&TLSALPN01{Addr: "443"}).Validate(), "listen address")
}

// A client that connects and never says hello does not hold up CleanUp:
// its connection is cut when the listener stops.
func TestTLSALPN01StalledClient(t *testing.T) {
	addr := freeAddr(t)
	s := &TLSALPN01{Addr: addr}
	c := alpnChallenge("dns", "example.org")
	if err := s.Present(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", addr) // never says hello
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := s.CleanUp(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("CleanUp took %s", d)
	}
}
