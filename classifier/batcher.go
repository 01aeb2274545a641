package classifier

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// Batcher runs concurrent one-image HeatMaps calls (the daemon's workers,
// one file each) as one batch: whoever finds the model idle runs every
// request queued by then (up to the batch limit), its own included. On a
// few cores this beats running the callers side by side, where each
// call's threads compete for the same cores; a lone caller pays nothing
// but a lock. When its batch is done, the runner hands the model to the
// first caller still queued and goes back to its own file, so one
// worker's classification overlaps the other's decoding, archiving and
// recording instead of the runner computing everyone's batches in turn.
type Batcher struct {
	m   *Model
	max int

	mu      sync.Mutex
	queue   []*batchReq
	running bool // a caller is running a batch, or has been handed the model
}

type batchReq struct {
	input []float32
	done  chan struct{}
	// lead receives a token when this request heads the queue and its
	// caller is to run the next batch (sent under mu, at most once).
	lead chan struct{}
	prob float32
	hm   HeatMap
	err  error
}

// NewBatcher batches m's requests, at most maxBatch images to a batch (at
// least 1).
func NewBatcher(m *Model, maxBatch int) *Batcher {
	return &Batcher{m: m, max: max(1, maxBatch)}
}

// HeatMap returns the probability and heat map of one image (3 x S x S,
// S = the model's input size), as HeatMaps does. If ctx ends while the
// request waits for a batch run by another caller, HeatMap returns at once;
// a batch that has taken the request still computes it. A batch runs under
// the context of the caller that runs it (the daemon's workers share one).
func (b *Batcher) HeatMap(ctx context.Context, input []float32) (float32, HeatMap, error) {
	r := &batchReq{input: input, done: make(chan struct{}), lead: make(chan struct{}, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, r)
	if b.running {
		b.mu.Unlock()
		select {
		case <-r.done:
			return r.prob, r.hm, r.err
		case <-r.lead:
			// r heads the queue and the model is ours: run below.
		case <-ctx.Done():
			b.withdraw(r)
			return 0, HeatMap{}, fmt.Errorf("classifier: heat map: %w", ctx.Err())
		}
		b.mu.Lock()
	}
	// r heads the queue (it was empty, or r was handed the model), so
	// the batch below contains it.
	b.running = true
	n := min(len(b.queue), b.max)
	batch := b.queue[:n:n]
	b.queue = b.queue[n:]
	b.mu.Unlock()
	b.run(ctx, batch)
	b.mu.Lock()
	b.handOff()
	b.mu.Unlock()
	<-r.done
	return r.prob, r.hm, r.err
}

// handOff gives the model to the first queued caller, or marks it idle
// (mu held).
func (b *Batcher) handOff() {
	if len(b.queue) > 0 {
		b.queue[0].lead <- struct{}{}
		return
	}
	b.running = false
}

// withdraw takes a cancelled caller's request out of the queue, passing
// the model on if it had just been handed to it. A request already taken
// into a batch is left to that batch.
func (b *Batcher) withdraw(r *batchReq) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.Index(b.queue, r)
	if i < 0 {
		return
	}
	b.queue = slices.Delete(b.queue, i, i+1)
	select {
	case <-r.lead:
		b.handOff()
	default:
	}
}

// run computes one batch and releases its callers.
func (b *Batcher) run(ctx context.Context, batch []*batchReq) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	in := batch[0].input
	if len(batch) > 1 {
		per := len(in)
		in = make([]float32, 0, per*len(batch))
		for _, r := range batch {
			if len(r.input) != per {
				// Mixed sizes cannot share a batch: run each alone.
				for _, r := range batch {
					r.prob, r.hm, r.err = b.one(ctx, r.input)
				}
				return
			}
			in = append(in, r.input...)
		}
	}
	probs, maps, err := b.m.HeatMaps(ctx, in, len(batch))
	for i, r := range batch {
		if err != nil {
			r.err = err
			continue
		}
		r.prob, r.hm = probs[i], maps[i]
	}
}

func (b *Batcher) one(ctx context.Context, input []float32) (float32, HeatMap, error) {
	probs, maps, err := b.m.HeatMaps(ctx, input, 1)
	if err != nil {
		return 0, HeatMap{}, err
	}
	return probs[0], maps[0], nil
}
