// Package httpserve holds the limits the long-running HTTP servers of
// xmppcert (ca serve's ACME server, the daemon's dashboard and API) run
// with, so that clients that send too much, too slowly or nothing at all
// cannot hold the server's memory or its descriptors: every request body
// is bounded, every phase of a connection has a timeout, and the number
// of connections is capped.
package httpserve

import (
	"log"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits are a server's bounds; the zero value of a field takes its
// default.
type Limits struct {
	// MaxBody bounds a request body (DefaultMaxBody): a longer one is
	// answered 413 once the handler reads past it.
	MaxBody int64
	// Header bounds reading a request's headers, and the TLS handshake
	// (DefaultHeader).
	Header time.Duration
	// Read bounds reading a whole request, and Write writing its answer
	// (DefaultRead, DefaultWrite).
	Read, Write time.Duration
	// Idle bounds a kept-alive connection's wait for its next request
	// (DefaultIdle).
	Idle time.Duration
	// MaxConns caps the connections served at once (DefaultMaxConns);
	// see Server for what happens at the cap.
	MaxConns int
}

// Defaults: far above what an ACME client or a browser on the dashboard
// needs (the largest ACME request, a CSR in a JWS, is a few KB), far
// below what would let idle or trickling clients pile up.
const (
	DefaultMaxBody  = 1 << 20
	DefaultHeader   = 10 * time.Second
	DefaultRead     = 30 * time.Second
	DefaultWrite    = 60 * time.Second
	DefaultIdle     = 60 * time.Second
	DefaultMaxConns = 256
)

func (l Limits) withDefaults() Limits {
	set := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	set(&l.Header, DefaultHeader)
	set(&l.Read, DefaultRead)
	set(&l.Write, DefaultWrite)
	set(&l.Idle, DefaultIdle)
	if l.MaxBody <= 0 {
		l.MaxBody = DefaultMaxBody
	}
	if l.MaxConns <= 0 {
		l.MaxConns = DefaultMaxConns
	}
	return l
}

// Server is an http.Server under Limits. Its Serve and ServeTLS cap the
// connections served at once at MaxConns. When all are taken and a new
// client connects, the connection that has waited longest without a
// request in progress (one that has not finished its first request, or a
// kept-alive one between requests) is closed to make room: clients that
// connect and send nothing cannot lock out one that does, however many
// they open. Only when every connection is in the middle of a request
// does the new one wait until a request ends.
type Server struct {
	*http.Server
	conns *connCap
}

// New returns a Server for h under limits l; errorLog may be nil.
func New(h http.Handler, l Limits, errorLog *log.Logger) *Server {
	l = l.withDefaults()
	c := newConnCap(l.MaxConns)
	return &Server{
		Server: &http.Server{
			Handler:           http.MaxBytesHandler(h, l.MaxBody),
			ReadHeaderTimeout: l.Header,
			ReadTimeout:       l.Read,
			WriteTimeout:      l.Write,
			IdleTimeout:       l.Idle,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          errorLog,
			ConnState:         c.track,
		},
		conns: c,
	}
}

// Serve serves on ln with the connection cap.
func (s *Server) Serve(ln net.Listener) error {
	return s.Server.Serve(&capListener{Listener: ln, cap: s.conns})
}

// ServeTLS serves TLS on ln with the connection cap; certFile and keyFile
// as http.Server.ServeTLS takes them.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	return s.Server.ServeTLS(&capListener{Listener: ln, cap: s.conns}, certFile, keyFile)
}

// connCap counts the open connections and knows which of them wait
// without a request in progress, and since when.
type connCap struct {
	max int

	mu      sync.Mutex
	freed   *sync.Cond
	open    int
	waiting map[*cappedConn]time.Time
	// blocked counts the accepted connections waiting for room.
	blocked int
	// closed is set when the listener is closed.
	closed bool
}

func newConnCap(max int) *connCap {
	c := &connCap{max: max, waiting: map[*cappedConn]time.Time{}}
	c.freed = sync.NewCond(&c.mu)
	return c
}

// admit makes room for one more connection: at the cap it closes the
// connection waiting longest, or waits until one closes or starts
// waiting.
//
// It returns false, admitting nothing, once the listener is closed: a
// server shutting down must not wait for room.
func (c *connCap) admit() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.open >= c.max {
		if c.closed {
			return false
		}
		var oldest *cappedConn
		var since time.Time
		for conn, t := range c.waiting {
			if oldest == nil || t.Before(since) {
				oldest, since = conn, t
			}
		}
		if oldest == nil {
			c.blocked++
			c.freed.Wait()
			c.blocked--
			continue
		}
		delete(c.waiting, oldest)
		c.mu.Unlock()
		oldest.Close()
		c.mu.Lock()
	}
	c.open++
	return true
}

// close wakes an admit waiting for room, for good.
func (c *connCap) close() {
	c.mu.Lock()
	c.closed = true
	c.freed.Broadcast()
	c.mu.Unlock()
}

// track is the server's ConnState hook: a new or idle connection may be
// closed to make room, an active one may not.
func (c *connCap) track(nc net.Conn, state http.ConnState) {
	conn := unwrapCapped(nc)
	if conn == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch state {
	case http.StateNew, http.StateIdle:
		if !conn.closed {
			c.waiting[conn] = time.Now()
			c.freed.Signal() // an admit waiting for room may close this one
		}
	default:
		delete(c.waiting, conn)
	}
}

// unwrapCapped finds the cappedConn under the connection the server
// reports (a *tls.Conn over it, for ServeTLS).
func unwrapCapped(nc net.Conn) *cappedConn {
	for nc != nil {
		if c, ok := nc.(*cappedConn); ok {
			return c
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return nil
		}
		nc = u.NetConn()
	}
	return nil
}

// capListener admits each accepted connection under the cap.
type capListener struct {
	net.Listener
	cap *connCap
}

func (l *capListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if !l.cap.admit() {
		nc.Close()
		return nil, net.ErrClosed
	}
	return &cappedConn{Conn: nc, cap: l.cap}, nil
}

// Close closes the listener and wakes an Accept waiting for room:
// http.Server's Close and Shutdown wait for Serve to return.
func (l *capListener) Close() error {
	err := l.Listener.Close()
	l.cap.close()
	return err
}

// cappedConn gives its place back when closed, once.
type cappedConn struct {
	net.Conn
	cap    *connCap
	closed bool // under cap.mu
}

func (c *cappedConn) Close() error {
	err := c.Conn.Close()
	c.cap.mu.Lock()
	if !c.closed {
		c.closed = true
		c.cap.open--
		delete(c.cap.waiting, c)
		c.cap.freed.Signal()
	}
	c.cap.mu.Unlock()
	return err
}
