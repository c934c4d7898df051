package etcdstore

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Changes reports every change of a lineage's current pointer in the
// cluster, by any node (a new version, a promotion, a deletion), so
// that a node writes the new version into its own layout and deploys it
// at once instead of at its next run; and every release of a lineage's
// lock by another session (another node or a command: it finished, or
// died and its lease ended), so
// that a renewal the holder did not finish is taken over at once. A signal also
// follows every time the watch had to start again (a lost connection, a
// compacted revision): the receiver then looks at everything, since
// changes may have been missed; and when the node's session ends and
// when the next one is open, so that renewals pause and resume at once.
// Signals coalesce (the channel holds one); it is closed when ctx is
// done.
func (s *Store) Changes(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.watchLineages(ctx, signal) })
	wg.Go(func() { s.watchSession(ctx, signal) })
	go func() {
		wg.Wait()
		close(out)
	}()
	return out
}

// watchSession signals when the node's session ends (its renewals must
// pause, and say so) and again when the next one is open (they resume),
// until ctx is done.
func (s *Store) watchSession(ctx context.Context, signal func()) {
	for ctx.Err() == nil {
		s.sessMu.Lock()
		session := s.session
		s.sessMu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-session.Done():
		}
		signal()
		for s.Unavailable() != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		signal()
	}
}

// watchLineages signals the changes of current pointers and the lock
// releases that call for a run (wakes), and every restart of its watch,
// until ctx is done.
func (s *Store) watchLineages(ctx context.Context, signal func()) {
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			signal() // a restart: something may have been missed
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		lineages := s.client.Watch(wctx, s.opts.Prefix+"lineages/", clientv3.WithPrefix())
		locks := s.client.Watch(wctx, s.opts.Prefix+"locks/", clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithPrevKV())
		for watching := true; watching; {
			var resp clientv3.WatchResponse
			var ok bool
			select {
			case resp, ok = <-lineages:
			case resp, ok = <-locks:
			}
			if !ok || resp.Err() != nil || resp.Canceled {
				watching = false
				continue
			}
			if slices.ContainsFunc(resp.Events, s.wakes) {
				signal()
			}
		}
		cancel()
	}
}

// wakes says whether a watched event calls for a run: a current pointer
// changed, or a lock on a lineage was released by another session than
// this store's (another node, or a command run on this one, such as
// revoke: this process's own releases follow its own runs).
func (s *Store) wakes(ev *clientv3.Event) bool {
	key := string(ev.Kv.Key)
	if strings.HasPrefix(key, s.opts.Prefix+"locks/") {
		if ev.Type != clientv3.EventTypeDelete {
			return false
		}
		s.sessMu.Lock()
		own := s.session.Lease()
		s.sessMu.Unlock()
		return ev.PrevKv == nil || clientv3.LeaseID(ev.PrevKv.Lease) != own
	}
	return strings.HasSuffix(key, "/current")
}
