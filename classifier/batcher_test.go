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
