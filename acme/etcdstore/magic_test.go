package etcdstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/xmppcert/xmppcert/internal/testetcd"
)

// TestCertmagicStorage: the same operations on the etcd storage and on
// certmagic's own FileStorage give the same answers (values, listings
// flat and recursive, existence, stat, deletion of a value and of a
// "directory", missing keys), every value is sealed in etcd, and a lock
// one node holds makes another wait until it is released.
func TestCertmagicStorage(t *testing.T) {
	e := testetcd.Start(t)
	a, c, _ := newStore(t, e, "node-a", sealing)
	b, _, _ := newStore(t, e, "node-b", sealing)
	ctx := context.Background()
	stores := map[string]certmagic.Storage{"etcd": a.CertmagicStorage(), "file": &certmagic.FileStorage{Path: t.TempDir()}}
	values := map[string]string{
		"acme/ca.example-directory/users/admin@example.org/admin.json":  "{}",
		"acme/ca.example-directory/users/admin@example.org/admin.key":   "-----BEGIN EC PRIVATE KEY-----",
		"certificates/ca.example-directory/example.org/example.org.crt": "chain",
		"certificates/ca.example-directory/example.org/example.org.key": "-----BEGIN EC PRIVATE KEY----- secret",
		"last_clean.json": "{}",
	}
	for _, s := range stores {
		for k, v := range values {
			if err := s.Store(ctx, k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
	}
	type answers struct {
		loaded                     map[string]string
		root, rootAll, certs, none []string
		exists                     []bool
		stat                       []certmagic.KeyInfo
		missingLoad, missingList   bool
		afterDelete                []string
	}
	ask := func(s certmagic.Storage) answers {
		var an answers
		an.loaded = map[string]string{}
		for k := range values {
			v, err := s.Load(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			an.loaded[k] = string(v)
		}
		list := func(dir string, rec bool) []string {
			l, _ := s.List(ctx, dir, rec)
			slices.Sort(l)
			return l
		}
		an.root, an.rootAll, an.certs = list("", false), list("", true), list("certificates/ca.example-directory", true)
		for _, k := range []string{"certificates", "certificates/ca.example-directory/example.org/example.org.crt", "nothing", "certificates/ca"} {
			an.exists = append(an.exists, s.Exists(ctx, k))
		}
		for _, k := range []string{"last_clean.json", "acme"} {
			st, err := s.Stat(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			st.Modified = time.Time{}
			an.stat = append(an.stat, st)
		}
		_, err := s.Load(ctx, "nothing/here")
		an.missingLoad = errors.Is(err, fs.ErrNotExist)
		_, err = s.List(ctx, "nothing", false)
		an.missingList = errors.Is(err, fs.ErrNotExist)
		for _, k := range []string{"acme", "last_clean.json", "not/there"} {
			if err := s.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		an.afterDelete = list("", true)
		return an
	}
	etcdAnswers, fileAnswers := ask(stores["etcd"]), ask(stores["file"])
	// FileStorage's Stat of a directory gives its size on disk.
	fileAnswers.stat[1].Size = 0
	if !equalAnswers(etcdAnswers, fileAnswers) {
		t.Errorf("etcd storage answers\n%+v\ncertmagic's FileStorage\n%+v", etcdAnswers, fileAnswers)
	}
	resp, err := c.Get(ctx, "/xmppcert/certmagic/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 2 {
		t.Fatalf("etcd holds %d values, %v; want the two left", len(resp.Kvs), err)
	}
	for _, kv := range resp.Kvs {
		if bytes.Contains(kv.Value, []byte("secret")) || bytes.Contains(kv.Value, []byte("BEGIN")) || bytes.Contains(kv.Value, []byte("chain")) {
			t.Errorf("a certmagic value is in etcd in the clear: %s", kv.Value)
		}
	}

	ma, mb := a.CertmagicStorage(), b.CertmagicStorage()
	if err := ma.Lock(ctx, "issue_cert_example.org"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := mb.Lock(short, "issue_cert_example.org"); err == nil {
		t.Fatal("node b took the lock node a holds")
	}
	if err := ma.Lock(short, "issue_cert_example.org"); err == nil {
		t.Fatal("node a took its own lock twice")
	}
	got := make(chan error, 1)
	go func() { got <- mb.Lock(ctx, "issue_cert_example.org") }()
	if err := ma.Unlock(ctx, "issue_cert_example.org"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("node b did not get the lock once node a released it")
	}
	if err := mb.Unlock(ctx, "issue_cert_example.org"); err != nil {
		t.Fatal(err)
	}
}

func equalAnswers(a, b any) bool {
	return fmt.Sprintf("%+v", a) == fmt.Sprintf("%+v", b)
}
