package testxmpp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// XML namespaces of the stream features the harness reads.
const (
	NSClient   = "jabber:client"
	NSServer   = "jabber:server"
	NSDialback = "jabber:server:dialback"
	NSStream   = "http://etherx.jabber.org/streams"
	NSTLS      = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL     = "urn:ietf:params:xml:ns:xmpp-sasl"
	// NSDialbackFeature is the dialback stream feature (XEP-0220 §2.4).
	NSDialbackFeature = "urn:xmpp:features:dialback"
)

// StreamOptions says how OpenStream opens a stream.
type StreamOptions struct {
	// Server opens a server-to-server stream (jabber:server, with
	// xmlns:db declared, as dialback requires) instead of a
	// client-to-server one (jabber:client).
	Server bool
	// To is the domain the stream is for (and the TLS server name).
	To string
	// From is the stream's from attribute; for s2s, the domain the
	// client claims (SASL EXTERNAL and dialback authenticate it). Left
	// out when empty.
	From string
	// DirectTLS, when not nil, does TLS before the stream header (XEP-0368
	// direct TLS). ServerName defaults to To, NextProtos to xmpp-client
	// or xmpp-server.
	DirectTLS *tls.Config
	// Timeout bounds the whole stream, from dial to Close, unless the
	// context has an earlier deadline; 10 s when zero. (The context
	// bounds only OpenStream.)
	Timeout time.Duration
}

// StreamHeader is what the server's stream header said.
type StreamHeader struct {
	ID, From, To, Version string
	// DialbackNS says whether the header declared xmlns:db
	// (jabber:server:dialback).
	DialbackNS bool
}

// Features are the stream features the server offered, as a set.
type Features struct {
	// StartTLS is true when STARTTLS is offered, StartTLSRequired when
	// the offer has <required/>.
	StartTLS, StartTLSRequired bool
	// Mechanisms are the SASL mechanisms offered, in the server's order.
	Mechanisms []string
	// Dialback is true when the dialback feature is offered,
	// DialbackErrors when it has <errors/> (XEP-0220 dialback errors).
	Dialback, DialbackErrors bool
	// Raw is the content of <stream:features> as received.
	Raw string
}

// HasMechanism reports whether the SASL mechanism is offered.
func (f Features) HasMechanism(name string) bool {
	for _, m := range f.Mechanisms {
		if m == name {
			return true
		}
	}
	return false
}

// Stream is an XMPP stream that OpenStream opened: its header and
// features are read, and it may go on with StartTLS and AuthExternal.
// It is a test client: it trusts the server not to flood it (reads are
// bounded only in time) and is not safe for concurrent use.
type Stream struct {
	// Header and Features are those of the current stream (after
	// StartTLS or AuthExternal, of the restarted one).
	Header   StreamHeader
	Features Features
	// TLS is the TLS connection state once TLS is up, else nil.
	TLS *tls.ConnectionState

	opts StreamOptions
	conn net.Conn
	br   *bufio.Reader
	dec  *xml.Decoder
}

// StreamError is a <stream:error> the server sent.
type StreamError struct {
	// Condition is the defined condition's element name, e.g.
	// "host-unknown"; Text the optional <text/>.
	Condition, Text string
}

// Error says which stream error the server sent.
func (e *StreamError) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("stream error <%s/>: %s", e.Condition, e.Text)
	}
	return fmt.Sprintf("stream error <%s/>", e.Condition)
}

// SASLFailure is a SASL <failure/> (RFC 6120 §6.5).
type SASLFailure struct {
	// Condition is the failure's element name, e.g. "not-authorized".
	Condition, Text string
}

// Error says which SASL failure the server sent.
func (e *SASLFailure) Error() string {
	if e.Text != "" {
		return fmt.Sprintf("SASL failure <%s/>: %s", e.Condition, e.Text)
	}
	return fmt.Sprintf("SASL failure <%s/>", e.Condition)
}

// OpenStream connects to addr, does direct TLS when asked, sends a
// stream header and reads the server's header and features.
func OpenStream(ctx context.Context, addr string, opts StreamOptions) (*Stream, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Reads are bounded by the deadline; a cancelled context ends them
	// early too.
	stop := context.AfterFunc(parent, func() { conn.Close() })
	defer stop()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	s := &Stream{opts: opts, conn: conn}
	if opts.DirectTLS != nil {
		tc := tls.Client(conn, s.tlsConfig(opts.DirectTLS))
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return nil, fmt.Errorf("direct TLS handshake: %w", err)
		}
		st := tc.ConnectionState()
		s.TLS, s.conn = &st, tc
	}
	if err := s.open(); err != nil {
		s.conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *Stream) tlsConfig(c *tls.Config) *tls.Config {
	c = c.Clone()
	if c.ServerName == "" {
		c.ServerName = s.opts.To
	}
	if c.NextProtos == nil && s.opts.DirectTLS != nil {
		if s.opts.Server {
			c.NextProtos = []string{"xmpp-server"}
		} else {
			c.NextProtos = []string{"xmpp-client"}
		}
	}
	return c
}

// open sends a stream header on s.conn and reads the answer header and
// features with a fresh parser.
func (s *Stream) open() error {
	ns, db := NSClient, ""
	if s.opts.Server {
		ns, db = NSServer, " xmlns:db='"+NSDialback+"'"
	}
	from := ""
	if s.opts.From != "" {
		from = fmt.Sprintf(" from='%s'", xmlEscape(s.opts.From))
	}
	if _, err := fmt.Fprintf(s.conn, "<?xml version='1.0'?><stream:stream xmlns='%s' xmlns:stream='%s'%s to='%s'%s version='1.0'>",
		ns, NSStream, db, xmlEscape(s.opts.To), from); err != nil {
		return err
	}
	// The decoder reads through s.br, which it uses as is (a
	// bufio.Reader is an io.ByteReader), so a new decoder after a stream
	// restart loses nothing, and what is buffered is known. A new
	// connection (TLS) gets a new reader.
	if s.br == nil {
		s.br = bufio.NewReader(s.conn)
	}
	s.dec = xml.NewDecoder(s.br)
	s.dec.Strict = true
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return fmt.Errorf("reading the stream header: %w", err)
		}
		if el, ok := tok.(xml.StartElement); ok {
			if el.Name.Space != NSStream || el.Name.Local != "stream" {
				return fmt.Errorf("got <%s xmlns='%s'> instead of a stream header", el.Name.Local, el.Name.Space)
			}
			s.Header = StreamHeader{}
			for _, a := range el.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "id":
					s.Header.ID = a.Value
				case a.Name.Space == "" && a.Name.Local == "from":
					s.Header.From = a.Value
				case a.Name.Space == "" && a.Name.Local == "to":
					s.Header.To = a.Value
				case a.Name.Space == "" && a.Name.Local == "version":
					s.Header.Version = a.Value
				case a.Name.Space == "xmlns" && a.Name.Local == "db":
					s.Header.DialbackNS = a.Value == NSDialback
				}
			}
			break
		}
	}
	el, err := s.next()
	if err != nil {
		return fmt.Errorf("reading the stream features: %w", err)
	}
	if el.Name.Space != NSStream || el.Name.Local != "features" {
		return fmt.Errorf("got <%s xmlns='%s'> instead of <stream:features>", el.Name.Local, el.Name.Space)
	}
	var f struct {
		StartTLS *struct {
			Required *struct{} `xml:"required"`
		} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
		Mechanisms *struct {
			Mechanism []string `xml:"mechanism"`
		} `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms"`
		Dialback *struct {
			Errors *struct{} `xml:"errors"`
		} `xml:"urn:xmpp:features:dialback dialback"`
		Inner string `xml:",innerxml"`
	}
	if err := s.dec.DecodeElement(&f, &el); err != nil {
		return fmt.Errorf("reading the stream features: %w", err)
	}
	s.Features = Features{Raw: f.Inner}
	if f.StartTLS != nil {
		s.Features.StartTLS = true
		s.Features.StartTLSRequired = f.StartTLS.Required != nil
	}
	if f.Mechanisms != nil {
		for _, m := range f.Mechanisms.Mechanism {
			s.Features.Mechanisms = append(s.Features.Mechanisms, strings.TrimSpace(m))
		}
	}
	if f.Dialback != nil {
		s.Features.Dialback = true
		s.Features.DialbackErrors = f.Dialback.Errors != nil
	}
	return nil
}

// next returns the next top-level element's start, skipping whitespace,
// and turns a stream error or the stream's end into an error.
func (s *Stream) next() (xml.StartElement, error) {
	for {
		tok, err := s.dec.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Space == NSStream && el.Name.Local == "error" {
				var e struct {
					Inner []struct {
						XMLName xml.Name
						Text    string `xml:",chardata"`
					} `xml:",any"`
				}
				if err := s.dec.DecodeElement(&e, &el); err != nil {
					return xml.StartElement{}, fmt.Errorf("reading a stream error: %w", err)
				}
				se := &StreamError{}
				for _, c := range e.Inner {
					if c.XMLName.Local == "text" {
						se.Text = c.Text
					} else if se.Condition == "" {
						se.Condition = c.XMLName.Local
					}
				}
				return xml.StartElement{}, se
			}
			return el, nil
		case xml.EndElement:
			return xml.StartElement{}, errors.New("the server closed the stream")
		}
	}
}

// StartTLS negotiates STARTTLS (RFC 6120 §5.4) with config (ServerName
// defaults to the stream's To; nil means verify nothing, which is right
// for tests that check the chain themselves), restarts the stream and
// reads the new features. It fails when anything follows <proceed/>
// before the handshake.
func (s *Stream) StartTLS(config *tls.Config) error {
	if config == nil {
		config = &tls.Config{InsecureSkipVerify: true}
	}
	if err := s.proceed(); err != nil {
		return err
	}
	tc := tls.Client(s.conn, s.tlsConfig(config))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake after STARTTLS: %w", err)
	}
	st := tc.ConnectionState()
	s.TLS, s.conn, s.br = &st, tc, nil
	return s.open()
}

// proceed sends <starttls/> and reads <proceed/>, after which the
// connection is the server's to start TLS on.
func (s *Stream) proceed() error {
	if _, err := fmt.Fprintf(s.conn, "<starttls xmlns='%s'/>", NSTLS); err != nil {
		return err
	}
	el, err := s.next()
	if err != nil {
		return fmt.Errorf("waiting for <proceed/>: %w", err)
	}
	if el.Name.Space != NSTLS || el.Name.Local != "proceed" {
		return fmt.Errorf("got <%s xmlns='%s'> instead of <proceed/>", el.Name.Local, el.Name.Space)
	}
	if err := s.dec.Skip(); err != nil {
		return err
	}
	if n := s.br.Buffered(); n > 0 {
		return fmt.Errorf("%d bytes of plaintext followed <proceed/>", n)
	}
	return nil
}

// AuthExternal attempts SASL EXTERNAL (RFC 6120 §6, XEP-0178) with an
// empty authorization identity, whether or not the server offered it:
// on <success/> it restarts the stream and returns nil; on <failure/> it
// returns a *SASLFailure; a stream error is a *StreamError.
func (s *Stream) AuthExternal() error {
	if _, err := fmt.Fprintf(s.conn, "<auth xmlns='%s' mechanism='EXTERNAL'>=</auth>", NSSASL); err != nil {
		return err
	}
	el, err := s.next()
	if err != nil {
		return fmt.Errorf("waiting for the SASL outcome: %w", err)
	}
	if el.Name.Space != NSSASL {
		return fmt.Errorf("got <%s xmlns='%s'> instead of a SASL outcome", el.Name.Local, el.Name.Space)
	}
	switch el.Name.Local {
	case "success":
		if err := s.dec.Skip(); err != nil {
			return err
		}
		return s.open()
	case "failure":
		var f struct {
			Inner []struct {
				XMLName xml.Name
				Text    string `xml:",chardata"`
			} `xml:",any"`
		}
		if err := s.dec.DecodeElement(&f, &el); err != nil {
			return err
		}
		sf := &SASLFailure{}
		for _, c := range f.Inner {
			if c.XMLName.Local == "text" {
				sf.Text = c.Text
			} else if sf.Condition == "" {
				sf.Condition = c.XMLName.Local
			}
		}
		return sf
	}
	return fmt.Errorf("got <%s xmlns='%s'> instead of a SASL outcome", el.Name.Local, el.Name.Space)
}

// Close ends the stream politely and closes the connection.
func (s *Stream) Close() error {
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprint(s.conn, "</stream:stream>")
	return s.conn.Close()
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&#39;")
}

// answered closes s and returns nil if the server answered the stream
// header, with features or with a stream error other than
// <host-unknown/> (an s2s stream from an unknown domain without a
// certificate may be refused at once, as Prosody does with
// s2s_secure_auth): what readiness checks need.
func answered(s *Stream, err error) error {
	if err == nil {
		s.Close()
		return nil
	}
	var se *StreamError
	if errors.As(err, &se) && se.Condition != "host-unknown" {
		return nil
	}
	return err
}
