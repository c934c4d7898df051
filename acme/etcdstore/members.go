package etcdstore

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The cluster's members and what they hand over to each other when the
// watching moves, under the prefix:
//
//	members/NODE            a live member, on its session's lease
//	observations/HASH       an endpoint's latest observation (JSON), HASH as for accounts

// Join makes the node a live member of the cluster: its name under
// members/, on its session's lease, so that it is gone when the node's
// lease ends (Members). Open joins, and so does every new session.
func (s *Store) Join() error {
	session, err := s.live()
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.client.Put(ctx, s.opts.Prefix+"members/"+s.opts.Node, s.opts.Node, clientv3.WithLease(session.Lease())); err != nil {
		return fmt.Errorf("etcd: joining the members: %w", unavailable(err))
	}
	return nil
}

// Members lists the live members' names, sorted: the nodes whose
// sessions hold.
func (s *Store) Members() ([]string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	pfx := s.opts.Prefix + "members/"
	resp, err := s.client.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd: listing the members: %w", unavailable(err))
	}
	var out []string
	for _, kv := range resp.Kvs {
		out = append(out, strings.TrimPrefix(string(kv.Key), pfx))
	}
	return out, nil
}

// MaxObservation bounds one observation kept in etcd.
const MaxObservation = 256 << 10

func (s *Store) observationKey(endpoint string) string {
	return s.opts.Prefix + "observations/" + hash16(endpoint)
}

// etcd's default limits on one request: operations in a transaction
// (--max-txn-ops) and the request's size (--max-request-bytes, 1.5 MiB),
// of which a batch of observations takes at most txnBytes, leaving room
// for keys and framing.
const (
	txnOps   = 128
	txnBytes = 1 << 20
)

// SaveObservations keeps each observation of obs (JSON, by endpoint) as
// that endpoint's latest, for the member that watches it next: a node
// that takes over another node's share compares its first observation
// with it. A sweep's changed observations go in as few transactions as
// etcd's limits allow, not one request each.
func (s *Store) SaveObservations(obs map[string][]byte) error {
	var ops []clientv3.Op
	size := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		ctx, cancel := s.ctx()
		defer cancel()
		if _, err := s.client.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("etcd: writing %d observations: %w", len(ops), unavailable(err))
		}
		ops, size = ops[:0], 0
		return nil
	}
	for _, endpoint := range slices.Sorted(maps.Keys(obs)) {
		b := obs[endpoint]
		if len(b) > MaxObservation {
			return fmt.Errorf("the observation of %s is %d bytes, more than etcd is given (%d)", endpoint, len(b), MaxObservation)
		}
		if len(ops) == txnOps || size+len(b) > txnBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		ops = append(ops, clientv3.OpPut(s.observationKey(endpoint), string(b)))
		size += len(b)
	}
	return flush()
}

// Observations reads the latest observations that members kept of
// endpoints, by endpoint; an endpoint none kept has no entry. It reads
// in transactions of etcd's size, not one request per endpoint.
func (s *Store) Observations(endpoints []string) (map[string][]byte, error) {
	out := make(map[string][]byte)
	for chunk := range slices.Chunk(endpoints, txnOps) {
		ops := make([]clientv3.Op, len(chunk))
		for i, endpoint := range chunk {
			ops[i] = clientv3.OpGet(s.observationKey(endpoint))
		}
		ctx, cancel := s.ctx()
		resp, err := s.client.Txn(ctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("etcd: reading %d observations: %w", len(ops), unavailable(err))
		}
		for i, r := range resp.Responses {
			kvs := r.GetResponseRange().GetKvs()
			if len(kvs) == 0 {
				continue
			}
			b := kvs[0].Value
			if len(b) > MaxObservation {
				return nil, fmt.Errorf("the observation of %s in etcd is %d bytes, more than %d", chunk[i], len(b), MaxObservation)
			}
			out[chunk[i]] = b
		}
	}
	return out, nil
}
