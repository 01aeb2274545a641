package vec

import (
	"math"
	"math/rand"
	"testing"
)

func relu(v float32) float32 { return float32(math.Max(float64(v), 0)) }

// The vector loops must give bit-identical results to the scalar
// expressions they replace, for every length (tails included).
func TestLoopsMatchScalar(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 49, 196, 3136} {
		x := make([]float32, n)
		r := make([]float32, n)
		for i := range x {
			x[i], r[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		const b = float32(-0.3)
		tests := []struct {
			name string
			run  func(x []float32) int
			want func(i int) float32
		}{
			{"BiasRelu", func(x []float32) int { return BiasRelu(x, b) }, func(i int) float32 { return relu(x[i] + b) }},
			{"BiasResRelu", func(x []float32) int { return BiasResRelu(x, r, b) }, func(i int) float32 { return relu(x[i] + b + r[i]) }},
			{"Bias", func(x []float32) int { return Bias(x, b) }, func(i int) float32 { return x[i] + b }},
		}
		for _, tc := range tests {
			got := append([]float32(nil), x...)
			done := tc.run(got)
			if done > n || done%8 != 0 {
				t.Fatalf("%s n=%d: did %d elements", tc.name, n, done)
			}
			for i := 0; i < n; i++ {
				want := x[i]
				if i < done {
					want = tc.want(i)
				}
				if math.Float32bits(got[i]) != math.Float32bits(want) {
					t.Fatalf("%s n=%d: [%d] = %v, want %v", tc.name, n, i, got[i], want)
				}
			}
		}
	}
}
