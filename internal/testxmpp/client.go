package testxmpp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"net"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// Message is a message stanza a Client received.
type Message struct {
	stanza.Message
	Body string `xml:"body"`
}

// Client is an XMPP user's client in a test: logged in to a server,
// available, collecting the messages with a body that it receives.
type Client struct {
	msgs chan Message
}

// LoginClient logs in as account (user@domain) with password on addr,
// with STARTTLS checked against roots for the account's domain, and
// sends available presence, so that the server delivers what it stored
// meanwhile. The session ends with the test.
func LoginClient(t testing.TB, addr, account, password string, roots *x509.CertPool) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	j, err := jid.Parse(account)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := xmpp.NewClientSession(ctx, j, conn,
		xmpp.StartTLS(&tls.Config{ServerName: j.Domain().String(), RootCAs: roots}),
		xmpp.SASL("", password, sasl.ScramSha1, sasl.Plain), xmpp.BindResource())
	if err != nil {
		conn.Close()
		t.Fatalf("testxmpp: logging in as %s: %v", account, err)
	}
	c := &Client{msgs: make(chan Message, 64)}
	go s.Serve(xmpp.HandlerFunc(func(r xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		if start.Name.Local != "message" {
			return nil
		}
		// The handler's reader starts inside the element.
		var m Message
		if err := xml.NewTokenDecoder(xmlstream.MultiReader(xmlstream.Token(*start), r)).Decode(&m); err == nil && m.Body != "" {
			select {
			case c.msgs <- m:
			default:
			}
		}
		return nil
	}))
	if err := s.Send(ctx, stanza.Presence{Type: stanza.AvailablePresence}.Wrap(nil)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); s.Conn().Close() })
	return c
}

// Next waits up to timeout for the next message.
func (c *Client) Next(t testing.TB, timeout time.Duration) Message {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(timeout):
		t.Fatalf("testxmpp: no message within %v", timeout)
		return Message{}
	}
}
