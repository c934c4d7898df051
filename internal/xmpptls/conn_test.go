package xmpptls

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
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

// dialConn connects a Conn to the server.
func dialConn(t *testing.T, addr string, cfg Config) *Conn {
	t.Helper()
	raw, err := DialTCP(t.Context(), addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewConn(raw, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// The whole negotiation step by step: features before TLS as a set,
// STARTTLS, TLS, the restarted stream with its own features.
func TestConnRestart(t *testing.T) {
	_, tc := leaf(t)
	s := xmpptlstest.Start(t, xmpptlstest.Config{
		Certificate:      tc,
		Features:         xmpptlstest.Dialback(false) + " " + xmpptlstest.Mechanisms("PLAIN") + xmpptlstest.DefaultFeatures,
		FeaturesAfterTLS: xmpptlstest.Dialback(true) + xmpptlstest.Mechanisms("EXTERNAL", "SCRAM-SHA-1") + "<sm xmlns='urn:xmpp:sm:3'/>",
		Split:            true,
	})
	cfg := client(xmppaddr.ServiceServer)
	cfg.From = "us.test"
	c := dialConn(t, s.Addr, cfg)
	h, f, err := c.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wantH := StreamHeader{Namespace: NSServer, DialbackNS: true, From: domain, ID: "fake", Version: "1.0"}
	if *h != wantH {
		t.Errorf("header %+v, want %+v", *h, wantH)
	}
	if !f.StartTLS || !f.StartTLSRequired || !f.Dialback || f.DialbackErrors || !slices.Equal(f.Mechanisms, []string{"PLAIN"}) || len(f.Names) != 3 {
		t.Errorf("features before TLS %+v", f)
	}
	if err := c.StartTLS(t.Context()); err != nil {
		t.Fatal(err)
	}
	st, err := c.Handshake(t.Context())
	if err != nil || !c.Encrypted() || st.ServerName != domain && st.ServerName != "" {
		t.Fatalf("handshake: %v", err)
	}
	h, f, err = c.Open(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !h.DialbackNS || h.Namespace != NSServer {
		t.Errorf("header after TLS %+v", h)
	}
	if f.StartTLS || !f.Dialback || !f.DialbackErrors || !f.HasMechanism("external") || !f.Has("urn:xmpp:sm:3", "sm") || len(f.Names) != 3 {
		t.Errorf("features after TLS %+v", f)
	}
	c.Close()
	seen := s.Seen()
	for deadline := time.Now().Add(5 * time.Second); len(seen) == 0 && time.Now().Before(deadline); seen = s.Seen() {
		time.Sleep(5 * time.Millisecond)
	}
	if len(seen) != 1 || !seen[0].Restarted || seen[0].From != "us.test" {
		t.Errorf("server saw %+v", seen)
	}
}

func TestConnOrder(t *testing.T) {
	_, tc := leaf(t)
	s := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: tc})
	c := dialConn(t, s.Addr, client(xmppaddr.ServiceClient))
	if err := c.StartTLS(t.Context()); err == nil {
		t.Error("StartTLS before Open worked")
	}
	if _, err := c.AuthExternal(t.Context()); err == nil {
		t.Error("AuthExternal before TLS worked")
	}
	if _, _, err := c.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Handshake(t.Context()); err == nil {
		t.Error("Handshake before StartTLS worked")
	}
}

func TestAuthExternal(t *testing.T) {
	_, tc := leaf(t)
	ca := testpki.NewRoot("client CA", nil)
	cert, key := ca.Leaf(func(c *x509.Certificate) {
		c.ExtraExtensions = append(c.ExtraExtensions, testpki.SAN(false, testpki.DNS("us.test")))
	})
	clientCert := tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key}
	for name, tc2 := range map[string]struct {
		roots *x509.CertPool
		ok    bool
	}{
		"trusted":   {ca.Pool(), true},
		"untrusted": {testpki.NewRoot("other", nil).Pool(), false},
	} {
		t.Run(name, func(t *testing.T) {
			s := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: tc, ClientCAs: tc2.roots, ClientTime: testpki.At,
				FeaturesAfterTLS: xmpptlstest.Mechanisms("EXTERNAL")})
			cfg := client(xmppaddr.ServiceServer)
			cfg.From, cfg.ClientCert = "us.test", &clientCert
			c := dialConn(t, s.Addr, cfg)
			if _, _, err := c.Open(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := c.StartTLS(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Handshake(t.Context()); err != nil {
				t.Fatal(err)
			}
			if _, _, err := c.Open(t.Context()); err != nil {
				t.Fatal(err)
			}
			r, err := c.AuthExternal(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if r.Success != tc2.ok || (!tc2.ok && (r.Condition != "not-authorized" || !strings.Contains(r.Text, "not trusted"))) {
				t.Errorf("result %+v", r)
			}
		})
	}
}

// The SASL answer parser: a challenge, then the outcome; failures with
// and without a condition.
func TestReadSASL(t *testing.T) {
	for in, want := range map[string]SASLResult{
		"<success xmlns='" + NSSASL + "'>abc=</success>":                                                       {Success: true},
		"<failure xmlns='" + NSSASL + "'><invalid-authzid/><text xml:lang='en'>who &amp; why</text></failure>": {Condition: "invalid-authzid", Text: "who & why"},
		"<failure xmlns='" + NSSASL + "'/>":                                                                    {Condition: "not-authorized"},
	} {
		s := newStream(strings.NewReader(in), 1024)
		r, challenge, err := s.readSASL("test")
		if err != nil || challenge || *r != want {
			t.Errorf("%s: %+v %v %v, want %+v", in, r, challenge, err, want)
		}
	}
	s := newStream(strings.NewReader("<challenge xmlns='"+NSSASL+"'>=</challenge>"), 1024)
	if _, challenge, err := s.readSASL("test"); err != nil || !challenge {
		t.Errorf("challenge: %v %v", challenge, err)
	}
	s = newStream(strings.NewReader("<message xmlns='jabber:client'/>"), 1024)
	var pe *ProtocolError
	if _, _, err := s.readSASL("test"); !errors.As(err, &pe) {
		t.Errorf("a message as SASL answer: %v", err)
	}
}

func TestNoFeatures(t *testing.T) {
	for name, send := range map[string]string{
		"silence": serverHeader,
		"closed":  serverHeader + "</stream:stream>",
		"eof":     serverHeader + "  ",
	} {
		t.Run(name, func(t *testing.T) {
			s := rawServer(t, func(c net.Conn) {
				c.Write([]byte(send))
				if name == "silence" {
					time.Sleep(time.Second)
				}
			})
			cfg := client(xmppaddr.ServiceClient)
			cfg.Timeout = 200 * time.Millisecond
			_, err := Dial(t.Context(), s.Addr, cfg)
			if !errors.Is(err, ErrNoFeatures) {
				t.Fatalf("error %v, want ErrNoFeatures", err)
			}
			if name == "silence" && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("error %v does not wrap the deadline", err)
			}
		})
	}
}

// PrepareTLS leaves the connection ready for the caller's own ClientHello.
func TestPrepareTLS(t *testing.T) {
	cert, tc := leaf(t)
	for _, direct := range []bool{false, true} {
		s := xmpptlstest.Start(t, xmpptlstest.Config{Certificate: tc, DirectTLS: direct, Inject: "garbage"})
		cfg := client(xmppaddr.ServiceClient)
		cfg.DirectTLS = direct
		raw, err := DialTCP(t.Context(), s.Addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := PrepareTLS(t.Context(), raw, cfg); err != nil {
			t.Fatal(err)
		}
		c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, ServerName: domain})
		if err := c.HandshakeContext(t.Context()); err != nil {
			t.Fatalf("direct=%v: %v", direct, err)
		}
		if !c.ConnectionState().PeerCertificates[0].Equal(cert) {
			t.Error("wrong certificate")
		}
		c.Close()
	}
}

// The TLS alert a server sends is told apart from other handshake
// failures.
func TestTLSAlert(t *testing.T) {
	s := xmpptlstest.Start(t, xmpptlstest.Config{TLSReply: xmpptlstest.AlertHandshakeFailure})
	_, err := Dial(t.Context(), s.Addr, client(xmppaddr.ServiceClient))
	var te *TLSError
	if !errors.As(err, &te) {
		t.Fatalf("error %v, want a TLSError", err)
	}
	if a, ok := te.Alert(); !ok || a != "handshake failure" {
		t.Errorf("alert %q %v", a, ok)
	}
}

// FuzzFeatures feeds arbitrary bytes to the stream header and feature
// parser: no panic, nothing read past the limit, the caps on what is kept
// hold, and what is reported is consistent.
func FuzzFeatures(f *testing.F) {
	f.Add([]byte(serverHeader + "<stream:features>" + xmpptlstest.DefaultFeatures + xmpptlstest.Mechanisms("PLAIN", "EXTERNAL") + xmpptlstest.Dialback(true) + "</stream:features>"))
	f.Add([]byte(serverHeader + " <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\n</stream:features>"))
	f.Add([]byte(serverHeader + "<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"))
	f.Add([]byte(xmpptlstest.BillionLaughs))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &scripted{r: bytes.NewReader(data)}
		s := newStream(p, MaxPreTLS)
		if _, err := s.readHeader("h"); err != nil {
			return
		}
		feats, err := s.readFeatures("f")
		if p.read > MaxPreTLS {
			t.Fatalf("read %d bytes", p.read)
		}
		if feats == nil {
			t.Fatal("nil features")
		}
		if len(feats.Names) > MaxFeatures || len(feats.Mechanisms) > MaxMechanisms {
			t.Fatalf("kept %d features, %d mechanisms", len(feats.Names), len(feats.Mechanisms))
		}
		if feats.StartTLSRequired && !feats.StartTLS || feats.DialbackErrors && !feats.Dialback {
			t.Fatalf("inconsistent %+v", feats)
		}
		if feats.Has(NSTLS, "starttls") && !feats.StartTLS || feats.StartTLS && !feats.Has(NSTLS, "starttls") && feats.Dropped == 0 {
			t.Fatalf("starttls %v but names %v", feats.StartTLS, feats.Names)
		}
		for _, m := range feats.Mechanisms {
			if m == "" || len(m) > maxName {
				t.Fatalf("mechanism %q", m)
			}
		}
		if err == nil && bytes.Count(data, []byte("<")) < len(feats.Names) {
			t.Fatalf("%d features from %d tags", len(feats.Names), bytes.Count(data, []byte("<")))
		}
	})
}
