package preprocess

import (
	"runtime"
	"sync/atomic"
)

// minParallelWork is the amount of work (roughly pixel operations) below
// which splitting across goroutines costs more than it saves.
const minParallelWork = 1 << 17

// chunksPerWorker splits the range finer than one chunk per CPU so that a
// core slowed by other processes does not hold back the whole call.
const chunksPerWorker = 4

// maxWorkers is the most goroutines parallelRangeW uses (its worker indices
// are below it), for sizing per-worker scratch.
func maxWorkers() int { return max(runtime.GOMAXPROCS(0), 1) }

// parallelRange calls fn over [0,n) in contiguous chunks spread over the
// available CPUs when the work is large enough; otherwise inline.
func parallelRange(n, work int, fn func(lo, hi int)) {
	parallelRangeW(n, work, func(_, lo, hi int) { fn(lo, hi) })
}

// parallelRangeW is parallelRange that also passes the index of the
// goroutine running the chunk (0 <= worker < maxWorkers()), for per-worker
// scratch.
func parallelRangeW(n, work int, fn func(worker, lo, hi int)) {
	workers := min(maxWorkers(), n)
	if workers <= 1 || work < minParallelWork {
		fn(0, 0, n)
		return
	}
	chunks := int32(min(n, workers*chunksPerWorker))
	// Completion is counted per chunk, not per goroutine: when the helpers
	// are slow to be scheduled (busy machine) the caller does every chunk
	// itself and returns at once; a late helper finds nothing left to claim
	// and exits without touching the data.
	var next, done atomic.Int32
	finished := make(chan struct{})
	run := func(worker int) {
		for {
			c := next.Add(1) - 1
			if c >= chunks {
				return
			}
			fn(worker, n*int(c)/int(chunks), n*int(c+1)/int(chunks))
			if done.Add(1) == chunks {
				close(finished)
			}
		}
	}
	for i := 1; i < workers; i++ {
		go run(i)
	}
	run(0)
	<-finished
}
