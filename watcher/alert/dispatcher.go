package alert

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/xmppcert/xmppcert/watcher"
	"github.com/xmppcert/xmppcert/watcher/changes"
)

// DefaultResendInterval is how long a persisting condition stays quiet
// when DispatcherOptions.ResendInterval is 0.
const DefaultResendInterval = 24 * time.Hour

// DispatcherOptions configure a Dispatcher.
type DispatcherOptions struct {
	// ResendInterval is how long a Key stays suppressed after it was
	// sent (DefaultResendInterval). Negative means never re-send while
	// the condition persists.
	ResendInterval time.Duration
	// Now is the clock for de-duplication; nil means time.Now.
	Now func() time.Time
	// Logger gets the Dispatcher's own messages; nil means slog.Default().
	Logger *slog.Logger
}

// Dispatcher fans alerts out to sinks and de-duplicates them by
// Change.Key (see the package documentation). It is safe for concurrent
// use; Dispatch and Report never wait for a receiver.
type Dispatcher struct {
	sinks    []Sink
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu   sync.Mutex
	sent map[string]*sentKey
	// lastPrune is when forgotten keys were last swept out.
	lastPrune time.Time

	suppressed atomic.Uint64
}

type sentKey struct {
	endpoint string
	sent     time.Time // last sent
	seen     time.Time // last reported
}

// NewDispatcher returns a dispatcher sending to sinks.
func NewDispatcher(o DispatcherOptions, sinks ...Sink) *Dispatcher {
	if o.ResendInterval == 0 {
		o.ResendInterval = DefaultResendInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Dispatcher{sinks: sinks, interval: o.ResendInterval, now: o.Now, log: o.Logger, sent: map[string]*sentKey{}}
}

// Dispatch sends the alert to every sink unless its Key was sent less
// than ResendInterval ago and not resolved since; it reports whether the
// alert went out. An alert with an empty Key is never de-duplicated.
func (d *Dispatcher) Dispatch(a Alert) bool {
	now := d.now()
	if key := a.Change.Key; key != "" {
		d.mu.Lock()
		d.prune(now)
		s, ok := d.sent[key]
		switch {
		case !ok:
			d.sent[key] = &sentKey{endpoint: a.Endpoint.String(), sent: now, seen: now}
		case d.interval < 0 || now.Sub(s.sent) < d.interval:
			s.seen = now
			d.mu.Unlock()
			d.suppressed.Add(1)
			d.log.Debug("alert suppressed as a repeat", "key", key)
			return false
		default:
			s.sent, s.seen = now, now
			a.Resent = true
		}
		d.mu.Unlock()
	}
	for _, s := range d.sinks {
		s.Send(a)
	}
	return true
}

// Report dispatches one classification of one endpoint (the result of
// changes.Classify for the probe at time at) and resolves every Key of
// that endpoint sent before that this classification no longer reports.
// It returns how many alerts went out. The daemon calls it after each
// probe, with an empty list when nothing changed.
func (d *Dispatcher) Report(ep watcher.EndpointKey, at time.Time, cs []changes.Change) int {
	n := 0
	keep := make(map[string]bool, len(cs))
	for _, c := range cs {
		keep[c.Key] = true
		if d.Dispatch(Alert{Endpoint: ep, Change: c, At: at}) {
			n++
		}
	}
	name := ep.String()
	d.mu.Lock()
	for k, s := range d.sent {
		if s.endpoint == name && !keep[k] {
			delete(d.sent, k)
		}
	}
	d.mu.Unlock()
	return n
}

// Resolve says that the condition behind key has cleared: its next
// occurrence is sent at once.
func (d *Dispatcher) Resolve(key string) {
	d.mu.Lock()
	delete(d.sent, key)
	d.mu.Unlock()
}

// Suppressed counts the alerts withheld as duplicates, for metrics.
func (d *Dispatcher) Suppressed() uint64 { return d.suppressed.Load() }

// Close closes every sink, letting queued alerts drain until ctx is done.
func (d *Dispatcher) Close(ctx context.Context) error {
	var errs []error
	for _, s := range d.sinks {
		if err := s.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// prune forgets keys not reported for a whole interval, so that endpoints
// no longer watched do not hold memory; a forgotten key would be sent
// again anyway. It runs at most once a minute. d.mu must be held.
func (d *Dispatcher) prune(now time.Time) {
	if d.interval < 0 || now.Sub(d.lastPrune) < time.Minute {
		return
	}
	d.lastPrune = now
	for k, s := range d.sent {
		if now.Sub(s.seen) >= d.interval {
			delete(d.sent, k)
		}
	}
}
