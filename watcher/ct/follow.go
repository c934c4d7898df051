package ct

import (
	"context"
	"net/http"
	"sync"
)

// DefaultMaxPerRound bounds the entries read from one log in one round
// when Follower.MaxPerRound is zero: a log that grew by more (after a
// long stop) is caught up over several rounds.
const DefaultMaxPerRound = 1 << 20

// Positions keeps where each log was read up to (history.Store in the
// daemon).
type Positions interface {
	// Position is the index of the next entry to read of log, and false
	// when the log was never read.
	Position(log string) (next uint64, ok bool, err error)
	// SetPosition records it.
	SetPosition(log string, next uint64) error
}

// MemPositions are Positions in memory, for a one-off search: Set
// chooses where each log is read from.
type MemPositions struct {
	mu sync.Mutex
	m  map[string]uint64
}

// Set makes log read from entry next on.
func (p *MemPositions) Set(log string, next uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[string]uint64{}
	}
	p.m[log] = next
}

// Position implements Positions.
func (p *MemPositions) Position(log string) (uint64, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.m[log]
	return n, ok, nil
}

// SetPosition implements Positions.
func (p *MemPositions) SetPosition(log string, next uint64) error {
	p.Set(log, next)
	return nil
}

// Follower reads the entries logs take in, round by round.
type Follower struct {
	// Logs are the logs followed.
	Logs []Log
	// Positions keeps where each log was read up to.
	Positions Positions
	// HTTP carries the requests; nil means one per request with the
	// client's timeout.
	HTTP *http.Client
	// MaxPerRound bounds the entries read of one log in a round;
	// DefaultMaxPerRound when zero.
	MaxPerRound uint64
}

// LogRound is what a round did with one log.
type LogRound struct {
	// Log is the log read.
	Log Log
	// From and To are the entries read, [From, To).
	From, To uint64
	// Started is true when the log was met for the first time: reading
	// starts at its size then, with the entries it takes in from now on.
	Started bool
	// Err is why the round stopped early; the next round retries from
	// To.
	Err error
}

// Round reads, for every log at once, the entries since its recorded
// position (at most MaxPerRound), calling found for every entry that m
// matches (one call at a time), and records the position after every
// batch, so that a round cut short (an error, ctx ended, the process
// killed) resumes where it stopped and skips nothing; only a batch whose
// position was not yet recorded when the process died is read, and its
// matches reported, again. A log never read before starts at its current size. A
// failing log is reported in its LogRound and never holds up the others.
func (f *Follower) Round(ctx context.Context, m *Matcher, found func(Log, Match)) []LogRound {
	out := make([]LogRound, len(f.Logs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, l := range f.Logs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = f.follow(ctx, l, m, func(mt Match) {
				mu.Lock()
				defer mu.Unlock()
				found(l, mt)
			})
		}()
	}
	wg.Wait()
	return out
}

func (f *Follower) follow(ctx context.Context, l Log, m *Matcher, found func(Match)) LogRound {
	r := LogRound{Log: l}
	c := &Client{Log: l, HTTP: f.HTTP}
	size, err := c.Size(ctx)
	if err != nil {
		r.Err = err
		return r
	}
	next, ok, err := f.Positions.Position(l.URL)
	if err != nil {
		r.Err = err
		return r
	}
	if !ok || next > size {
		// First contact (or a log that shrank, which a log never does:
		// start over at its end rather than wait for it to regrow).
		r.Started = true
		r.From, r.To = size, size
		r.Err = f.Positions.SetPosition(l.URL, size)
		return r
	}
	max := f.MaxPerRound
	if max == 0 {
		max = DefaultMaxPerRound
	}
	r.From, r.To = next, next
	end := min(size, next+max)
	for r.To < end {
		entries, err := c.Entries(ctx, r.To, end, size)
		if err == nil && len(entries) == 0 {
			return r // a tile not written yet: next round
		}
		if err != nil {
			r.Err = err
			return r
		}
		for _, e := range entries {
			if mt, ok := m.Match(e); ok {
				found(mt)
			}
		}
		r.To = entries[len(entries)-1].Index + 1
		if err := f.Positions.SetPosition(l.URL, r.To); err != nil {
			r.Err = err
			return r
		}
	}
	return r
}
