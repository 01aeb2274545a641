package classifier

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fracd/fracd/classifier/internal/kernels"
)

// builder assembles a gorgonia graph from the network description.
type builder struct {
	g  *G.ExprGraph
	ws *workspace
	// inference marks eval-only graphs (no gradients, ReLU-fed pooling).
	inference bool
	// dnnl: activations are nChw16c and convolutions, pooling and (in
	// training) BatchNorm run in oneDNN (see ops_dnnl.go).
	dnnl bool
	// bf16: inference convolutions take bfloat16 source and weights (see
	// Precision). With bf16Out set, the convolutions added from then on
	// also write bfloat16 (packed: the first half of the node's float32
	// buffer, see packed), so that the next one reads it as it is.
	bf16, bf16Out bool
	packed        map[*G.Node]bool
	// noRunningUpdate keeps train-mode BatchNorm from updating the model's
	// running statistics (used by gradient checks).
	noRunningUpdate bool
	// threads is the OpenMP thread count of the graph's oneDNN inference
	// primitives (0: kernels.Workers()); see Model.SetThreads.
	threads int
	nodes   map[*param]*G.Node
}

// nthr is the thread count oneDNN primitives are created (and so
// partitioned) for.
func (b *builder) nthr() int {
	if b.threads > 0 {
		return b.threads
	}
	return kernels.Workers()
}

// workspace is the scratch memory the ops of one graph share (they run one
// at a time on its tape): the kernels' buffers and the oneDNN scratchpad.
type workspace struct {
	kernels.Workspace
	sp  []byte    // oneDNN primitives' scratchpad
	tmp []float32 // see temp
}

func newBuilder() *builder {
	return &builder{g: G.NewGraph(), ws: &workspace{}, nodes: map[*param]*G.Node{}, packed: map[*G.Node]bool{}}
}

// paramNode returns the graph input bound to p's storage (no copy: the
// solver updates p.data in place).
func (b *builder) paramNode(p *param) *G.Node {
	if n, ok := b.nodes[p]; ok {
		return n
	}
	t := tensor.New(tensor.WithShape(p.shape...), tensor.WithBacking(p.data))
	n := G.NewTensor(b.g, tensor.Float32, len(p.shape), G.WithShape(p.shape...), G.WithName(p.name), G.WithValue(t))
	b.nodes[p] = n
	return n
}

// constNode adds an input holding derived data (folded weights).
func (b *builder) constNode(name string, data []float32, shape ...int) *G.Node {
	t := tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
	return G.NewTensor(b.g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(t))
}

func geomFor(x *G.Node, c *convSpec) kernels.Geom {
	s := x.Shape()
	return kernels.NewGeom(s[1], s[2], s[3], c.cout, c.k, c.stride, c.pad)
}

// foldBN returns the convolution weights and bias with eval-mode BatchNorm
// folded in: w' = w*gamma/sqrt(var+eps), b' = beta - mean*gamma/sqrt(var+eps).
func foldBN(c *convSpec, bn *bnSpec) (w, bias []float32) {
	per := len(c.w.data) / c.cout
	w = make([]float32, len(c.w.data))
	bias = make([]float32, c.cout)
	for co := 0; co < c.cout; co++ {
		scale := float64(bn.weight.data[co]) / math.Sqrt(float64(bn.variance.data[co])+kernels.BNEps)
		for i := 0; i < per; i++ {
			w[co*per+i] = float32(float64(c.w.data[co*per+i]) * scale)
		}
		bias[co] = float32(float64(bn.bias.data[co]) - float64(bn.mean.data[co])*scale)
	}
	return w, bias
}

// foldedConv adds conv+BN(eval)[+residual][+ReLU] as one fused op.
func (b *builder) foldedConv(x *G.Node, c *convSpec, bn *bnSpec, res *G.Node, relu bool) (*G.Node, error) {
	w, bias := foldBN(c, bn)
	g := geomFor(x, c)
	if b.dnnl {
		return b.dnnlInferConv(x, c.w.name, w, bias, g, res, relu)
	}
	bn2 := b.constNode(bn.weight.name+".folded_bias", bias, c.cout)
	if kernels.Winograd4Applies(&g, x.Shape()[0]) {
		u := kernels.Winograd4Weights(w, c.cout, c.cin)
		un := b.constNode(c.w.name+".winograd4", u, 36, c.cout, c.cin, 1)
		return b.conv(x, un, g, convOpts{bias: bn2, res: res, relu: relu, winograd: true})
	}
	if kernels.WinogradApplies(&g, x.Shape()[0]) {
		u := kernels.WinogradWeights(w, c.cout, c.cin)
		un := b.constNode(c.w.name+".winograd", u, 16, c.cout, c.cin, 1)
		return b.conv(x, un, g, convOpts{bias: bn2, res: res, relu: relu, winograd: true})
	}
	wn := b.constNode(c.w.name+".folded", w, c.w.shape...)
	return b.conv(x, wn, g, convOpts{bias: bn2, res: res, relu: relu})
}

// grayStem is conv1+BN+ReLU for inputs x_c = (g - mean_c)/std_c given as g.
// With zero padding outside the image, exactly
//
//	sum_c W_c * x_c = (sum_c W_c/std_c) * g - sum_{taps inside} sum_c W_c*mean_c/std_c,
//
// so the weights fold to one input channel and the second term becomes a
// per-position correction (it differs from a constant only at the border),
// computed once per graph by convolving an all-ones image.
func (b *builder) grayStem(x *G.Node, c *convSpec, bn *bnSpec, mean, std [3]float32) (*G.Node, error) {
	w, bias := foldBN(c, bn)
	taps := c.k * c.k
	w1 := make([]float32, c.cout*taps)
	wm := make([]float32, c.cout*taps)
	for co := 0; co < c.cout; co++ {
		for t := 0; t < taps; t++ {
			var a, m float64
			for ch := 0; ch < 3; ch++ {
				v := float64(w[(co*3+ch)*taps+t])
				a += v / float64(std[ch])
				m += v * float64(mean[ch]) / float64(std[ch])
			}
			w1[co*taps+t], wm[co*taps+t] = float32(a), float32(-m)
		}
	}
	shp := x.Shape()
	n, size := shp[0], shp[2]
	g1 := kernels.NewGeom(1, size, size, c.cout, c.k, c.stride, c.pad)
	ones := make([]float32, size*size)
	for i := range ones {
		ones[i] = 1
	}
	corr := make([]float32, n*c.cout*g1.OHW)
	kernels.ConvForward(&b.ws.Workspace, &g1, 1, ones, wm, corr, nil, nil, false)
	for i := 1; i < n; i++ {
		copy(corr[i*c.cout*g1.OHW:(i+1)*c.cout*g1.OHW], corr[:c.cout*g1.OHW])
	}
	if b.dnnl {
		cn := b.constNode(c.w.name+".gray_border", kernels.ToBlocked(corr, n, c.cout, g1.OHW), n, c.cout, g1.OH, g1.OW)
		return b.dnnlInferConv(x, c.w.name+".gray", w1, bias, g1, cn, true)
	}
	wn := b.constNode(c.w.name+".gray", w1, c.cout, 1, c.k, c.k)
	bn2 := b.constNode(bn.weight.name+".folded_bias", bias, c.cout)
	cn := b.constNode(c.w.name+".gray_border", corr, n, c.cout, g1.OH, g1.OW)
	return b.conv(x, wn, g1, convOpts{bias: bn2, res: cn, relu: true})
}

// stemPool adds the stem's 3x3/2 max pool in the graph's kind: oneDNN's
// (eval or with its gradient) on blocked activations, else ours.
func (b *builder) stemPool(h *G.Node) (*G.Node, error) {
	switch {
	case b.dnnl && b.inference:
		return b.dnnlMaxPoolInfer(h, 3, 2, 1)
	case b.dnnl:
		return b.dnnlMaxPoolTrain(h, 3, 2, 1)
	}
	return b.maxPool(h, 3, 2, 1)
}

// inferenceGraph builds the eval-mode network for n images of size x size:
// BatchNorm folded into every convolution, residual add and ReLU fused.
//
// With gray set, the graph takes one channel g per image instead: the
// caller has verified that channel c of the input is (g - mean[c]) / std[c]
// (a gray image replicated and normalised), and the normalisation is folded
// into conv1, which then does a third of the work (see grayStem).
func (net *netSpec) inferenceGraph(n, size int, gray *[2][3]float32, prec Precision, threads int) (*graph, error) {
	b := newBuilder()
	b.inference = true
	b.threads = threads
	b.dnnl = dnnlFor(net)
	if prec == PrecisionBF16 {
		if !b.dnnl {
			return nil, fmt.Errorf("classifier: precision %s needs oneDNN and channel counts in multiples of %d", prec, kernels.Block)
		}
		b.bf16 = true
	}
	inC := 3
	if gray != nil {
		inC = 1
	}
	x := G.NewTensor(b.g, tensor.Float32, 4, G.WithShape(n, inC, size, size), G.WithName("input"))
	var h *G.Node
	var err error
	if gray != nil {
		h, err = b.grayStem(x, &net.conv1, &net.bn1, gray[0], gray[1])
	} else {
		h, err = b.foldedConv(x, &net.conv1, &net.bn1, nil, true)
	}
	if err != nil {
		return nil, err
	}
	if h, err = b.stemPool(h); err != nil {
		return nil, err
	}
	// The residual stages pass bfloat16 from convolution to convolution
	// (at bf16); the stem, its pooling and the last stage's output (the
	// features for pooling, fc and heat maps) stay float32.
	b.bf16Out = b.bf16
	for bi := range net.blocks {
		blk := &net.blocks[bi]
		identity := h
		if blk.down != nil {
			if identity, err = b.foldedConv(h, blk.down, blk.downBN, nil, false); err != nil {
				return nil, err
			}
		}
		a := h
		last := len(blk.convs) - 1
		for i := 0; i < last; i++ {
			if a, err = b.foldedConv(a, &blk.convs[i], &blk.bns[i], nil, true); err != nil {
				return nil, err
			}
		}
		if h, err = b.foldedConv(a, &blk.convs[last], &blk.bns[last], identity, true); err != nil {
			return nil, err
		}
	}
	if h, err = b.dnnlUnpack(h); err != nil {
		return nil, err
	}
	pooled, err := b.globalAvgPool(h)
	if err != nil {
		return nil, err
	}
	fcW, fcB := append([]float32(nil), net.fcW.data...), append([]float32(nil), net.fcB.data...)
	logits, err := b.linear(pooled, b.constNode("fc.weight", fcW, net.fcW.shape...), b.constNode("fc.bias", fcB, 1))
	if err != nil {
		return nil, err
	}
	gr := &graph{b: b, x: x, logits: logits, features: h, n: n, size: size, blocked: b.dnnl, fcW: fcW, fcB: fcB[0]}
	gr.xT = tensor.New(tensor.WithShape(n, inC, size, size), tensor.Of(tensor.Float32))
	gr.vm = G.NewTapeMachine(b.g)
	return gr, nil
}

// graph is a compiled network for a fixed batch and image size.
type graph struct {
	b        *builder
	vm       G.VM
	x        *G.Node
	xT       *tensor.Dense
	labels   *G.Node
	labelsT  *tensor.Dense
	logits   *G.Node
	features *G.Node // inference: the last stage's output, for heat maps
	blocked  bool    // activations (features) are nChw16c
	// eval graphs in a Model's pool: their pool key
	key      [3]int
	fcW      []float32 // eval graphs: their copy of fc (heat maps)
	fcB      float32
	cost     *G.Node
	params   []*param
	grads    G.Nodes
	n, size  int
	version  uint64
	lossFunc FocalLoss
	// camTargets (N, H*W) binds the CAM supervision targets when the
	// train graph has the CAM loss (camH x camW cells), else nil.
	camTargets  *G.Node
	camTargetsT *tensor.Dense
	camH, camW  int
}

// run binds the inputs (nil: the input tensor as already filled) and
// executes the tape once.
func (gr *graph) run(inputs, labels []float32) error {
	if inputs != nil {
		copy(gr.xT.Data().([]float32), inputs)
	}
	if err := G.Let(gr.x, gr.xT); err != nil {
		return fmt.Errorf("classifier: bind input: %w", err)
	}
	if gr.labels != nil {
		copy(gr.labelsT.Data().([]float32), labels)
		if err := G.Let(gr.labels, gr.labelsT); err != nil {
			return fmt.Errorf("classifier: bind labels: %w", err)
		}
	}
	if gr.camTargets != nil {
		if err := G.Let(gr.camTargets, gr.camTargetsT); err != nil {
			return fmt.Errorf("classifier: bind CAM targets: %w", err)
		}
	}
	gr.vm.Reset()
	if err := gr.vm.RunAll(); err != nil {
		return fmt.Errorf("classifier: run graph: %w", err)
	}
	return nil
}

func (gr *graph) logitValues() ([]float32, error) {
	return floats(gr.logits.Value())
}

// trainGraph builds the train-mode network (batch-statistics BatchNorm),
// the focal loss and, through gorgonia's symbolic differentiation, the
// gradient of every trainable parameter.
//
// camWeight > 0 adds that multiple of the CAM loss (loss.go); its
// targets are set in camTargetsT before each run.
func (net *netSpec) trainGraph(n, size int, loss FocalLoss, updateRunning bool, camWeight float64) (*graph, error) {
	b := newBuilder()
	b.noRunningUpdate = !updateRunning
	b.dnnl = dnnlFor(net)
	x := G.NewTensor(b.g, tensor.Float32, 4, G.WithShape(n, 3, size, size), G.WithName("input"))
	labels := G.NewTensor(b.g, tensor.Float32, 1, G.WithShape(n), G.WithName("labels"))
	convBN := func(x *G.Node, c *convSpec, bn *bnSpec, relu, first bool) (*G.Node, error) {
		var h *G.Node
		var err error
		if b.dnnl {
			h, err = b.dnnlTrainConv(x, b.paramNode(c.w), geomFor(x, c), first)
		} else {
			h, err = b.conv(x, b.paramNode(c.w), geomFor(x, c), convOpts{noInputGrad: first})
		}
		if err != nil {
			return nil, err
		}
		return b.batchNorm(h, b.paramNode(bn.weight), b.paramNode(bn.bias), bn, relu)
	}
	h, err := convBN(x, &net.conv1, &net.bn1, true, true)
	if err != nil {
		return nil, err
	}
	if h, err = b.stemPool(h); err != nil {
		return nil, err
	}
	for bi := range net.blocks {
		blk := &net.blocks[bi]
		a := h
		for i := range blk.convs {
			if a, err = convBN(a, &blk.convs[i], &blk.bns[i], i < len(blk.convs)-1, false); err != nil {
				return nil, err
			}
		}
		identity := h
		if blk.down != nil {
			if identity, err = convBN(h, blk.down, blk.downBN, false, false); err != nil {
				return nil, err
			}
		}
		if h, err = b.relu(a, identity); err != nil {
			return nil, err
		}
	}
	pooled, err := b.globalAvgPool(h)
	if err != nil {
		return nil, err
	}
	logits, err := b.linear(pooled, b.paramNode(net.fcW), b.paramNode(net.fcB))
	if err != nil {
		return nil, err
	}
	cost, err := b.focalLoss(logits, labels, loss)
	if err != nil {
		return nil, err
	}
	gr := &graph{b: b, x: x, labels: labels, logits: logits, cost: cost, n: n, size: size, lossFunc: loss}
	if camWeight > 0 {
		fh, fw := h.Shape()[2], h.Shape()[3]
		gr.camH, gr.camW = fh, fw
		gr.camTargets = G.NewTensor(b.g, tensor.Float32, 2, G.WithShape(n, fh*fw), G.WithName("cam_targets"))
		gr.camTargetsT = tensor.New(tensor.WithShape(n, fh*fw), tensor.Of(tensor.Float32))
		cam, err := b.camLoss(h, b.paramNode(net.fcW), b.paramNode(net.fcB), gr.camTargets, camWeight)
		if err != nil {
			return nil, err
		}
		if cost, err = b.addScalars(cost, cam); err != nil {
			return nil, err
		}
		gr.cost = cost
	}
	var wrt G.Nodes
	for _, p := range net.params {
		if p.trainable() {
			gr.params = append(gr.params, p)
			wrt = append(wrt, b.paramNode(p))
		}
	}
	if gr.grads, err = G.Grad(cost, wrt...); err != nil {
		return nil, fmt.Errorf("classifier: differentiate: %w", err)
	}
	gr.xT = tensor.New(tensor.WithShape(n, 3, size, size), tensor.Of(tensor.Float32))
	gr.labelsT = tensor.New(tensor.WithShape(n), tensor.Of(tensor.Float32))
	keep := map[*G.Node]bool{logits: true, cost: true}
	for _, g := range gr.grads {
		keep[g] = true
	}
	if err := shareOutputs(b.g, keep); err != nil {
		return nil, err
	}
	gr.vm = G.NewTapeMachine(b.g)
	return gr, nil
}

// lossValue returns the cost computed by the last run.
func (gr *graph) lossValue() (float64, error) {
	f, err := floats(gr.cost.Value())
	if err != nil {
		return 0, err
	}
	return float64(f[0]), nil
}

// gradValues returns the gradient of trainable parameter i after a run.
func (gr *graph) gradValues(i int) ([]float32, error) {
	return floats(gr.grads[i].Value())
}

// shareOutputs lets custom ops whose results are never alive at the same
// time share output buffers. In a training graph every op owns its output,
// so all of the backward pass's gradients would stay allocated; here each
// output lives from its op to its last reader in the order the tape runs
// (gorgonia's compile order: the reverse of Sort), and a later op takes
// over a dead buffer large enough (best fit). A reader that is not one of
// our ops (gorgonia's gradient sums) may write its result into its first
// input, so a buffer read by one lives as long as that reader's result.
// Nodes in keep (read after the run: logits, loss, parameter gradients)
// keep their own buffers.
func shareOutputs(g *G.ExprGraph, keep map[*G.Node]bool) error {
	sorted, err := G.Sort(g)
	if err != nil {
		return fmt.Errorf("classifier: sort graph: %w", err)
	}
	n := len(sorted)
	pos := make(map[*G.Node]int, n)
	for i, nd := range sorted {
		pos[nd] = n - 1 - i
	}
	// last[nd]: the last tape position at which nd's buffer is read,
	// computed from the end of the tape backwards.
	last := make(map[*G.Node]int, n)
	for i := 0; i < n; i++ {
		nd := sorted[i] // execution order reversed: consumers first
		l := pos[nd]
		for it := g.To(nd.ID()); it.Next(); {
			c, ok := it.Node().(*G.Node)
			if !ok {
				continue
			}
			_, ours := c.Op().(*kernelOp)
			switch {
			case !ours && keep[c]:
				// e.g. the sum of a parameter's two gradients, read
				// after the run, possibly in this buffer
				l = n
			case ours:
				l = max(l, pos[c])
			default:
				l = max(l, last[c])
			}
		}
		last[nd] = l
	}
	// Buffers are sized after the assignment: a dead buffer too small for
	// the next output grows to fit rather than a new one being added beside
	// it, so the total approaches the peak of what is alive at once.
	type buf struct {
		size  int // the largest output it holds
		until int // last read of the current owner
	}
	var bufs []*buf
	owner := map[*kernelOp]*buf{}
	var ops []*kernelOp
	for i := n - 1; i >= 0; i-- {
		nd := sorted[i]
		op, ok := nd.Op().(*kernelOp)
		if !ok || keep[nd] || op.result != nil || op.scalarOut {
			continue
		}
		size, at := op.outShape.TotalSize(), pos[nd]
		var fit, big *buf // smallest dead buffer that fits; largest dead one
		for _, b := range bufs {
			if b.until >= at {
				continue
			}
			if b.size >= size && (fit == nil || b.size < fit.size) {
				fit = b
			}
			if big == nil || b.size > big.size {
				big = b
			}
		}
		switch {
		case fit != nil:
		case big != nil:
			fit, big.size = big, size
		default:
			fit = &buf{size: size}
			bufs = append(bufs, fit)
		}
		fit.until = last[nd]
		owner[op] = fit
		ops = append(ops, op)
	}
	data := make(map[*buf][]float32, len(bufs))
	for _, b := range bufs {
		data[b] = make([]float32, b.size)
	}
	for _, op := range ops {
		size := op.outShape.TotalSize()
		op.out = tensor.New(tensor.WithShape(op.outShape.Clone()...), tensor.WithBacking(data[owner[op]][:size]))
	}
	return nil
}
