package classifier

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fracd/fracd/classifier/internal/dnnl"
)

// oneDNN path. Between ops, activations stay in oneDNN's nChw16c layout
// (channels in blocks of 16, innermost), which its JIT kernels read and
// write directly; only the network input is NCHW. The gorgonia shapes stay
// the logical (N, C, H, W). useDNNL chooses it when the library is there
// and every channel count is a multiple of 16 (all torchvision ResNets).

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

// scratch returns the graph's shared oneDNN scratchpad, at least n bytes
// (ops run one at a time on a graph's tape).
func (ws *workspace) scratch(n int) []byte {
	if cap(ws.sp) < n {
		ws.sp = make([]byte, n)
	}
	return ws.sp[:n]
}

// reorderWeights converts OIHW weights to the layout primitive p wants for arg.
func reorderWeights(p *dnnl.Prim, arg int, w []float32, oc, c, k int) ([]float32, error) {
	r, err := dnnl.Reorder(dnnl.PlainMD(oc, c, k, k, dnnl.NCHW, true), p.MD(arg), workers())
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
func (b *builder) dnnlInferConv(x *G.Node, name string, w, bias []float32, g convGeom, res *G.Node, relu bool) (*G.Node, error) {
	n := x.Shape()[0]
	src := dnnl.Blocked
	if g.c%dnnl.Block != 0 {
		src = dnnl.NCHW // the network input
	}
	p, err := dnnl.Conv(dnnl.ConvInference, n, g.c, g.h, g.w, g.cout, g.k, g.s, g.p, src, dnnl.Blocked, true, res != nil, relu, workers())
	if err != nil {
		return nil, fmt.Errorf("classifier: %s: %w", name, err)
	}
	wr, err := reorderWeights(p, dnnl.ArgWeights, w, g.cout, g.c, g.k)
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
	op := newKernelOp(opName, dims, tensor.Shape{n, g.cout, g.oh, g.ow})
	ws := b.ws
	op.run = func(out []float32, in [][]float32) error {
		if len(in) > 3 {
			copy(out, in[3]) // the sum post-op adds dst's previous contents
		}
		return p.Exec(ws.scratch(p.Scratch), in[0], in[1], in[2], out)
	}
	return apply(op, in...)
}

// dnnlMaxPoolInfer adds inference max pooling on a blocked tensor.
func (b *builder) dnnlMaxPoolInfer(x *G.Node, k, s, pad int) (*G.Node, error) {
	shp := x.Shape()
	n, c, h, w := shp[0], shp[1], shp[2], shp[3]
	g := newConvGeom(c, h, w, c, k, s, pad)
	p, err := dnnl.Pool(dnnl.ConvInference, false, n, c, h, w, k, s, pad, workers())
	if err != nil {
		return nil, fmt.Errorf("classifier: maxpool: %w", err)
	}
	ws := b.ws
	op := newKernelOp("dnnl maxpool", []int{4}, tensor.Shape{n, c, g.oh, g.ow})
	op.run = func(out []float32, in [][]float32) error {
		return p.Exec(ws.scratch(p.Scratch), in[0], out)
	}
	return apply(op, x)
}

// blockedIndex is the offset of (image i, channel ch, position q) in an
// nChw16c tensor of c channels and hw positions.
func blockedIndex(i, ch, q, c, hw int) int {
	return ((i*c+ch&^(dnnl.Block-1))*hw + q*dnnl.Block) + ch&(dnnl.Block-1)
}

// blockedAvgPool is the global average pool of a blocked tensor: (N, C)
// means, summed in the same order as avgpool's NCHW loop.
func blockedAvgPool(x, out []float32, n, c, hw int) {
	parallelFor(n*c/dnnl.Block, func(lo, hi int) {
		var s [dnnl.Block]float32
		for blk := lo; blk < hi; blk++ {
			clear(s[:])
			src := x[blk*hw*dnnl.Block : (blk+1)*hw*dnnl.Block]
			for q := 0; q < hw; q++ {
				v := src[q*dnnl.Block : q*dnnl.Block+dnnl.Block]
				for l := range s {
					s[l] += v[l]
				}
			}
			// blocks are numbered image-major, so blk*16 is i*c + channel
			o := out[blk*dnnl.Block : (blk+1)*dnnl.Block]
			for l := range s {
				o[l] = s[l] / float32(hw)
			}
		}
	})
}

// dnnlAvgPool adds the global average pool of a blocked tensor, with its
// gradient (a blocked tensor again) for training graphs.
func (b *builder) dnnlAvgPool(x *G.Node) (*G.Node, error) {
	shp := x.Shape()
	n, c, hw := shp[0], shp[1], shp[2]*shp[3]
	op := newKernelOp("avgpool", []int{4}, tensor.Shape{n, c})
	op.run = func(out []float32, in [][]float32) error {
		blockedAvgPool(in[0], out, n, c, hw)
		return nil
	}
	op.diffWRT = []bool{true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		d := newKernelOp("avgpool.dX", []int{2}, shp.Clone())
		d.run = func(out []float32, in [][]float32) error {
			dy := in[0]
			inv := 1 / float32(hw)
			parallelFor(n*c/dnnl.Block, func(lo, hi int) {
				for blk := lo; blk < hi; blk++ {
					g := dy[blk*dnnl.Block : (blk+1)*dnnl.Block]
					dst := out[blk*hw*dnnl.Block : (blk+1)*hw*dnnl.Block]
					for q := 0; q < hw; q++ {
						v := dst[q*dnnl.Block : q*dnnl.Block+dnnl.Block]
						for l := range v {
							v[l] = g[l] * inv
						}
					}
				}
			})
			return nil
		}
		dn, err := apply(d, grad)
		return G.Nodes{dn}, err
	}
	return apply(op, x)
}

// toBlocked converts an NCHW tensor (c a multiple of 16) to nChw16c.
func toBlocked(x []float32, n, c, hw int) []float32 {
	out := make([]float32, len(x))
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			src := x[(i*c+ch)*hw : (i*c+ch+1)*hw]
			for q, v := range src {
				out[blockedIndex(i, ch, q, c, hw)] = v
			}
		}
	}
	return out
}
