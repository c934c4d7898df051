package lifecycle

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/xmppcert/xmppcert/acme"
	"github.com/xmppcert/xmppcert/acme/etcdstore"
	"github.com/xmppcert/xmppcert/internal/testetcd"
)

// memStore is an acme.Store that keeps everything in memory and nothing
// on disk, as a cluster's store keeps it elsewhere: the engine tests run
// over it as well as over acme.DiskStore, so that the engine cannot come
// to depend on certbot's layout (docs/architecture.md, "Cluster mode").
type memStore struct {
	mu       sync.Mutex
	locks    map[string]bool
	versions map[string][]memVersion // index n-1 holds version n
	current  map[string]int
	renew    map[string]acme.RenewState
	windows  map[string]acme.WindowRecord
	pins     map[string]acme.PinState
	deploys  map[string]acme.DeployRecord
}

type memVersion struct {
	req   acme.Request
	chain []*x509.Certificate
	key   crypto.Signer
	next  crypto.Signer
}

func newMemStore() *memStore {
	return &memStore{locks: map[string]bool{}, versions: map[string][]memVersion{}, current: map[string]int{},
		renew: map[string]acme.RenewState{}, windows: map[string]acme.WindowRecord{},
		pins: map[string]acme.PinState{}, deploys: map[string]acme.DeployRecord{}}
}

var _ acme.Store = (*memStore)(nil)

func (s *memStore) Lock(name string) (func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.locks[name] {
		return nil, &acme.LockedError{Name: name}
	}
	s.locks[name] = true
	return func() {
		s.mu.Lock()
		delete(s.locks, name)
		s.mu.Unlock()
	}, nil
}

func (s *memStore) Names() ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name := range s.current {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

// version returns version n of name; the caller holds s.mu.
func (s *memStore) version(name string, n int) (memVersion, error) {
	vs := s.versions[name]
	if n < 1 || n > len(vs) {
		return memVersion{}, fmt.Errorf("%s version %d: %w", name, n, acme.ErrNoLineage)
	}
	return vs[n-1], nil
}

func (s *memStore) lineage(name string, n int) (*acme.Lineage, error) {
	v, err := s.version(name, n)
	if err != nil {
		return nil, err
	}
	return &acme.Lineage{Name: name, Version: n, Request: v.req, Chain: slices.Clone(v.chain), Key: v.key, NextKey: v.next}, nil
}

func (s *memStore) Load(name string) (*acme.Lineage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lineage(name, s.current[name])
}

func (s *memStore) LoadVersion(name string, n int) (*acme.Lineage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lineage(name, n)
}

func (s *memStore) Versions(name string) ([]int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for i := range s.versions[name] {
		out = append(out, i+1)
	}
	return out, nil
}

func (s *memStore) VersionLeaf(name string, n int) (*x509.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.version(name, n)
	if err != nil {
		return nil, err
	}
	return v.chain[0], nil
}

func (s *memStore) Current(name string) (*acme.Current, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.current[name]
	v, err := s.version(name, n)
	if err != nil {
		return nil, err
	}
	return &acme.Current{Name: name, Version: n, Request: v.req, Leaf: v.chain[0], State: s.renew[name]}, nil
}

func (s *memStore) Write(req acme.Request, iss *acme.Issued, next crypto.Signer) (*acme.Lineage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := req.Host()
	s.versions[name] = append(s.versions[name], memVersion{req: req, chain: slices.Clone(iss.Chain), key: iss.Key, next: next})
	n := len(s.versions[name])
	if !req.Stage {
		s.current[name] = n
	}
	return s.lineage(name, n)
}

func (s *memStore) Promote(name string, n int) (*acme.Lineage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, err := s.lineage(name, n)
	if err == nil {
		s.current[name] = n
	}
	return l, err
}

func (s *memStore) Delete(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.current[name]; !ok {
		return fmt.Errorf("%s: %w", name, acme.ErrNoLineage)
	}
	delete(s.versions, name)
	delete(s.current, name)
	delete(s.renew, name)
	delete(s.windows, name)
	delete(s.pins, name)
	delete(s.deploys, name)
	return nil
}

func (s *memStore) SaveRenewState(name string, st acme.RenewState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == (acme.RenewState{}) {
		delete(s.renew, name)
	} else {
		s.renew[name] = st
	}
	return nil
}

func (s *memStore) WindowRecord(name string) (acme.WindowRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.windows[name], nil
}

func (s *memStore) SaveWindowRecord(name string, w acme.WindowRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.windows[name] = w
	return nil
}

func (s *memStore) PinState(name string) (acme.PinState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pins[name], nil
}

func (s *memStore) SavePinState(name string, p acme.PinState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pins[name] = p
	return nil
}

func (s *memStore) DeployRecord(name string) (acme.DeployRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.deploys[name]
	return rec, ok, nil
}

func (s *memStore) SaveDeployRecord(name string, rec acme.DeployRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deploys[name] = rec
	return nil
}

// snapshot is everything the store holds, for comparing before and after
// an operation that must change nothing.
func (s *memStore) snapshot() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%v %v %v %v %v %v", s.versions, s.current, s.renew, s.windows, s.pins, s.deploys)
}

// stores are the acme.Store implementations the engine tests run over:
// certbot's layout, memory, and etcd (a one-member etcd per test, as a
// cluster's nodes share one).
var stores = []struct {
	name string
	new  func(t *testing.T, state string) acme.Store
}{
	{"disk", func(_ *testing.T, state string) acme.Store { return acme.DiskStore{Dir: state} }},
	{"memory", func(*testing.T, string) acme.Store { return newMemStore() }},
	{"etcd", func(t *testing.T, _ string) acme.Store {
		c, sess := testetcd.Start(t).Session(t, 10)
		s, err := etcdstore.New(c, sess, etcdstore.Options{Prefix: "/xmppcert/", Key: make([]byte, etcdstore.KeySize), Node: "node-1"})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// eachStore runs test as a subtest over each of stores.
func eachStore(t *testing.T, test func(t *testing.T, newStore func(state string) acme.Store)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) {
			test(t, func(state string) acme.Store { return s.new(t, state) })
		})
	}
}
