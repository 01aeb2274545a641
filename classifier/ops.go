package classifier

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// kernelOp is the gorgonia.Op (and SDOp) behind every custom operation in
// this package. Shapes are fixed when the graph is built, so each op owns
// its output tensor and rewrites it in place on every run: no per-step
// allocation. Each op instance hashes uniquely so gorgonia never merges two
// of them (it hash-conses nodes with equal op hashes and children).
type kernelOp struct {
	name     string
	id       int64
	inDims   []int
	outShape tensor.Shape // nil for a scalar result
	out      *tensor.Dense
	run      func(out []float32, in [][]float32) error
	// scalarOut makes Do return a *gorgonia.F32 (needed for a cost node).
	scalarOut bool
	diffWRT   []bool
	symDiff   func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error)
	// result, when set, returns a value owned elsewhere (parameter
	// gradients computed as a side effect of another op).
	result func() *tensor.Dense
}

var opCounter atomic.Int64

// opTimes, when non-nil, accumulates wall time per op kind and output
// shape (bench --ops); everything else a run spends is gorgonia's VM.
var opTimes atomic.Pointer[opTimer]

type opTimer struct {
	mu    sync.Mutex
	total map[string]time.Duration
	count map[string]int
}

func (t *opTimer) add(key string, start time.Time) {
	d := time.Since(start)
	t.mu.Lock()
	t.total[key] += d
	t.count[key]++
	t.mu.Unlock()
}

func newKernelOp(name string, inDims []int, out tensor.Shape) *kernelOp {
	return &kernelOp{name: name, id: opCounter.Add(1), inDims: inDims, outShape: out}
}

func tensorType(d int) hm.Type {
	if d == 0 {
		return tensor.Float32
	}
	return G.TensorType{Dims: d, Of: tensor.Float32}
}

func (o *kernelOp) Arity() int { return len(o.inDims) }

func (o *kernelOp) Type() hm.Type {
	ts := make([]hm.Type, 0, len(o.inDims)+1)
	for _, d := range o.inDims {
		ts = append(ts, tensorType(d))
	}
	if o.scalarOut {
		ts = append(ts, tensor.Float32)
	} else {
		ts = append(ts, tensorType(len(o.outShape)))
	}
	return hm.NewFnType(ts...)
}

func (o *kernelOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if o.scalarOut {
		return tensor.ScalarShape(), nil
	}
	return o.outShape.Clone(), nil
}

// floats returns the float32 backing of a gorgonia value.
func floats(v G.Value) ([]float32, error) {
	switch t := v.(type) {
	case *G.F32:
		return []float32{float32(*t)}, nil
	case tensor.Tensor:
		d, ok := t.Data().([]float32)
		if !ok {
			if f, ok := t.Data().(float32); ok {
				return []float32{f}, nil
			}
			return nil, fmt.Errorf("want float32 data, got %T", t.Data())
		}
		return d, nil
	}
	return nil, fmt.Errorf("unsupported value %T", v)
}

func (o *kernelOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != len(o.inDims) {
		return nil, fmt.Errorf("classifier: op %s: %d inputs, want %d", o.name, len(vals), len(o.inDims))
	}
	in := make([][]float32, len(vals))
	for i, v := range vals {
		f, err := floats(v)
		if err != nil {
			return nil, fmt.Errorf("classifier: op %s input %d: %w", o.name, i, err)
		}
		in[i] = f
	}
	if o.result != nil {
		if err := o.run(nil, in); err != nil {
			return nil, fmt.Errorf("classifier: op %s: %w", o.name, err)
		}
		return o.result(), nil
	}
	if o.scalarOut {
		var s [1]float32
		if err := o.run(s[:], in); err != nil {
			return nil, fmt.Errorf("classifier: op %s: %w", o.name, err)
		}
		return G.NewF32(s[0]), nil
	}
	if o.out == nil {
		o.out = tensor.New(tensor.WithShape(o.outShape.Clone()...), tensor.Of(tensor.Float32))
	}
	if t := opTimes.Load(); t != nil {
		defer t.add(o.name+" "+fmt.Sprint(o.outShape), time.Now())
	}
	if err := o.run(o.out.Data().([]float32), in); err != nil {
		return nil, fmt.Errorf("classifier: op %s: %w", o.name, err)
	}
	return o.out, nil
}

func (o *kernelOp) ReturnsPtr() bool     { return false }
func (o *kernelOp) CallsExtern() bool    { return false }
func (o *kernelOp) OverwritesInput() int { return -1 }
func (o *kernelOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "classifier.%s#%d", o.name, o.id)
}
func (o *kernelOp) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}
func (o *kernelOp) String() string { return o.name }

func (o *kernelOp) DiffWRT(n int) []bool {
	if o.diffWRT != nil {
		return o.diffWRT
	}
	return make([]bool, n)
}

func (o *kernelOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if o.symDiff == nil {
		return nil, fmt.Errorf("classifier: op %s is not differentiable", o.name)
	}
	return o.symDiff(inputs, output, grad)
}

// apply adds the op to the graph.
func apply(o *kernelOp, in ...*G.Node) (*G.Node, error) {
	n, err := G.ApplyOp(o, in...)
	if err != nil {
		return nil, fmt.Errorf("classifier: apply %s: %w", o.name, err)
	}
	return n, nil
}

// Compile-time interface checks.
var (
	_ G.Op   = (*kernelOp)(nil)
	_ G.SDOp = (*kernelOp)(nil)
)
