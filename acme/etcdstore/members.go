package etcdstore

import (
	"fmt"
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

// SaveObservation keeps b, the latest observation of endpoint, for the
// member that watches the endpoint next: a node that takes over another
// node's share compares its first observation with it.
func (s *Store) SaveObservation(endpoint string, b []byte) error {
	if len(b) > MaxObservation {
		return fmt.Errorf("the observation of %s is %d bytes, more than etcd is given (%d)", endpoint, len(b), MaxObservation)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.client.Put(ctx, s.observationKey(endpoint), string(b)); err != nil {
		return fmt.Errorf("etcd: writing the observation of %s: %w", endpoint, unavailable(err))
	}
	return nil
}

// Observation reads the latest observation of endpoint that a member
// kept; nil when none did.
func (s *Store) Observation(endpoint string) ([]byte, error) {
	b, _, err := s.get(s.observationKey(endpoint))
	if len(b) > MaxObservation {
		return nil, fmt.Errorf("the observation of %s in etcd is %d bytes, more than %d", endpoint, len(b), MaxObservation)
	}
	return b, err
}
