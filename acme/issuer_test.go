package acme

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/xmppcert/xmppcert/xmppaddr"
)

func TestNewRequest(t *testing.T) {
	long := strings.Repeat("a", 64)
	for _, tc := range []struct {
		host       string
		components []string
		want       []string // canonical names, host first
		err        string   // substring of the error
	}{
		{host: "example.org", components: []string{"conference.example.org"}, want: []string{"example.org", "conference.example.org"}},
		{host: "Example.ORG.", want: []string{"example.org"}},
		{host: "bücher.example", want: []string{"xn--bcher-kva.example"}},
		{host: "a..example", err: "a..example"},
		{host: "", err: ""},
		{host: long + ".example", err: long},
		{host: "_x.example.org", err: "_x.example.org"},
		{host: "192.0.2.1", err: "IP address"},
		{host: "[2001:db8::1]", err: "IP address"},
		{host: "*.example.org", err: "wildcard"},
		{host: "example.org", components: []string{"example.org"}, err: "named twice"},
		{host: "example.org", components: []string{"EXAMPLE.org"}, err: "named twice"},
		{host: "example.org", components: []string{"\u2488.example"}, err: "\u2488"},
	} {
		req, err := NewRequest(tc.host, xmppaddr.RoleHost, tc.components, KeyECDSAP256)
		if tc.want == nil {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("NewRequest(%q, %q) error %v; want one containing %q", tc.host, tc.components, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewRequest(%q, %q): %v", tc.host, tc.components, err)
			continue
		}
		if got := req.Domains(); !slices.Equal(got, tc.want) {
			t.Errorf("NewRequest(%q, %q) = %q; want %q", tc.host, tc.components, got, tc.want)
		}
		for _, n := range req.Names[1:] {
			if n.Role != xmppaddr.RoleComponent {
				t.Errorf("component %s has role %s", n.Domain, n.Role)
			}
		}
	}
	many := make([]string, MaxNames)
	for i := range many {
		many[i] = fmt.Sprintf("c%d.example.org", i)
	}
	if _, err := NewRequest("example.org", xmppaddr.RoleHost, many[:MaxNames-1], KeyECDSAP256); err != nil {
		t.Errorf("%d names refused: %v", MaxNames, err)
	}
	if _, err := NewRequest("example.org", xmppaddr.RoleHost, many, KeyECDSAP256); err == nil {
		t.Errorf("%d names accepted; the limit is %d", MaxNames+1, MaxNames)
	}
}

func TestUnrelated(t *testing.T) {
	req, err := NewRequest("chat.example.org", xmppaddr.RoleHost,
		[]string{"conference.chat.example.org", "upload.example.org", "other.net"}, KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Unrelated(); !slices.Equal(got, []string{"other.net"}) {
		t.Errorf("Unrelated() = %q; want [other.net]", got)
	}
	// A host directly under a public suffix has no parent to share.
	req, _ = NewRequest("example.org", xmppaddr.RoleHost, []string{"muc.example.org", "example.net"}, KeyECDSAP256)
	if got := req.Unrelated(); !slices.Equal(got, []string{"example.net"}) {
		t.Errorf("Unrelated() = %q; want [example.net]", got)
	}
}

func TestKeyTypes(t *testing.T) {
	for _, s := range []string{"ecdsa-p256", "rsa2048", "rsa3072", "RSA2048"} {
		k, err := ParseKeyType(s)
		if err != nil {
			t.Fatalf("ParseKeyType(%q): %v", s, err)
		}
		key, err := k.Generate()
		if err != nil {
			t.Fatal(err)
		}
		for _, other := range []KeyType{KeyECDSAP256, KeyRSA2048, KeyRSA3072} {
			if got := other.Matches(key); got != (other == k) {
				t.Errorf("%s.Matches(a %s key) = %v", other, k, got)
			}
		}
	}
	if _, err := ParseKeyType("ed448"); err == nil || !strings.Contains(err.Error(), "ecdsa-p256, rsa2048 or rsa3072") {
		t.Errorf("ParseKeyType(ed448) error %v; want one listing the choices", err)
	}
}

// TestRequestJSON checks the stored form renewal reads back: roles by name.
func TestRequestJSON(t *testing.T) {
	req, _ := NewRequest("example.org", xmppaddr.RoleAnonymousHost, []string{"muc.example.org"}, KeyRSA3072)
	req.ReuseKey, req.CA = true, "local"
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"names":[{"domain":"example.org","role":"anonymous"},{"domain":"muc.example.org","role":"component"}],"key":"rsa3072","reuse_key":true,"ca":"local"}`
	if string(b) != want {
		t.Errorf("stored request\n got %s\nwant %s", b, want)
	}
	var back Request
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.Names, req.Names) || back.Key != req.Key || !back.ReuseKey || back.CA != "local" {
		t.Errorf("round trip: %+v; want %+v", back, req)
	}
	if err := json.Unmarshal([]byte(`{"names":[{"domain":"x.org","role":"admin"}]}`), &back); err == nil {
		t.Error("an unknown role was accepted")
	}
}
