package xmppsim

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/probe"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func start(t testing.TB, cfg Config) *Sim {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func opts(s *Sim, svc xmppaddr.Service) probe.Options {
	o := probe.Options{Service: svc, Connect: s.Addr(), Roots: s.Roots(), Timeout: 5 * time.Second, Deadline: 10 * time.Second}
	if svc == xmppaddr.ServiceServer {
		o.From = "watcher.example"
	}
	return o
}

func checkChain(t testing.TB, res probe.Result) {
	t.Helper()
	if len(res.Endpoints) != 1 || res.Endpoints[0].TLS == nil || len(res.Endpoints[0].TLS.Chain) == 0 {
		t.Fatalf("no chain in %+v", res)
	}
}

// TestProbeRandomDomain probes a random simulated domain, c2s and s2s:
// the probe succeeds and the certificate is valid for that domain.
func TestProbeRandomDomain(t *testing.T) {
	s := start(t, Config{Dialback: true})
	for _, svc := range []xmppaddr.Service{xmppaddr.ServiceClient, xmppaddr.ServiceServer} {
		d := s.Domain(1 + rand.IntN(99999))
		res := probe.Probe(t.Context(), d, opts(s, svc))
		if !res.OK {
			t.Fatalf("%s %s: %s %s %+v", svc, d, res.Failure, res.Error, res.Endpoints)
		}
		e := res.Endpoints[0]
		if e.Certificate == nil || !e.Certificate.Valid {
			t.Fatalf("%s %s: certificate not valid: %+v", svc, d, e.Certificate)
		}
		if !e.StartTLS.Required {
			t.Errorf("%s %s: STARTTLS not required", svc, d)
		}
		checkChain(t, res)
		if got := e.TLS.Chain[0].Subject; !strings.Contains(got, d) {
			t.Errorf("%s: leaf subject %q, want %s", svc, got, d)
		}
		obs := watcher.Observations(res)
		if len(obs) != 1 || !obs[0].Valid || !obs[0].Reachable {
			t.Fatalf("%s observation: %+v", svc, obs)
		}
		switch svc {
		case xmppaddr.ServiceServer:
			if !obs[0].Dialback {
				t.Errorf("s2s: no dialback after TLS: %+v", obs[0])
			}
		case xmppaddr.ServiceClient:
			if strings.Join(obs[0].SASL, " ") != "PLAIN SCRAM-SHA-1" {
				t.Errorf("c2s: SASL %v", obs[0].SASL)
			}
		}
	}
}

// TestDialbackOff: without Config.Dialback an s2s probe sees none.
func TestDialbackOff(t *testing.T) {
	s := start(t, Config{})
	res := probe.Probe(t.Context(), s.Domain(7), opts(s, xmppaddr.ServiceServer))
	if !res.OK {
		t.Fatalf("%s %s", res.Failure, res.Error)
	}
	if o := watcher.Observations(res); len(o) != 1 || o[0].Dialback {
		t.Fatalf("dialback offered: %+v", o)
	}
}

// TestRekeyAndRenew: a new key, and a renewal with the same key, are
// what the next probe sees.
func TestRekeyAndRenew(t *testing.T) {
	s := start(t, Config{})
	d := s.Domain(42)
	o := opts(s, xmppaddr.ServiceClient)
	first := watcher.Observations(probe.Probe(t.Context(), d, o))[0]
	again := watcher.Observations(probe.Probe(t.Context(), d, o))[0]
	if !first.Equal(again) {
		t.Fatalf("unchanged domain changed:\n%+v\n%+v", first, again)
	}
	if err := s.Rekey(d); err != nil {
		t.Fatal(err)
	}
	rekeyed := watcher.Observations(probe.Probe(t.Context(), d, o))[0]
	if !rekeyed.Valid || rekeyed.Chain[0].SPKISHA256 == first.Chain[0].SPKISHA256 || rekeyed.Chain[0].SHA256 == first.Chain[0].SHA256 {
		t.Fatalf("rekey not visible: %+v -> %+v", first.Chain[0], rekeyed.Chain[0])
	}
	if err := s.Renew(d); err != nil {
		t.Fatal(err)
	}
	renewed := watcher.Observations(probe.Probe(t.Context(), d, o))[0]
	if !renewed.Valid || renewed.Chain[0].SPKISHA256 != rekeyed.Chain[0].SPKISHA256 || renewed.Chain[0].SHA256 == rekeyed.Chain[0].SHA256 {
		t.Fatalf("renewal not visible as same key, new certificate: %+v -> %+v", rekeyed.Chain[0], renewed.Chain[0])
	}
	// Other domains are untouched.
	other := s.Domain(43)
	a := watcher.Observations(probe.Probe(t.Context(), other, o))[0]
	if err := s.Rekey(d); err != nil {
		t.Fatal(err)
	}
	b := watcher.Observations(probe.Probe(t.Context(), other, o))[0]
	if !a.Equal(b) {
		t.Fatal("rekeying one domain changed another")
	}
	// SetCertificate presents exactly what it is given.
	c43, _ := s.Certificate(other)
	if err := s.SetCertificate(d, c43); err != nil {
		t.Fatal(err)
	}
	res := probe.Probe(t.Context(), d, o)
	if res.OK || res.Endpoints[0].Certificate == nil || res.Endpoints[0].Certificate.Valid {
		t.Fatalf("a certificate for another domain was accepted: %+v", res.Endpoints[0].Certificate)
	}
}

// TestCertificate checks the leaves: P-256, valid now, signed by the CA,
// cached.
func TestCertificate(t *testing.T) {
	s := start(t, Config{Suffix: "Example.NET."})
	if s.Suffix() != "example.net" {
		t.Fatalf("suffix %q", s.Suffix())
	}
	c, err := s.Certificate("a.b.example.net")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.Certificate("A.B.example.net.")
	if c != again || s.Issued() != 1 {
		t.Fatalf("not cached: %d issued", s.Issued())
	}
	l, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Fatalf("key %T", l.PublicKey)
	}
	now := time.Now()
	if !l.NotBefore.Before(now) || !l.NotAfter.After(now.Add(80*24*time.Hour)) {
		t.Fatalf("validity %v .. %v", l.NotBefore, l.NotAfter)
	}
	if _, err := l.Verify(x509.VerifyOptions{Roots: s.Roots(), DNSName: "a.b.example.net"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"example.net", "example.org", "xexample.net", ""} {
		if _, err := s.Certificate(d); err == nil {
			t.Errorf("%q: certificate made", d)
		}
	}
	if err := s.Prepare(t.Context(), []string{s.Domain(1), s.Domain(2), s.Domain(3)}, 2); err != nil || s.Issued() != 4 {
		t.Fatalf("prepare: %v, %d issued", err, s.Issued())
	}
}

// TestUnknownDomain: a stream to a domain outside the suffix gets a
// stream error, not a certificate.
func TestUnknownDomain(t *testing.T) {
	s := start(t, Config{})
	res := probe.Probe(t.Context(), "elsewhere.example", opts(s, xmppaddr.ServiceClient))
	if res.OK || res.Endpoints[0].TLS != nil {
		t.Fatalf("unknown domain served: %+v", res)
	}
}

// TestBoundedRead: a client that sends endless garbage before TLS is cut
// off after MaxRead bytes, and one that sends nothing after Timeout.
func TestBoundedRead(t *testing.T) {
	s := start(t, Config{Timeout: 500 * time.Millisecond})
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='x.sim.example' version='1.0'><a>"))
	junk := bytes.Repeat([]byte("<b/>"), 1024)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	sent := 0
	for sent < 4*MaxRead {
		n, err := c.Write(junk)
		sent += n
		if err != nil {
			break
		}
	}
	// The server has hung up: reads end.
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("connection not closed by the server")
			}
			break
		}
	}
	idle, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := idle.Read(buf); err == nil {
		t.Fatal("idle connection answered")
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("idle connection not closed after Timeout")
	}
}

// TestConcurrentAndClose: many probes at once, then Close ends held
// connections and returns.
func TestConcurrentAndClose(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	jobs := make([]probe.Job, 40)
	for i := range jobs {
		svc := xmppaddr.ServiceClient
		if i%2 == 1 {
			svc = xmppaddr.ServiceServer
		}
		jobs[i] = probe.Job{Domain: s.Domain(i + 1), Options: opts(s, svc)}
	}
	for i, r := range probe.ProbeAll(t.Context(), jobs, 20) {
		if !r.OK {
			t.Fatalf("job %d: %s %s", i, r.Failure, r.Error)
		}
	}
	var held []net.Conn
	for range 5 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	time.Sleep(50 * time.Millisecond)
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung")
	}
	for _, c := range held {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("held connection still open")
		}
		c.Close()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if r := probe.Probe(ctx, s.Domain(1), opts(s, xmppaddr.ServiceClient)); r.OK {
		t.Fatal("probe after Close succeeded")
	}
}
