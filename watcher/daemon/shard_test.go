package daemon

import (
	"fmt"
	"testing"
)

// TestOwner: rendezvous hashing spreads 3,000 targets over three members
// within 10% of a third each, and when one member leaves only its own
// targets move, spread over the other two.
func TestOwner(t *testing.T) {
	three, two := []string{"node0", "node1", "node2"}, []string{"node0", "node1"}
	count := map[string]int{}
	movedTo := map[string]int{}
	for i := range 3000 {
		key := fmt.Sprintf("d%05d.example xmpp-client  false", i)
		before, after := owner(key, three), owner(key, two)
		count[before]++
		switch {
		case before != "node2" && after != before:
			t.Fatalf("%s moved from %s to %s, though %s stayed", key, before, after, before)
		case before == "node2":
			movedTo[after]++
		}
	}
	for _, m := range three {
		if c := count[m]; c < 900 || c > 1100 {
			t.Errorf("%s owns %d of 3000 targets; want about 1000", m, c)
		}
	}
	if movedTo["node0"] < count["node2"]/3 || movedTo["node1"] < count["node2"]/3 {
		t.Errorf("node2's %d targets went %v; want them spread over the other two", count["node2"], movedTo)
	}
	if owner("x", nil) != "" {
		t.Error("a target has an owner among no members")
	}
}
