// Package xmpptlstest runs fake XMPP servers on loopback for tests, as
// net/http/httptest does for HTTP: STARTTLS or direct TLS with a given
// certificate, the stream restart over TLS with its own features, SASL
// EXTERNAL against a client CA pool, and knobs for the misbehaviour tests
// need (features sent one byte at a time or one byte per delay, a
// scripted or endless pre-TLS answer, <failure/>, plaintext injected
// after <proceed/>, garbage or an alert instead of TLS, arbitrary
// handlers), with a record of what each client sent.
package xmpptlstest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	nsStreams  = "http://etherx.jabber.org/streams"
	nsTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsDialback = "jabber:server:dialback"
)

// DefaultFeatures are the pre-TLS features a Server offers by default.
const DefaultFeatures = "<starttls xmlns='" + nsTLS + "'><required/></starttls>"

// DefaultFeaturesAfterTLS are the features a Server offers by default on
// the stream restarted over TLS: password mechanisms, as a c2s server
// without client certificates offers.
const DefaultFeaturesAfterTLS = "<mechanisms xmlns='" + nsSASL + "'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>"

// Proceed is the default answer to <starttls/>.
const Proceed = "<proceed xmlns='" + nsTLS + "'/>"

// Mechanisms is a <mechanisms/> feature offering the given SASL
// mechanisms.
func Mechanisms(names ...string) string {
	var b strings.Builder
	b.WriteString("<mechanisms xmlns='" + nsSASL + "'>")
	for _, n := range names {
		b.WriteString("<mechanism>" + escape(n) + "</mechanism>")
	}
	b.WriteString("</mechanisms>")
	return b.String()
}

// Dialback is the XEP-0220 stream feature, with <errors/> when errors is
// true (as ejabberd sends it).
func Dialback(errors bool) string {
	if errors {
		return "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
	}
	return "<dialback xmlns='urn:xmpp:features:dialback'/>"
}

// Header is a server's opening stream header in namespace ns
// (jabber:client or jabber:server), from domain.
func Header(ns, from string) string {
	return fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' id='fake' from='%s' version='1.0'>", ns, nsStreams, escape(from))
}

// StreamError is a <stream:error/> with the defined condition and text
// (none when empty), followed by the end of the stream.
func StreamError(condition, text string) string {
	s := "<stream:error><" + condition + " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
	if text != "" {
		s += "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>" + escape(text) + "</text>"
	}
	return s + "</stream:error></stream:stream>"
}

// BillionLaughs is the classic entity-expansion bomb (a DTD with ten
// levels of entities expanding to 10^9 "lol"s) in front of a stream
// header: a client that expands entities runs out of memory.
const BillionLaughs = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">` +
	`<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
	`<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">` +
	`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">` +
	`<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">` +
	`<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">` +
	`<!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">` +
	`<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">` +
	`<!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">` +
	`<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">` +
	`]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>` +
	`<stream:features><lolz xmlns='x'>&lol9;</lolz></stream:features>`

// AlertHandshakeFailure is a TLS 1.2 record holding a fatal
// handshake_failure alert: what a server that shares no cipher suite or
// version with the client answers a ClientHello with.
const AlertHandshakeFailure = "\x15\x03\x03\x00\x02\x02\x28"

// Repeat returns a generator for Config.Script: prefix, then filler
// again and again until total bytes have been produced. It streams; the
// total is never held in memory, so a test can send 100 MB.
func Repeat(prefix, filler string, total int64) func() io.Reader {
	return func() io.Reader {
		return io.LimitReader(io.MultiReader(strings.NewReader(prefix), &repeater{s: []byte(filler)}), total)
	}
}

type repeater struct {
	s   []byte
	off int
}

// Read fills p with the filler, round and round.
func (r *repeater) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.s[r.off:])
		n += c
		r.off = (r.off + c) % len(r.s)
	}
	return n, nil
}

// Config describes a fake server's behaviour. The zero value (with a
// Certificate) is a well-behaved STARTTLS server.
type Config struct {
	// Certificate is presented in the TLS handshake.
	Certificate tls.Certificate
	// GetCertificate, when set, is asked for the certificate at each
	// handshake instead: a server that follows a lineage on disk, or one
	// that picks by SNI.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// TLSConfig, when set, may change the server's TLS configuration
	// before each handshake (versions, cipher suites, ALPN).
	TLSConfig func(*tls.Config)
	// DirectTLS makes the server speak TLS at once (XEP-0368), with ALPN
	// xmpp-client and xmpp-server offered.
	DirectTLS bool
	// Features is the content of <stream:features> before TLS; empty
	// means DefaultFeatures.
	Features string
	// Script, when set, is sent instead of the stream header and features
	// before TLS, once the client's stream header has arrived (with Split
	// and Delay applied). It may be endless (see Repeat); the server stops
	// when the client goes. A <starttls/> that arrives after it is
	// answered as usual.
	Script func() io.Reader
	// Answer is sent in reply to <starttls/>; empty means Proceed.
	Answer string
	// Inject is written in the same write as Answer (unless Split), right
	// after it: plaintext a client must discard before the TLS handshake.
	Inject string
	// Split writes everything before TLS one byte at a time.
	Split bool
	// Delay, when set, pauses before each byte written before TLS (one
	// byte per write): a server that drips its stream.
	Delay time.Duration
	// TLSReply, when set, is written instead of a TLS handshake in answer
	// to the ClientHello: garbage, or an alert (AlertHandshakeFailure).
	TLSReply string
	// FeaturesAfterTLS is the content of <stream:features> on the stream
	// restarted over TLS; empty means DefaultFeaturesAfterTLS.
	FeaturesAfterTLS string
	// ScriptAfterTLS, when set, is sent instead of the stream header and
	// features after TLS, once the client's restarted header arrives.
	ScriptAfterTLS func() io.Reader
	// ClientCAs, when set, makes the server ask for a client certificate
	// and accept SASL EXTERNAL when it verifies to one of these roots
	// (any extended key usage, as Prosody checks). Otherwise EXTERNAL is
	// refused with <not-authorized/>.
	ClientCAs *x509.CertPool
	// ClientTime is the time client certificates are verified at; zero
	// means now.
	ClientTime time.Time
	// Handler, when set, replaces all of the above: it is handed each
	// accepted connection and must return when done with it.
	Handler func(net.Conn)
}

// Hello is what one client sent.
type Hello struct {
	// From the first stream header (before TLS for STARTTLS, over TLS for
	// direct TLS).
	StreamNS, DialbackNS, To, From, Version string
	// StartTLS is true when the client sent <starttls/>.
	StartTLS bool
	// From the TLS handshake.
	SNI, ALPN string
	// ClientCert is true when the client presented a certificate.
	ClientCert bool
	// Restarted is true when the client opened a stream over TLS.
	Restarted bool
	// Auth is the SASL mechanism the client tried, Authzid the
	// authorization identity it sent (decoded), Authenticated whether the
	// server answered <success/>.
	Auth, Authzid string
	// Authenticated is true when the server answered <success/>.
	Authenticated bool
	// Err is what went wrong on the server's side, if anything.
	Err error
}

// Server is a running fake server.
type Server struct {
	// Addr is the HOST:PORT it listens on.
	Addr string

	cfg   Config
	ln    net.Listener
	wg    sync.WaitGroup
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	conns map[net.Conn]bool
	seen  []Hello
}

// NewServer starts a server on 127.0.0.1 with a random port.
func NewServer(cfg Config) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: ln.Addr().String(), cfg: cfg, ln: ln, conns: map[net.Conn]bool{}, done: make(chan struct{})}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Start is NewServer for a test: the server is closed when the test ends,
// and an error to start it fails the test.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Port is the port the server listens on.
func (s *Server) Port() uint16 {
	return uint16(s.ln.Addr().(*net.TCPAddr).Port)
}

// Close stops the server, closes its connections and waits for them.
func (s *Server) Close() {
	s.once.Do(func() { close(s.done) })
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Seen returns what every finished connection sent, in the order they
// finished.
func (s *Server) Seen() []Hello {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Hello(nil), s.seen...)
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			if s.cfg.Handler != nil {
				s.cfg.Handler(c)
				return
			}
			h := s.handle(c)
			s.mu.Lock()
			s.seen = append(s.seen, h)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) handle(c net.Conn) (h Hello) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if !s.cfg.DirectTLS {
		if h.Err = s.negotiate(c, &h); h.Err != nil {
			return h
		}
	}
	if s.cfg.TLSReply != "" {
		buf := make([]byte, 16<<10)
		if _, h.Err = c.Read(buf); h.Err != nil {
			return h
		}
		io.WriteString(c, s.cfg.TLSReply)
		io.Copy(io.Discard, io.LimitReader(c, 1<<20))
		return h
	}
	tcfg := &tls.Config{
		GetCertificate: s.cfg.GetCertificate,
		NextProtos:     []string{"xmpp-client", "xmpp-server"},
	}
	if s.cfg.Certificate.Certificate != nil || s.cfg.GetCertificate == nil {
		// With GetCertificate alone it is asked even without SNI.
		tcfg.Certificates = []tls.Certificate{s.cfg.Certificate}
	}
	if s.cfg.ClientCAs != nil {
		// Asked for, verified by the server itself: Go's own check would
		// demand the clientAuth EKU (README, "Identity rules").
		tcfg.ClientAuth = tls.RequestClientCert
	}
	if s.cfg.TLSConfig != nil {
		s.cfg.TLSConfig(tcfg)
	}
	tc := tls.Server(c, tcfg)
	if h.Err = tc.Handshake(); h.Err != nil {
		return h
	}
	st := tc.ConnectionState()
	h.SNI, h.ALPN = st.ServerName, st.NegotiatedProtocol
	h.ClientCert = len(st.PeerCertificates) > 0
	s.afterTLS(tc, st, &h)
	return h
}

// afterTLS plays the server's part of the stream over TLS: the restarted
// stream header and features, and SASL, until the client goes. Whatever
// ends it (the client closing, a timeout) is not an error.
func (s *Server) afterTLS(tc *tls.Conn, st tls.ConnectionState, h *Hello) {
	dec := xml.NewDecoder(bufio.NewReader(io.LimitReader(tc, 1<<16)))
	dec.Strict = true
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case se.Name.Space == nsStreams && se.Name.Local == "stream":
			if s.cfg.DirectTLS && !h.Restarted {
				h.recordHeader(se)
			}
			h.Restarted = true
			if s.cfg.ScriptAfterTLS != nil {
				if _, err := io.Copy(tc, s.cfg.ScriptAfterTLS()); err != nil {
					return
				}
				continue
			}
			features := s.cfg.FeaturesAfterTLS
			if features == "" {
				features = DefaultFeaturesAfterTLS
			}
			if _, err := io.WriteString(tc, s.header(h)+"<stream:features>"+features+"</stream:features>"); err != nil {
				return
			}
		case se.Name.Space == nsSASL && se.Name.Local == "auth":
			var auth struct {
				Mechanism string `xml:"mechanism,attr"`
				Data      string `xml:",chardata"`
			}
			if dec.DecodeElement(&auth, &se) != nil {
				return
			}
			h.Auth = auth.Mechanism
			if d := strings.TrimSpace(auth.Data); d != "=" {
				raw, _ := base64.StdEncoding.DecodeString(d)
				h.Authzid = string(raw)
			}
			answer := "<failure xmlns='" + nsSASL + "'><invalid-mechanism/></failure>"
			if auth.Mechanism == "EXTERNAL" {
				if why := s.external(st); why != "" {
					answer = "<failure xmlns='" + nsSASL + "'><not-authorized/><text>" + escape(why) + "</text></failure>"
				} else {
					answer = "<success xmlns='" + nsSASL + "'/>"
					h.Authenticated = true
				}
			}
			if _, err := io.WriteString(tc, answer); err != nil {
				return
			}
		case se.Name.Space == nsStreams:
			return
		default:
			if dec.Skip() != nil {
				return
			}
		}
	}
}

// external says why SASL EXTERNAL fails for the client certificate, or
// "" when it succeeds.
func (s *Server) external(st tls.ConnectionState) string {
	if len(st.PeerCertificates) == 0 {
		return "no client certificate"
	}
	if s.cfg.ClientCAs == nil {
		return "client certificates are not accepted here"
	}
	inter := x509.NewCertPool()
	for _, c := range st.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := st.PeerCertificates[0].Verify(x509.VerifyOptions{
		Roots: s.cfg.ClientCAs, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		CurrentTime: s.cfg.ClientTime,
	})
	if err != nil {
		return "certificate not trusted: " + err.Error()
	}
	return ""
}

func (h *Hello) recordHeader(se xml.StartElement) {
	for _, a := range se.Attr {
		switch {
		case a.Name.Space == "" && a.Name.Local == "xmlns":
			h.StreamNS = a.Value
		case a.Name.Space == "xmlns" && a.Name.Local == "db":
			h.DialbackNS = a.Value
		case a.Name.Space == "" && a.Name.Local == "to":
			h.To = a.Value
		case a.Name.Space == "" && a.Name.Local == "from":
			h.From = a.Value
		case a.Name.Space == "" && a.Name.Local == "version":
			h.Version = a.Value
		}
	}
}

// header is the server's stream header in answer to the client's: the
// client's namespace, and the dialback namespace when the client
// declared it.
func (s *Server) header(h *Hello) string {
	ns := h.StreamNS
	if ns == "" {
		ns = "jabber:client"
	}
	db := ""
	if h.DialbackNS == nsDialback {
		db = " xmlns:db='" + nsDialback + "'"
	}
	return fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='%s'%s xmlns:stream='%s' id='fake' from='%s' version='1.0'>",
		escape(ns), db, nsStreams, escape(h.To))
}

// negotiate plays the server's part of the stream up to <proceed/>.
func (s *Server) negotiate(c net.Conn, h *Hello) error {
	dec := xml.NewDecoder(bufio.NewReader(io.LimitReader(c, 1<<16)))
	dec.Strict = true
	for {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		switch {
		case se.Name.Space == nsStreams && se.Name.Local == "stream":
			h.recordHeader(se)
			if s.cfg.Script != nil {
				if err := s.copy(c, s.cfg.Script()); err != nil {
					return err
				}
				continue
			}
			features := s.cfg.Features
			if features == "" {
				features = DefaultFeatures
			}
			if err := s.write(c, s.header(h)+"\n<stream:features>"+features+"</stream:features>"); err != nil {
				return err
			}
		case se.Name.Space == nsTLS && se.Name.Local == "starttls":
			h.StartTLS = true
			answer := s.cfg.Answer
			if answer == "" {
				answer = Proceed
			}
			// Inject goes out in the same write as the answer, so that a
			// client reads both before it starts TLS.
			if err := s.write(c, answer+s.cfg.Inject); err != nil {
				return err
			}
			if answer != Proceed {
				return errors.New("answered <starttls/> with " + answer)
			}
			return nil
		default:
			return fmt.Errorf("unexpected <%s xmlns='%s'>", se.Name.Local, se.Name.Space)
		}
	}
}

// write sends text as the server's pre-TLS writes are configured to.
func (s *Server) write(c net.Conn, text string) error {
	return s.copy(c, strings.NewReader(text))
}

// copy sends what r produces: in one go, one byte per write (Split), or
// one byte per Delay. It stops when the server closes.
func (s *Server) copy(c net.Conn, r io.Reader) error {
	if !s.cfg.Split && s.cfg.Delay == 0 {
		_, err := io.Copy(c, r)
		return err
	}
	br := bufio.NewReader(r)
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if s.cfg.Delay > 0 {
			t := time.NewTimer(s.cfg.Delay)
			select {
			case <-s.done:
				t.Stop()
				return net.ErrClosed
			case <-t.C:
			}
		}
		if _, err := c.Write([]byte{b}); err != nil {
			return err
		}
	}
}

func escape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
