package etcdstore

import (
	"encoding/json"
	"fmt"
	"io/fs"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The embedded CA's material, under the prefix:
//
//	ca/material    the root and intermediate certificates and keys (JSON, each file sealed)
//
// so that every node's embedded CA is the same CA. It is written once,
// by the first node that needs a CA; the CA's database stays with each
// node.

func (s *Store) caKey() string { return s.opts.Prefix + "ca/material" }

// LoadCAMaterial reads the cluster's CA material, by file name; an error
// wrapping fs.ErrNotExist when no node has kept one yet.
func (s *Store) LoadCAMaterial() (map[string][]byte, error) {
	b, _, err := s.get(s.caKey())
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("etcd: %s: %w", s.caKey(), fs.ErrNotExist)
	}
	return s.decodeCAMaterial(b)
}

// decodeCAMaterial opens stored material.
func (s *Store) decodeCAMaterial(b []byte) (map[string][]byte, error) {
	var sealed map[string][]byte
	if err := json.Unmarshal(b, &sealed); err != nil {
		return nil, fmt.Errorf("etcd: %s: %w", s.caKey(), err)
	}
	out := map[string][]byte{}
	for name, v := range sealed {
		plain, err := s.open(s.caKey()+"#"+name, v)
		if err != nil {
			return nil, err
		}
		out[name] = plain
	}
	return out, nil
}

// SaveCAMaterial keeps files as the cluster's CA material unless a node
// kept some first, and returns the material kept: files, or the first
// node's.
func (s *Store) SaveCAMaterial(files map[string][]byte) (map[string][]byte, error) {
	sealed := map[string][]byte{}
	for name, v := range files {
		sealed[name] = s.seal(s.caKey()+"#"+name, v)
	}
	b, err := json.Marshal(sealed)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	key := s.caKey()
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(b))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd: writing %s: %w", key, unavailable(err))
	}
	if resp.Succeeded {
		return files, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, fmt.Errorf("etcd: %s vanished while it was written", key)
	}
	return s.decodeCAMaterial(kvs[0].Value)
}
