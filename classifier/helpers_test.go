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

// gradMachine differentiates cost with respect to the params' nodes and
// compiles the graph.
func gradMachine(t *testing.T, b *builder, cost *G.Node, params []*param) (G.Nodes, G.VM) {
	t.Helper()
	var wrt G.Nodes
	for _, p := range params {
		wrt = append(wrt, b.paramNode(p))
	}
	grads, err := G.Grad(cost, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	return grads, G.NewTapeMachine(b.g)
}

// modelWithBNStats is New(arch, seed) with random BatchNorm running means
// and biases drawn from r (initialisation leaves them 0), so that folding
// BatchNorm into the convolutions is exercised.
func modelWithBNStats(arch string, seed int64, r *rand.Rand) *Model {
	m, _ := New(arch, seed)
	for _, p := range m.net.params {
		if p.kind == kindBNMean || p.kind == kindBNBias {
			for i := range p.data {
				p.data[i] = float32(r.NormFloat64() * 0.2)
			}
		}
	}
	return m
}
