package lifecycle

import (
	"context"
	"runtime"
	"sync"
)

// readAhead bounds how many names ahead reads beyond the one it yields.
const readAhead = 256

// ahead calls read for each of names, from as many goroutines as Go runs
// at once and at most readAhead names beyond the one yielded, and
// yields each result with its index in the order of names. It stops
// when ctx ends or yield returns false, and returns once no read runs.
// Commands over every lineage (renew, certificates, status) read a few
// small files or etcd keys of each: spread over the CPUs, those reads
// overlap instead of waiting one for another.
func ahead[T any](ctx context.Context, names []string, read func(name string) T, yield func(i int, v T) bool) {
	type result struct {
		v    T
		done chan struct{}
	}
	results := make([]result, len(names))
	for i := range results {
		results[i].done = make(chan struct{})
	}
	next := make(chan int)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(names)) {
		readers.Go(func() {
			for i := range next {
				results[i].v = read(names[i])
				close(results[i].done)
			}
		})
	}
	// The feeder hands out name i once name i-readAhead has been
	// yielded, so that what is read ahead stays bounded.
	yielded := make(chan struct{}, readAhead)
	readers.Go(func() {
		defer close(next)
		for i := range names {
			select {
			case yielded <- struct{}{}:
			case <-stop:
				return
			}
			select {
			case next <- i:
			case <-stop:
				return
			}
		}
	})
	defer readers.Wait()
	defer close(stop)
	for i := range names {
		if ctx.Err() != nil {
			return
		}
		select {
		case <-results[i].done:
		case <-ctx.Done():
			return
		}
		<-yielded
		v := results[i].v
		results[i] = result{}
		if !yield(i, v) {
			return
		}
	}
}
