package etcdstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"strconv"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/xmppcert/xmppcert/acme"
)

// The ACME accounts and order slots, under the prefix:
//
//	accounts/HASH          one account (JSON, the key sealed)
//	accountlocks/HASH/     the account's registration lock
//	orderslots/HASH/N/     slot N of the account's orders (a concurrency.Mutex)
//
// HASH is the first 16 hex digits of the SHA-256 of the directory URL
// (of the account URL for the slots), as acmeca.AccountDir names the
// directory of one on disk.

// DefaultOrderSlots is how many ACME orders the nodes of a cluster have
// open at once per account when Options.OrderSlots is zero.
const DefaultOrderSlots = 4

// slotPoll is how often TakeOrderSlot looks again for a free slot.
const slotPoll = 250 * time.Millisecond

var (
	_ acme.AccountStore = (*Store)(nil)
	_ acme.OrderSlots   = (*Store)(nil)
)

// storedAccount is an account as kept in etcd.
type storedAccount struct {
	acme.Account
	// SealedKey is the account key, sealed as the lineages' keys are.
	SealedKey []byte `json:"sealed_key"`
}

func hash16(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}

func (s *Store) accountKey(directory string) string {
	return s.opts.Prefix + "accounts/" + hash16(directory)
}

// Account reads the account the cluster keeps for directory: an error
// wrapping fs.ErrNotExist when there is none.
func (s *Store) Account(directory string) (*acme.Account, error) {
	key := s.accountKey(directory)
	b, _, err := s.get(key)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return nil, fmt.Errorf("etcd: %s: %w", key, fs.ErrNotExist)
	}
	return s.decodeAccount(key, b)
}

// decodeAccount parses a stored account and opens its key.
func (s *Store) decodeAccount(key string, b []byte) (*acme.Account, error) {
	var a storedAccount
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("etcd: %s: %w", key, err)
	}
	if a.Location == "" {
		return nil, fmt.Errorf("etcd: %s names no account URL", key)
	}
	k, err := s.openKey(key, a.SealedKey)
	if err != nil {
		return nil, err
	}
	a.Account.Key = k
	return &a.Account, nil
}

// SaveAccount keeps a for every node, its key sealed.
func (s *Store) SaveAccount(a *acme.Account) error {
	key := s.accountKey(a.Directory)
	sealed, err := s.sealKey(key, a.Key)
	if err != nil {
		return err
	}
	b, err := json.Marshal(storedAccount{Account: *a, SealedKey: sealed})
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.client.Put(ctx, key, string(b)); err != nil {
		return fmt.Errorf("etcd: writing %s: %w", key, unavailable(err))
	}
	return nil
}

// RemoveAccount forgets directory's account.
func (s *Store) RemoveAccount(directory string) error {
	key := s.accountKey(directory)
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.client.Delete(ctx, key); err != nil {
		return fmt.Errorf("etcd: removing %s: %w", key, unavailable(err))
	}
	return nil
}

// AccountPlace names directory's account key in etcd.
func (s *Store) AccountPlace(directory string) string {
	return "etcd key " + s.accountKey(directory)
}

// LockAccount takes directory's registration lock, waiting within ctx
// for another node (or goroutine) that holds it: the in-process lock
// first (etcd's are re-entrant within one session), then the session's
// mutex.
func (s *Store) LockAccount(ctx context.Context, directory string) (func(), error) {
	name := "account " + hash16(directory)
	if err := s.waitLocal(ctx, name); err != nil {
		return nil, err
	}
	session, err := s.live()
	if err != nil {
		s.releaseLocal(name)
		return nil, fmt.Errorf("locking the ACME account of %s: %w", directory, err)
	}
	m := concurrency.NewMutex(session, s.opts.Prefix+"accountlocks/"+hash16(directory))
	if err := m.Lock(ctx); err != nil {
		s.releaseLocal(name)
		return nil, fmt.Errorf("etcd: locking the ACME account of %s: %w", directory, unavailable(err))
	}
	return func() {
		uctx, cancel := s.ctx()
		defer cancel()
		m.Unlock(uctx)
		s.releaseLocal(name)
	}, nil
}

// TakeOrderSlot waits within ctx for one of the account's order slots,
// shared by every node: it tries each, from a random one, without
// waiting, and looks again every slotPoll while all are held. A slot is
// a mutex on the node's session: one whose node died is free when its
// lease ends.
func (s *Store) TakeOrderSlot(ctx context.Context, account string) (func(), error) {
	n := s.opts.OrderSlots
	if n <= 0 {
		n = DefaultOrderSlots
	}
	pfx := s.opts.Prefix + "orderslots/" + hash16(account) + "/"
	for {
		start := rand.IntN(n)
		for i := range n {
			slot := strconv.Itoa((start + i) % n)
			local := "order slot " + pfx + slot
			if !s.tryLocal(local) {
				continue
			}
			session, err := s.live()
			if err != nil {
				s.releaseLocal(local)
				return nil, fmt.Errorf("taking an order slot: %w", err)
			}
			m := concurrency.NewMutex(session, pfx+slot)
			tctx, cancel := s.ctx()
			err = m.TryLock(tctx)
			cancel()
			if err == nil {
				return func() {
					uctx, cancel := s.ctx()
					defer cancel()
					m.Unlock(uctx)
					s.releaseLocal(local)
				}, nil
			}
			s.releaseLocal(local)
			if !errors.Is(err, concurrency.ErrLocked) {
				return nil, fmt.Errorf("etcd: taking an order slot: %w", unavailable(err))
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("all %d order slots of the account stayed taken: %w", n, context.Cause(ctx))
		case <-time.After(slotPoll):
		}
	}
}

// tryLocal takes the in-process lock name without waiting.
func (s *Store) tryLocal(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held[name] {
		return false
	}
	if s.held == nil {
		s.held = map[string]bool{}
	}
	s.held[name] = true
	return true
}

// waitLocal takes the in-process lock name, looking again every slotPoll
// until ctx ends.
func (s *Store) waitLocal(ctx context.Context, name string) error {
	for !s.tryLocal(name) {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(slotPoll):
		}
	}
	return nil
}

func (s *Store) releaseLocal(name string) {
	s.mu.Lock()
	delete(s.held, name)
	s.mu.Unlock()
}
