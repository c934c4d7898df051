package challenge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mholt/acmez/v3/acme"

	"github.com/xmppcert/xmppcert/internal/oneline"
)

const (
	shutdownTimeout   = 5 * time.Second
	handshakeTimeout  = 10 * time.Second
	readHeaderTimeout = 10 * time.Second
)

// HTTP01 solves http-01 by answering
// GET /.well-known/acme-challenge/TOKEN with the key authorization, from
// its own HTTP listener on Addr. The listener runs from the first
// Present to the last CleanUp, so one HTTP01 serves every name of an
// order at once. Only presented tokens are answered; every other request
// gets 404.
//
// With Addr empty nothing listens: a daemon that already serves port 80
// mounts the HTTP01 (an http.Handler) at /.well-known/acme-challenge/.
//
// Use it through a pointer; it must not be copied after first use. It is
// safe for concurrent use.
type HTTP01 struct {
	// Addr is the listen address (--http-listen): ":80", or e.g.
	// "127.0.0.1:5002" behind a proxy that forwards port 80.
	Addr string

	mu     sync.Mutex
	tokens map[string]string // token -> key authorization
	srv    *http.Server
	ln     net.Listener
	done   chan struct{} // closed when srv's Serve returns
}

// Validate checks Addr without listening.
func (s *HTTP01) Validate() error {
	if s.Addr == "" {
		return nil
	}
	return validateListen("http-01", s.Addr)
}

// Present starts serving the challenge's token, and the listener when
// it is not running yet.
func (s *HTTP01) Present(ctx context.Context, chal acme.Challenge) error {
	if !validToken(chal.Token) {
		return fmt.Errorf("http-01: the CA sent an invalid token %q", oneline.Clip(chal.Token, 80))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Addr != "" && s.srv == nil {
		ln, err := listen(ctx, "http-01", s.Addr,
			"is a web server on "+s.Addr+"? write the challenge into its document root instead (webroot)")
		if err != nil {
			return err
		}
		s.srv = &http.Server{
			Handler:           s,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       readHeaderTimeout,
			WriteTimeout:      readHeaderTimeout,
			IdleTimeout:       readHeaderTimeout,
		}
		s.ln = ln
		s.done = make(chan struct{})
		go func(srv *http.Server, done chan struct{}) {
			defer close(done)
			_ = srv.Serve(ln) // returns http.ErrServerClosed after Shutdown
		}(s.srv, s.done)
	}
	if s.tokens == nil {
		s.tokens = make(map[string]string)
	}
	s.tokens[chal.Token] = chal.KeyAuthorization
	return nil
}

// CleanUp stops serving the challenge's token, and stops the listener
// after the last one. It runs even when ctx is already cancelled.
func (s *HTTP01) CleanUp(ctx context.Context, chal acme.Challenge) error {
	s.mu.Lock()
	delete(s.tokens, chal.Token)
	var srv *http.Server
	var done chan struct{}
	if len(s.tokens) == 0 && s.srv != nil {
		srv, done = s.srv, s.done
		// Free the port now, so that a Present right after this
		// can listen again while Shutdown drains connections.
		s.ln.Close()
		s.srv, s.ln, s.done = nil, nil, nil
	}
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil // the listener, closed above
	}
	if err != nil {
		srv.Close()
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	if err != nil {
		return fmt.Errorf("http-01: stopping the listener on %s: %w", s.Addr, err)
	}
	return nil
}

// ServeHTTP answers GET and HEAD /.well-known/acme-challenge/TOKEN for
// a presented TOKEN with its key authorization, and 404 otherwise.
func (s *HTTP01) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, "/.well-known/acme-challenge/")
	if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	keyAuth, ok := s.tokens[token]
	s.mu.Unlock()
	if !ok || token == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(keyAuth))
}

// validToken reports whether a challenge token is safe to use as a file
// name and URL path segment: RFC 8555 tokens are base64url, at least 128
// bits of entropy.
func validToken(token string) bool {
	if token == "" || len(token) > 512 {
		return false
	}
	for _, c := range token {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// validateListen checks a listen address's form.
func validateListen(what, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s listen address %q: want host:port or :port", what, addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return fmt.Errorf("%s listen address %q: invalid port", what, addr)
	}
	return nil
}

// listen opens a TCP listener, turning the usual failures into advice:
// inUse says what probably holds the port.
func listen(ctx context.Context, what, addr, inUse string) (net.Listener, error) {
	if err := validateListen(what, addr); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	switch {
	case err == nil:
		return ln, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("%s: cannot listen on %s: address in use: %s", what, addr, inUse)
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("%s: cannot listen on %s: permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE", what, addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, fmt.Errorf("%s: cannot listen on %s: no such local address", what, addr)
	default:
		// Drop the "listen tcp ADDR:" the message already says.
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err
		}
		return nil, fmt.Errorf("%s: cannot listen on %s: %v", what, addr, err)
	}
}
