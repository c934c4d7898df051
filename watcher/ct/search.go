package ct

import (
	"context"
	"fmt"
)

// Search reads count entries of each log at urls once (xmppcert ct
// check): from the entry from, or with from nil the last count entries,
// and calls found for every entry that m matches (one call at a time).
// It returns why each log that could not be read whole stopped; the
// others are read all the same.
func Search(ctx context.Context, urls []string, from *uint64, count uint64, m *Matcher, found func(Log, Match)) []error {
	var failed []error
	for _, u := range urls {
		l, err := Detect(ctx, u, nil)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		size, err := (&Client{Log: l}).Size(ctx)
		if err != nil {
			failed = append(failed, err)
			continue
		}
		start := size - min(size, count)
		if from != nil {
			start = *from
		}
		pos := &MemPositions{}
		pos.Set(l.URL, start)
		f := &Follower{Logs: []Log{l}, Positions: pos, MaxPerRound: count}
		if r := f.Round(ctx, m, found); r[0].Err != nil {
			failed = append(failed, fmt.Errorf("%s: read up to entry %d: %w", l.URL, r[0].To, r[0].Err))
		}
	}
	return failed
}
