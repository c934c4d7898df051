package etcdstore

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testpki"
)

// FuzzDecode: whatever a value in etcd holds (another writer's, a damaged
// one), reading it as a version and opening its keys is an error or a
// version with a certificate, reading it as an ACME account an error or
// an account with a URL and a key, and reading it as the CA's material an
// error or files, never a panic.
func FuzzDecode(f *testing.F) {
	ca := testpki.NewRoot("Fuzz Root", nil)
	leaf, key := ca.Leaf(nil)
	s, err := New(nil, nil, Options{Prefix: "/x/", Key: bytes.Repeat([]byte{1}, KeySize), Node: "n"})
	if err != nil {
		f.Fatal(err)
	}
	sealed, err := s.sealKey("k#key", key)
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(version{Chain: [][]byte{leaf.Raw}, Key: sealed})
	f.Add(good)
	acctKey, err := s.sealKey("a", key)
	if err != nil {
		f.Fatal(err)
	}
	acct, _ := json.Marshal(storedAccount{Account: acme.Account{Location: "https://ca.example/acct/1"}, SealedKey: acctKey})
	f.Add(acct)
	f.Add([]byte(`{"chain":[],"key":""}`))
	f.Add([]byte(`{"chain":["AAAA"],"key":"AAAA"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeVersion("k", b)
		if err == nil && len(v.chain) == 0 {
			t.Fatalf("a version without a certificate decoded")
		}
		if err == nil {
			s.openKey("k#key", v.Key)
		}
		s.openKey("k#key", b)
		if a, err := s.decodeAccount("a", b); err == nil && (a.Location == "" || a.Key == nil) {
			t.Fatalf("an account without a URL or key decoded")
		}
		s.decodeCAMaterial(b)
	})
}
