// Package xmpptlstest runs fake XMPP servers on loopback for tests, as
// net/http/httptest does for HTTP: STARTTLS or direct TLS with a given
// certificate, with knobs for the misbehaviour tests need (features sent
// one byte at a time, <failure/>, plaintext injected after <proceed/>,
// arbitrary raw answers), and a record of what each client sent.
package xmpptlstest

import (
	"bufio"
	"crypto/tls"
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
	nsStreams = "http://etherx.jabber.org/streams"
	nsTLS     = "urn:ietf:params:xml:ns:xmpp-tls"
)

// DefaultFeatures are the pre-TLS features a Server offers by default.
const DefaultFeatures = "<starttls xmlns='" + nsTLS + "'><required/></starttls>"

// Proceed is the default answer to <starttls/>.
const Proceed = "<proceed xmlns='" + nsTLS + "'/>"

// Config describes a fake server's behaviour. The zero value (with a
// Certificate) is a well-behaved STARTTLS server.
type Config struct {
	// Certificate is presented in the TLS handshake.
	Certificate tls.Certificate
	// GetCertificate, when set, is asked for the certificate at each
	// handshake instead: a server that follows a lineage on disk.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// DirectTLS makes the server speak TLS at once (XEP-0368), with ALPN
	// xmpp-client and xmpp-server offered.
	DirectTLS bool
	// Features is the content of <stream:features> before TLS; empty
	// means DefaultFeatures.
	Features string
	// Answer is sent in reply to <starttls/>; empty means Proceed.
	Answer string
	// Inject is written in the same write as Answer (unless Split), right
	// after it: plaintext a client must discard before the TLS handshake.
	Inject string
	// Split writes everything before TLS one byte at a time.
	Split bool
	// Handler, when set, replaces all of the above: it is handed each
	// accepted connection and must return when done with it.
	Handler func(net.Conn)
}

// Hello is what one client sent.
type Hello struct {
	// From the stream header (STARTTLS only).
	StreamNS, DialbackNS, To, From, Version string
	// StartTLS is true when the client sent <starttls/>.
	StartTLS bool
	// From the TLS handshake.
	SNI, ALPN string
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
	s := &Server{Addr: ln.Addr().String(), cfg: cfg, ln: ln, conns: map[net.Conn]bool{}}
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
	tc := tls.Server(c, &tls.Config{
		Certificates:   []tls.Certificate{s.cfg.Certificate},
		GetCertificate: s.cfg.GetCertificate,
		NextProtos:     []string{"xmpp-client", "xmpp-server"},
	})
	if h.Err = tc.Handshake(); h.Err != nil {
		return h
	}
	st := tc.ConnectionState()
	h.SNI, h.ALPN = st.ServerName, st.NegotiatedProtocol
	// Wait for the client to go away.
	io.Copy(io.Discard, io.LimitReader(tc, 1<<20))
	return h
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
			features := s.cfg.Features
			if features == "" {
				features = DefaultFeatures
			}
			ns := h.StreamNS
			if ns == "" {
				ns = "jabber:client"
			}
			if err := s.write(c, fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s' id='fake' from='%s' version='1.0'>\n<stream:features>%s</stream:features>",
				ns, nsStreams, escape(h.To), features)); err != nil {
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

// write sends s, one byte per write when the server splits its writes.
func (s *Server) write(c net.Conn, text string) error {
	if !s.cfg.Split {
		_, err := io.WriteString(c, text)
		return err
	}
	for i := 0; i < len(text); i++ {
		if _, err := c.Write([]byte{text[i]}); err != nil {
			return err
		}
	}
	return nil
}

func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
