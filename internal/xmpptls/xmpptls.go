// Package xmpptls opens a TLS connection to an XMPP server the way a peer
// does, to see the certificate chain it presents: STARTTLS (RFC 6120 §5)
// on the classic ports, or direct TLS (XEP-0368) with SNI and ALPN.
//
// It does not judge the certificate. The TLS handshake runs with
// InsecureSkipVerify and the peer chain is returned to the caller
// (pinning's DANE/POSH checks, xmppaddr's identity checks), which decides
// what it proves.
//
// The server may be hostile, so everything read is bounded: at most
// MaxPreTLS bytes before TLS, every read under the context's deadline (or
// Config.Timeout), XML parsed strictly with no DTD, comments, processing
// instructions or entities beyond XML's five predefined ones. Anything the
// server sent after <proceed/> and before the TLS handshake is discarded
// (STARTTLS command injection, CVE-2011-0411 and its XMPP relatives).
//
// This is the minimum the pinning checks need. A full prober (restarting
// the stream after TLS, SASL EXTERNAL, dialback, protocol versions) is
// meant to build on Handshake.
package xmpptls

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/xmppaddr"
)

// MaxPreTLS is the most a server may send before TLS starts: stream
// header, features and the answer to <starttls/>. Real servers send well
// under 4 KiB; a stream that needs more is refused with ErrTooLarge.
const MaxPreTLS = 64 << 10

// DefaultTimeout bounds a whole connection attempt (TCP connect, XMPP
// negotiation and TLS handshake) when Config.Timeout is zero and the
// context has no earlier deadline.
const DefaultTimeout = 10 * time.Second

// XML namespaces of the stream.
const (
	NSStreams      = "http://etherx.jabber.org/streams"
	NSTLS          = "urn:ietf:params:xml:ns:xmpp-tls"
	NSStreamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
	NSClient       = "jabber:client"
	NSServer       = "jabber:server"
	NSDialback     = "jabber:server:dialback"
)

// Config says whom to connect to and how.
type Config struct {
	// Domain is the XMPP domain the connection is for: the stream's to and
	// the TLS SNI. It is the source domain, not an SRV target. Required.
	Domain string
	// Service is xmppaddr.ServiceClient (c2s, jabber:client) or
	// xmppaddr.ServiceServer (s2s, jabber:server with the dialback
	// namespace). Required.
	Service xmppaddr.Service
	// DirectTLS selects XEP-0368 direct TLS (TLS at once, ALPN set to the
	// service name) instead of STARTTLS.
	DirectTLS bool
	// From is this side's own domain, sent as the s2s stream's from when
	// not empty (servers decide on SASL EXTERNAL and dialback by it). It
	// is not sent for c2s.
	From string
	// Timeout bounds the whole attempt; zero means DefaultTimeout. A
	// context deadline that comes earlier wins.
	Timeout time.Duration
	// Dial opens the TCP connection; nil means a net.Dialer. Tests and
	// callers with their own proxying set it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Result is what a connection showed.
type Result struct {
	// State is the TLS connection state. State.PeerCertificates is the
	// chain as the server sent it, leaf first, not verified.
	State tls.ConnectionState
	// Features are the stream features offered before TLS, in the order
	// sent (STARTTLS only; nil for direct TLS).
	Features []xml.Name
	// StartTLSRequired is true when <starttls/> carried <required/>.
	StartTLSRequired bool
}

// ErrNoStartTLS means the server's stream features did not offer
// <starttls/>: it cannot be reached with TLS on this port.
var ErrNoStartTLS = errors.New("xmpptls: the server did not offer STARTTLS in its stream features")

// ErrStartTLSFailure means the server answered <starttls/> with
// <failure/> (RFC 6120 §5.4.2.2): it offered TLS but could not start it,
// usually for want of a certificate for the domain.
var ErrStartTLSFailure = errors.New("xmpptls: the server answered <starttls/> with <failure/>")

// ErrTooLarge means the server sent more than MaxPreTLS bytes before TLS.
var ErrTooLarge = fmt.Errorf("xmpptls: the server sent more than %d bytes before TLS", MaxPreTLS)

// StreamError is a stream error (RFC 6120 §4.9) the server sent, as it
// sent it: the defined condition's element name and the optional text.
type StreamError struct {
	// Condition is the local name of the condition element, such as
	// "host-unknown" or "policy-violation".
	Condition string
	// Text is the content of <text/>, verbatim; empty when absent.
	Text string
}

// Error says which stream error the server sent, with its text quoted
// (and cut at 200 bytes) so that it stays on one line.
func (e *StreamError) Error() string {
	s := "xmpptls: the server sent the stream error <" + e.Condition + "/>"
	if e.Text != "" {
		t := e.Text
		if len(t) > 200 {
			t = t[:200] + "..."
		}
		s += fmt.Sprintf(" with text %q", t)
	}
	return s
}

// DialError means no TCP connection could be made: the endpoint is
// unreachable, as opposed to reachable but failing XMPP or TLS.
type DialError struct {
	Addr string
	Err  error
}

// Error names the address and the dialer's reason.
func (e *DialError) Error() string {
	return fmt.Sprintf("xmpptls: cannot connect to %s: %v", e.Addr, e.Err)
}

// Unwrap returns the dialer's error, for errors.Is and errors.As.
func (e *DialError) Unwrap() error { return e.Err }

// TLSError means the TLS handshake failed after the XMPP negotiation (if
// any) succeeded.
type TLSError struct {
	Err error
}

// Error is the handshake error, said to be one.
func (e *TLSError) Error() string { return "xmpptls: TLS handshake failed: " + e.Err.Error() }

// Unwrap returns the crypto/tls error, for errors.As (tls.AlertError,
// tls.RecordHeaderError).
func (e *TLSError) Unwrap() error { return e.Err }

// ProtocolError means the server did not speak XMPP as expected: not XML,
// a forbidden XML construct, or an unexpected element. It is what a
// non-XMPP service on the port usually produces.
type ProtocolError struct {
	// Stage says what was being read: "stream header", "stream features"
	// or "answer to <starttls/>".
	Stage string
	Msg   string
}

// Error says what was being read and what was wrong with it.
func (e *ProtocolError) Error() string {
	return "xmpptls: reading the " + e.Stage + ": " + e.Msg
}

// Dial connects to addr (HOST:PORT), negotiates TLS as cfg says, closes
// the connection and returns what it showed. Errors are *DialError (no
// TCP connection), ErrNoStartTLS, ErrStartTLSFailure, *StreamError,
// ErrTooLarge, *ProtocolError, *TLSError, or a read error wrapping
// os.ErrDeadlineExceeded or the context's error. With ErrNoStartTLS the
// Result (features) is returned too.
func Dial(ctx context.Context, addr string, cfg Config) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	dial := cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	defer conn.Close()
	tc, res, err := Handshake(ctx, conn, cfg)
	if err != nil {
		return res, err
	}
	// Say goodbye politely, but never wait long for it.
	conn.SetDeadline(time.Now().Add(time.Second))
	tc.Close()
	return res, nil
}

// Handshake negotiates TLS on an open connection as cfg says and returns
// the TLS connection, which the caller owns and must close, with no
// deadline left set on it. For STARTTLS it sends the stream header, reads
// the features, sends <starttls/> and waits for <proceed/>, then drops
// whatever else was read and starts TLS on conn itself. The stream is not
// restarted over TLS; that is the caller's to do. Errors are as for Dial,
// without *DialError.
func Handshake(ctx context.Context, conn net.Conn, cfg Config) (*tls.Conn, *Result, error) {
	domain, err := cfg.check()
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	// A cancelled context interrupts a blocked read or write at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	res := &Result{}
	if !cfg.DirectTLS {
		if err := startTLS(conn, cfg, domain, res); err != nil {
			return nil, res, contextual(ctx, err)
		}
	}
	tcfg := &tls.Config{
		ServerName: domain,
		// The chain is returned for the caller to judge; verifying it here
		// would hide exactly the certificates worth reporting.
		InsecureSkipVerify: true,
	}
	if cfg.DirectTLS {
		tcfg.NextProtos = []string{string(cfg.Service)}
	}
	tc := tls.Client(conn, tcfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, res, &TLSError{Err: contextual(ctx, err)}
	}
	res.State = tc.ConnectionState()
	if !stop() {
		return nil, res, contextual(ctx, os.ErrDeadlineExceeded)
	}
	conn.SetDeadline(time.Time{})
	return tc, res, nil
}

// contextual adds the context's error to the deadline error it caused
// (the connection's deadline is the context's), so that callers can test
// for context.DeadlineExceeded or context.Canceled.
func contextual(ctx context.Context, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%w)", err, cerr)
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return fmt.Errorf("%w (%w)", err, context.DeadlineExceeded)
	}
	return err
}

func (cfg Config) timeout() time.Duration {
	if cfg.Timeout > 0 {
		return cfg.Timeout
	}
	return DefaultTimeout
}

// check validates cfg and returns the canonical domain (A-labels, lower
// case), which is what SNI and the stream's to carry.
func (cfg Config) check() (string, error) {
	if cfg.Service != xmppaddr.ServiceClient && cfg.Service != xmppaddr.ServiceServer {
		return "", fmt.Errorf("xmpptls: service %q is not xmpp-client or xmpp-server", cfg.Service)
	}
	d, err := xmppaddr.CanonicalDomain(cfg.Domain)
	if err != nil {
		return "", fmt.Errorf("xmpptls: domain %q: %w", cfg.Domain, err)
	}
	return d, nil
}

// header is the opening stream header this side sends.
func header(cfg Config, domain string) string {
	var b strings.Builder
	b.WriteString("<?xml version='1.0'?><stream:stream xmlns:stream='" + NSStreams + "'")
	if cfg.Service == xmppaddr.ServiceServer {
		b.WriteString(" xmlns='" + NSServer + "' xmlns:db='" + NSDialback + "'")
	} else {
		b.WriteString(" xmlns='" + NSClient + "'")
	}
	b.WriteString(" to='" + attr(domain) + "'")
	if cfg.Service == xmppaddr.ServiceServer && cfg.From != "" {
		b.WriteString(" from='" + attr(cfg.From) + "'")
	}
	b.WriteString(" version='1.0'>")
	return b.String()
}

func attr(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// startTLS runs the pre-TLS part of the stream and returns once the
// server said <proceed/>. The reader it builds (and anything it buffered)
// is dropped on return: TLS then reads conn directly.
func startTLS(conn io.ReadWriter, cfg Config, domain string, res *Result) error {
	if _, err := io.WriteString(conn, header(cfg, domain)); err != nil {
		return fmt.Errorf("xmpptls: sending the stream header: %w", err)
	}
	s := newStream(conn)
	if err := s.readHeader(); err != nil {
		return err
	}
	if err := s.readFeatures(res); err != nil {
		return err
	}
	if !hasFeature(res.Features, NSTLS, "starttls") {
		return ErrNoStartTLS
	}
	if _, err := io.WriteString(conn, "<starttls xmlns='"+NSTLS+"'/>"); err != nil {
		return fmt.Errorf("xmpptls: sending <starttls/>: %w", err)
	}
	return s.readProceed()
}

func hasFeature(fs []xml.Name, space, local string) bool {
	for _, f := range fs {
		if f.Space == space && f.Local == local {
			return true
		}
	}
	return false
}

// stream reads the server's side of the stream before TLS.
type stream struct {
	dec   *xml.Decoder
	first bool // no token read yet: the XML declaration is allowed
}

func newStream(r io.Reader) *stream {
	dec := xml.NewDecoder(bufio.NewReader(&limitedReader{r: r, n: MaxPreTLS}))
	dec.Strict = true
	dec.Entity = nil        // only XML's five predefined entities
	dec.CharsetReader = nil // UTF-8 only, as RFC 6120 §11.6 wants
	return &stream{dec: dec, first: true}
}

// token returns the next token, refusing what RFC 6120 §11.1 forbids in
// a stream: DTDs (and so entity declarations), comments, and processing
// instructions other than the XML declaration.
func (s *stream) token(stage string) (xml.Token, error) {
	tok, err := s.dec.Token()
	first := s.first
	s.first = false
	if err != nil {
		return nil, readError(stage, err)
	}
	switch t := tok.(type) {
	case xml.Directive:
		if strings.HasPrefix(strings.ToUpper(string(t)), "DOCTYPE") {
			return nil, &ProtocolError{stage, "the server sent a <!DOCTYPE>, which XMPP forbids"}
		}
		return nil, &ProtocolError{stage, "the server sent an XML directive, which XMPP forbids"}
	case xml.Comment:
		return nil, &ProtocolError{stage, "the server sent an XML comment, which XMPP forbids"}
	case xml.ProcInst:
		if first && t.Target == "xml" {
			return s.token(stage)
		}
		return nil, &ProtocolError{stage, fmt.Sprintf("the server sent the processing instruction <?%.40s?>, which XMPP forbids", t.Target)}
	}
	return tok, nil
}

// readError classifies an error from the decoder: the reader's own
// errors (size, time, network) pass through; everything else is the
// server not speaking XMPP.
func readError(stage string, err error) error {
	var syn *xml.SyntaxError
	var ne net.Error
	switch {
	case errors.Is(err, ErrTooLarge):
		return fmt.Errorf("%w (while reading the %s)", err, stage)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("xmpptls: no answer in time while reading the %s: %w", stage, err)
	case errors.As(err, &ne):
		return fmt.Errorf("xmpptls: reading the %s: %w", stage, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.As(err, &syn) && syn.Msg == "unexpected EOF":
		return &ProtocolError{stage, "the server closed the connection"}
	case errors.As(err, &syn):
		return &ProtocolError{stage, "not XMPP: " + syn.Msg}
	}
	return &ProtocolError{stage, "not XMPP: " + strings.TrimPrefix(err.Error(), "xml: ")}
}

// skipSpace reports whether tok is whitespace between top-level elements
// (keepalives); other text there is a protocol error.
func skipSpace(stage string, tok xml.Token) (bool, error) {
	cd, ok := tok.(xml.CharData)
	if !ok {
		return false, nil
	}
	if len(strings.TrimSpace(string(cd))) != 0 {
		return false, &ProtocolError{stage, "text outside any element"}
	}
	return true, nil
}

func (s *stream) readHeader() error {
	const stage = "stream header"
	for {
		tok, err := s.token(stage)
		if err != nil {
			return err
		}
		if cd, ok := tok.(xml.CharData); ok {
			if text := strings.TrimSpace(string(cd)); text != "" {
				return &ProtocolError{stage, fmt.Sprintf("not XMPP: the server sent %.40q", text)}
			}
			continue
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Space != NSStreams || se.Name.Local != "stream" {
			return &ProtocolError{stage, "the server did not open an XMPP stream"}
		}
		return nil
	}
}

// next returns the next top-level element of the stream, turning stream
// errors and the end of the stream into errors.
func (s *stream) next(stage string) (xml.StartElement, error) {
	for {
		tok, err := s.token(stage)
		if err != nil {
			return xml.StartElement{}, err
		}
		if ok, err := skipSpace(stage, tok); ok || err != nil {
			if err != nil {
				return xml.StartElement{}, err
			}
			continue
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return xml.StartElement{}, &ProtocolError{stage, "the server closed the stream"}
		case xml.StartElement:
			if t.Name.Space == NSStreams && t.Name.Local == "error" {
				return xml.StartElement{}, s.readStreamError(stage)
			}
			return t, nil
		}
	}
}

func (s *stream) readFeatures(res *Result) error {
	const stage = "stream features"
	se, err := s.next(stage)
	if err != nil {
		return err
	}
	if se.Name.Space != NSStreams || se.Name.Local != "features" {
		return &ProtocolError{stage, fmt.Sprintf("expected <stream:features>, got <%.40s>", se.Name.Local)}
	}
	// Each child is one feature; only <starttls/>'s own child matters here.
	depth := 0
	var current xml.Name
	for {
		tok, err := s.token(stage)
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				current = t.Name
				res.Features = append(res.Features, t.Name)
			} else if depth == 2 && current.Space == NSTLS && current.Local == "starttls" &&
				t.Name.Space == NSTLS && t.Name.Local == "required" {
				res.StartTLSRequired = true
			}
		case xml.EndElement:
			if depth == 0 {
				return nil
			}
			depth--
		}
	}
}

func (s *stream) readProceed() error {
	const stage = "answer to <starttls/>"
	se, err := s.next(stage)
	if err != nil {
		return err
	}
	switch {
	case se.Name.Space == NSTLS && se.Name.Local == "proceed":
		return nil
	case se.Name.Space == NSTLS && se.Name.Local == "failure":
		return ErrStartTLSFailure
	}
	return &ProtocolError{stage, fmt.Sprintf("expected <proceed/> or <failure/>, got <%.40s>", se.Name.Local)}
}

// readStreamError reads the inside of <stream:error> and returns it as a
// *StreamError (or the error that stopped reading it).
func (s *stream) readStreamError(stage string) error {
	e := &StreamError{}
	depth := 0
	inText := false
	var text strings.Builder
	for {
		tok, err := s.token(stage)
		if err != nil {
			if e.Condition != "" {
				// The error is complete enough to report; the server
				// probably closed the connection after it.
				e.Text = text.String()
				return e
			}
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && t.Name.Space == NSStreamErrors {
				if t.Name.Local == "text" {
					inText = true
				} else if e.Condition == "" {
					e.Condition = t.Name.Local
				}
			}
		case xml.CharData:
			if inText && depth == 1 {
				text.Write(t)
			}
		case xml.EndElement:
			if depth == 0 {
				if e.Condition == "" {
					e.Condition = "undefined-condition"
				}
				e.Text = text.String()
				return e
			}
			if depth == 1 {
				inText = false
			}
			depth--
		}
	}
}

// limitedReader reads at most n bytes from r, then fails with
// ErrTooLarge (io.LimitReader would report a clean EOF instead).
type limitedReader struct {
	r io.Reader
	n int64
}

// Read reads from the underlying reader what the limit still allows.
func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
