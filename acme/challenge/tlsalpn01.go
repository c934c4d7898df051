package challenge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"
	"github.com/miekg/dns"

	"github.com/xmppcert/xmppcert/internal/oneline"
)

// TLSALPN01 solves tls-alpn-01 (RFC 8737): from the first Present to the
// last CleanUp it listens on Addr and answers TLS handshakes that offer
// only the "acme-tls/1" protocol (acmez.ACMETLS1Protocol) with a
// self-signed certificate for the requested name carrying the
// acmeIdentifier extension (acmez.TLSALPN01ChallengeCert). Any other
// handshake fails; no application data is ever exchanged.
//
// With Addr empty nothing listens: a daemon that owns port 443 puts
// GetCertificate in front of its own certificate selection.
//
// Use it through a pointer; it must not be copied after first use. It is
// safe for concurrent use.
type TLSALPN01 struct {
	// Addr is the listen address (--tls-alpn-listen), usually ":443".
	Addr string

	mu    sync.Mutex
	certs map[string]*tls.Certificate // SNI name -> challenge certificate
	srv   *alpnServer
}

// alpnServer is one run of the listener, from a first Present to a last
// CleanUp.
type alpnServer struct {
	ln net.Listener
	wg sync.WaitGroup // the accept loop and each connection

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// track adds c to the open connections, or reports false when the
// server is stopping.
func (a *alpnServer) track(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	if a.conns == nil {
		a.conns = make(map[net.Conn]struct{})
	}
	a.conns[c] = struct{}{}
	return true
}

func (a *alpnServer) untrack(c net.Conn) {
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
}

// stop closes the listener and every open connection, and waits for
// their goroutines.
func (a *alpnServer) stop() {
	a.mu.Lock()
	a.closed = true
	a.ln.Close()
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// Validate checks Addr without listening.
func (s *TLSALPN01) Validate() error {
	if s.Addr == "" {
		return nil
	}
	return validateListen("tls-alpn-01", s.Addr)
}

// Present makes the challenge certificate and starts the listener when it
// is not running yet.
func (s *TLSALPN01) Present(ctx context.Context, chal acme.Challenge) error {
	name, err := alpnServerName(chal.Identifier)
	if err != nil {
		return err
	}
	cert, err := acmez.TLSALPN01ChallengeCert(chal)
	if err != nil {
		return fmt.Errorf("tls-alpn-01: making the challenge certificate for %s: %w", chal.Identifier.Value, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Addr != "" && s.srv == nil {
		ln, err := listen(ctx, "tls-alpn-01", s.Addr,
			"is a web server or an XMPP server's direct TLS on "+s.Addr+"? tls-alpn-01 needs the port for itself; use http-01 or dns-01")
		if err != nil {
			return err
		}
		s.srv = &alpnServer{ln: ln}
		s.srv.wg.Add(1)
		go s.serve(s.srv)
	}
	if s.certs == nil {
		s.certs = make(map[string]*tls.Certificate)
	}
	s.certs[name] = cert
	return nil
}

// CleanUp forgets the challenge certificate and stops the listener after
// the last one. It runs even when ctx is already cancelled.
func (s *TLSALPN01) CleanUp(ctx context.Context, chal acme.Challenge) error {
	name, err := alpnServerName(chal.Identifier)
	if err != nil {
		return nil // Present did nothing for it
	}
	s.mu.Lock()
	delete(s.certs, name)
	var srv *alpnServer
	if len(s.certs) == 0 && s.srv != nil {
		srv, s.srv = s.srv, nil
		srv.ln.Close() // free the port for a Present right after this
	}
	s.mu.Unlock()
	if srv != nil {
		srv.stop()
	}
	return nil
}

// GetCertificate returns the challenge certificate for a ClientHello that
// offers acme-tls/1 for a presented name, and an error for any other, as
// tls.Config.GetCertificate.
func (s *TLSALPN01) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if !slices.Contains(hello.SupportedProtos, acmez.ACMETLS1Protocol) {
		return nil, errors.New("tls-alpn-01: client did not offer acme-tls/1")
	}
	s.mu.Lock()
	cert := s.certs[strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))]
	s.mu.Unlock()
	if cert == nil {
		return nil, fmt.Errorf("tls-alpn-01: no challenge for %q", oneline.Clip(hello.ServerName, 80))
	}
	return cert, nil
}

func (s *TLSALPN01) serve(srv *alpnServer) {
	defer srv.wg.Done()
	conf := &tls.Config{
		NextProtos:     []string{acmez.ACMETLS1Protocol},
		GetCertificate: s.GetCertificate,
		MinVersion:     tls.VersionTLS12,
	}
	for {
		c, err := srv.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // listener closed
		}
		if !srv.track(c) {
			c.Close()
			return
		}
		srv.wg.Add(1)
		go func() {
			defer srv.wg.Done()
			defer srv.untrack(c)
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
			defer cancel()
			tc := tls.Server(c, conf)
			if tc.HandshakeContext(ctx) == nil {
				// The validator only needs the handshake; say goodbye.
				tc.Close()
			}
		}()
	}
}

// alpnServerName is the SNI under which the CA asks for identifier: the
// DNS name itself, or the reverse-mapping name of an IP address (RFC
// 8738 §6).
func alpnServerName(id acme.Identifier) (string, error) {
	switch id.Type {
	case "dns", "":
		if id.Value == "" {
			return "", errors.New("tls-alpn-01: empty identifier")
		}
		return strings.ToLower(strings.TrimSuffix(id.Value, ".")), nil
	case "ip":
		rev, err := dns.ReverseAddr(id.Value)
		if err != nil {
			return "", fmt.Errorf("tls-alpn-01: invalid IP identifier %q", oneline.Clip(id.Value, 80))
		}
		return strings.TrimSuffix(rev, "."), nil
	default:
		return "", fmt.Errorf("tls-alpn-01 cannot validate a %s identifier", oneline.Clip(id.Type, 40))
	}
}
