package localca

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/xmppcert/xmppcert/internal/httpserve"
)

// Server is the CA's ACME server over HTTPS (xmppcert ca serve): Handler
// behind a certificate the CA issues for the names clients reach it by.
type Server struct {
	ln   net.Listener
	srv  *httpserve.Server
	host string
}

// ClientHost is the HOST:PORT that clients reach a server listening on
// listen (HOST:PORT) at: localhost for an unspecified host.
func ClientHost(listen string) string {
	host, port, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// Listen opens the CA's ACME server on listen (HOST:PORT; port 0 picks a
// free one) with o, whose Host it sets to where clients reach it
// (ClientHost, with the port bound). Its certificate names that host,
// localhost and 127.0.0.1.
func (ca *CA) Listen(ctx context.Context, listen string, o ServeOptions) (*Server, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(ClientHost(listen))
	if port == "0" {
		port = strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	}
	o.Host = net.JoinHostPort(host, port)
	h, err := ca.Handler(o)
	if err != nil {
		ln.Close()
		return nil, err
	}
	names := []string{host}
	if host != "localhost" {
		names = append(names, "localhost")
	}
	if ip := net.ParseIP(host); ip == nil || !ip.Equal(net.IPv4(127, 0, 0, 1)) {
		names = append(names, "127.0.0.1")
	}
	cert, err := ca.ServerCertificate(ctx, names)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("issuing the server's own certificate: %w", err)
	}
	srv := httpserve.New(h, httpserve.Limits{}, nil)
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	return &Server{ln: ln, srv: srv, host: o.Host}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// DirectoryURL is the URL of the server's ACME directory.
func (s *Server) DirectoryURL() string { return "https://" + s.host + ACMEPath }

// Serve serves until ctx ends, then shuts the server down, giving the
// requests in flight five seconds, and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	served, shut := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(shut)
		select {
		case <-ctx.Done():
		case <-served:
			return
		}
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.srv.Shutdown(shutdown)
	}()
	err := s.srv.ServeTLS(s.ln, "", "")
	close(served)
	<-shut
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close closes a server that was not served.
func (s *Server) Close() error { return s.ln.Close() }
