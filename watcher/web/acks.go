package web

import (
	"sync"

	"github.com/xmppcert/xmppcert/watcher/history"
)

// Acks records which changes an operator has acknowledged. For each
// endpoint (by watcher.EndpointKey.String()) it keeps the newest history
// entry (history.Entry.Seq) whose changes are acknowledged: every change
// up to and including that entry is, later ones are not. The daemon
// passes its *history.Store, which keeps them in the history file so that
// they survive a restart; MemoryAcks keeps them in memory (tests, and the
// default when Options.Acks is nil). Implementations must be safe for
// concurrent use.
type Acks interface {
	// Acked returns the newest acknowledged Seq of the endpoint, 0 when
	// nothing was acknowledged.
	Acked(key string) (uint64, error)
	// Ack acknowledges the endpoint's changes up to seq. It never moves
	// the acknowledgement back: an older seq than the recorded one is a
	// no-op.
	Ack(key string, seq uint64) error
}

// The daemon's persistent acknowledgements.
var _ Acks = (*history.Store)(nil)

// MemoryAcks is an Acks kept in memory: acknowledgements are lost when
// the process exits, after which every change is shown again. The zero
// value is ready to use.
type MemoryAcks struct {
	mu sync.Mutex
	m  map[string]uint64
}

// NewMemoryAcks returns an empty MemoryAcks.
func NewMemoryAcks() *MemoryAcks { return &MemoryAcks{} }

// Acked returns the newest acknowledged Seq of key, 0 for none.
func (a *MemoryAcks) Acked(key string) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.m[key], nil
}

// Ack records seq for key unless a newer one is recorded.
func (a *MemoryAcks) Ack(key string, seq uint64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]uint64{}
	}
	if seq > a.m[key] {
		a.m[key] = seq
	}
	return nil
}
