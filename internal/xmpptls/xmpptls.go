// Package xmpptls opens a TLS connection to an XMPP server the way a peer
// does, to see what it presents and offers: STARTTLS (RFC 6120 §5) on the
// classic ports, or direct TLS (XEP-0368) with SNI and ALPN.
//
// Dial and Handshake do the minimum the pinning checks need: negotiate
// TLS and hand back the chain. Conn does the same step by step and goes
// on where a prober needs it to: the stream restart over TLS with a fresh
// parser, the features offered after TLS, and a SASL EXTERNAL attempt
// with a client certificate. Stream headers and features are parsed as a
// set (StreamHeader, Features): any order, whitespace keepalives between
// elements, writes split anywhere.
//
// It does not judge the certificate. The TLS handshake runs with
// InsecureSkipVerify (and accepts TLS 1.0 and every cipher suite Go
// implements, so that weak servers can be seen and reported) and the
// peer chain is returned to the caller (pinning's DANE/POSH checks,
// xmppaddr's identity checks, watcher/probe), which decides what it
// proves.
//
// The server may be hostile, so everything read is bounded: at most
// MaxPreTLS bytes before TLS and MaxPostTLS bytes after it, every read
// under the context's deadline (or Config.Timeout), XML parsed strictly
// with no DTD, comments, processing instructions or entities beyond
// XML's five predefined ones. Anything the server sent after <proceed/>
// and before the TLS handshake is discarded (STARTTLS command injection,
// CVE-2011-0411 and its XMPP relatives).
package xmpptls

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/xmppcert/xmppcert/xmppaddr"
)

// MaxPreTLS is the most a server may send before TLS starts: stream
// header, features and the answer to <starttls/>. Real servers send well
// under 4 KiB; a stream that needs more is refused with ErrTooLarge.
const MaxPreTLS = 64 << 10

// MaxPostTLS is the most a server may send on the stream after TLS
// starts, until the prober is done with it: the restarted stream's
// header and features and the answer to SASL EXTERNAL. Real servers send
// a few KiB; more is refused with ErrTooLarge.
const MaxPostTLS = 64 << 10

// DefaultTimeout bounds a whole connection attempt (TCP connect, XMPP
// negotiation and TLS handshake) when Config.Timeout is zero and the
// context has no earlier deadline. For Conn it bounds each step.
const DefaultTimeout = 10 * time.Second

// XML namespaces of the stream.
const (
	NSStreams      = "http://etherx.jabber.org/streams"
	NSTLS          = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL         = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSStreamErrors = "urn:ietf:params:xml:ns:xmpp-streams"
	NSClient       = "jabber:client"
	NSServer       = "jabber:server"
	NSDialback     = "jabber:server:dialback"
	// NSDialbackFeature is the stream feature by which a server says it
	// supports Server Dialback (XEP-0220 §2.1); an <errors/> child says
	// it also supports dialback error conditions.
	NSDialbackFeature = "urn:xmpp:features:dialback"
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
	// not empty (servers decide on SASL EXTERNAL and dialback by it), and
	// as the authorization identity of an s2s SASL EXTERNAL attempt. It
	// is not sent for c2s.
	From string
	// Timeout bounds the whole attempt of Dial and Handshake, and each
	// step of a Conn; zero means DefaultTimeout. A context deadline that
	// comes earlier wins.
	Timeout time.Duration
	// Dial opens the TCP connection; nil means a net.Dialer. Tests and
	// callers with their own proxying set it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ClientCert, when set, is presented as the TLS client certificate
	// whenever the server asks for one, whatever CAs it names: what SASL
	// EXTERNAL (XEP-0178) authenticates with. nil presents none.
	ClientCert *tls.Certificate
	// OmitSNI leaves the server name indication out of the ClientHello,
	// to see which certificate a server presents to peers that send none.
	// The stream's to is still Domain.
	OmitSNI bool
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

// ErrTooLarge means the server sent more than MaxPreTLS bytes before TLS,
// or more than MaxPostTLS on the stream after it.
var ErrTooLarge = fmt.Errorf("xmpptls: the server sent more than %d bytes in the stream negotiation", MaxPreTLS)

// ErrNoFeatures means the server opened the stream but sent no
// <stream:features> in time (or closed the stream instead). It wraps the
// error that ended the wait, a deadline or a *ProtocolError.
var ErrNoFeatures = errors.New("xmpptls: the server opened the stream but sent no <stream:features>")

// StreamError is a stream error (RFC 6120 §4.9) the server sent, as it
// sent it: the defined condition's element name and the optional text.
type StreamError struct {
	// Condition is the local name of the condition element, such as
	// "host-unknown" or "policy-violation".
	Condition string
	// Text is the content of <text/>, verbatim (up to MaxText bytes);
	// empty when absent.
	Text string
}

// MaxText is the most of a <text/> element (stream error, SASL failure)
// that is kept; the rest is dropped.
const MaxText = 1024

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
	// Addr is the HOST:PORT dialled.
	Addr string
	// Err is the dialer's error.
	Err error
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
	// Err is crypto/tls's error.
	Err error
}

// Error is the handshake error, said to be one.
func (e *TLSError) Error() string { return "xmpptls: TLS handshake failed: " + e.Err.Error() }

// Unwrap returns the crypto/tls error, for errors.As (tls.AlertError,
// tls.RecordHeaderError).
func (e *TLSError) Unwrap() error { return e.Err }

// Alert returns the TLS alert the server sent, as crypto/tls names it
// ("handshake failure", "protocol version not supported"), and whether
// there was one. Go reports a received alert as a *net.OpError with Op
// "remote error".
func (e *TLSError) Alert() (string, bool) { return RemoteAlert(e.Err) }

// RemoteAlert says whether err is (or wraps) a TLS alert received from
// the peer, and returns the alert's description.
func RemoteAlert(err error) (string, bool) {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "remote error" && oe.Err != nil {
		msg := oe.Err.Error()
		if len(msg) > 5 && msg[:5] == "tls: " {
			msg = msg[5:]
		}
		return msg, true
	}
	return "", false
}

// ProtocolError means the server did not speak XMPP as expected: not XML,
// a forbidden XML construct, or an unexpected element. It is what a
// non-XMPP service on the port usually produces.
type ProtocolError struct {
	// Stage says what was being read: "stream header", "stream features"
	// or "answer to <starttls/>", and after TLS "stream header after
	// TLS", "stream features after TLS" or "answer to SASL EXTERNAL".
	Stage string
	// Msg says what was wrong.
	Msg string
}

// Error says what was being read and what was wrong with it.
func (e *ProtocolError) Error() string {
	return "xmpptls: reading the " + e.Stage + ": " + e.Msg
}

// Dial connects to addr (HOST:PORT), negotiates TLS as cfg says, closes
// the connection and returns what it showed. Errors are *DialError (no
// TCP connection), ErrNoStartTLS, ErrStartTLSFailure, *StreamError,
// ErrTooLarge, ErrNoFeatures, *ProtocolError, *TLSError, or a read error
// wrapping os.ErrDeadlineExceeded or the context's error. With
// ErrNoStartTLS the Result (features) is returned too.
func Dial(ctx context.Context, addr string, cfg Config) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	conn, err := DialTCP(ctx, addr, cfg)
	if err != nil {
		return nil, err
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

// DialTCP opens the TCP connection to addr with cfg.Dial (or a
// net.Dialer), under ctx and cfg.Timeout. Its error is a *DialError.
func DialTCP(ctx context.Context, addr string, cfg Config) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	dial := cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{Addr: addr, Err: contextual(ctx, err)}
	}
	return quickAck(conn), nil
}

// Handshake negotiates TLS on an open connection as cfg says and returns
// the TLS connection, which the caller owns and must close, with no
// deadline left set on it. For STARTTLS it sends the stream header, reads
// the features, sends <starttls/> and waits for <proceed/>, then drops
// whatever else was read and starts TLS on conn itself. The stream is not
// restarted over TLS; that is the caller's to do (or use Conn). Errors
// are as for Dial, without *DialError.
func Handshake(ctx context.Context, conn net.Conn, cfg Config) (*tls.Conn, *Result, error) {
	c, err := NewConn(conn, cfg)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	res := &Result{}
	if !cfg.DirectTLS {
		_, f, err := c.Open(ctx)
		if f != nil {
			res.Features, res.StartTLSRequired = f.Names, f.StartTLSRequired
		}
		if err != nil {
			return nil, res, err
		}
		if !f.StartTLS {
			return nil, res, ErrNoStartTLS
		}
		if err := c.StartTLS(ctx); err != nil {
			return nil, res, err
		}
	}
	st, err := c.Handshake(ctx)
	if err != nil {
		return nil, res, err
	}
	res.State = st
	return c.tc, res, nil
}

// PrepareTLS readies an open connection for a TLS ClientHello as cfg
// says: for STARTTLS it sends the stream header, reads the features,
// sends <starttls/>, waits for <proceed/> and drops whatever else it
// read, so that the next bytes on conn are the server's TLS; for direct
// TLS it does nothing. It is the dialer of a TLS scanner that sends its
// own hand-built ClientHellos. No deadline is left set on conn. Errors
// are as for Handshake, without *TLSError.
func PrepareTLS(ctx context.Context, conn net.Conn, cfg Config) error {
	c, err := NewConn(conn, cfg)
	if err != nil {
		return err
	}
	if cfg.DirectTLS {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout())
	defer cancel()
	_, f, err := c.Open(ctx)
	if err != nil {
		return err
	}
	if !f.StartTLS {
		return ErrNoStartTLS
	}
	return c.StartTLS(ctx)
}

// contextual adds the context's error to the deadline error it caused
// (the connection's deadline is the context's), so that callers can test
// for context.DeadlineExceeded or context.Canceled.
func contextual(ctx context.Context, err error) error {
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) && !isTimeout(err) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
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

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
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
