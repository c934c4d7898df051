package probe

import (
	"context"
	"net"
	"strings"
	"testing"
)

// TestParseVia: SOCKS5 URLs with a port are taken; anything else is
// refused with the reason, never quoting a password.
func TestParseVia(t *testing.T) {
	for _, ok := range []string{"socks5://127.0.0.1:9050", "socks5h://tor.example:9050", "socks5://u:p@[::1]:1080", "socks5://127.0.0.1:1080/"} {
		if _, err := ParseVia(ok); err != nil {
			t.Errorf("ParseVia(%q): %v", ok, err)
		}
	}
	for in, want := range map[string]string{
		"http://127.0.0.1:3128":             "only SOCKS5 proxies are supported",
		"socks4://127.0.0.1:1080":           "only SOCKS5 proxies are supported",
		"socks5://127.0.0.1":                "not HOST:PORT",
		"socks5://:1080":                    "no host",
		"socks5://127.0.0.1:0":              "is not a number from 1 to 65535",
		"socks5://127.0.0.1:1080/x":         "nothing after the port",
		"socks5://127.0.0.1:1080?a=b":       "nothing after the port",
		"socks5://u:SECRET@127.0.0.1":       "not HOST:PORT",
		"socks5://u:SECRET@127.0.0.1:1080x": "not a URL",
		"%zz":                               "not a URL",
		"127.0.0.1:1080":                    "not a URL",
	} {
		_, err := ParseVia(in)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("ParseVia(%q) = %v; want an error saying %q without the password", in, err, want)
		}
	}
	if err := Validate("example.org", Options{Via: "http://x:1"}); err == nil || err.(*InputError).Field != "via" {
		t.Errorf("Validate with an HTTP proxy: %v; want an InputError for via", err)
	}
}

// TestViaUnreachable: a proxy that is not there fails the endpoint as
// unreachable; the probe says which proxy it tried, password removed.
func TestViaUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := Probe(context.Background(), "example.org", Options{Connect: "127.0.0.1:5222", Via: "socks5://u:SECRET@" + addr})
	if r.OK || r.Failure != CodeUnreachable || r.Resolution.Via != "socks5://u:xxxxx@"+addr {
		t.Errorf("through a proxy that is not there: ok %v, failure %q, via %q", r.OK, r.Failure, r.Resolution.Via)
	}
}

// FuzzParseVia: any string is taken or refused without a panic; what is
// taken is SOCKS5 with a host and port, and its redacted form hides the
// password.
func FuzzParseVia(f *testing.F) {
	for _, s := range []string{"socks5://127.0.0.1:9050", "socks5h://u:p@h:1", "http://x:1", "socks5://[::1]:1080/", "%", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseVia(s)
		if err != nil {
			return
		}
		if u.Scheme != "socks5" && u.Scheme != "socks5h" || u.Port() == "" || u.Hostname() == "" {
			t.Errorf("ParseVia(%q) took %#v", s, u)
		}
		if p, ok := u.User.Password(); ok && p != "" && p != "xxxxx" && strings.Contains(u.Redacted(), ":"+p+"@") {
			t.Errorf("ParseVia(%q): Redacted %q shows the password", s, u.Redacted())
		}
	})
}
