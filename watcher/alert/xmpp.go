package alert

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp"
	"mellium.im/xmpp/dial"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/ping"
	"mellium.im/xmpp/stanza"
)

// XMPP sink defaults, used where XMPPOptions leave a zero.
const (
	DefaultXMPPTimeout     = 30 * time.Second
	DefaultXMPPMaxAttempts = 10
	DefaultXMPPMinBackoff  = time.Second
	DefaultXMPPMaxBackoff  = 2 * time.Minute
)

// XMPPOptions configure an XMPP sink. Zero values take the defaults
// named beside each field.
type XMPPOptions struct {
	// JID is the account the sink logs in as, user@domain; the server
	// binds a resource.
	JID string
	// Password is the account's password. It is sent only over TLS
	// (SCRAM-SHA-256, SCRAM-SHA-1, or PLAIN inside TLS).
	Password Secret
	// To are the recipients' JIDs: each alert goes to every one of them
	// as a chat message.
	To []string
	// Server is the HOST:PORT to connect to (STARTTLS); when empty, the
	// JID's domain through its _xmpp-client SRV records, else port 5222.
	Server string
	// RootCAs verify the server's certificate for the JID's domain; nil
	// means the system's roots.
	RootCAs *x509.CertPool
	// Timeout bounds each attempt: connecting, logging in, sending and
	// the server's confirmation (DefaultXMPPTimeout).
	Timeout time.Duration
	// MaxAttempts is the retry budget per alert, first attempt included
	// (DefaultXMPPMaxAttempts); MinBackoff and MaxBackoff bound the waits
	// between attempts as for webhooks (DefaultXMPPMinBackoff,
	// DefaultXMPPMaxBackoff). With the defaults an alert waits about ten
	// minutes for a server that is down or restarting.
	MaxAttempts            int
	MinBackoff, MaxBackoff time.Duration
	// Queue bounds the sink's queue.
	Queue QueueOptions
	// Logger gets delivery failures and reconnections; nil means
	// slog.Default().
	Logger *slog.Logger
}

// XMPP sends alerts as chat messages from an XMPP account: an operator's
// pager is an XMPP client. It keeps one session open across alerts and
// logs in again when the server closed it. A message counts as delivered
// once the server has answered a ping sent after it (the server handles
// a session's stanzas in order); an attempt that gets no answer is made
// again on a new session, so an alert may arrive twice (with the same
// message id, the alert's ID) but is not lost while the server restarts.
type XMPP struct {
	*Queue
	o   XMPPOptions
	jid jid.JID
	to  []jid.JID
	log *slog.Logger

	mu   sync.Mutex // guards sess
	sess *xmpp.Session
}

// NewXMPPSink checks the options and returns the sink, behind its own
// Queue. It connects at the first alert, not before.
func NewXMPPSink(o XMPPOptions) (*XMPP, error) {
	j, err := jid.Parse(o.JID)
	if err != nil || j.Localpart() == "" {
		return nil, fmt.Errorf("alert XMPP account %q: give an account JID, user@domain", o.JID)
	}
	if len(o.Password) == 0 {
		return nil, errors.New("alert XMPP account " + j.Bare().String() + ": no password")
	}
	if len(o.To) == 0 {
		return nil, errors.New("alert XMPP account " + j.Bare().String() + ": no recipient")
	}
	x := &XMPP{o: o, jid: j.Bare(), log: o.Logger}
	for _, s := range o.To {
		to, err := jid.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("alert XMPP recipient %q: %v", s, err)
		}
		x.to = append(x.to, to)
	}
	if x.o.Timeout <= 0 {
		x.o.Timeout = DefaultXMPPTimeout
	}
	if x.o.MaxAttempts <= 0 {
		x.o.MaxAttempts = DefaultXMPPMaxAttempts
	}
	if x.o.MinBackoff <= 0 {
		x.o.MinBackoff = DefaultXMPPMinBackoff
	}
	if x.o.MaxBackoff <= 0 {
		x.o.MaxBackoff = DefaultXMPPMaxBackoff
	}
	x.o.MaxBackoff = max(x.o.MaxBackoff, x.o.MinBackoff)
	if x.log == nil {
		x.log = slog.Default()
	}
	x.Queue = NewQueue(x.Name(), x.Deliver, o.Queue, x.log)
	return x, nil
}

// Name is "xmpp ACCOUNT".
func (x *XMPP) Name() string { return "xmpp " + x.jid.String() }

// Deliver sends the alert to every recipient, retrying with backoff on
// a new session until the server has confirmed it, the retry budget is
// spent or ctx is done.
func (x *XMPP) Deliver(ctx context.Context, a Alert) error {
	return retry(ctx, x.Name(), x.o.MaxAttempts, x.o.MinBackoff, x.o.MaxBackoff, func() (bool, error) {
		return true, x.send(ctx, a)
	})
}

// alertMessage is the stanza an alert is sent as.
type alertMessage struct {
	stanza.Message
	Body string `xml:"body"`
}

// messageText is the body of an alert's message: severity, kind and
// endpoint on the first line, then the change's text.
func messageText(a Alert) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s: %s", strings.ToUpper(string(a.Change.Severity)), a.Change.Kind, a.Endpoint)
	if a.Resent {
		b.WriteString(" (still so)")
	}
	b.WriteString("\n" + a.Change.Text)
	return b.String()
}

// send makes one attempt on the session, opening one when there is none.
func (x *XMPP) send(ctx context.Context, a Alert) error {
	ctx, cancel := context.WithTimeout(ctx, x.o.Timeout)
	defer cancel()
	s, err := x.session(ctx)
	if err != nil {
		return err
	}
	for _, to := range x.to {
		msg := alertMessage{Message: stanza.Message{ID: a.ID(), To: to, Type: stanza.ChatMessage}, Body: messageText(a)}
		if err := s.Encode(ctx, msg); err != nil {
			x.drop(s)
			return fmt.Errorf("sending to %s: %w", to, err)
		}
	}
	// Any answer, an error included, comes after the server read the
	// messages.
	if err := ping.Send(ctx, s, x.jid.Domain()); err != nil && !errors.As(err, new(stanza.Error)) {
		x.drop(s)
		return fmt.Errorf("no confirmation from the server: %w", err)
	}
	return nil
}

// session returns the open session, or logs in anew.
func (x *XMPP) session(ctx context.Context) (*xmpp.Session, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sess != nil {
		return x.sess, nil
	}
	var conn net.Conn
	var err error
	if x.o.Server != "" {
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", x.o.Server)
	} else {
		conn, err = dial.Client(ctx, "tcp", x.jid)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	tlsConfig := &tls.Config{ServerName: x.jid.Domain().String(), RootCAs: x.o.RootCAs, MinVersion: tls.VersionTLS12}
	s, err := xmpp.NewClientSession(ctx, x.jid, conn,
		xmpp.StartTLS(tlsConfig),
		xmpp.SASL("", string(x.o.Password), sasl.ScramSha256, sasl.ScramSha1, sasl.Plain),
		xmpp.BindResource())
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("logging in: %w", err)
	}
	x.sess = s
	x.log.Info("alert sink logged in", "sink", x.Name(), "resource", s.LocalAddr().Resourcepart())
	// Serve reads what the server sends (answers, pings) until the
	// stream ends; the session is then dropped and the next alert logs
	// in again.
	go func() {
		err := s.Serve(nil)
		if x.forget(s) && err != nil {
			x.log.Info("alert sink session ended by the server", "sink", x.Name(), "err", err.Error())
		}
		x.closeSession(s)
	}()
	return s, nil
}

// drop forgets s if it is still the sink's session and closes it.
func (x *XMPP) drop(s *xmpp.Session) {
	x.forget(s)
	x.closeSession(s)
}

// forget forgets s and reports whether it was the sink's session.
func (x *XMPP) forget(s *xmpp.Session) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sess != s {
		return false
	}
	x.sess = nil
	return true
}

// closeSession ends the stream and closes the connection.
func (x *XMPP) closeSession(s *xmpp.Session) {
	s.Close()
	s.Conn().Close()
}

// Close delivers what is queued until ctx is done, then ends the
// session.
func (x *XMPP) Close(ctx context.Context) error {
	err := x.Queue.Close(ctx)
	x.mu.Lock()
	s := x.sess
	x.mu.Unlock()
	if s != nil {
		x.drop(s)
	}
	return err
}
