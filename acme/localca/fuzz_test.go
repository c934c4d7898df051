package localca

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/acme"
)

// FuzzOrderIdentifiers feeds hostile new-order bodies to the order
// policy's reading and filters: it must never panic, and whatever passes
// the canonical-form check and the --allow-domain filter must be a DNS
// name under the allowed domain.
func FuzzOrderIdentifiers(f *testing.F) {
	f.Add(`{"protected":"e30","payload":"eyJpZGVudGlmaWVycyI6W3sidHlwZSI6ImRucyIsInZhbHVlIjoiZXhhbXBsZS5vcmcifV19","signature":""}`)
	f.Add(`e30.eyJpZGVudGlmaWVycyI6W119.`)
	f.Add(`{"payload":"", "Payload":"x"}`)
	f.Fuzz(func(t *testing.T, body string) {
		order, err := parseOrder([]byte(body))
		if err != nil {
			return
		}
		for _, id := range order.Identifiers {
			if canonicalIdentifier(id) != nil || id.Type != "dns" || !domainAllowed(id.Value, []string{"example.org"}) {
				continue
			}
			c, err := acme.CanonicalName(strings.TrimPrefix(id.Value, "*."))
			if err != nil || (c != "example.org" && !strings.HasSuffix(c, ".example.org")) {
				t.Fatalf("%q allowed under example.org (canonical %q, %v)", id.Value, c, err)
			}
		}
	})
}

// FuzzCanonicalIdentifier: an identifier the check accepts reads the same
// to every later step: a DNS name is its own canonical form, in ASCII
// without upper case, and an IP address is netip's form of itself.
func FuzzCanonicalIdentifier(f *testing.F) {
	for _, s := range []string{"example.org", "evil.com\uff0eexample.org", "EXAMPLE.org", "example.org.", "*.example.org", "bücher.example", "xn--bcher-kva.example", "::ffff:127.0.0.1", "127.000.0.1", "fe80::1%eth0"} {
		f.Add("dns", s)
		f.Add("ip", s)
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		if canonicalIdentifier(orderIdentifier{Type: typ, Value: value}) != nil {
			return
		}
		switch typ {
		case "dns":
			name := strings.TrimPrefix(value, "*.")
			if c, err := acme.CanonicalName(name); err != nil || c != name {
				t.Fatalf("%q accepted; canonical form %q, %v", value, c, err)
			}
			for _, r := range value {
				if r > 0x7e || ('A' <= r && r <= 'Z') {
					t.Fatalf("%q accepted with %U", value, r)
				}
			}
		case "ip":
			if a, err := netip.ParseAddr(value); err != nil || a.String() != value {
				t.Fatalf("ip %q accepted", value)
			}
		default:
			t.Fatalf("type %q accepted", typ)
		}
	})
}
