package alert

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// retry makes attempts with try until one succeeds, try says another
// would not, attempts are spent or ctx is done. Between attempts it waits
// with capped exponential backoff: from minWait, doubling up to maxWait,
// with jitter of up to half of the wait. name names the sink in the error.
func retry(ctx context.Context, name string, attempts int, minWait, maxWait time.Duration, try func() (again bool, err error)) error {
	var last error
	for attempt := 1; ; attempt++ {
		again, err := try()
		if err == nil {
			return nil
		}
		last = err
		if !again || attempt >= attempts {
			break
		}
		t := time.NewTimer(backoff(attempt, minWait, maxWait))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: gave up after %d attempts (%v): %w", name, attempt, ctx.Err(), last)
		case <-t.C:
		}
	}
	return fmt.Errorf("%s: gave up: %w", name, last)
}

// backoff is the wait after attempt number attempt (from 1).
func backoff(attempt int, minWait, maxWait time.Duration) time.Duration {
	d := minWait
	for i := 1; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	d = min(d, maxWait)
	return d/2 + rand.N(d/2+1)
}
