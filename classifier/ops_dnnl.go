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
	packedIn, packedOut := b.packed[x], b.bf16 && b.bf16Out
	switch {
	case packedOut:
		kind = dnnl.ConvInferenceBF16Out
	case b.bf16:
		kind = dnnl.ConvInferenceBF16
	}
	if packedIn && !b.bf16 {
		return nil, fmt.Errorf("classifier: %s: bfloat16 input to a float32 convolution", name)
	}
	p, err := dnnl.Conv(kind, n, g.C, g.H, g.W, g.Cout, g.K, g.S, g.P, src, dnnl.Blocked, true, res != nil, relu, b.nthr())
	if err != nil {
		return nil, fmt.Errorf("classifier: %s: %w", name, err)
	}
	// bf16: a float32 source is rounded to bfloat16 in the graph's temp
	// buffer right before the convolution (a few microseconds against the
	// convolution's milliseconds); a packed one (the previous convolution
	// wrote bfloat16) is read as it is.
	var toBF16 *dnnl.Prim
	var bf16Floats int // the bf16 source's size, in float32s
	if b.bf16 && !packedIn {
		if toBF16, err = dnnl.Reorder(dnnl.PlainMD(n, g.C, g.H, g.W, src, false), p.MD(dnnl.ArgSrc), b.nthr()); err != nil {
			return nil, fmt.Errorf("classifier: %s source to bf16: %w", name, err)
		}
		bf16Floats = p.ArgFloats(dnnl.ArgSrc)
	}
	// The sum post-op adds dst's previous contents, in dst's type: the
	// residual is copied in (packed into packed, float32 into float32) or
	// rounded to bfloat16 (float32 into packed).
	var resToBF16 *dnnl.Prim
	dstFloats := p.ArgFloats(dnnl.ArgDst)
	if res != nil {
		switch packedRes := b.packed[res]; {
		case packedRes && !packedOut:
			return nil, fmt.Errorf("classifier: %s: bfloat16 residual into a float32 output", name)
		case packedOut && !packedRes:
			if resToBF16, err = dnnl.Reorder(dnnl.PlainMD(n, g.Cout, g.OH, g.OW, dnnl.Blocked, false), p.MD(dnnl.ArgDst), b.nthr()); err != nil {
				return nil, fmt.Errorf("classifier: %s residual to bf16: %w", name, err)
			}
		}
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
	if packedOut {
		opName += " (bf16 out)"
	}
	op := newKernelOp(opName, dims, tensor.Shape{n, g.Cout, g.OH, g.OW})
	ws := b.ws
	op.run = func(out []float32, in [][]float32) error {
		if len(in) > 3 {
			if resToBF16 != nil {
				if err := resToBF16.Exec(ws.scratch(resToBF16.Scratch), in[3], out); err != nil {
					return err
				}
			} else {
				copy(out[:dstFloats], in[3][:dstFloats])
			}
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
	node, err := apply(op, in...)
	if err == nil && packedOut {
		b.packed[node] = true
	}
	return node, err
}

// dnnlUnpack returns x as float32: x itself, or, where a convolution wrote
// it packed in bfloat16, a float32 copy (exact: bfloat16 widens losslessly).
func (b *builder) dnnlUnpack(x *G.Node) (*G.Node, error) {
	if !b.packed[x] {
		return x, nil
	}
	shp := x.Shape()
	n, c, h, w := shp[0], shp[1], shp[2], shp[3]
	r, err := dnnl.Reorder(dnnl.BF16MD(n, c, h, w, dnnl.Blocked), dnnl.PlainMD(n, c, h, w, dnnl.Blocked, false), b.nthr())
	if err != nil {
		return nil, fmt.Errorf("classifier: bf16 to f32: %w", err)
	}
	ws := b.ws
	op := newKernelOp("dnnl bf16->f32", []int{4}, tensor.Shape{n, c, h, w})
	op.run = func(out []float32, in [][]float32) error {
		return r.Exec(ws.scratch(r.Scratch), in[0], out)
	}
	return apply(op, x)
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
