package testxmpp

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// StartTLSProxy listens on a free port of 127.0.0.1 and, for every
// connection it accepts, opens an XMPP stream to target with opts (its
// DirectTLS is ignored), negotiates STARTTLS up to the server's
// <proceed/>, and from then on relays bytes both ways unchanged. A TLS
// client connecting to the proxy therefore handshakes, as if on a
// direct TLS port, with the TLS the server offers after STARTTLS: the
// way to point tools that cannot speak a stream's STARTTLS at it
// (testssl.sh 3.0 has no --starttls xmpp-server; TestSSL uses this for
// it). It returns the proxy's address; the proxy and its connections
// close when the test ends. Each relayed connection lasts at most a
// minute.
func StartTLSProxy(t testing.TB, target string, opts StreamOptions) string {
	t.Helper()
	opts.DirectTLS = nil
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(Loopback, "0"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
	)
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	relay := func(client net.Conn) {
		defer wg.Done()
		defer client.Close()
		track(client, true)
		defer track(client, false)
		s, err := OpenStream(ctx, target, opts)
		if err != nil {
			t.Logf("testxmpp.StartTLSProxy: %s: %v", target, err)
			return
		}
		server := s.conn
		defer server.Close()
		track(server, true)
		defer track(server, false)
		if err := s.proceed(); err != nil {
			t.Logf("testxmpp.StartTLSProxy: %s: %v", target, err)
			return
		}
		deadline := time.Now().Add(time.Minute)
		server.SetDeadline(deadline)
		client.SetDeadline(deadline)
		done := make(chan struct{}, 2)
		pipe := func(dst, src net.Conn) {
			io.Copy(dst, src)
			// Half-close, so that the other direction may finish.
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			done <- struct{}{}
		}
		go pipe(server, client)
		go pipe(client, server)
		<-done
		<-done
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go relay(c)
		}
	}()
	return ln.Addr().String()
}
