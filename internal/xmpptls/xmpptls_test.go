package xmpptls

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/testpki"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

const domain = "example.test"

// leaf makes a certificate for domain and the TLS certificate serving it.
func leaf(t testing.TB) (*x509.Certificate, tls.Certificate) {
	t.Helper()
	ca := testpki.NewRoot("xmpptls test root", nil)
	cert, key := ca.Leaf(func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS(domain)))
	})
	return cert, tls.Certificate{Certificate: [][]byte{cert.Raw, ca.Cert.Raw}, PrivateKey: key, Leaf: cert}
}

// hello returns the one connection the server saw, after the client is done.
func hello(t *testing.T, s *xmpptlstest.Server) xmpptlstest.Hello {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if seen := s.Seen(); len(seen) > 0 {
			if len(seen) != 1 {
				t.Fatalf("server saw %d connections, want 1", len(seen))
			}
			return seen[0]
		}
	}
	t.Fatal("the server never finished the connection")
	return xmpptlstest.Hello{}
}

func client(svc xmppaddr.Service) Config {
	return Config{Domain: domain, Service: svc, Timeout: 5 * time.Second}
}

func TestStartTLSClient(t *testing.T) {
	cert, tc := leaf(t)
	s := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: tc})
	cfg := client(xmppaddr.ServiceClient)
	cfg.From = "ignored.test" // never sent on c2s
	res, err := Dial(t.Context(), s.Addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.State.PeerCertificates; len(got) != 2 || !got[0].Equal(cert) {
		t.Errorf("peer chain %v, want the leaf and its CA", got)
	}
	if !res.StartTLSRequired || !hasFeature(res.Features, NSTLS, "starttls") {
		t.Errorf("features %v required=%v, want starttls required", res.Features, res.StartTLSRequired)
	}
	h := hello(t, s)
	want := xmpptlstest.Hello{StreamNS: NSClient, To: domain, Version: "1.0", StartTLS: true, SNI: domain}
	if h != want {
		t.Errorf("server saw %+v, want %+v", h, want)
	}
}

func TestStartTLSServer(t *testing.T) {
	_, tc := leaf(t)
	s := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: tc})
	cfg := client(xmppaddr.ServiceServer)
	cfg.From = "us.test"
	if _, err := Dial(t.Context(), s.Addr, cfg); err != nil {
		t.Fatal(err)
	}
	h := hello(t, s)
	want := xmpptlstest.Hello{StreamNS: NSServer, DialbackNS: NSDialback, To: domain, From: "us.test", Version: "1.0", StartTLS: true, SNI: domain}
	if h != want {
		t.Errorf("server saw %+v, want %+v", h, want)
	}
}

func TestDirectTLS(t *testing.T) {
	for _, svc := range []xmppaddr.Service{xmppaddr.ServiceClient, xmppaddr.ServiceServer} {
		t.Run(string(svc), func(t *testing.T) {
			cert, tc := leaf(t)
			s := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: tc, DirectTLS: true})
			cfg := client(svc)
			cfg.DirectTLS = true
			res, err := Dial(t.Context(), s.Addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !res.State.PeerCertificates[0].Equal(cert) || res.State.NegotiatedProtocol != string(svc) || res.Features != nil {
				t.Errorf("got leaf %v, ALPN %q, features %v", res.State.PeerCertificates[0].Subject, res.State.NegotiatedProtocol, res.Features)
			}
			if h := hello(t, s); h.SNI != domain || h.ALPN != string(svc) || h.StartTLS {
				t.Errorf("server saw %+v", h)
			}
		})
	}
}

// Features in any order, with whitespace keepalives between them, each
// byte in its own TCP write.
func TestFeaturesSplitIntoBytes(t *testing.T) {
	_, tc := leaf(t)
	features := " <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>\n\t" +
		"<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>  <starttls xmlns='" + NSTLS + "'/> "
	s := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: tc, Features: features, Split: true})
	res, err := Dial(t.Context(), s.Addr, client(xmppaddr.ServiceServer))
	if err != nil {
		t.Fatal(err)
	}
	want := []xml.Name{{Space: "urn:ietf:params:xml:ns:xmpp-sasl", Local: "mechanisms"}, {Space: "urn:xmpp:features:dialback", Local: "dialback"}, {Space: NSTLS, Local: "starttls"}}
	if len(res.Features) != len(want) {
		t.Fatalf("features %v, want %v", res.Features, want)
	}
	for i := range want {
		if res.Features[i] != want[i] {
			t.Errorf("feature %d is %v, want %v", i, res.Features[i], want[i])
		}
	}
	if res.StartTLSRequired {
		t.Error("STARTTLS reported as required")
	}
}

func TestNoStartTLS(t *testing.T) {
	_, tc := leaf(t)
	s := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: tc, Features: "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>"})
	res, err := Dial(t.Context(), s.Addr, client(xmppaddr.ServiceClient))
	if !errors.Is(err, ErrNoStartTLS) {
		t.Fatalf("error %v, want ErrNoStartTLS", err)
	}
	if res == nil || len(res.Features) != 1 || res.Features[0].Local != "mechanisms" {
		t.Errorf("result %+v, want the features that were offered", res)
	}
}

func TestStartTLSFailure(t *testing.T) {
	_, tc := leaf(t)
	s := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: tc, Answer: "<failure xmlns='" + NSTLS + "'/></stream:stream>"})
	_, err := Dial(t.Context(), s.Addr, client(xmppaddr.ServiceClient))
	if !errors.Is(err, ErrStartTLSFailure) {
		t.Fatalf("error %v, want ErrStartTLSFailure", err)
	}
	if errors.Is(err, ErrNoStartTLS) {
		t.Error("a failure is reported as no STARTTLS")
	}
}

// rawServer answers every connection with script once the client's stream
// header has arrived.
func rawServer(t *testing.T, script func(c net.Conn)) *xmpptlstest.Server {
	return xmpptlstest.Start(t, xmpptlstest.Config{Handler: func(c net.Conn) {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		var got []byte
		for !bytes.Contains(got, []byte("version='1.0'>")) {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			got = append(got, buf[:n]...)
		}
		script(c)
	}})
}

const serverHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='example.test' id='x' version='1.0'>"

func TestStreamError(t *testing.T) {
	const streamErr = "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>" +
		"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>no such host &lt;here&gt;</text></stream:error></stream:stream>"
	t.Run("instead of features", func(t *testing.T) {
		s := rawServer(t, func(c net.Conn) { io.WriteString(c, serverHeader+streamErr) })
		_, err := Dial(t.Context(), s.Addr, client(xmppaddr.ServiceClient))
		var se *StreamError
		if !errors.As(err, &se) || se.Condition != "host-unknown" || se.Text != "no such host <here>" {
			t.Fatalf("error %#v, want the stream error host-unknown with its text", err)
		}
		if !strings.Contains(err.Error(), "host-unknown") || !strings.Contains(err.Error(), "no such host <here>") {
			t.Errorf("error text %q lacks the condition or the text", err)
		}
	})
	t.Run("instead of proceed", func(t *testing.T) {
		_, tc := leaf(t)
		s := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: tc, Answer: "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"})
		_, err := Dial(t.Context(), s.Addr, client(xmppaddr.ServiceClient))
		var se *StreamError
		if !errors.As(err, &se) || se.Condition != "policy-violation" || se.Text != "" {
			t.Fatalf("error %#v, want the stream error policy-violation", err)
		}
	})
}

// Plaintext the server (or a man in the middle) sends after <proceed/>
// must never be read as if it came over TLS: the client drops it. Were
// it kept, the TLS handshake would read it as a record and fail.
func TestInjectionAfterProceedIgnored(t *testing.T) {
	cert, tc := leaf(t)
	inject := "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>" +
		"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
	s := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: tc, Inject: inject})
	res, err := Dial(t.Context(), s.Addr, client(xmppaddr.ServiceClient))
	if err != nil {
		t.Fatal(err)
	}
	if !res.State.PeerCertificates[0].Equal(cert) {
		t.Error("wrong certificate")
	}
}

func TestServerNeverAnswers(t *testing.T) {
	s := xmpptlstest.Start(t, xmpptlstest.Config{Handler: func(c net.Conn) { io.Copy(io.Discard, c) }})
	for _, direct := range []bool{false, true} {
		cfg := client(xmppaddr.ServiceClient)
		cfg.DirectTLS = direct
		cfg.Timeout = 200 * time.Millisecond
		begin := time.Now()
		_, err := Dial(t.Context(), s.Addr, cfg)
		if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("direct=%v: error %v, want a deadline", direct, err)
		}
		if d := time.Since(begin); d > 3*time.Second {
			t.Errorf("direct=%v: gave up after %v, want about 200ms", direct, d)
		}
	}
	// The caller's context bounds it too.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := Dial(ctx, s.Addr, client(xmppaddr.ServiceClient)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("with a context deadline: error %v, want context.DeadlineExceeded", err)
	}
}

// A server that streams 10 MB is cut off at MaxPreTLS, whether the bytes
// are keepalive whitespace or the text of an element that never ends.
func TestGarbageBounded(t *testing.T) {
	for name, prefix := range map[string]string{
		"whitespace":   serverHeader,
		"element text": serverHeader + "<stream:features><x xmlns='y'>",
		"attribute":    serverHeader + "<stream:features><x xmlns='y' a='",
	} {
		t.Run(name, func(t *testing.T) {
			filler := byte(' ')
			if name != "whitespace" {
				filler = 'a'
			}
			sent := make(chan int, 1)
			s := rawServer(t, func(c net.Conn) {
				n, _ := io.WriteString(c, prefix)
				chunk := bytes.Repeat([]byte{filler}, 64<<10)
				for n < 10<<20 {
					m, err := c.Write(chunk)
					n += m
					if err != nil {
						break
					}
				}
				sent <- n
			})
			_, err := Dial(t.Context(), s.Addr, client(xmppaddr.ServiceClient))
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v, want ErrTooLarge", err)
			}
			if n := <-sent; n >= 10<<20 {
				t.Logf("server got all %d bytes out (kernel buffers); the client still stopped reading", n)
			}
		})
	}
}

func TestHostileXML(t *testing.T) {
	for name, tc := range map[string]struct{ send, want string }{
		"doctype": {"<?xml version='1.0'?><!DOCTYPE s [<!ENTITY a 'aaaa'>]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>", "DOCTYPE"},
		"entity":  {serverHeader + "<stream:features>&a;</stream:features>", "not XMPP"},
		"comment": {serverHeader + "<!-- hi --><stream:features/>", "comment"},
		"pi":      {serverHeader + "<?evil x?><stream:features/>", "processing instruction"},
		"http":    {"HTTP/1.1 400 Bad Request\r\n\r\n", "not XMPP"},
		"text":    {serverHeader + "hello<stream:features/>", "text outside"},
		"other":   {serverHeader + "<message xmlns='jabber:client'/>", "expected <stream:features>"},
		"closed":  {serverHeader + "</stream:stream>", "closed the stream"},
		"eof":     {serverHeader + "<stream:features>", "closed the connection"},
		"latin1":  {"<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream/>", "not XMPP"},
	} {
		t.Run(name, func(t *testing.T) {
			s := rawServer(t, func(c net.Conn) { io.WriteString(c, tc.send) })
			_, err := Dial(t.Context(), s.Addr, client(xmppaddr.ServiceClient))
			var pe *ProtocolError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a ProtocolError containing %q", err, tc.want)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Dial(t.Context(), addr, client(xmppaddr.ServiceClient))
	var de *DialError
	if !errors.As(err, &de) || de.Addr != addr {
		t.Fatalf("error %v, want a DialError for %s", err, addr)
	}
}

func TestTLSError(t *testing.T) {
	// Proceed, then answer the ClientHello with plaintext.
	s := xmpptlstest.Start(t, xmpptlstest.Config{Handler: func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		var got []byte
		for !bytes.Contains(got, []byte("<starttls")) {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			got = append(got, buf[:n]...)
			if bytes.Contains(got, []byte("version='1.0'>")) && !bytes.Contains(got, []byte("sent")) {
				io.WriteString(c, serverHeader+"<stream:features>"+xmpptlstest.DefaultFeatures+"</stream:features>")
				got = append(got, "sent"...)
			}
		}
		io.WriteString(c, xmpptlstest.Proceed)
		c.Read(buf)
		io.WriteString(c, "this is not TLS at all, sorry\r\n")
	}})
	_, err := Dial(t.Context(), s.Addr, client(xmppaddr.ServiceClient))
	var te *TLSError
	if !errors.As(err, &te) {
		t.Fatalf("error %v, want a TLSError", err)
	}
}

func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Domain: domain, Service: xmppaddr.ServiceHTTPS},
		{Domain: "", Service: xmppaddr.ServiceClient},
		{Domain: "bad..domain", Service: xmppaddr.ServiceClient},
	} {
		c1, c2 := net.Pipe()
		_, _, err := Handshake(t.Context(), c1, cfg)
		if err == nil {
			t.Errorf("%+v: no error", cfg)
		}
		c1.Close()
		c2.Close()
	}
}

func TestHeader(t *testing.T) {
	cfg := Config{Service: xmppaddr.ServiceServer, From: "o'brien.test"}
	got := header(cfg, "example.test")
	want := "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:server' xmlns:db='jabber:server:dialback' to='example.test' from='o&#39;brien.test' version='1.0'>"
	if got != want {
		t.Errorf("s2s header\n got %s\nwant %s", got, want)
	}
	cfg.Service = xmppaddr.ServiceClient
	if got := header(cfg, "example.test"); strings.Contains(got, "from=") || !strings.Contains(got, "xmlns='jabber:client'") {
		t.Errorf("c2s header %s", got)
	}
}

func hasFeature(fs []xml.Name, space, local string) bool {
	return slices.Contains(fs, xml.Name{Space: space, Local: local})
}

// scripted is a net.Conn whose peer sends data and then closes: reads
// come from data and are counted, writes go nowhere, deadlines are
// ignored (nothing blocks).
type scripted struct {
	r    io.Reader
	read int
}

func (p *scripted) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.read += n
	return n, err
}

func (p *scripted) Write(b []byte) (int, error)      { return len(b), nil }
func (p *scripted) Close() error                     { return nil }
func (p *scripted) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (p *scripted) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (p *scripted) SetDeadline(time.Time) error      { return nil }
func (p *scripted) SetReadDeadline(time.Time) error  { return nil }
func (p *scripted) SetWriteDeadline(time.Time) error { return nil }

// FuzzStartTLS feeds arbitrary server bytes to the pre-TLS negotiation: it
// must never panic and never read more than MaxPreTLS bytes.
func FuzzStartTLS(f *testing.F) {
	f.Add([]byte(serverHeader + "<stream:features>" + xmpptlstest.DefaultFeatures + "</stream:features>" + xmpptlstest.Proceed))
	f.Add([]byte(serverHeader + "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>x</text></stream:error>"))
	f.Add([]byte(serverHeader + "<stream:features/>"))
	f.Add([]byte("<!DOCTYPE x>"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &scripted{r: bytes.NewReader(data)}
		err := PrepareTLS(context.Background(), p, client(xmppaddr.ServiceServer))
		if p.read > MaxPreTLS {
			t.Fatalf("read %d bytes", p.read)
		}
		if err == nil && !bytes.Contains(data, []byte("starttls")) {
			t.Fatal("proceeded without STARTTLS offered")
		}
	})
}
