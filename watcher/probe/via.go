package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"

	"golang.org/x/net/proxy"
)

// ParseVia checks a SOCKS5 proxy URL as Options.Via takes it:
// socks5://[USER[:PASSWORD]@]HOST:PORT (socks5h is the same), nothing
// after the port. The proxy is a vantage point: the probe's connections
// leave from it, so what it sees is what the proxy's network is shown.
func ParseVia(via string) (*url.URL, error) {
	u, err := url.Parse(via)
	if err != nil {
		return nil, errors.New("not a URL: give socks5://HOST:PORT")
	}
	if u.Scheme != "socks5" && u.Scheme != "socks5h" {
		return nil, fmt.Errorf("%q: only SOCKS5 proxies are supported (socks5://HOST:PORT)", u.Redacted())
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: give socks5://HOST:PORT with nothing after the port", u.Redacted())
	}
	if err := hostPort(u.Host); err != nil {
		return nil, fmt.Errorf("%q: %v (give socks5://HOST:PORT, e.g. socks5://127.0.0.1:9050 for Tor)", u.Redacted(), err)
	}
	return u, nil
}

// viaDialer dials through the SOCKS5 proxy u, reaching the proxy with
// forward (nil means a net.Dialer). The address asked of the proxy is
// the one the probe resolved here: the vantage sees the same addresses
// over its own network path.
func viaDialer(u *url.URL, forward func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	var auth *proxy.Auth
	if u.User != nil {
		auth = &proxy.Auth{User: u.User.Username()}
		auth.Password, _ = u.User.Password()
	}
	if forward == nil {
		forward = (&net.Dialer{}).DialContext
	}
	// SOCKS5 fails only for a scheme it does not know; "tcp" it knows.
	d, _ := proxy.SOCKS5("tcp", u.Host, auth, contextDialer(forward))
	return d.(proxy.ContextDialer).DialContext
}

// contextDialer is a dial function as a proxy.ContextDialer.
type contextDialer func(ctx context.Context, network, addr string) (net.Conn, error)

func (f contextDialer) Dial(network, addr string) (net.Conn, error) {
	return f(context.Background(), network, addr)
}

func (f contextDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}
