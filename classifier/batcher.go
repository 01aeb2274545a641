package classifier

import (
	"context"
	"fmt"
	"sync"
)

// Batcher runs concurrent one-image HeatMaps calls (the daemon's workers,
// one file each) as one batch: whoever finds the model idle runs every
// request queued by then, its own included, and hands each caller its
// result. On a few cores this beats running the callers side by side,
// where each call's threads compete for the same cores; a lone caller
// pays nothing but a lock.
type Batcher struct {
	m   *Model
	max int

	mu      sync.Mutex
	queue   []*batchReq
	running bool
}

type batchReq struct {
	input []float32
	done  chan struct{}
	prob  float32
	hm    HeatMap
	err   error
}

// NewBatcher batches m's requests, at most maxBatch images to a batch (at
// least 1).
func NewBatcher(m *Model, maxBatch int) *Batcher {
	return &Batcher{m: m, max: max(1, maxBatch)}
}

// HeatMap returns the probability and heat map of one image (3 x S x S,
// S = the model's input size), as HeatMaps does. If ctx ends while the
// request waits for a batch run by another caller, HeatMap returns at once;
// the batch still computes it. A batch runs under the context of the
// caller that runs it (the daemon's workers share one).
func (b *Batcher) HeatMap(ctx context.Context, input []float32) (float32, HeatMap, error) {
	r := &batchReq{input: input, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, r)
	if b.running {
		b.mu.Unlock()
		select {
		case <-r.done:
			return r.prob, r.hm, r.err
		case <-ctx.Done():
			return 0, HeatMap{}, fmt.Errorf("classifier: heat map: %w", ctx.Err())
		}
	}
	b.running = true
	for len(b.queue) > 0 {
		n := min(len(b.queue), b.max)
		batch := b.queue[:n:n]
		b.queue = b.queue[n:]
		b.mu.Unlock()
		b.run(ctx, batch)
		b.mu.Lock()
	}
	b.running = false
	b.mu.Unlock()
	<-r.done
	return r.prob, r.hm, r.err
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
