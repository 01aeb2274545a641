package classifier

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fracd/fracd/classifier/internal/dnnl"

	"github.com/fracd/fracd/classifier/internal/kernels"
)

// oneDNN path. Between ops, activations stay in oneDNN's nChw16c layout
// (channels in blocks of 16, innermost), which its JIT kernels read and
// write directly; only the network input is NCHW. The gorgonia shapes stay
// the logical (N, C, H, W). useDNNL chooses it when the library is there
// and every channel count is a multiple of 16 (all torchvision ResNets).

// The kernels' blocked layout (heat maps, CAM loss, pooling, BatchNorm on
// blocked tensors) must be oneDNN's: this fails to compile otherwise.
const _ = uint(kernels.Block-dnnl.Block) + uint(dnnl.Block-kernels.Block)

// useDNNL can be switched off (tests compare both paths).
var useDNNL = true

func dnnlFor(net *netSpec) bool {
	if !useDNNL || !dnnl.Available() {
		return false
	}
	ok := func(c *convSpec) bool { return c.cout%dnnl.Block == 0 }
	if !ok(&net.conv1) {
		return false
	}
	for i := range net.blocks {
		blk := &net.blocks[i]
		for j := range blk.convs {
			ok1 := ok(&blk.convs[j]) && blk.convs[j].cin%dnnl.Block == 0
			if !ok1 {
				return false
			}
		}
	}
	return true
}

// bf16Ready says why net cannot run at PrecisionBF16 here, if it cannot.
func bf16Ready(net *netSpec) error {
	if !dnnlFor(net) {
		return fmt.Errorf("classifier: precision %s needs oneDNN (this build or this network has none)", PrecisionBF16)
	}
	if !dnnl.NativeBF16() {
		return fmt.Errorf("classifier: precision %s: this CPU has no AVX512-BF16 (oneDNN would emulate it, slower than f32)", PrecisionBF16)
	}
	return nil
}

// scratch returns the graph's shared oneDNN scratchpad, at least n bytes
// (ops run one at a time on a graph's tape).
// temp is the graph's temporary float buffer for data that lives within
// one op (reordered weights, a weight gradient before its reorder); it
// never aliases scratch.
func (ws *workspace) temp(n int) []float32 {
	if cap(ws.tmp) < n {
		ws.tmp = make([]float32, n)
	}
	return ws.tmp[:n]
}

func (ws *workspace) scratch(n int) []byte {
	if cap(ws.sp) < n {
		ws.sp = make([]byte, n)
	}
	return ws.sp[:n]
}

// reorderWeights converts OIHW weights to the layout primitive p wants for arg.
func reorderWeights(p *dnnl.Prim, arg int, w []float32, oc, c, k int) ([]float32, error) {
	r, err := dnnl.Reorder(dnnl.PlainMD(oc, c, k, k, dnnl.NCHW, true), p.MD(arg), kernels.Workers())
	if err != nil {
		return nil, err
	}
	out := make([]float32, p.ArgFloats(arg))
	if err := r.Exec(make([]byte, r.Scratch), w, out); err != nil {
		return nil, err
	}
	return out, nil
}

// dnnlInferConv adds an inference convolution with BatchNorm folded into w
// (OIHW) and bias, then optionally the residual and ReLU, fused.
func (b *builder) dnnlInferConv(x *G.Node, name string, w, bias []float32, g kernels.Geom, res *G.Node, relu bool) (*G.Node, error) {
	n := x.Shape()[0]
	src := dnnl.Blocked
	if g.C%dnnl.Block != 0 {
		src = dnnl.NCHW // the network input
	}
	kind := dnnl.ConvInference
	if b.bf16 {
		kind = dnnl.ConvInferenceBF16
	}
	p, err := dnnl.Conv(kind, n, g.C, g.H, g.W, g.Cout, g.K, g.S, g.P, src, dnnl.Blocked, true, res != nil, relu, b.nthr())
	if err != nil {
		return nil, fmt.Errorf("classifier: %s: %w", name, err)
	}
	// bf16: the float32 source is rounded to bfloat16 in the graph's temp
	// buffer right before the convolution (a few microseconds against the
	// convolution's milliseconds), so every tensor of the graph, the
	// residuals included, stays float32.
	var toBF16 *dnnl.Prim
	var bf16Floats int // the bf16 source's size, in float32s
	if b.bf16 {
		if toBF16, err = dnnl.Reorder(dnnl.PlainMD(n, g.C, g.H, g.W, src, false), p.MD(dnnl.ArgSrc), b.nthr()); err != nil {
			return nil, fmt.Errorf("classifier: %s source to bf16: %w", name, err)
		}
		bf16Floats = p.ArgFloats(dnnl.ArgSrc)
	}
	wr, err := reorderWeights(p, dnnl.ArgWeights, w, g.Cout, g.C, g.K)
	if err != nil {
		return nil, fmt.Errorf("classifier: %s weights: %w", name, err)
	}
	in := []*G.Node{x, b.constNode(name+".dnnl", wr, len(wr)), b.constNode(name+".bias", bias, len(bias))}
	dims := []int{4, 1, 1}
	opName := "dnnl conv+bn"
	if res != nil {
		in, dims, opName = append(in, res), append(dims, 4), opName+"+add"
	}
	if relu {
		opName += "+relu"
	}
	op := newKernelOp(opName, dims, tensor.Shape{n, g.Cout, g.OH, g.OW})
	ws := b.ws
	op.run = func(out []float32, in [][]float32) error {
		if len(in) > 3 {
			copy(out, in[3]) // the sum post-op adds dst's previous contents
		}
		x := in[0]
		if toBF16 != nil {
			x = ws.temp(bf16Floats)
			if err := toBF16.Exec(ws.scratch(toBF16.Scratch), in[0], x); err != nil {
				return err
			}
		}
		return p.Exec(ws.scratch(p.Scratch), x, in[1], in[2], out)
	}
	return apply(op, in...)
}

// dnnlMaxPoolInfer adds inference max pooling on a blocked tensor.
func (b *builder) dnnlMaxPoolInfer(x *G.Node, k, s, pad int) (*G.Node, error) {
	shp := x.Shape()
	n, c, h, w := shp[0], shp[1], shp[2], shp[3]
	g := kernels.NewGeom(c, h, w, c, k, s, pad)
	p, err := dnnl.Pool(dnnl.ConvInference, false, n, c, h, w, k, s, pad, b.nthr())
	if err != nil {
		return nil, fmt.Errorf("classifier: maxpool: %w", err)
	}
	ws := b.ws
	op := newKernelOp("dnnl maxpool", []int{4}, tensor.Shape{n, c, g.OH, g.OW})
	op.run = func(out []float32, in [][]float32) error {
		return p.Exec(ws.scratch(p.Scratch), in[0], out)
	}
	return apply(op, x)
}
