package etcdstore

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// MagicStorage is certmagic's Storage in etcd, under PREFIX/certmagic/:
// the daemon's own HTTPS certificates, their keys, certmagic's ACME
// account and the challenges it is solving, shared by the nodes, so that
// they serve one certificate obtained by one order, and any node answers
// a challenge another node's order is waiting for. Every value is sealed
// as the lineages' private keys are (certmagic keeps keys among them).
// Its locks are mutexes on the node's session, behind in-process locks.
type MagicStorage struct {
	s    *Store
	mu   sync.Mutex
	held map[string]*concurrency.Mutex
}

var _ certmagic.Storage = (*MagicStorage)(nil)

// CertmagicStorage returns the certmagic Storage of the store's cluster.
func (s *Store) CertmagicStorage() *MagicStorage {
	return &MagicStorage{s: s, held: map[string]*concurrency.Mutex{}}
}

// magicValue is one value as kept in etcd.
type magicValue struct {
	Modified time.Time `json:"modified"`
	Size     int64     `json:"size"`
	Sealed   []byte    `json:"sealed"`
}

// key is certmagic key k's etcd key.
func (m *MagicStorage) key(k string) string {
	return m.s.opts.Prefix + "certmagic/" + strings.TrimPrefix(path.Clean("/"+k), "/")
}

// dir is the prefix of the etcd keys under certmagic key k.
func (m *MagicStorage) dir(k string) string {
	return strings.TrimSuffix(m.key(k), "/") + "/"
}

// Store puts value at key.
func (m *MagicStorage) Store(ctx context.Context, key string, value []byte) error {
	k := m.key(key)
	sealed := m.s.seal(k, value)
	b, err := json.Marshal(magicValue{Modified: time.Now().UTC(), Size: int64(len(value)), Sealed: sealed})
	if err != nil {
		return err
	}
	ctx, cancel := m.s.within(ctx)
	defer cancel()
	if _, err := m.s.client.Put(ctx, k, string(b)); err != nil {
		return fmt.Errorf("etcd: writing %s: %w", k, unavailable(err))
	}
	return nil
}

// read reads key's stored value; fs.ErrNotExist when there is none.
func (m *MagicStorage) read(ctx context.Context, key string) (magicValue, string, error) {
	var v magicValue
	k := m.key(key)
	ctx, cancel := m.s.within(ctx)
	defer cancel()
	resp, err := m.s.client.Get(ctx, k)
	if err != nil {
		return v, k, fmt.Errorf("etcd: reading %s: %w", k, unavailable(err))
	}
	if len(resp.Kvs) == 0 {
		return v, k, fmt.Errorf("etcd: %s: %w", k, fs.ErrNotExist)
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &v); err != nil {
		return v, k, fmt.Errorf("etcd: %s: %w", k, err)
	}
	return v, k, nil
}

// Load reads the value at key; an error wrapping fs.ErrNotExist when
// there is none.
func (m *MagicStorage) Load(ctx context.Context, key string) ([]byte, error) {
	v, k, err := m.read(ctx, key)
	if err != nil {
		return nil, err
	}
	return m.s.open(k, v.Sealed)
}

// Delete removes key and every key under it.
func (m *MagicStorage) Delete(ctx context.Context, key string) error {
	k := m.key(key)
	ctx, cancel := m.s.within(ctx)
	defer cancel()
	_, err := m.s.client.Txn(ctx).Then(clientv3.OpDelete(k), clientv3.OpDelete(m.dir(key), clientv3.WithPrefix())).Commit()
	if err != nil {
		return fmt.Errorf("etcd: deleting %s: %w", k, unavailable(err))
	}
	return nil
}

// Exists reports whether key is a value or has values under it.
func (m *MagicStorage) Exists(ctx context.Context, key string) bool {
	k := m.key(key)
	ctx, cancel := m.s.within(ctx)
	defer cancel()
	for _, p := range []string{k, m.dir(key)} {
		opts := []clientv3.OpOption{clientv3.WithCountOnly()}
		if p != k {
			opts = append(opts, clientv3.WithPrefix())
		}
		if resp, err := m.s.client.Get(ctx, p, opts...); err == nil && resp.Count > 0 {
			return true
		}
	}
	return false
}

// List lists the keys under dir, as certmagic's FileStorage does: the
// values and the "directories" right under it, and with recursive
// everything below, directories included.
func (m *MagicStorage) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	pfx := m.dir(dir)
	ctx, cancel := m.s.within(ctx)
	defer cancel()
	resp, err := m.s.client.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd: listing %s: %w", pfx, unavailable(err))
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("etcd: %s: %w", pfx, fs.ErrNotExist)
	}
	var out []string
	for _, kv := range resp.Kvs {
		parts := strings.Split(strings.TrimPrefix(string(kv.Key), pfx), "/")
		if !recursive {
			parts = parts[:1]
		}
		for i := range parts {
			if k := path.Join(dir, path.Join(parts[:i+1]...)); !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out, nil
}

// Stat describes key: a value, or a directory when values are under it.
func (m *MagicStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	v, _, err := m.read(ctx, key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: v.Modified, Size: v.Size, IsTerminal: true}, nil
	}
	if m.Exists(ctx, key) {
		return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
	}
	return certmagic.KeyInfo{}, err
}

// Lock takes the lock name, waiting within ctx: the in-process lock
// first (etcd's are re-entrant within one session), then the mutex on
// the node's session, which a node that dies releases when its lease
// ends.
func (m *MagicStorage) Lock(ctx context.Context, name string) error {
	local := "certmagic lock " + name
	if err := m.s.waitLocal(ctx, local); err != nil {
		return err
	}
	session, err := m.s.live()
	if err != nil {
		m.s.releaseLocal(local)
		return err
	}
	mu := concurrency.NewMutex(session, m.s.opts.Prefix+"certmagiclocks/"+strings.TrimPrefix(path.Clean("/"+name), "/"))
	if err := mu.Lock(ctx); err != nil {
		m.s.releaseLocal(local)
		return fmt.Errorf("etcd: taking certmagic's lock %s: %w", name, unavailable(err))
	}
	m.mu.Lock()
	m.held[name] = mu
	m.mu.Unlock()
	return nil
}

// Unlock releases the lock name.
func (m *MagicStorage) Unlock(ctx context.Context, name string) error {
	m.mu.Lock()
	mu := m.held[name]
	delete(m.held, name)
	m.mu.Unlock()
	if mu == nil {
		return fmt.Errorf("certmagic's lock %s is not held here", name)
	}
	defer m.s.releaseLocal("certmagic lock " + name)
	ctx, cancel := m.s.within(ctx)
	defer cancel()
	if err := mu.Unlock(ctx); err != nil {
		return fmt.Errorf("etcd: releasing certmagic's lock %s: %w", name, unavailable(err))
	}
	return nil
}
