package etcdstore

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"io/fs"
	"testing"
	"time"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/internal/testetcd"
)

const directory = "https://acme.example/directory"

// TestAccounts: an account kept by one node is read whole by another,
// its key sealed (not in etcd in the clear, and not opened with another
// sealing key); the registration lock makes the second taker wait, across
// nodes and within one; removal forgets it.
func TestAccounts(t *testing.T) {
	e := testetcd.Start(t)
	a, c, _ := newStore(t, e, "node-a", sealing)
	b, _, _ := newStore(t, e, "node-b", sealing)
	if _, err := a.Account(directory); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no account yet: %v; want fs.ErrNotExist", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	want := &acme.Account{Directory: directory, Location: "https://acme.example/acct/1", Contact: []string{"mailto:admin@example.org"},
		TermsOfServiceAgreed: true, Created: time.Now().UTC().Truncate(time.Second), Key: key}
	if err := a.SaveAccount(want); err != nil {
		t.Fatal(err)
	}
	got, err := b.Account(directory)
	if err != nil || got.Location != want.Location || !got.Created.Equal(want.Created) || !key.PublicKey.Equal(got.Key.Public()) {
		t.Fatalf("node b reads %+v, %v", got, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(context.Background(), a.accountKey(directory))
	if err != nil || len(resp.Kvs) != 1 || bytes.Contains(resp.Kvs[0].Value, der) || bytes.Contains(resp.Kvs[0].Value, key.D.Bytes()) {
		t.Fatalf("the account's value in etcd holds its key in the clear (or is missing: %v)", err)
	}
	other, _, _ := newStore(t, e, "node-c", bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Account(directory); err == nil {
		t.Error("another sealing key opened the account's key")
	}

	unlock, err := a.LockAccount(context.Background(), directory)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{a, b} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		if u, err := s.LockAccount(ctx, directory); err == nil {
			u()
			t.Errorf("node %s took the account lock node a holds", s.opts.Node)
		}
		cancel()
	}
	taken := make(chan error, 1)
	go func() {
		u, err := b.LockAccount(context.Background(), directory)
		if err == nil {
			u()
		}
		taken <- err
	}()
	unlock()
	select {
	case err := <-taken:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node b did not get the account lock once node a released it")
	}
	if err := b.RemoveAccount(directory); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Account(directory); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after removal: %v; want fs.ErrNotExist", err)
	}
}

// TestOrderSlots: with two slots, two orders (on any nodes) hold them
// and a third waits until one is released; a node whose session ends
// frees its slots.
func TestOrderSlots(t *testing.T) {
	e := testetcd.Start(t)
	newSlots := func(node string) *Store {
		c, sess := e.Session(t, 2)
		s, err := New(c, sess, Options{Prefix: "/xmppcert/", Key: sealing, Node: node, OrderSlots: 2})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := newSlots("node-a"), newSlots("node-b")
	const account = "https://acme.example/acct/1"
	ctx := context.Background()
	relA, err := a.TakeOrderSlot(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	relA2, err := a.TakeOrderSlot(ctx, account)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 600*time.Millisecond)
	defer cancel()
	if rel, err := b.TakeOrderSlot(short, account); err == nil {
		rel()
		t.Fatal("node b took a third slot of two")
	}
	if rel, err := b.TakeOrderSlot(ctx, "https://acme.example/acct/2"); err != nil {
		t.Fatalf("another account's slots: %v", err)
	} else {
		rel()
	}
	got := make(chan error, 1)
	go func() {
		rel, err := b.TakeOrderSlot(ctx, account)
		if err == nil {
			defer rel()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("node b took a slot while both were held: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	relA()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node b did not get the slot node a released")
	}
	relA2()

	// A node that dies holding both: its slots are free when its lease
	// (2 s) ends.
	for range 2 {
		if _, err := a.TakeOrderSlot(ctx, account); err != nil {
			t.Fatal(err)
		}
	}
	a.session.Orphan() // no more keep-alives: the lease expires
	start := time.Now()
	wait, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	rel, err := b.TakeOrderSlot(wait, account)
	if err != nil {
		t.Fatalf("the dead node's slots were not freed: %v", err)
	}
	rel()
	t.Logf("a dead node's slot taken %v after its keep-alives stopped", time.Since(start).Round(10*time.Millisecond))
}
