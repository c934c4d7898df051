package localca

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	stepacme "github.com/smallstep/certificates/acme"
)

// maxChallengeBody bounds what ca serve reads of an http-01 answer. A key
// authorization is under 100 bytes; step-ca reads whatever it is given,
// and a responder answering 200 MiB took the server to 656 MB.
const maxChallengeBody = 16 << 10

// maxChallengeRedirects bounds the redirects an http-01 validation follows.
const maxChallengeRedirects = 10

// validationClient is how ca serve reaches what it validates (step-ca's
// acme.Client). It reads at most maxChallengeBody of an http-01 answer,
// and follows a redirect only to http or https on the standard ports (80,
// 443) of an address that is not loopback, private, link-local or
// unspecified, checked when the connection is made (so that a name
// resolving there is refused too): a responder cannot point the CA at its
// own host or internal network (blind SSRF). With ServeOptions.ValidateIP,
// HTTPPort or TLSALPNPort it connects to that address and those ports
// instead of the ones DNS and RFC 8555 give.
type validationClient struct {
	ip                    string
	httpPort, tlsALPNPort int
	http                  *http.Client
	dialer                *net.Dialer
}

func newValidationClient(o ServeOptions) *validationClient {
	c := &validationClient{ip: o.ValidateIP, httpPort: o.HTTPPort, tlsALPNPort: o.TLSALPNPort,
		dialer: &net.Dialer{Timeout: 10 * time.Second}}
	c.http = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: c.dialHTTP,
			// As step-ca and public CAs: a redirect to https is not
			// validated by its certificate; the key authorization is
			// the proof.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxChallengeRedirects {
				return fmt.Errorf("more than %d redirects", maxChallengeRedirects)
			}
			if err := redirectAllowed(req); err != nil {
				return err
			}
			*req = *req.WithContext(context.WithValue(req.Context(), redirectedKey{}, true))
			return nil
		},
	}
	return c
}

// redirectedKey marks the context of a request that follows a redirect.
type redirectedKey struct{}

// ErrRedirectRefused is why a redirect of an http-01 validation was not
// followed.
var ErrRedirectRefused = errors.New("redirect refused: only to http or https on port 80 or 443 of a public address")

// redirectAllowed checks a redirect's scheme and port, and its host when
// that is an address; a name is checked when it is dialled.
func redirectAllowed(req *http.Request) error {
	u := req.URL
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w (to scheme %q)", ErrRedirectRefused, u.Scheme)
	}
	if p := u.Port(); p != "" && p != "80" && p != "443" {
		return fmt.Errorf("%w (to port %s)", ErrRedirectRefused, p)
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !public(ip) {
		return fmt.Errorf("%w (to %s)", ErrRedirectRefused, ip)
	}
	return nil
}

// public reports whether ip may be reached by a redirect.
func public(ip netip.Addr) bool {
	ip = ip.Unmap()
	return !(ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast())
}

// dialHTTP connects an http-01 request: to the validation address and
// port when set, and, after a redirect, only to a public address.
func (c *validationClient) dialHTTP(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.ip != "" || c.httpPort != 0 {
		addr = c.target(addr, c.httpPort, 80)
	}
	d := *c.dialer
	if redirected, _ := ctx.Value(redirectedKey{}).(bool); redirected {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !public(ap.Addr()) {
				return fmt.Errorf("%w (to %s)", ErrRedirectRefused, address)
			}
			return nil
		}
	}
	return d.DialContext(ctx, network, addr)
}

// target rewrites host:port to the validation address and port (or def
// when no port is set).
func (c *validationClient) target(addr string, port, def int) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if c.ip != "" {
		host = c.ip
	}
	if port == 0 {
		port = def
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// Get implements acme.Client: the answer's body is cut at
// maxChallengeBody, which no key authorization reaches.
func (c *validationClient) Get(url string) (*http.Response, error) {
	resp, err := c.http.Get(url)
	if err != nil {
		return nil, err
	}
	resp.Body = limitedBody{io.LimitReader(resp.Body, maxChallengeBody), resp.Body}
	return resp, nil
}

// compile-time check that validationClient is what step-ca expects.
var _ stepacme.Client = (*validationClient)(nil)

type limitedBody struct {
	io.Reader
	io.Closer
}

// LookupTxt implements acme.Client.
func (c *validationClient) LookupTxt(name string) ([]string, error) { return net.LookupTXT(name) }

// TLSDial implements acme.Client (tls-alpn-01).
func (c *validationClient) TLSDial(network, addr string, config *tls.Config) (*tls.Conn, error) {
	if c.ip != "" || c.tlsALPNPort != 0 {
		addr = c.target(addr, c.tlsALPNPort, 443)
	}
	return tls.DialWithDialer(c.dialer, network, addr, config)
}
