package classifier

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkConcurrentHeatMaps runs two callers side by side (as the
// daemon's workers call), ResNet-18 with flip TTA, with each call's oneDNN
// primitives on every core (threads=0) and on one thread (threads=1). Alone
// on the machine the two cost about the same; the difference is in the
// daemon, where the other workers' decoding and I/O share the cores (bench
// --e2e, README Speed).
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
	for _, threads := range []int{0, 1} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			if err := m.SetThreads(threads); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			call := func() error {
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
