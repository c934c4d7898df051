package etcdstore

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/localca"
	"github.com/xmppcert/xmppcert/internal/testetcd"
	"github.com/xmppcert/xmppcert/internal/testpki"
)

const name = "example.org"

var sealing = bytes.Repeat([]byte{7}, KeySize)

func newStore(t *testing.T, e *testetcd.Etcd, node string, key []byte) (*Store, *clientv3.Client, *concurrency.Session) {
	t.Helper()
	c, sess := e.Session(t, 5)
	s, err := New(c, sess, Options{Prefix: "/xmppcert/", Key: key, Node: node})
	if err != nil {
		t.Fatal(err)
	}
	return s, c, sess
}

func issued(t *testing.T, ca *testpki.CA) (*acme.Issued, crypto.Signer) {
	t.Helper()
	leaf, key := ca.Leaf(nil)
	next, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &acme.Issued{Chain: []*x509.Certificate{leaf, ca.Cert}, Key: key, Issuer: "test"}, next
}

func request(t *testing.T, stage bool) acme.Request {
	t.Helper()
	req, err := acme.NewRequest(name, 0, []string{"muc." + name}, acme.KeyECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	req.Stage = stage
	return req
}

// A lineage written to etcd reads back whole (request, chain, keys),
// staged versions wait for Promote, the records round-trip, deploy
// records are per node, and Delete leaves nothing; private keys are
// sealed: their DER is nowhere in etcd, another sealing key does not
// open them, nor does a sealed key moved to another version's place.
func TestStore(t *testing.T) {
	e := testetcd.Start(t)
	s, c, _ := newStore(t, e, "node-a", sealing)
	ca := testpki.NewRoot("Test Root", nil)
	unlock, err := s.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(name); !errors.Is(err, acme.ErrNoLineage) {
		t.Fatalf("before any version: %v; want ErrNoLineage", err)
	}
	iss1, next1 := issued(t, ca)
	if _, err := s.Write(request(t, false), iss1, next1); err != nil {
		t.Fatal(err)
	}
	iss2, next2 := issued(t, ca)
	if l, err := s.Write(request(t, true), iss2, next2); err != nil || l.Version != 2 {
		t.Fatalf("staged write: %+v, %v", l, err)
	}
	l, err := s.Load(name)
	if err != nil || l.Version != 1 || !l.Chain[0].Equal(iss1.Chain[0]) || len(l.Chain) != 2 || l.NextKey == nil ||
		!l.NextKey.Public().(*ecdsa.PublicKey).Equal(next1.Public()) || len(l.Request.Names) != 2 {
		t.Fatalf("current after a staged write: %+v, %v; want version 1 whole", l, err)
	}
	if vs, err := s.Versions(name); err != nil || !slices.Equal(vs, []int{1, 2}) {
		t.Errorf("versions %v, %v", vs, err)
	}
	if leaf, err := s.VersionLeaf(name, 2); err != nil || !leaf.Equal(iss2.Chain[0]) {
		t.Errorf("leaf of version 2: %v", err)
	}
	if l, err := s.Promote(name, 2); err != nil || l.Version != 2 {
		t.Fatalf("promote: %+v, %v", l, err)
	}
	st := acme.RenewState{RenewingFrom: 2, RetryAfter: time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)}
	if err := s.SaveRenewState(name, st); err != nil {
		t.Fatal(err)
	}
	if cur, err := s.Current(name); err != nil || cur.Version != 2 || cur.State.RenewingFrom != 2 || !cur.State.RetryAfter.Equal(st.RetryAfter) {
		t.Errorf("current: %+v, %v", cur, err)
	}
	w := acme.WindowRecord{Serial: "42", Start: st.RetryAfter, End: st.RetryAfter.Add(time.Hour)}
	if err := s.SaveWindowRecord(name, w); err != nil {
		t.Fatal(err)
	}
	if got, err := s.WindowRecord(name); err != nil || got.Serial != "42" || !got.End.Equal(w.End) {
		t.Errorf("window %+v, %v", got, err)
	}
	p := acme.PinState{Published: map[string]time.Time{"aa": st.RetryAfter}, Staged: 3}
	if err := s.SavePinState(name, p); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PinState(name); err != nil || got.Staged != 3 || !got.Published["aa"].Equal(st.RetryAfter) {
		t.Errorf("pins %+v, %v", got, err)
	}
	rec := acme.DeployRecord{Targets: []acme.TargetRecord{{Target: "prosody:/etc/prosody/certs", Version: 2}}}
	if err := s.SaveDeployRecord(name, rec); err != nil {
		t.Fatal(err)
	}
	other, _, _ := newStore(t, e, "node-b", sealing)
	if got, ok, err := other.DeployRecord(name); !ok || err != nil || len(got.Targets) != 0 {
		t.Errorf("node-b reads %+v, ok %v, %v; want its own record, empty: it deployed nothing", got, ok, err)
	}
	if got, ok, err := s.DeployRecord(name); !ok || err != nil || got.Targets[0].Version != 2 {
		t.Errorf("deploy record %+v %v %v", got, ok, err)
	}
	if names, err := other.Names(); err != nil || !slices.Equal(names, []string{name}) {
		t.Errorf("names %v, %v", names, err)
	}

	// Sealed keys.
	keyDER, _ := x509.MarshalPKCS8PrivateKey(iss2.Key)
	all, err := c.Get(context.Background(), "/xmppcert/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range all.Kvs {
		if bytes.Contains(kv.Value, keyDER) {
			t.Errorf("%s holds a private key in the clear", kv.Key)
		}
	}
	wrong, _, _ := newStore(t, e, "node-c", bytes.Repeat([]byte{8}, KeySize))
	if _, err := wrong.Load(name); err == nil {
		t.Errorf("another sealing key opens the lineage's key")
	}
	v2, _ := c.Get(context.Background(), s.versionKey(name, 2))
	if _, err := c.Put(context.Background(), s.versionKey(name, 1), string(v2.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoadVersion(name, 1); err == nil {
		t.Errorf("version 2's sealed key opens in version 1's place")
	}

	if err := s.Delete(name); err != nil {
		t.Fatal(err)
	}
	unlock()
	if rest, _ := c.Get(context.Background(), "/xmppcert/lineages/", clientv3.WithPrefix()); len(rest.Kvs) != 0 {
		t.Errorf("%d keys left after Delete", len(rest.Kvs))
	}
	if _, err := New(c, nil, Options{Prefix: "/x/", Key: []byte("short"), Node: "a"}); err == nil {
		t.Errorf("a 5-byte sealing key is accepted")
	}
}

// One lineage's lock is held by one node and one caller at a time: a
// second caller in the same process (etcd's mutex alone is re-entrant
// within a session) and another node get *acme.LockedError until it is
// released. A node whose lease ended commits nothing under the lock it
// lost, and the other node takes the lock and writes.
func TestLockAndFencing(t *testing.T) {
	e := testetcd.Start(t)
	a, _, sessA := newStore(t, e, "node-a", sealing)
	b, _, _ := newStore(t, e, "node-b", sealing)
	ca := testpki.NewRoot("Test Root", nil)

	unlock, err := a.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	var le *acme.LockedError
	if _, err := a.Lock(name); !errors.As(err, &le) {
		t.Errorf("a second lock in the same process: %v; want *acme.LockedError", err)
	}
	if _, err := b.Lock(name); !errors.As(err, &le) || le.Node != "node-a" || !strings.Contains(err.Error(), `cluster node "node-a"`) {
		t.Errorf("another node's lock while held: %v; want *acme.LockedError naming node-a", err)
	}
	unlock()
	unlockB, err := b.Lock(name)
	if err != nil {
		t.Fatalf("another node after the release: %v", err)
	}
	unlockB()

	// Node a takes the lock, then its lease ends (revoked, as an
	// expired one would be) before it commits.
	if _, err = a.Lock(name); err != nil {
		t.Fatal(err)
	}
	iss, next := issued(t, ca)
	if err := sessA.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write(request(t, false), iss, next); !errors.Is(err, ErrNotOwner) {
		t.Fatalf("a write after the lease ended: %v; want ErrNotOwner", err)
	}
	if _, err := b.Load(name); !errors.Is(err, acme.ErrNoLineage) {
		t.Errorf("after the fenced write: %v; want nothing written", err)
	}
	unlockB, err = b.Lock(name)
	if err != nil {
		t.Fatalf("node b after node a's lease ended: %v", err)
	}
	defer unlockB()
	if _, err := b.Write(request(t, false), iss, next); err != nil {
		t.Fatalf("node b's write: %v", err)
	}
}

// TestLargeVersion: a lineage of 100 names (a host and 99 components:
// DNS-IDs, SRV-IDs and XmppAddrs for each) with RSA-3072 keys, signed by
// the embedded CA, commits as one transaction, well inside etcd's
// 1.5 MiB request limit, and reads back whole.
func TestLargeVersion(t *testing.T) {
	e := testetcd.Start(t)
	s, c, _ := newStore(t, e, "node-a", sealing)
	var components []string
	for i := range 99 {
		components = append(components, fmt.Sprintf("component%02d.%s", i, name))
	}
	req, err := acme.NewRequest(name, 0, components, acme.KeyRSA3072)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ca")
	if err := localca.Init(dir); err != nil {
		t.Fatal(err)
	}
	ca, err := localca.Open(dir, localca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	key, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	next, err := rsa.GenerateKey(rand.Reader, 3072)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := ca.Issue(context.Background(), req, key)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := s.Write(req, iss, next); err != nil {
		t.Fatalf("writing a 100-name RSA-3072 version: %v", err)
	}
	resp, err := c.Get(context.Background(), s.versionKey(name, 1))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(err)
	}
	size := len(resp.Kvs[0].Value)
	t.Logf("a 100-name RSA-3072 version: certificate %d bytes (%d DNS-IDs); stored value %d bytes (limit 1.5 MiB)", len(iss.Chain[0].Raw), len(iss.Chain[0].DNSNames), size)
	if size > 512<<10 {
		t.Errorf("the version takes %d bytes in etcd; want far under the 1.5 MiB request limit", size)
	}
	l, err := s.Load(name)
	if err != nil || len(l.Request.Names) != 100 || !l.Chain[0].Equal(iss.Chain[0]) || !acme.SamePublicKey(l.Chain[0], l.Key) {
		t.Fatalf("read back: %v", err)
	}
}
