package classifier

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	G "gorgonia.org/gorgonia"
)

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }

func rnd(seed int64) *rand.Rand { return rand.New(rand.NewSource(seed)) }

// checkGradients compares the analytic gradients of params (grads, as the
// last run computed them) with central finite differences of run's cost.
func checkGradients(t *testing.T, params []*param, grads G.Nodes, run func() float64) {
	t.Helper()
	var an [][]float32
	for i := range params {
		g, err := floats(grads[i].Value())
		if err != nil {
			t.Fatal(err)
		}
		an = append(an, append([]float32(nil), g...))
	}
	for i, p := range params {
		for j := range p.data {
			const eps = 1e-2
			orig := p.data[j]
			p.data[j] = orig + eps
			lp := run()
			p.data[j] = orig - eps
			lm := run()
			p.data[j] = orig
			fd := (lp - lm) / float64((orig+eps)-(orig-eps))
			if d := math.Abs(fd - float64(an[i][j])); d > 0.02*math.Abs(fd)+2e-5 {
				t.Errorf("%s[%d]: analytic %.6g, finite difference %.6g", p.name, j, an[i][j], fd)
			}
		}
	}
}
