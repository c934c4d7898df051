package alert

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
)

// DefaultQueueSize is the queue length when QueueOptions.Size is 0.
const DefaultQueueSize = 256

// QueueOptions bound a sink's queue.
type QueueOptions struct {
	// Size is how many alerts wait for delivery at most; 0 means
	// DefaultQueueSize.
	Size int
	// DropNewest makes a full queue refuse the incoming alert. The
	// default drops the oldest waiting alert instead, because the newest
	// says most about the endpoint's present state. Either way the drop
	// is counted (QueueStats.Dropped) and logged.
	DropNewest bool
}

// QueueStats count what a Queue did, for metrics and tests.
type QueueStats struct {
	// Enqueued alerts were accepted by Send.
	Enqueued uint64
	// Delivered alerts were handed to the receiver successfully.
	Delivered uint64
	// Failed alerts ran out of retries or failed permanently.
	Failed uint64
	// Dropped alerts were discarded because the queue was full or the
	// sink was closed before they were delivered.
	Dropped uint64
	// Pending is how many wait now.
	Pending int
}

// DeliverFunc delivers one alert, blocking until it is delivered, has
// failed for good, or ctx is done. Retries are its business.
type DeliverFunc func(ctx context.Context, a Alert) error

// Queue is a Sink that queues alerts in memory and delivers them one at a
// time from its own goroutine, so that Send never blocks on the receiver.
// Webhook and Exec sinks are Queues.
type Queue struct {
	name    string
	deliver DeliverFunc
	size    int
	newest  bool
	log     *slog.Logger

	mu     sync.Mutex
	items  []Alert
	closed bool
	wake   chan struct{}
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc

	enqueued, delivered, failed, dropped atomic.Uint64
}

// NewQueue starts a queue in front of deliver. name is what logs call the
// sink; logger nil means slog.Default().
func NewQueue(name string, deliver DeliverFunc, o QueueOptions, logger *slog.Logger) *Queue {
	if o.Size <= 0 {
		o.Size = DefaultQueueSize
	}
	if logger == nil {
		logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	q := &Queue{
		name: name, deliver: deliver, size: o.Size, newest: o.DropNewest, log: logger,
		wake: make(chan struct{}, 1), done: make(chan struct{}), ctx: ctx, cancel: cancel,
	}
	go q.run()
	return q
}

// Name is the sink's name.
func (q *Queue) Name() string { return q.name }

// Send queues the alert and returns at once. When the queue is full the
// oldest waiting alert (or, with DropNewest, this one) is dropped and
// counted; after Close everything is dropped.
func (q *Queue) Send(a Alert) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.dropped.Add(1)
		return
	}
	var lostKind, lostKey string
	lost := false
	switch {
	case len(q.items) < q.size:
		q.items = append(q.items, a)
		q.enqueued.Add(1)
	case q.newest:
		lost, lostKind, lostKey = true, string(a.Change.Kind), a.Change.Key
	default:
		lost, lostKind, lostKey = true, string(q.items[0].Change.Kind), q.items[0].Change.Key
		q.items = append(q.items[:0], q.items[1:]...)
		q.items = append(q.items, a)
		q.enqueued.Add(1)
	}
	q.mu.Unlock()
	if lost {
		q.dropped.Add(1)
		q.log.Warn("alert queue full: alert dropped", "sink", q.name, "kind", lostKind, "key", lostKey, "dropped_total", q.dropped.Load())
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Queue) run() {
	defer close(q.done)
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			closed := q.closed
			q.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-q.wake:
			case <-q.ctx.Done():
			}
			continue
		}
		a := q.items[0]
		q.items = append(q.items[:0], q.items[1:]...)
		q.mu.Unlock()
		if q.ctx.Err() != nil {
			q.dropped.Add(1)
			continue
		}
		if err := q.deliver(q.ctx, a); err != nil {
			q.failed.Add(1)
			q.log.Warn("alert not delivered", "sink", q.name, "kind", string(a.Change.Kind), "key", a.Change.Key, "err", err.Error())
			continue
		}
		q.delivered.Add(1)
	}
}

// Stats returns the counters.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	n := len(q.items)
	q.mu.Unlock()
	return QueueStats{Enqueued: q.enqueued.Load(), Delivered: q.delivered.Load(), Failed: q.failed.Load(), Dropped: q.dropped.Load(), Pending: n}
}

// Close stops accepting alerts and delivers what is queued until ctx is
// done; then it cancels the delivery in progress, drops the rest and
// returns an error saying how many were lost.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	select {
	case <-q.done:
		q.cancel()
		return nil
	case <-ctx.Done():
	}
	q.mu.Lock()
	n := len(q.items)
	q.mu.Unlock()
	q.cancel()
	<-q.done
	return fmt.Errorf("alert sink %s: closed with %d alerts undelivered: %w", q.name, n, ctx.Err())
}
