package preprocess

import (
	"runtime"
	"sync"
)

// minParallelWork is the amount of work (roughly pixel operations) below
// which splitting across goroutines costs more than it saves.
const minParallelWork = 1 << 17

// maxWorkers is the most goroutines parallelRangeW uses (its worker indices
// are below it), for sizing per-worker scratch.
func maxWorkers() int { return max(runtime.GOMAXPROCS(0), 1) }

// parallelRange calls fn over [0,n) split into contiguous chunks, one per
// available CPU, when the work is large enough; otherwise inline.
func parallelRange(n, work int, fn func(lo, hi int)) {
	parallelRangeW(n, work, func(_, lo, hi int) { fn(lo, hi) })
}

// parallelRangeW is parallelRange that also passes the chunk's worker index
// (0 <= worker < maxWorkers()).
func parallelRangeW(n, work int, fn func(worker, lo, hi int)) {
	workers := min(maxWorkers(), n)
	if workers <= 1 || work < minParallelWork {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	wg.Add(workers - 1)
	for i := 1; i < workers; i++ {
		lo, hi := n*i/workers, n*(i+1)/workers
		go func() {
			defer wg.Done()
			fn(i, lo, hi)
		}()
	}
	fn(0, 0, n/workers)
	wg.Wait()
}
