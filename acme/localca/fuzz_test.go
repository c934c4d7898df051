package localca

import (
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/acme"
)

// FuzzOrderIdentifiers feeds hostile new-order bodies to the
// --allow-domain filter: it must never panic, and whatever it lets
// through must be a DNS name under the allowed domain.
func FuzzOrderIdentifiers(f *testing.F) {
	f.Add(`{"protected":"e30","payload":"eyJpZGVudGlmaWVycyI6W3sidHlwZSI6ImRucyIsInZhbHVlIjoiZXhhbXBsZS5vcmcifV19","signature":""}`)
	f.Add(`e30.eyJpZGVudGlmaWVycyI6W119.`)
	f.Add(`{"payload":"", "Payload":"x"}`)
	f.Fuzz(func(t *testing.T, body string) {
		ids, err := orderIdentifiers([]byte(body))
		if err != nil {
			return
		}
		for _, id := range ids {
			if !domainAllowed(id.Value, []string{"example.org"}) {
				continue
			}
			c, err := acme.CanonicalName(strings.TrimPrefix(id.Value, "*."))
			if err != nil || (c != "example.org" && !strings.HasSuffix(c, ".example.org")) {
				t.Fatalf("%q allowed under example.org (canonical %q, %v)", id.Value, c, err)
			}
		}
	})
}
