// Package etcdstore is the cluster's acme.Store: every lineage fact that
// acme.DiskStore keeps in one state directory, kept in etcd under one key
// prefix, so that the nodes of a cluster renew each lineage once and all
// deploy the same certificate (README, "Cluster mode").
//
// Layout, under the prefix:
//
//	lineages/NAME/current          the current version's number
//	lineages/NAME/versions/NNNNNN  one version: request, chain, sealed keys (JSON)
//	lineages/NAME/renew            acme.RenewState (JSON)
//	lineages/NAME/window           acme.WindowRecord (JSON)
//	lineages/NAME/pins             acme.PinState (JSON)
//	lineages/NAME/deployed/NODE    acme.DeployRecord of one node (JSON)
//	lineages/NAME/posh/NODE        acme.POSHServed: one node's POSH documents (JSON)
//	locks/NAME/                    the lineage's concurrency.Mutex
//	accounts/, accountlocks/,      the shared ACME accounts and the cap on
//	orderslots/                    their concurrent orders (accounts.go)
//	ca/material                    the embedded CA's material (ca.go)
//	certmagic/, certmagiclocks/    the daemon's own HTTPS (magic.go)
//	members/, observations/        the live members, the watching handed over (members.go)
//	elections/                     the node playing each role, such as the CA's (leader.go)
//
// etcd does not encrypt what it stores: private keys are sealed with
// AES-256-GCM under a key the nodes share out of band, each bound to its
// etcd key, so that a value copied to another lineage or version does
// not open.
//
// Every change to a lineage is one transaction. Under the lineage's
// lock (Lock), it also requires that this node's session still owns the
// lock, so a node paused past its lease commits nothing; a new version
// also requires that the current pointer is the one it read.
package etcdstore

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/xmppcert/xmppcert/acme"
)

// KeySize is the size of the key that seals private keys: AES-256.
const KeySize = 32

// DefaultTimeout bounds each etcd request of a Store.
const DefaultTimeout = 5 * time.Second

// Options configure a Store.
type Options struct {
	// Prefix is the key prefix every key of the store is under, such as
	// "/xmppcert/"; it ends with a slash.
	Prefix string
	// Key seals the private keys (KeySize bytes); every node must have
	// the same.
	Key []byte
	// Node names this node: its deploy records are its own.
	Node string
	// Timeout bounds each request (DefaultTimeout when zero).
	Timeout time.Duration
	// OrderSlots caps the ACME orders the nodes have open at once per
	// account (DefaultOrderSlots when zero).
	OrderSlots int
}

// Store is an acme.Store in etcd. Its locks belong to session: when the
// session's lease ends (the node died or was cut off), they are released
// and commits fenced on them fail.
type Store struct {
	client *clientv3.Client
	opts   Options
	aead   cipher.AEAD

	sessMu  sync.Mutex
	session *concurrency.Session // the node's; Open's keeper replaces it once it ends
	lost    time.Time            // when the session last ended, while no other is open
	closing bool                 // Close was called: the keeper opens no other

	mu         sync.Mutex
	advertised string                        // the URL Join advertises (Advertise)
	locks      map[string]*concurrency.Mutex // held by this process
	held       map[string]bool               // accounts' and order slots' in-process locks
	owned      bool                          // Open made the client
	stopKeep   context.CancelFunc            // stops Open's keeper
	kept       chan struct{}                 // closed when the keeper has stopped
}

var _ acme.Store = (*Store)(nil)

// ErrNotOwner is returned by a commit under a lineage's lock that the
// node no longer owns: its lease expired, and another node may hold it.
var ErrNotOwner = errors.New("this node no longer holds the lineage's lock (its etcd lease expired); nothing was written")

// ErrConflict is returned by a new version whose lineage changed since
// it was read: another writer won.
var ErrConflict = errors.New("the lineage changed in etcd while this version was written; nothing was written")

// New returns the Store of opts over client, whose locks are session's.
func New(client *clientv3.Client, session *concurrency.Session, opts Options) (*Store, error) {
	if len(opts.Key) != KeySize {
		return nil, fmt.Errorf("etcdstore: the sealing key is %d bytes; it must be %d", len(opts.Key), KeySize)
	}
	if opts.Prefix == "" || !strings.HasSuffix(opts.Prefix, "/") {
		return nil, fmt.Errorf("etcdstore: prefix %q must end with a slash", opts.Prefix)
	}
	if opts.Node == "" || strings.Contains(opts.Node, "/") {
		return nil, fmt.Errorf("etcdstore: node name %q must be non-empty without a slash", opts.Node)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	block, err := aes.NewCipher(opts.Key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Store{client: client, session: session, opts: opts, aead: aead, locks: map[string]*concurrency.Mutex{}}, nil
}

// ErrUnavailable is wrapped by the errors of a Store that cannot reach
// a quorum of etcd: the node's session ended (or an etcd request timed
// out) and nothing can be locked or written until etcd answers again.
var ErrUnavailable = errors.New("the cluster store is unavailable (etcd has no quorum or cannot be reached)")

// UnavailableError says since when the node has had no session.
type UnavailableError struct {
	Since time.Time
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("%v since %s", ErrUnavailable, e.Since.UTC().Format(time.DateTime))
}

// Unwrap is ErrUnavailable.
func (e *UnavailableError) Unwrap() error { return ErrUnavailable }

// live returns the node's session, or an *UnavailableError once it has
// ended and no other is open yet.
func (s *Store) live() (*concurrency.Session, error) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	select {
	case <-s.session.Done():
		if s.lost.IsZero() {
			s.lost = time.Now()
		}
		return nil, &UnavailableError{Since: s.lost}
	default:
		return s.session, nil
	}
}

// Unavailable is nil while the node has a session, else an
// *UnavailableError: renewals must wait; what the node already deployed
// stays as it is.
func (s *Store) Unavailable() error {
	_, err := s.live()
	return err
}

// unavailable wraps an etcd request's failure with ErrUnavailable when
// it means that no quorum answered in time.
func unavailable(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return s.within(context.Background())
}

// within bounds ctx by the request timeout.
func (s *Store) within(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.Timeout)
}

func (s *Store) lineageKey(name, rest string) string {
	return s.opts.Prefix + "lineages/" + name + "/" + rest
}

func (s *Store) versionKey(name string, n int) string {
	return s.lineageKey(name, fmt.Sprintf("versions/%06d", n))
}

// checkName refuses a name that would escape its lineage's keys.
func checkName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("lineage name %q: %w", name, acme.ErrNoLineage)
	}
	return nil
}

// Lock takes the lineage's lock without waiting: the in-process lock
// first (etcd's are re-entrant within one session), then the session's
// mutex. A lock held elsewhere returns *acme.LockedError.
func (s *Store) Lock(name string) (func(), error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	s.mu.Lock()
	if _, held := s.locks[name]; held {
		s.mu.Unlock()
		return nil, &acme.LockedError{Name: name}
	}
	session, err := s.live()
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("locking lineage %s: %w", name, err)
	}
	m := concurrency.NewMutex(session, s.opts.Prefix+"locks/"+name)
	s.locks[name] = m
	s.mu.Unlock()
	ctx, cancel := s.ctx()
	defer cancel()
	release := func() {
		s.mu.Lock()
		delete(s.locks, name)
		s.mu.Unlock()
	}
	if err := m.TryLock(ctx); err != nil {
		release()
		if errors.Is(err, concurrency.ErrLocked) {
			return nil, &acme.LockedError{Name: name, Node: s.holder(name)}
		}
		return nil, fmt.Errorf("etcd: locking lineage %s: %w", name, unavailable(err))
	}
	// The lock's key names its holder, for the others' messages; its
	// create revision, which ownership is judged by, stays.
	s.client.Put(ctx, m.Key(), s.opts.Node, clientv3.WithLease(session.Lease()))
	return func() {
		ctx, cancel := s.ctx()
		defer cancel()
		m.Unlock(ctx) // a lost lease released it already
		release()
	}, nil
}

// holder is the node holding lineage name's lock, as its key says; empty
// when it cannot be told.
func (s *Store) holder(name string) string {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.client.Get(ctx, s.opts.Prefix+"locks/"+name+"/", clientv3.WithFirstCreate()...)
	if err != nil || len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// fence is the comparison that a commit to lineage name needs: that this
// node still owns its lock, when this process holds it.
func (s *Store) fence(name string) []clientv3.Cmp {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m, ok := s.locks[name]; ok {
		return []clientv3.Cmp{m.IsOwner()}
	}
	return nil
}

// commit runs ops in one transaction under cmps and the lineage's fence.
func (s *Store) commit(name string, cmps []clientv3.Cmp, ops ...clientv3.Op) error {
	fence := s.fence(name)
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.client.Txn(ctx).If(append(fence, cmps...)...).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("etcd: lineage %s: %w", name, unavailable(err))
	}
	if !resp.Succeeded {
		if len(fence) > 0 {
			if owner, err := s.owns(name); err == nil && !owner {
				return fmt.Errorf("lineage %s: %w", name, ErrNotOwner)
			}
		}
		return fmt.Errorf("lineage %s: %w", name, ErrConflict)
	}
	return nil
}

// owns says whether this node's lock on name is still the lock's owner.
func (s *Store) owns(name string) (bool, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	s.mu.Lock()
	m := s.locks[name]
	s.mu.Unlock()
	if m == nil {
		return false, nil
	}
	resp, err := s.client.Txn(ctx).If(m.IsOwner()).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// get reads one key: its value and mod revision, nil and 0 when absent.
func (s *Store) get(key string) ([]byte, int64, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("etcd: reading %s: %w", key, unavailable(err))
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// getJSON reads a record into v, which keeps its zero value when absent.
func (s *Store) getJSON(key string, v any) (bool, error) {
	b, _, err := s.get(key)
	if err != nil || b == nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("etcd: %s: %w", key, err)
	}
	return true, nil
}

// current reads a lineage's current version and the pointer's revision.
func (s *Store) current(name string) (int, int64, error) {
	if err := checkName(name); err != nil {
		return 0, 0, err
	}
	b, rev, err := s.get(s.lineageKey(name, "current"))
	if err != nil {
		return 0, 0, err
	}
	if b == nil {
		return 0, 0, fmt.Errorf("lineage %s: %w", name, acme.ErrNoLineage)
	}
	n, err := strconv.Atoi(string(b))
	if err != nil || n < 1 {
		return 0, 0, fmt.Errorf("etcd: lineage %s: current version %q is not a number", name, b)
	}
	return n, rev, nil
}

// Names lists the lineages, sorted.
func (s *Store) Names() ([]string, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	pfx := s.opts.Prefix + "lineages/"
	resp, err := s.client.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd: listing lineages: %w", unavailable(err))
	}
	var names []string
	for _, kv := range resp.Kvs {
		if name, ok := strings.CutSuffix(strings.TrimPrefix(string(kv.Key), pfx), "/current"); ok && !strings.Contains(name, "/") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// Versions lists a lineage's version numbers, ascending.
func (s *Store) Versions(name string) ([]int, error) {
	if _, _, err := s.current(name); err != nil {
		return nil, err
	}
	return s.allVersions(name)
}

// Load reads the current version of a lineage.
func (s *Store) Load(name string) (*acme.Lineage, error) {
	n, _, err := s.current(name)
	if err != nil {
		return nil, err
	}
	return s.LoadVersion(name, n)
}

// LoadVersion reads version n of a lineage, its key checked to belong to
// its certificate.
func (s *Store) LoadVersion(name string, n int) (*acme.Lineage, error) {
	v, err := s.readVersion(name, n)
	if err != nil {
		return nil, err
	}
	key := s.versionKey(name, n)
	l := &acme.Lineage{Name: name, Version: n, Request: v.Request, Chain: v.chain}
	if l.Key, err = s.openKey(key+"#key", v.Key); err != nil {
		return nil, err
	}
	if !acme.SamePublicKey(l.Chain[0], l.Key) {
		return nil, fmt.Errorf("etcd: %s: the key does not belong to the certificate", key)
	}
	if len(v.NextKey) > 0 {
		if l.NextKey, err = s.openKey(key+"#next", v.NextKey); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// VersionLeaf reads the leaf of version n of a lineage, and no key.
func (s *Store) VersionLeaf(name string, n int) (*x509.Certificate, error) {
	v, err := s.readVersion(name, n)
	if err != nil {
		return nil, err
	}
	return v.chain[0], nil
}

// Current reads what a renewal decision needs, and no key.
func (s *Store) Current(name string) (*acme.Current, error) {
	n, _, err := s.current(name)
	if err != nil {
		return nil, err
	}
	v, err := s.readVersion(name, n)
	if err != nil {
		return nil, err
	}
	c := &acme.Current{Name: name, Version: n, Request: v.Request, Leaf: v.chain[0]}
	if _, err := s.getJSON(s.lineageKey(name, "renew"), &c.State); err != nil {
		return nil, err
	}
	return c, nil
}

// version is one lineage version as stored: the keys sealed.
type version struct {
	Request acme.Request `json:"request"`
	Chain   [][]byte     `json:"chain"`
	Key     []byte       `json:"key"`
	NextKey []byte       `json:"next_key,omitempty"`

	chain []*x509.Certificate
}

func (s *Store) readVersion(name string, n int) (*version, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	key := s.versionKey(name, n)
	b, _, err := s.get(key)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("lineage %s has no version %d: %w", name, n, acme.ErrNoLineage)
	}
	return decodeVersion(key, b)
}

// decodeVersion parses a stored version: its JSON and its certificates,
// at least one.
func decodeVersion(key string, b []byte) (*version, error) {
	var v version
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("etcd: %s: %w", key, err)
	}
	for _, der := range v.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("etcd: %s: %w", key, err)
		}
		v.chain = append(v.chain, c)
	}
	if len(v.chain) == 0 {
		return nil, fmt.Errorf("etcd: %s holds no certificate", key)
	}
	return &v, nil
}

// Write stores iss as a new version of req's lineage with next as its
// next key, and makes it current unless req.Stage is set, in one
// transaction that requires the current pointer unchanged since it was
// read (and, under the lock, this node still its owner).
func (s *Store) Write(req acme.Request, iss *acme.Issued, next crypto.Signer) (*acme.Lineage, error) {
	name := req.Host()
	if err := checkName(name); err != nil {
		return nil, err
	}
	if len(iss.Chain) == 0 {
		return nil, fmt.Errorf("lineage %s: no certificate to write", name)
	}
	_, rev, err := s.current(name)
	if err != nil && !errors.Is(err, acme.ErrNoLineage) {
		return nil, err
	}
	versions, err := s.allVersions(name)
	if err != nil {
		return nil, err
	}
	n := 1
	if len(versions) > 0 {
		n = versions[len(versions)-1] + 1
	}
	key := s.versionKey(name, n)
	v := version{Request: req}
	for _, c := range iss.Chain {
		v.Chain = append(v.Chain, c.Raw)
	}
	if v.Key, err = s.sealKey(key+"#key", iss.Key); err != nil {
		return nil, err
	}
	if next != nil {
		if v.NextKey, err = s.sealKey(key+"#next", next); err != nil {
			return nil, err
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	ops := []clientv3.Op{clientv3.OpPut(key, string(b))}
	if !req.Stage {
		ops = append(ops, clientv3.OpPut(s.lineageKey(name, "current"), strconv.Itoa(n)))
	}
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(s.lineageKey(name, "current")), "=", rev),
		clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
	}
	if err := s.commit(name, cmps, ops...); err != nil {
		return nil, err
	}
	return &acme.Lineage{Name: name, Version: n, Request: req, Chain: iss.Chain, Key: iss.Key, NextKey: next}, nil
}

// allVersions lists the version numbers, with or without a current one.
func (s *Store) allVersions(name string) ([]int, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	pfx := s.lineageKey(name, "versions/")
	resp, err := s.client.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd: lineage %s: listing versions: %w", name, err)
	}
	var out []int
	for _, kv := range resp.Kvs {
		if n, err := strconv.Atoi(strings.TrimPrefix(string(kv.Key), pfx)); err == nil {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Promote makes version n of a lineage the current one.
func (s *Store) Promote(name string, n int) (*acme.Lineage, error) {
	if _, err := s.readVersion(name, n); err != nil {
		return nil, err
	}
	key := s.versionKey(name, n)
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), ">", 0)}
	if err := s.commit(name, cmps, clientv3.OpPut(s.lineageKey(name, "current"), strconv.Itoa(n))); err != nil {
		return nil, err
	}
	return s.LoadVersion(name, n)
}

// Delete removes a lineage and every record of it.
func (s *Store) Delete(name string) error {
	if _, _, err := s.current(name); err != nil {
		return err
	}
	return s.commit(name, nil, clientv3.OpDelete(s.lineageKey(name, ""), clientv3.WithPrefix()))
}

// putJSON replaces a record of lineage name (under its fence); a nil v
// deletes it.
func (s *Store) putJSON(name, rest string, v any) error {
	if err := checkName(name); err != nil {
		return err
	}
	key := s.lineageKey(name, rest)
	if v == nil {
		return s.commit(name, nil, clientv3.OpDelete(key))
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.commit(name, nil, clientv3.OpPut(key, string(b)))
}

// SaveRenewState records st; the zero RenewState removes the record.
func (s *Store) SaveRenewState(name string, st acme.RenewState) error {
	if st == (acme.RenewState{}) {
		return s.putJSON(name, "renew", nil)
	}
	return s.putJSON(name, "renew", st)
}

// WindowRecord returns the CA's renewal window last recorded.
func (s *Store) WindowRecord(name string) (acme.WindowRecord, error) {
	var w acme.WindowRecord
	if err := checkName(name); err != nil {
		return w, err
	}
	_, err := s.getJSON(s.lineageKey(name, "window"), &w)
	return w, err
}

// SaveWindowRecord replaces it; any writer may (every answer of the CA
// is right), so it is not fenced.
func (s *Store) SaveWindowRecord(name string, w acme.WindowRecord) error {
	if err := checkName(name); err != nil {
		return err
	}
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.client.Put(ctx, s.lineageKey(name, "window"), string(b)); err != nil {
		return fmt.Errorf("etcd: lineage %s: %w", name, err)
	}
	return nil
}

// PinState reads the lineage's pin state.
func (s *Store) PinState(name string) (acme.PinState, error) {
	var p acme.PinState
	if err := checkName(name); err != nil {
		return p, err
	}
	_, err := s.getJSON(s.lineageKey(name, "pins"), &p)
	return p, err
}

// SavePinState replaces it.
func (s *Store) SavePinState(name string, p acme.PinState) error {
	return s.putJSON(name, "pins", p)
}

// DeployRecord reads this node's deploy record of the lineage: empty
// (and ok) when the node has deployed nothing of it, since a cluster
// keeps records from its start; a node that joins deploys every version
// it finds.
func (s *Store) DeployRecord(name string) (acme.DeployRecord, bool, error) {
	var rec acme.DeployRecord
	if err := checkName(name); err != nil {
		return rec, false, err
	}
	_, err := s.getJSON(s.lineageKey(name, "deployed/"+s.opts.Node), &rec)
	return rec, err == nil, err
}

// SaveDeployRecord replaces this node's deploy record of the lineage.
func (s *Store) SaveDeployRecord(name string, rec acme.DeployRecord) error {
	return s.putJSON(name, "deployed/"+s.opts.Node, rec)
}

// Node is this node's name (Options.Node).
func (s *Store) Node() string { return s.opts.Node }

// SavePOSHServed records what this node's POSH documents of the lineage
// list.
func (s *Store) SavePOSHServed(name string, rec acme.POSHServed) error {
	return s.putJSON(name, "posh/"+s.opts.Node, rec)
}

// POSHServed is, by node, what the POSH documents of every live member
// that recorded them list; a record that does not decode is left out.
func (s *Store) POSHServed(name string) (map[string]acme.POSHServed, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	members, err := s.Members()
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	pfx := s.lineageKey(name, "posh/")
	resp, err := s.client.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: reading the POSH records of %s: %w", name, unavailable(err))
	}
	out := map[string]acme.POSHServed{}
	for _, kv := range resp.Kvs {
		node := strings.TrimPrefix(string(kv.Key), pfx)
		var rec acme.POSHServed
		if slices.Contains(members, node) && json.Unmarshal(kv.Value, &rec) == nil {
			out[node] = rec
		}
	}
	return out, nil
}

// sealKey encrypts a private key (PKCS #8) bound to where it is stored.
func (s *Store) sealKey(where string, k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return s.seal(where, der), nil
}

// seal encrypts plain bound to where it is stored: a random nonce, then
// the AES-GCM ciphertext with where as additional data.
func (s *Store) seal(where string, plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce) // never fails (crypto/rand)
	return s.aead.Seal(nonce, nonce, plain, []byte(where))
}

// open decrypts what seal sealed for where.
func (s *Store) open(where string, sealed []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < ns {
		return nil, fmt.Errorf("etcd: %s: the sealed value is truncated", where)
	}
	plain, err := s.aead.Open(nil, sealed[:ns], sealed[ns:], []byte(where))
	if err != nil {
		return nil, fmt.Errorf("etcd: %s: the value does not open with this node's sealing key (another key file, or the value was moved)", where)
	}
	return plain, nil
}

// openKey decrypts what sealKey sealed for where.
func (s *Store) openKey(where string, sealed []byte) (crypto.Signer, error) {
	der, err := s.open(where, sealed)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("etcd: %s: %w", where, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("etcd: %s: %T is not a signing key", where, k)
	}
	return signer, nil
}
