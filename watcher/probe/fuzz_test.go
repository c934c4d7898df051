package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/internal/xmpptls"
	"github.com/xmppcert/xmppcert/internal/xmpptls/xmpptlstest"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

// scripted is a connection whose server sends data and then closes:
// reads come from data (and are counted), writes go nowhere, deadlines
// are moot because nothing blocks.
type scripted struct {
	mu   sync.Mutex
	r    io.Reader
	read int
}

func (c *scripted) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.r.Read(b)
	c.read += n
	return n, err
}

func (c *scripted) Write(b []byte) (int, error)      { return len(b), nil }
func (c *scripted) Close() error                     { return nil }
func (c *scripted) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scripted) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scripted) SetDeadline(time.Time) error      { return nil }
func (c *scripted) SetReadDeadline(time.Time) error  { return nil }
func (c *scripted) SetWriteDeadline(time.Time) error { return nil }

// FuzzProbe feeds arbitrary server bytes to a whole probe, c2s and s2s:
// the stream header and feature parser, STARTTLS, and what follows. It
// must never panic, never read more than the negotiation limits, always
// classify a failure, and always produce JSON.
func FuzzProbe(f *testing.F) {
	h := xmpptlstest.Header("jabber:client", domain)
	for _, seed := range []string{
		h + "<stream:features>" + xmpptlstest.DefaultFeatures + "</stream:features>" + xmpptlstest.Proceed,
		h + "<stream:features>" + xmpptlstest.Mechanisms("PLAIN", "SCRAM-SHA-1") + xmpptlstest.Dialback(true) + "</stream:features>",
		h + " \n<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features><failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
		h + xmpptlstest.StreamError("host-unknown", "go away"),
		xmpptlstest.BillionLaughs,
		"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'><stream:features/>",
		"\x16\x03\x01\x00\x05hello",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, s2s bool) {
		conn := &scripted{r: bytes.NewReader(data)}
		opts := Options{
			Connect: "192.0.2.1:5222", Timeout: time.Second, Deadline: 2 * time.Second, Now: time.Unix(1e9, 0),
			Dial: func(context.Context, string, string) (net.Conn, error) { return conn, nil },
		}
		if s2s {
			opts.Service, opts.From = xmppaddr.ServiceServer, "us.test"
		}
		res := Probe(context.Background(), domain, opts)
		if res.OK || res.Failure == "" || len(res.Endpoints) != 1 || res.Endpoints[0].Failure == "" {
			t.Fatalf("ok=%v failure=%q from a server that cannot complete TLS", res.OK, res.Failure)
		}
		if conn.read > xmpptls.MaxPreTLS+xmpptls.MaxPostTLS {
			t.Fatalf("read %d bytes", conn.read)
		}
		if e := res.Endpoints[0]; e.BeforeTLS != nil && (len(e.BeforeTLS.Features.Names) > xmpptls.MaxFeatures ||
			len(e.BeforeTLS.Features.Mechanisms) > xmpptls.MaxMechanisms) {
			t.Fatalf("kept %d features, %d mechanisms", len(e.BeforeTLS.Features.Names), len(e.BeforeTLS.Features.Mechanisms))
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatal(err)
		}
	})
}
