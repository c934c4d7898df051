package lifecycle

import (
	"context"
	"runtime"
	"sync"
)

// aheadChunk is how many consecutive names a reader of ahead takes at
// once: handed out one by one, with a channel each, the hand-offs
// between goroutines cost a renew run over 10,000 lineages with nothing
// due about a tenth of its time, timed side by side with chunks.
const aheadChunk = 16

// aheadChunks bounds how many chunks ahead reads beyond the one it
// yields from: 256 names.
const aheadChunks = 16

// ahead calls read for each of names, from as many goroutines as Go runs
// at once, in chunks of consecutive names and at most aheadChunks chunks
// beyond the one yielded from, and yields each result with its index in
// the order of names. It stops when ctx ends or yield returns false, and
// returns once no read runs. Commands over every lineage (renew,
// certificates, status, deploy) read a few small files or etcd keys of
// each: spread over the CPUs, those reads overlap instead of waiting one
// for another.
func ahead[T any](ctx context.Context, names []string, read func(name string) T, yield func(i int, v T) bool) {
	chunks := (len(names) + aheadChunk - 1) / aheadChunk
	results := make([]T, len(names))
	done := make([]chan struct{}, chunks)
	for c := range done {
		done[c] = make(chan struct{})
	}
	next := make(chan int)
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), chunks) {
		readers.Go(func() {
			for c := range next {
				for i := c * aheadChunk; i < min((c+1)*aheadChunk, len(names)); i++ {
					results[i] = read(names[i])
				}
				close(done[c])
			}
		})
	}
	// The feeder hands out chunk c once chunk c-aheadChunks has been
	// yielded, so that what is read ahead stays bounded.
	yielded := make(chan struct{}, aheadChunks)
	readers.Go(func() {
		defer close(next)
		for c := range chunks {
			select {
			case yielded <- struct{}{}:
			case <-stop:
				return
			}
			select {
			case next <- c:
			case <-stop:
				return
			}
		}
	})
	defer readers.Wait()
	defer close(stop)
	for c := range chunks {
		select {
		case <-done[c]:
		case <-ctx.Done():
			return
		}
		<-yielded
		for i := c * aheadChunk; i < min((c+1)*aheadChunk, len(names)); i++ {
			if ctx.Err() != nil {
				return
			}
			v := results[i]
			var zero T
			results[i] = zero
			if !yield(i, v) {
				return
			}
		}
	}
}
