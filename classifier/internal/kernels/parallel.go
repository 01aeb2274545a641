package kernels

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Threading: plain goroutines, each calling single-threaded OpenBLAS on its
// block (see ConvForward).

// maxWorkers bounds the kernel worker count (per-worker scratch slots).
const maxWorkers = 64

// Workers is the kernels' worker count: GOMAXPROCS, at most maxWorkers.
func Workers() int { return min(runtime.GOMAXPROCS(0), maxWorkers) }

// runWorkers runs fn(worker, lo, hi) over a static split of [0,n) into at
// most GOMAXPROCS parts.
func runWorkers(n int, fn func(worker, lo, hi int)) {
	w := min(Workers(), n)
	if w <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	var wg sync.WaitGroup
	wg.Add(w - 1)
	for i := 1; i < w; i++ {
		go func() {
			defer wg.Done()
			fn(i, i*n/w, (i+1)*n/w)
		}()
	}
	fn(0, 0, n/w)
	wg.Wait()
}

// ParallelFor runs fn over [0,n) in contiguous chunks on up to GOMAXPROCS
// goroutines, handing chunks out dynamically (see RunDynamic). fn must treat
// each index independently of the chunk it comes in.
func ParallelFor(n int, fn func(lo, hi int)) {
	w := min(Workers(), n)
	RunDynamic(n, max(1, (n+4*w-1)/(4*w)), func(_, lo, hi int) { fn(lo, hi) })
}

// RunDynamic runs fn(worker, lo, hi) over [0,n) in chunks of grain indices
// that up to GOMAXPROCS Workers take in turn from a shared counter. The
// machine is shared: with a static split, a section lasts as long as its
// part on the busiest core; taken dynamically, the other core picks up the
// slack. Chunk boundaries do not depend on timing (only which worker runs
// a chunk does), so results stay deterministic. fn may be called several
// times per worker; worker indexes per-worker scratch.
func RunDynamic(n, grain int, fn func(worker, lo, hi int)) {
	w := min(Workers(), (n+grain-1)/grain)
	if w <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	var next atomic.Int64
	work := func(wk int) {
		for {
			lo := int(next.Add(int64(grain))) - grain
			if lo >= n {
				return
			}
			fn(wk, lo, min(lo+grain, n))
		}
	}
	var wg sync.WaitGroup
	wg.Add(w - 1)
	for i := 1; i < w; i++ {
		go func() {
			defer wg.Done()
			work(i)
		}()
	}
	work(0)
	wg.Wait()
}
