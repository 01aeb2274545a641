package classifier

import (
	"context"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"
)

// TestBatcherMatchesHeatMaps: callers racing through one Batcher get the
// results HeatMaps gives each image alone (flip TTA on, so each batch is
// 2n images), whatever batches they were put in.
func TestBatcherMatchesHeatMaps(t *testing.T) {
	ctx := context.Background()
	m, err := New("basic[1,1,1,1]", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetInputSize(64); err != nil {
		t.Fatal(err)
	}
	m.info.TTA = TTAFlip
	const callers, each = 4, 5
	per := 3 * 64 * 64
	inputs := make([][]float32, callers*each)
	want := make([]float32, len(inputs))
	wantMaps := make([]HeatMap, len(inputs))
	for i := range inputs {
		inputs[i] = make([]float32, per)
		for j := range inputs[i] {
			inputs[i][j] = float32(math.Sin(float64(i*per+j) * 0.37))
		}
		p, hm, err := m.HeatMaps(ctx, inputs[i], 1)
		if err != nil {
			t.Fatal(err)
		}
		want[i], wantMaps[i] = p[0], hm[0]
	}
	b := NewBatcher(m, 3)
	var wg sync.WaitGroup
	errs := make(chan error, len(inputs))
	for c := 0; c < callers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for k := 0; k < each; k++ {
				i := c*each + k
				p, hm, err := b.HeatMap(ctx, inputs[i])
				if err != nil {
					errs <- err
					return
				}
				if math.Abs(float64(p-want[i])) > 1e-5 {
					errs <- fmt.Errorf("image %d: probability %v, alone %v", i, p, want[i])
				}
				for j, v := range hm.Values {
					if math.Abs(float64(v-wantMaps[i].Values[j])) > 1e-4 {
						errs <- fmt.Errorf("image %d: heat map cell %d %v, alone %v", i, j, v, wantMaps[i].Values[j])
						break
					}
				}
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// A wrong-sized input fails its own request only.
	if _, _, err := b.HeatMap(ctx, make([]float32, 5)); err == nil {
		t.Error("a 5-float input was accepted")
	}
}

// BenchmarkConcurrentHeatMaps: two callers (the daemon's two workers)
// classifying one image each at a time, side by side or through a
// Batcher; ResNet-18 at 224 with flip TTA. Reports CPU ms per image too,
// which load on a shared machine disturbs less than wall time.
func BenchmarkConcurrentHeatMaps(b *testing.B) {
	m, err := New("resnet18", 1)
	if err != nil {
		b.Fatal(err)
	}
	m.info.TTA = TTAFlip
	in := make([]float32, 3*224*224)
	for i := range in {
		in[i] = float32(i%97) / 97
	}
	const callers = 2
	for _, mode := range []string{"side-by-side", "batcher"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			bt := NewBatcher(m, callers)
			call := func() error {
				if mode == "batcher" {
					_, _, err := bt.HeatMap(ctx, in)
					return err
				}
				_, _, err := m.HeatMaps(ctx, in, 1)
				return err
			}
			for i := 0; i < callers; i++ { // build the graphs
				if err := call(); err != nil {
					b.Fatal(err)
				}
			}
			cpu0 := cpuTime()
			start := time.Now()
			for b.Loop() {
				var wg sync.WaitGroup
				for c := 0; c < callers; c++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := call(); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			n := float64(b.N * callers)
			b.ReportMetric(float64(time.Since(start).Microseconds())/1000/n, "ms/image")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/n, "cpu-ms/image")
		})
	}
}

// TestBatcherHandsTheModelOn: with the model busy, queued callers are
// handed it in turn, and a caller cancelled while waiting (even just as it
// is handed the model) neither loses its place's batch for the others nor
// stalls them.
func TestBatcherHandsTheModelOn(t *testing.T) {
	m, err := New("basic[1,1,1,1]", 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetInputSize(32); err != nil {
		t.Fatal(err)
	}
	in := make([]float32, 3*32*32)
	for i := range in {
		in[i] = float32(i%13) / 13
	}
	waitQueued := func(b *Batcher, n int) {
		for {
			b.mu.Lock()
			q := len(b.queue)
			b.mu.Unlock()
			if q == n {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	for round := 0; round < 30; round++ {
		b := NewBatcher(m, 1) // one image a batch: every waiter must be handed the model
		b.running = true      // as if another caller were computing
		ctxA, cancelA := context.WithCancel(context.Background())
		errA, errB := make(chan error, 1), make(chan error, 1)
		go func() { _, _, err := b.HeatMap(ctxA, in); errA <- err }()
		waitQueued(b, 1)
		go func() { _, _, err := b.HeatMap(context.Background(), in); errB <- err }()
		waitQueued(b, 2)
		// The busy caller finishes just as A gives up.
		go cancelA()
		b.mu.Lock()
		b.handOff()
		b.mu.Unlock()
		select {
		case err := <-errB:
			if err != nil {
				t.Fatalf("round %d: B: %v", round, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: B never ran: the model was not handed on", round)
		}
		<-errA // A either ran its batch or was cancelled; both are fine
		b.mu.Lock()
		if b.running || len(b.queue) != 0 {
			t.Errorf("round %d: after both callers: running %v, %d queued", round, b.running, len(b.queue))
		}
		b.mu.Unlock()
	}
}

// TestBatcherWithdrawPassesTheModelOn pins the narrow case the test above
// rarely hits: a caller is handed the model and cancelled at the same
// moment, and takes the cancellation.
func TestBatcherWithdrawPassesTheModelOn(t *testing.T) {
	b := NewBatcher(nil, 1)
	newReq := func() *batchReq { return &batchReq{done: make(chan struct{}), lead: make(chan struct{}, 1)} }
	a, c := newReq(), newReq()
	b.running, b.queue = true, []*batchReq{a, c}
	b.mu.Lock()
	b.handOff() // a heads the queue: a is handed the model
	b.mu.Unlock()
	b.withdraw(a) // ... but a's caller had been cancelled
	select {
	case <-c.lead:
		c.lead <- struct{}{} // c still holds it
	default:
		t.Fatal("a withdrew holding the model and did not hand it on: c waits forever")
	}
	if len(b.queue) != 1 || b.queue[0] != c || !b.running {
		t.Errorf("queue %d, running %v; want c alone, running", len(b.queue), b.running)
	}
	b.withdraw(c) // c too: c held the model, the queue is empty: idle
	if b.running || len(b.queue) != 0 {
		t.Errorf("after the last withdrawal: running %v, %d queued; want idle", b.running, len(b.queue))
	}
}
