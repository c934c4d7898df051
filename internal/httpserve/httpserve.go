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
	"time"

	"golang.org/x/net/netutil"
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
	// more wait in the kernel's queue until one ends.
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

// Server returns an http.Server for h under limits l; errorLog may be
// nil. Serve it on Listener(ln, l).
func Server(h http.Handler, l Limits, errorLog *log.Logger) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           http.MaxBytesHandler(h, l.MaxBody),
		ReadHeaderTimeout: l.Header,
		ReadTimeout:       l.Read,
		WriteTimeout:      l.Write,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          errorLog,
	}
}

// Listener caps the connections accepted from ln at once (l.MaxConns).
func Listener(ln net.Listener, l Limits) net.Listener {
	return netutil.LimitListener(ln, l.withDefaults().MaxConns)
}
