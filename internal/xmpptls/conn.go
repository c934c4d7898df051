package xmpptls

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/xmppcert/xmppcert/xmppaddr"
)

// Conn is one XMPP connection negotiated step by step, for a prober that
// times and reports each step: Open (send the stream header, read the
// server's header and features), StartTLS (<starttls/> and <proceed/>),
// Handshake (TLS), Open again (the stream restart over TLS, with a fresh
// parser), AuthExternal (SASL EXTERNAL with the client certificate).
//
// Each step runs under its context and Config.Timeout, whichever ends
// first, and leaves no deadline set on the connection. A Conn is not safe
// for concurrent use. The caller owns the underlying connection; Close
// ends the stream politely and closes it.
type Conn struct {
	cfg    Config
	domain string
	raw    net.Conn
	tc     *tls.Conn
	s      *stream // the current stream's parser; nil between streams
	opened bool    // a stream header was sent on the current transport
	closed bool
}

// SASLResult is the server's answer to a SASL EXTERNAL attempt.
type SASLResult struct {
	// Success is true when the server answered <success/>.
	Success bool
	// Condition is the SASL failure condition (RFC 6120 §6.5), such as
	// "not-authorized" or "invalid-authzid"; empty on success.
	Condition string
	// Text is the failure's <text/>, verbatim (up to MaxText bytes).
	Text string
}

// NewConn starts negotiating on raw as cfg says. It sends nothing yet;
// an invalid cfg (service, domain) is an error.
func NewConn(raw net.Conn, cfg Config) (*Conn, error) {
	domain, err := cfg.check()
	if err != nil {
		return nil, err
	}
	return &Conn{cfg: cfg, domain: domain, raw: raw}, nil
}

// Domain is the canonical domain the connection is for: the stream's to
// and (unless Config.OmitSNI) the SNI.
func (c *Conn) Domain() string { return c.domain }

// Encrypted says whether the TLS handshake has completed.
func (c *Conn) Encrypted() bool { return c.tc != nil }

// TLS returns the TLS connection once Handshake succeeded, else nil.
func (c *Conn) TLS() *tls.Conn { return c.tc }

// step runs f under ctx and the step timeout: the connection's deadline
// is the context's, and cancelling the context interrupts a blocked read
// or write at once.
func (c *Conn) step(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.timeout())
	defer cancel()
	d, _ := ctx.Deadline()
	c.raw.SetDeadline(d)
	stop := context.AfterFunc(ctx, func() { c.raw.SetDeadline(time.Unix(1, 0)) })
	err := f(ctx)
	if !stop() && err == nil {
		// The deadline fired as f returned: the connection may be left
		// with a past deadline, so the step counts as timed out.
		err = os.ErrDeadlineExceeded
	}
	c.raw.SetDeadline(time.Time{})
	return contextual(ctx, err)
}

// transport is what the stream is currently written to and read from.
func (c *Conn) transport() io.ReadWriter {
	if c.tc != nil {
		return c.tc
	}
	return c.raw
}

// Open sends the opening stream header on the current transport (plain
// TCP before TLS, TLS after it) and reads the server's header and
// features with a fresh parser. Before TLS it is the first step of
// STARTTLS; after Handshake it is the stream restart RFC 6120 §5.4.3.3
// requires. The header and the features are returned as far as they were
// read, also with an error: *StreamError, ErrNoFeatures, ErrTooLarge,
// *ProtocolError, or a read error.
func (c *Conn) Open(ctx context.Context) (*StreamHeader, *Features, error) {
	var h *StreamHeader
	var f *Features
	stage := func(s string) string {
		if c.tc != nil {
			return s + " after TLS"
		}
		return s
	}
	err := c.step(ctx, func(context.Context) error {
		w := c.transport()
		if _, err := io.WriteString(w, header(c.cfg, c.domain)); err != nil {
			return fmt.Errorf("xmpptls: sending the stream header: %w", err)
		}
		c.opened = true
		limit := int64(MaxPreTLS)
		if c.tc != nil {
			limit = MaxPostTLS
		}
		c.s = newStream(w, limit)
		var err error
		if h, err = c.s.readHeader(stage("stream header")); err != nil {
			return err
		}
		f, err = c.s.readFeatures(stage("stream features"))
		return err
	})
	return h, f, err
}

// StartTLS sends <starttls/> and waits for <proceed/>; then it drops the
// parser and everything it had buffered, so that whatever the server (or
// a man in the middle) sent after <proceed/> is never read. Errors are
// ErrStartTLSFailure, *StreamError, ErrTooLarge, *ProtocolError, or a
// read error. It needs an Open stream before TLS.
func (c *Conn) StartTLS(ctx context.Context) error {
	if c.s == nil || c.tc != nil {
		return fmt.Errorf("xmpptls: StartTLS needs an open stream before TLS")
	}
	err := c.step(ctx, func(context.Context) error {
		if _, err := io.WriteString(c.raw, "<starttls xmlns='"+NSTLS+"'/>"); err != nil {
			return fmt.Errorf("xmpptls: sending <starttls/>: %w", err)
		}
		return c.s.readProceed()
	})
	// TLS reads the connection directly from here on.
	c.s, c.opened = nil, false
	return err
}

// TLSConfig is the client configuration of the handshake: SNI = the
// domain (unless OmitSNI), ALPN = the service for direct TLS, the client
// certificate if any, no verification (the caller judges the chain), and
// every version and cipher suite crypto/tls implements from TLS 1.0 up,
// so that a weak server is seen and reported rather than refused.
func (c *Conn) TLSConfig() *tls.Config {
	cfg := &tls.Config{
		ServerName: c.domain,
		// The chain is returned for the caller to judge; verifying it here
		// would hide exactly the certificates worth reporting.
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS10,
		CipherSuites:       allSuites(),
	}
	if c.cfg.OmitSNI {
		cfg.ServerName = ""
	}
	if c.cfg.DirectTLS {
		cfg.NextProtos = []string{string(c.cfg.Service)}
	}
	if cc := c.cfg.ClientCert; cc != nil {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cc, nil }
	}
	return cfg
}

func allSuites() []uint16 {
	var ids []uint16
	for _, s := range tls.CipherSuites() {
		ids = append(ids, s.ID)
	}
	for _, s := range tls.InsecureCipherSuites() {
		ids = append(ids, s.ID)
	}
	return ids
}

// Handshake runs the TLS handshake on the connection: at once for direct
// TLS, after StartTLS otherwise. Its error is a *TLSError.
func (c *Conn) Handshake(ctx context.Context) (tls.ConnectionState, error) {
	if c.tc != nil {
		return c.tc.ConnectionState(), nil
	}
	if !c.cfg.DirectTLS && c.opened {
		return tls.ConnectionState{}, fmt.Errorf("xmpptls: Handshake before StartTLS")
	}
	tc := tls.Client(c.raw, c.TLSConfig())
	err := c.step(ctx, func(ctx context.Context) error { return tc.HandshakeContext(ctx) })
	if err != nil {
		return tls.ConnectionState{}, &TLSError{Err: err}
	}
	c.tc, c.s, c.opened = tc, nil, false
	return tc.ConnectionState(), nil
}

// AuthExternal attempts SASL EXTERNAL (RFC 6120 §6, XEP-0178) on the
// stream restarted over TLS: the server authenticates the client
// certificate presented in the handshake. The initial response is the
// authorization identity: Config.From for s2s (XEP-0178 §3), empty ("=")
// for c2s. An empty challenge is answered once with an empty response.
// A <failure/> is a result, not an error; errors are *StreamError,
// ErrTooLarge, *ProtocolError or read errors.
func (c *Conn) AuthExternal(ctx context.Context) (*SASLResult, error) {
	if c.tc == nil || c.s == nil {
		return nil, fmt.Errorf("xmpptls: AuthExternal needs a stream opened over TLS")
	}
	var res *SASLResult
	err := c.step(ctx, func(context.Context) error {
		initial := "="
		if c.cfg.Service == xmppaddr.ServiceServer && c.cfg.From != "" {
			initial = base64.StdEncoding.EncodeToString([]byte(c.cfg.From))
		}
		if _, err := io.WriteString(c.tc, "<auth xmlns='"+NSSASL+"' mechanism='EXTERNAL'>"+initial+"</auth>"); err != nil {
			return fmt.Errorf("xmpptls: sending <auth/>: %w", err)
		}
		for round := 0; ; round++ {
			r, challenge, err := c.s.readSASL("answer to SASL EXTERNAL")
			if err != nil {
				return err
			}
			if !challenge {
				res = r
				return nil
			}
			if round > 0 {
				return &ProtocolError{"answer to SASL EXTERNAL", "the server sent a second challenge; EXTERNAL has at most one"}
			}
			if _, err := io.WriteString(c.tc, "<response xmlns='"+NSSASL+"'>=</response>"); err != nil {
				return fmt.Errorf("xmpptls: sending <response/>: %w", err)
			}
		}
	})
	return res, err
}

// Close ends the stream (</stream:stream>, then TLS close_notify) without
// waiting more than a second for either, and closes the connection.
// Closing again does nothing.
func (c *Conn) Close() error {
	if c.closed {
		return nil
	}
	c.closed = true
	c.raw.SetDeadline(time.Now().Add(time.Second))
	if c.opened {
		io.WriteString(c.transport(), "</stream:stream>")
	}
	if c.tc != nil {
		c.tc.Close()
	}
	return c.raw.Close()
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
