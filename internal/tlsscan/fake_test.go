package tlsscan

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fake servers written for the cases real servers do not produce on
// demand: SSLv2 and SSLv3, closing, garbage, silence, hostile lengths.

// TestScanSSLv2Server: a server that answers an SSL 2.0 CLIENT-HELLO with
// a SERVER-HELLO and closes on everything else.
func TestScanSSLv2Server(t *testing.T) {
	var mu sync.Mutex
	var got []byte
	addr := serve(t, func(c net.Conn) {
		var h [2]byte
		if _, err := io.ReadFull(c, h[:]); err != nil || h[0]&0x80 == 0 {
			return
		}
		msg := make([]byte, int(h[0]&0x7f)<<8|int(h[1]))
		if _, err := io.ReadFull(c, msg); err != nil {
			return
		}
		mu.Lock()
		got = msg
		mu.Unlock()
		c.Write(sslv2ServerHello(2))
	})
	rep := Scan(context.Background(), tcpDialer(addr), Options{})
	if len(rep.Errors) > 0 {
		t.Errorf("errors: %q", rep.Errors)
	}
	v := versionOf(t, rep, "SSLv2")
	if !v.Offered || v.Detail != "SERVER-HELLO with 2 cipher specs" {
		t.Errorf("SSLv2 = %+v, want offered with 2 cipher specs", v)
	}
	if o := offered(rep); !slices.Equal(o, []string{"SSLv2"}) {
		t.Errorf("offered = %v, want only SSLv2", o)
	}
	for _, v := range rep.Versions[1:] {
		if v.Detail != "connection closed" && v.Detail != "connection reset" {
			t.Errorf("%s detail = %q, want the connection closed", v.Name, v.Detail)
		}
	}
	// The CLIENT-HELLO as the SSL 2.0 draft has it.
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 9 || got[0] != 1 || got[1] != 0 || got[2] != 2 {
		t.Fatalf("CLIENT-HELLO % x: want type 1, version 0x0002", got)
	}
	specs, sid, chal := int(got[3])<<8|int(got[4]), int(got[5])<<8|int(got[6]), int(got[7])<<8|int(got[8])
	if specs != 3*len(sslv2CipherSpecs) || sid != 0 || chal != 16 || len(got) != 9+specs+sid+chal {
		t.Errorf("CLIENT-HELLO lengths: specs %d, session id %d, challenge %d, message %d", specs, sid, chal, len(got))
	}
}

// TestScanSSLv3Server: a server that speaks only SSL 3.0 and picks
// RC4-SHA; everything else gets a protocol_version alert.
func TestScanSSLv3Server(t *testing.T) {
	var sslv3Hello atomic.Pointer[clientHello]
	addr := serve(t, func(c net.Conn) {
		ch, ok := readClientHello(c)
		if !ok {
			return
		}
		if ch.version != versionSSL3 || !slices.Contains(ch.suites, 0x0005) {
			c.Write(alertRecord(2, 70))
			return
		}
		sslv3Hello.Store(ch)
		c.Write(record(recordHandshake, versionSSL3, serverHelloMsg(versionSSL3, 0x0005, 0, 0, false), 0))
	})
	rep := Scan(context.Background(), tcpDialer(addr), Options{SNI: "xmpp.example"})
	if len(rep.Errors) > 0 {
		t.Errorf("errors: %q", rep.Errors)
	}
	if o := offered(rep); !slices.Equal(o, []string{"SSLv3"}) {
		t.Errorf("offered = %v, want only SSLv3", o)
	}
	v := versionOf(t, rep, "SSLv3")
	if v.Cipher == nil || v.Cipher.Name != "TLS_RSA_WITH_RC4_128_SHA" || v.Cipher.OpenSSLName != "RC4-SHA" {
		t.Errorf("SSLv3 cipher = %+v, want TLS_RSA_WITH_RC4_128_SHA", v.Cipher)
	}
	if !rep.NonForwardSecret {
		t.Error("non-forward-secret = false, want true (RC4-SHA is static RSA)")
	}
	for _, name := range []string{"TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"} {
		if d := versionOf(t, rep, name).Detail; d != "protocol_version alert" {
			t.Errorf("%s detail = %q", name, d)
		}
	}
	ch := sslv3Hello.Load()
	if ch == nil {
		t.Fatal("no SSLv3 hello seen")
	}
	if ch.recordVersion != versionSSL3 || ch.exts != nil {
		t.Errorf("SSLv3 hello: record version 0x%04x, extensions %v; want 0x0300 and none", ch.recordVersion, ch.extList)
	}
	for _, id := range ch.suites {
		if tls12Only(CipherByID(id).Name) {
			t.Errorf("SSLv3 hello offers TLS 1.2 suite %s", CipherByID(id).Name)
		}
	}
}

// TestScanClosingServer: a server that closes every connection at once
// refuses everything; that is not an error.
func TestScanClosingServer(t *testing.T) {
	addr := serve(t, func(c net.Conn) {})
	rep := Scan(context.Background(), tcpDialer(addr), Options{SNI: "xmpp.example", Certificates: true})
	if len(rep.Errors) > 0 {
		t.Errorf("errors: %q", rep.Errors)
	}
	for _, v := range rep.Versions {
		if v.Offered || (v.Detail != "connection closed" && v.Detail != "connection reset") {
			t.Errorf("%+v, want refused by closing", v)
		}
	}
	if len(rep.TLS12Ciphers)+len(rep.TLS13Ciphers) != 0 || rep.ServerPreference != nil || rep.NonForwardSecret {
		t.Errorf("ciphers found on a closing server: %+v", rep)
	}
	for _, c := range rep.Certificates {
		if c.Error == "" || c.SHA256 != "" {
			t.Errorf("certificate %+v, want an error", c)
		}
	}
	if rep.CertificateDependsOnSNI != nil {
		t.Error("certificate comparison without certificates")
	}
	if rep.Connections != 8 {
		t.Errorf("%d connections, want 8 (6 versions, 2 certificates)", rep.Connections)
	}
}

// TestScanGarbageServer: a server that answers with something else than
// TLS (an HTTP error, XML) offers nothing, and each probe is an error.
func TestScanGarbageServer(t *testing.T) {
	for _, answer := range []string{
		"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
		"<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'><stream:error><bad-format xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
		"\x16\x03\x03\x00\x01\x02", // a record too short to hold a ServerHello, then closed
	} {
		addr := serve(t, func(c net.Conn) {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Read(make([]byte, 1024))
			c.Write([]byte(answer))
		})
		rep := Scan(context.Background(), tcpDialer(addr), Options{})
		if o := offered(rep); len(o) > 0 {
			t.Errorf("%q: offered %v", answer, o)
		}
		if len(rep.Errors) != 6 {
			t.Errorf("%q: errors %q, want one per version", answer, rep.Errors)
		}
		for _, e := range rep.Errors {
			t.Logf("%s", e)
		}
	}
}

// TestScanSilentServer: a server that reads and never answers costs one
// timeout per probe, run in parallel, and each is an error.
func TestScanSilentServer(t *testing.T) {
	addr := serve(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
	})
	start := time.Now()
	rep := Scan(context.Background(), tcpDialer(addr), Options{SNI: "xmpp.example", Timeout: 200 * time.Millisecond, Concurrency: 8, Certificates: true})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("scan took %v with a 200ms timeout", d)
	}
	for _, v := range rep.Versions {
		if v.Offered || v.Detail != "no answer within 200ms" {
			t.Errorf("%+v, want a timeout", v)
		}
	}
	if len(rep.Errors) != 6 {
		t.Errorf("errors %q, want 6", rep.Errors)
	}
	for _, c := range rep.Certificates {
		if c.Error != "no answer within 200ms" {
			t.Errorf("certificate error %q, want a timeout", c.Error)
		}
	}
}

// TestScanSlowServer: a server that sends a ServerHello one byte at a
// time, slower than the timeout allows, is cut off by the timeout.
func TestScanSlowServer(t *testing.T) {
	msg := record(recordHandshake, versionTLS12, serverHelloMsg(versionTLS12, 0xC02F, 0, 0, false), 0)
	addr := serve(t, func(c net.Conn) {
		if _, ok := readClientHello(c); !ok {
			return
		}
		for _, b := range msg {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	start := time.Now()
	rep := Scan(context.Background(), tcpDialer(addr), Options{Timeout: 300 * time.Millisecond, Concurrency: 8})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("scan took %v with a 300ms timeout", d)
	}
	if o := offered(rep); len(o) > 0 {
		t.Errorf("offered %v", o)
	}
	if v := versionOf(t, rep, "TLSv1.2"); v.Detail != "no answer within 300ms" {
		t.Errorf("TLSv1.2 = %+v, want a timeout", v)
	}
}

// countingConn counts the bytes the scanner reads.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestScanHostileServer: a server that announces a maximal record and a
// 16 MB ServerHello and then streams data is read only as far as the
// headers.
func TestScanHostileServer(t *testing.T) {
	addr := serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 2048))
		c.Write([]byte{22, 3, 3, 0x48, 0x00, 2, 0xff, 0xff, 0xff})
		junk := make([]byte, 64<<10)
		for range 16 {
			if _, err := c.Write(junk); err != nil {
				return
			}
		}
	})
	var read atomic.Int64
	dial := func(ctx context.Context) (net.Conn, error) {
		c, err := tcpDialer(addr)(ctx)
		if err != nil {
			return nil, err
		}
		return countingConn{c, &read}, nil
	}
	rep := Scan(context.Background(), dial, Options{Certificates: true})
	if o := offered(rep); len(o) > 0 {
		t.Errorf("offered %v", o)
	}
	if d := versionOf(t, rep, "TLSv1.2").Detail; !strings.Contains(d, "exceeds the 4096-byte limit") {
		t.Errorf("TLSv1.2 detail %q", d)
	}
	// 6 hello probes at 9 bytes; the two crypto/tls handshakes read what
	// crypto/tls reads before it gives up on the record (it buffers at
	// most one record header plus what one read returns).
	if n := read.Load(); n > 6*9+2*(maxRecordLen+5+64<<10) {
		t.Errorf("read %d bytes from a hostile server", n)
	}
	t.Logf("read %d bytes in total", read.Load())
}

// TestScanCanceled: canceling the context ends a scan at once, even
// against a silent server with a long timeout.
func TestScanCanceled(t *testing.T) {
	addr := serve(t, func(c net.Conn) {
		io.Copy(io.Discard, c)
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	rep := Scan(ctx, tcpDialer(addr), Options{Timeout: time.Minute})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("canceled scan took %v", d)
	}
	for _, v := range rep.Versions {
		if v.Offered || !strings.HasPrefix(v.Detail, "scan canceled") {
			t.Errorf("%+v, want canceled", v)
		}
	}
}

// TestScanDialFailure: when the dialer fails (for STARTTLS: the XMPP
// negotiation failed), nothing is known and every probe is an error, not
// a refusal.
func TestScanDialFailure(t *testing.T) {
	var calls atomic.Int64
	dial := func(ctx context.Context) (net.Conn, error) {
		calls.Add(1)
		return nil, errors.New("stream error: policy-violation")
	}
	rep := Scan(context.Background(), dial, Options{})
	if len(rep.Errors) != 6 || !strings.Contains(rep.Errors[0], "connect: stream error: policy-violation") {
		t.Errorf("errors %q", rep.Errors)
	}
	if int(calls.Load()) != rep.Connections {
		t.Errorf("%d dials, %d connections reported", calls.Load(), rep.Connections)
	}
	rep = Scan(context.Background(), nil, Options{})
	if len(rep.Errors) != 1 || len(rep.Versions) != 6 {
		t.Errorf("nil dialer: %+v", rep)
	}
}

// TestScanConcurrency: no more probes than Options.Concurrency are open
// at once.
func TestScanConcurrency(t *testing.T) {
	_, ecC := certs(t)
	addr := goServer(t, tlsConfigAll(ecC))
	var open, peak atomic.Int64
	dial := func(ctx context.Context) (net.Conn, error) {
		c, err := tcpDialer(addr)(ctx)
		if err != nil {
			return nil, err
		}
		n := open.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		return &closeHook{Conn: c, onClose: func() { open.Add(-1) }}, nil
	}
	for _, limit := range []int{1, 2} {
		peak.Store(0)
		rep := Scan(context.Background(), dial, Options{Concurrency: limit})
		if len(rep.Errors) > 0 {
			t.Errorf("errors %q", rep.Errors)
		}
		if p := peak.Load(); p > int64(limit) {
			t.Errorf("concurrency %d: %d connections open at once", limit, p)
		}
	}
}

// closeHook calls onClose once when the connection is closed.
type closeHook struct {
	net.Conn
	once    sync.Once
	onClose func()
}

func (c *closeHook) Close() error {
	c.once.Do(c.onClose)
	return c.Conn.Close()
}
