package challenge

import (
	"testing"

	"github.com/xmppcert/xmppcert/internal/testdns"
)

// knot is a real Knot DNS server on loopback (internal/testdns),
// authoritative for example.org (updatable with its key; the challenge
// name of delegated.example.org is a CNAME elsewhere), locked.example
// (served, but no update ACL), restricted.example (the key may update A
// records only) and nothing else.
type knot struct {
	*testdns.Knot
}

const (
	testZone   = "example.org."
	lockedZone = "locked.example."
)

// startKnot starts knotd with the zones above and the key acme-update;
// it stops when the test ends.
func startKnot(t testing.TB) *knot {
	t.Helper()
	return &knot{testdns.StartKnot(t, testdns.KnotOptions{
		KeyName: "acme-update.",
		Zones: []testdns.Zone{
			{Name: testZone, Updatable: true, Records: `@ A 127.0.0.1
www A 127.0.0.1
conference A 127.0.0.1
upload A 127.0.0.1
_acme-challenge.delegated CNAME _acme-challenge.delegated.other.example.`},
			{Name: "restricted.example.", Updatable: true, UpdateTypes: []string{"A"}},
			{Name: lockedZone},
		},
	})}
}
