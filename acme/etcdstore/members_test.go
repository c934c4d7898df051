package etcdstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/internal/testetcd"
)

// TestMembers: each member's value is its name and advertised URL
// (JSON); Members still lists the names, and MemberURLs reads each
// member's URL, bounded: an old plain value, an oversized one, another
// node's document or a URL that is not http(s) without a path are read
// as members that advertise none. Advertise refuses such a URL.
func TestMembers(t *testing.T) {
	e := testetcd.Start(t)
	a, c, sess := newStore(t, e, "node-a", sealing)
	b, _, _ := newStore(t, e, "node-b", sealing)
	if err := a.Advertise("http://127.0.0.1:8787/"); err != nil {
		t.Fatal(err)
	}
	if err := b.Join(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"ftp://node", "http://node/path", "javascript:alert(1)", "http://user:pw@node", "/relative"} {
		if err := a.Advertise(bad); !errors.Is(err, ErrAdvertise) {
			t.Errorf("Advertise(%q): %v; want ErrAdvertise", bad, err)
		}
	}
	ctx := context.Background()
	for node, value := range map[string]string{
		"old":       "old", // as members wrote before they advertised a URL
		"huge":      `{"node":"huge","url":"http://192.0.2.1:1` + strings.Repeat("0", MaxMember) + `"}`,
		"other":     `{"node":"node-a","url":"http://192.0.2.2:8787"}`,
		"script":    `{"node":"script","url":"javascript:alert(1)"}`,
		"withpath":  `{"node":"withpath","url":"http://192.0.2.3/x"}`,
		"malformed": `{"node":"malformed","url":`,
	} {
		if _, err := c.Put(ctx, "/xmppcert/members/"+node, value); err != nil {
			t.Fatal(err)
		}
	}
	names, err := a.Members()
	if want := []string{"huge", "malformed", "node-a", "node-b", "old", "other", "script", "withpath"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("Members: %v, %v; want %v", names, err, want)
	}
	ms, err := b.MemberURLs()
	want := []Member{{Node: "huge"}, {Node: "malformed"}, {Node: "node-a", URL: "http://127.0.0.1:8787"}, {Node: "node-b"}, {Node: "old"}, {Node: "other"}, {Node: "script"}, {Node: "withpath"}}
	if err != nil || !slices.Equal(ms, want) {
		t.Errorf("MemberURLs: %+v, %v; want %+v", ms, err, want)
	}
	// A member whose session ends is gone, with its URL.
	if err := sess.Close(); err != nil {
		t.Fatal(err)
	}
	if ms, err := b.MemberURLs(); err != nil || slices.ContainsFunc(ms, func(m Member) bool { return m.Node == "node-a" }) {
		t.Errorf("after node-a's session ended: %+v, %v", ms, err)
	}
}
