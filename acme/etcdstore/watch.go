package etcdstore

import (
	"context"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Changes reports every change of a lineage's current pointer in the
// cluster, by any node (a new version, a promotion, a deletion), so
// that a node writes the new version into its own layout and deploys it
// at once instead of at its next run. A signal also follows every time
// the watch had to start again (a lost connection, a compacted
// revision): the receiver then looks at everything, since changes may
// have been missed. Signals coalesce (the channel holds one); it is
// closed when ctx is done.
func (s *Store) Changes(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	signal := func() {
		select {
		case out <- struct{}{}:
		default:
		}
	}
	pfx := s.opts.Prefix + "lineages/"
	go func() {
		defer close(out)
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
			for resp := range s.client.Watch(wctx, pfx, clientv3.WithPrefix()) {
				if resp.Err() != nil || resp.Canceled {
					break
				}
				for _, ev := range resp.Events {
					if strings.HasSuffix(string(ev.Kv.Key), "/current") {
						signal()
						break
					}
				}
			}
			cancel()
		}
	}()
	return out
}
