package etcdstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The cluster's members and what they hand over to each other when the
// watching moves, under the prefix:
//
//	members/NODE            a live member, on its session's lease: Member (JSON)
//	observations/HASH       an endpoint's latest observation (JSON), HASH as for accounts

// Member is a live member of the cluster and where its daemon's API
// answers, as it advertised it (README, "Cluster mode").
type Member struct {
	// Node is the member's name: its key under members/.
	Node string `json:"node"`
	// URL is the base URL of the member's daemon API, http or https with
	// no path; empty when the member advertises none, or its value is
	// not such a document (a plain name, as members wrote before they
	// advertised one).
	URL string `json:"url,omitempty"`
}

// MaxMember bounds a member's value: a longer one is read as a member
// that advertises no URL.
const MaxMember = 4 << 10

// ErrAdvertise is wrapped by Advertise's refusal of a URL.
var ErrAdvertise = errors.New("not an http or https URL with a host and no path")

// checkURL returns u without a trailing slash when it is an absolute
// http or https URL with no credentials, path, query or fragment.
func checkURL(u string) (string, error) {
	p, err := url.Parse(u)
	if err != nil || p.Scheme != "http" && p.Scheme != "https" || p.Hostname() == "" || p.Opaque != "" || p.User != nil ||
		p.Path != "" && p.Path != "/" || p.RawQuery != "" || p.ForceQuery || p.Fragment != "" || len(u) > MaxMember/2 {
		return "", fmt.Errorf("%q: %w", u, ErrAdvertise)
	}
	return p.Scheme + "://" + p.Host, nil
}

// Advertise makes u the URL the node's member value advertises (empty:
// none), at once and in every later session's Join. The URL is kept
// even when etcd does not answer (the error then says so).
func (s *Store) Advertise(u string) error {
	if u != "" {
		var err error
		if u, err = checkURL(u); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.advertised = u
	s.mu.Unlock()
	return s.Join()
}

// Join makes the node a live member of the cluster: its Member document
// (name and advertised URL) under members/, on its session's lease, so
// that it is gone when the node's lease ends (Members). Open joins, and
// so does every new session.
func (s *Store) Join() error {
	session, err := s.live()
	if err != nil {
		return err
	}
	s.mu.Lock()
	doc, err := json.Marshal(Member{Node: s.opts.Node, URL: s.advertised})
	s.mu.Unlock()
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.client.Put(ctx, s.opts.Prefix+"members/"+s.opts.Node, string(doc), clientv3.WithLease(session.Lease())); err != nil {
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

// MemberURLs lists the live members, sorted by name, each with the URL
// it advertises: empty when it advertises none, and for a value that is
// longer than MaxMember, is not a Member document of the same node or
// whose URL is not one Advertise takes.
func (s *Store) MemberURLs() ([]Member, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	pfx := s.opts.Prefix + "members/"
	resp, err := s.client.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd: listing the members: %w", unavailable(err))
	}
	var out []Member
	for _, kv := range resp.Kvs {
		m := Member{Node: strings.TrimPrefix(string(kv.Key), pfx)}
		var doc Member
		if len(kv.Value) <= MaxMember && json.Unmarshal(kv.Value, &doc) == nil && doc.Node == m.Node && doc.URL != "" {
			m.URL, _ = checkURL(doc.URL)
		}
		out = append(out, m)
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
