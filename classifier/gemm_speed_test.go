package classifier

import (
	"testing"
	"time"
)

// TestGemmSpeed (-speed) prints OpenBLAS SGEMM throughput for ResNet shapes.
func TestGemmSpeed(t *testing.T) {
	if !*speedFlag {
		t.Skip("timing only: pass -speed")
	}
	t.Logf("core %s threads %d", BLASCore(), BLASThreads())
	defer SetBLASThreads(BLASThreads())
	for _, s := range [][3]int{{64, 3136, 576}, {128, 784, 1152}, {256, 196, 2304}, {512, 49, 4608}, {64, 12544, 147}} {
		m, n, k := s[0], s[1], s[2]
		a, b, c := make([]float32, m*k), make([]float32, k*n), make([]float32, m*n)
		for _, th := range []int{1, 2} {
			SetBLASThreads(th)
			sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
			best := time.Hour
			for i := 0; i < 20; i++ {
				t0 := time.Now()
				sgemm(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
				if d := time.Since(t0); d < best {
					best = d
				}
			}
			t.Logf("%v threads=%d: %.3f ms  %.1f GFLOP/s", s, th, float64(best.Microseconds())/1000, 2*float64(m*n*k)/best.Seconds()/1e9)
		}
	}
}
