package acme_test

import (
	"testing"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/xmppaddr"
)

func TestParseServeEndpoint(t *testing.T) {
	for _, c := range []struct {
		spec string
		want acme.ServeEndpoint
	}{
		{"xmpp.example.org:5222", acme.ServeEndpoint{Addr: "xmpp.example.org:5222", Service: xmppaddr.ServiceClient}},
		{"xmpp-server:127.0.0.1:5269", acme.ServeEndpoint{Addr: "127.0.0.1:5269", Service: xmppaddr.ServiceServer}},
		{"xmpps-client:[::1]:5223", acme.ServeEndpoint{Addr: "[::1]:5223", Service: xmppaddr.ServiceClient, DirectTLS: true}},
		{"xmpps-server:xmpp.example.org:5270", acme.ServeEndpoint{Addr: "xmpp.example.org:5270", Service: xmppaddr.ServiceServer, DirectTLS: true}},
	} {
		got, err := acme.ParseServeEndpoint(c.spec)
		if err != nil || got != c.want {
			t.Errorf("ParseServeEndpoint(%q) = %+v, %v; want %+v", c.spec, got, err, c.want)
		}
		if again, err := acme.ParseServeEndpoint(got.String()); err != nil || again != got {
			t.Errorf("%q: String %q reads back as %+v, %v", c.spec, got.String(), again, err)
		}
	}
	for _, spec := range []string{"", "xmpp.example.org", ":5222", "xmpp-client:", "xmpp-client:host", "host:0", "host:65536", "host:05222", "host:x",
		"smtp:host:25", "xmpp-server:[::1]", "a b:5222", "[::1]:5222:1"} {
		if got, err := acme.ParseServeEndpoint(spec); err == nil {
			t.Errorf("ParseServeEndpoint(%q) = %+v; want an error", spec, got)
		}
	}
}

// FuzzParseServeEndpoint: no input panics, and every endpoint accepted
// reads back the same from its String.
func FuzzParseServeEndpoint(f *testing.F) {
	for _, s := range []string{"xmpp.example.org:5222", "xmpps-server:[::1]:5270", "xmpp-client:", "smtp:host:25", "[", "host:99999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		e, err := acme.ParseServeEndpoint(spec)
		if err != nil {
			return
		}
		again, err := acme.ParseServeEndpoint(e.String())
		if err != nil || again != e {
			t.Fatalf("%q parsed as %+v, whose String %q reads back as %+v, %v", spec, e, e.String(), again, err)
		}
	})
}
