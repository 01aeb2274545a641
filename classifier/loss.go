package classifier

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/fracd/fracd/classifier/internal/kernels"
)

// The training losses: the focal loss on the logit, and the CAM
// supervision loss on the last stage's activation map, each a scalar cost
// node whose gradient ops gorgonia.Grad picks up.

// FocalLoss is torchvision's sigmoid_focal_loss on one logit per image,
// averaged over the batch: BCE-with-logits * (1-p_t)^Gamma, weighted by
// Alpha for positives and 1-Alpha for negatives when Alpha >= 0.
type FocalLoss struct {
	Gamma float64
	Alpha float64 // < 0 disables class balancing
}

// terms returns the per-sample loss and d loss / d logit (unaveraged).
func (f FocalLoss) terms(z, y float64) (loss, grad float64) {
	p := 1 / (1 + math.Exp(-z))
	ce := math.Max(z, 0) - z*y + math.Log1p(math.Exp(-math.Abs(z)))
	pt := p*y + (1-p)*(1-y)
	q := 1 - pt
	mod := math.Pow(q, f.Gamma)
	loss = ce * mod
	// d/dz: (p-y)*q^g + ce * g*q^(g-1) * (-dpt/dz), dpt/dz = p(1-p)(2y-1)
	grad = (p - y) * mod
	if f.Gamma != 0 && q > 0 {
		grad += ce * f.Gamma * math.Pow(q, f.Gamma-1) * (-(p * (1 - p) * (2*y - 1)))
	}
	if f.Alpha >= 0 {
		at := f.Alpha*y + (1-f.Alpha)*(1-y)
		loss *= at
		grad *= at
	}
	return loss, grad
}

// Loss returns the batch-mean focal loss of logits against labels.
func (f FocalLoss) Loss(logits, labels []float32) float64 {
	var s float64
	for i := range logits {
		l, _ := f.terms(float64(logits[i]), float64(labels[i]))
		s += l
	}
	return s / float64(len(logits))
}

// focalLoss adds the scalar cost node for logits (N,1) and labels (N).
func (b *builder) focalLoss(logits, labels *G.Node, f FocalLoss) (*G.Node, error) {
	n := logits.Shape()[0]
	if logits.Shape().TotalSize() != n {
		return nil, fmt.Errorf("classifier: focal loss wants one logit per image, got shape %v", logits.Shape())
	}
	op := newKernelOp("focal", []int{2, 1}, nil)
	op.scalarOut = true
	op.run = func(out []float32, in [][]float32) error {
		out[0] = float32(f.Loss(in[0], in[1]))
		return nil
	}
	op.diffWRT = []bool{true, false}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		d := newKernelOp("focal.dZ", []int{2, 1, 0}, logits.Shape().Clone())
		d.run = func(out []float32, in [][]float32) error {
			g := float64(in[2][0]) / float64(n)
			for i := 0; i < n; i++ {
				_, gr := f.terms(float64(in[0][i]), float64(in[1][i]))
				out[i] = float32(gr * g)
			}
			return nil
		}
		dn, err := apply(d, inputs[0], inputs[1], grad)
		return G.Nodes{dn, nil}, err
	}
	return apply(op, logits, labels)
}

// CAM supervision: the class activation map of the last residual stage
// (per cell z = b + sum_k w_k A_k, whose mean is the logit; see HeatMap)
// is trained towards the fracture outlines, so that the model's evidence,
// and the boxes cut from it, sit on the fracture rather than on context
// such as the body part or an implant.
//
// Targets are given per image and cell: CAMPositive inside an outline,
// CAMNegative for every cell of an image without a fracture, and
// CAMUnsupervised elsewhere (outside the outlines of a fractured image,
// where the evidence may spread, and for images without outlines). The
// loss is, per image, the mean binary cross-entropy of sigmoid(z) over its
// supervised cells, averaged over the batch; images without a supervised
// cell add nothing.
const (
	CAMUnsupervised float32 = -1
	CAMNegative     float32 = 0
	CAMPositive     float32 = 1
)

// CAMDataset is a Dataset that also gives CAM targets. CAMTarget writes
// image i's target for each of the fh x fw cells (row-major) of the last
// stage, matching the input Example(i) last wrote (the same augmentation).
type CAMDataset interface {
	Dataset
	CAMTarget(i, fh, fw int, dst []float32) error
}

// camCells is the side of the last stage's map for an input side: the
// stem's stride-2 conv and max pool, then three stride-2 stages.
func camCells(size int) int {
	s := (size-1)/2 + 1 // conv1: k7 s2 p3
	s = (s-1)/2 + 1     // max pool: k3 s2 p1
	for i := 0; i < 3; i++ {
		s = (s-1)/2 + 1 // k3 (or k1) s2 p1 (p0) convs
	}
	return s
}

// camLoss adds weight * the CAM loss of features a (N,C,H,W) under the fc
// parameters w (1,C), b (1) and targets (N, H*W) as a scalar node.
func (b *builder) camLoss(a, w, bias, targets *G.Node, weight float64) (*G.Node, error) {
	sh := a.Shape()
	if len(sh) != 4 || w.Shape()[0] != 1 {
		return nil, fmt.Errorf("classifier: cam loss wants (N,C,H,W) features and one output unit, got %v and %v", sh, w.Shape())
	}
	n, c, p := sh[0], sh[1], sh[2]*sh[3]
	// at is the offset of (image i, channel k, cell q): the features are
	// nChw16c in oneDNN graphs
	blocked := b.dnnl
	at := func(i, k, q int) int {
		if blocked {
			return kernels.BlockedIndex(i, k, q, c, p)
		}
		return (i*c+k)*p + q
	}
	// cells computes every cell's z and the per-image normalisers (weight
	// over the batch and the image's supervised cells).
	cells := func(feat, wt []float32, b0 float32, tg []float32, z []float64, norm []float64) {
		for i := 0; i < n; i++ {
			zi := z[i*p : (i+1)*p]
			for q := range zi {
				zi[q] = float64(b0)
			}
			for k := 0; k < c; k++ {
				wk := float64(wt[k])
				for q := range zi {
					zi[q] += wk * float64(feat[at(i, k, q)])
				}
			}
			m := 0
			for _, t := range tg[i*p : (i+1)*p] {
				if t >= 0 {
					m++
				}
			}
			norm[i] = 0
			if m > 0 {
				norm[i] = weight / float64(n*m)
			}
		}
	}
	op := newKernelOp("camloss", []int{4, 2, 1, 2}, nil)
	op.scalarOut = true
	z, norm := make([]float64, n*p), make([]float64, n)
	op.run = func(out []float32, in [][]float32) error {
		cells(in[0], in[1], in[2][0], in[3], z, norm)
		var l float64
		for i := 0; i < n; i++ {
			if norm[i] == 0 {
				continue
			}
			for q := 0; q < p; q++ {
				if t := float64(in[3][i*p+q]); t >= 0 {
					zi := z[i*p+q]
					l += norm[i] * (math.Max(zi, 0) - zi*t + math.Log1p(math.Exp(-math.Abs(zi))))
				}
			}
		}
		out[0] = float32(l)
		return nil
	}
	op.diffWRT = []bool{true, true, true, false}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		// dz holds d loss / d z for each cell, scaled by the upstream
		// gradient; each gradient op recomputes it (a few hundred
		// thousand multiply-adds) so that none depends on run order.
		gz, gnorm := make([]float64, n*p), make([]float64, n)
		dzOf := func(in [][]float32) []float64 {
			cells(in[0], in[1], in[2][0], in[3], gz, gnorm)
			g := float64(in[4][0])
			for i := 0; i < n; i++ {
				for q := 0; q < p; q++ {
					t := float64(in[3][i*p+q])
					j := i*p + q
					if gnorm[i] == 0 || t < 0 {
						gz[j] = 0
						continue
					}
					gz[j] = g * gnorm[i] * (1/(1+math.Exp(-gz[j])) - t)
				}
			}
			return gz
		}
		da := newKernelOp("camloss.dA", []int{4, 2, 1, 2, 0}, sh.Clone())
		da.run = func(out []float32, in [][]float32) error {
			dz := dzOf(in)
			for i := 0; i < n; i++ {
				for k := 0; k < c; k++ {
					wk := float64(in[1][k])
					for q := 0; q < p; q++ {
						out[at(i, k, q)] = float32(wk * dz[i*p+q])
					}
				}
			}
			return nil
		}
		dw := newKernelOp("camloss.dW", []int{4, 2, 1, 2, 0}, tensor.Shape{1, c})
		dw.run = func(out []float32, in [][]float32) error {
			dz := dzOf(in)
			for k := 0; k < c; k++ {
				var s float64
				for i := 0; i < n; i++ {
					for q := 0; q < p; q++ {
						s += dz[i*p+q] * float64(in[0][at(i, k, q)])
					}
				}
				out[k] = float32(s)
			}
			return nil
		}
		db := newKernelOp("camloss.dB", []int{4, 2, 1, 2, 0}, tensor.Shape{1})
		db.run = func(out []float32, in [][]float32) error {
			var s float64
			for _, v := range dzOf(in) {
				s += v
			}
			out[0] = float32(s)
			return nil
		}
		args := []*G.Node{inputs[0], inputs[1], inputs[2], inputs[3], grad}
		daN, err := apply(da, args...)
		if err != nil {
			return nil, err
		}
		dwN, err := apply(dw, args...)
		if err != nil {
			return nil, err
		}
		dbN, err := apply(db, args...)
		if err != nil {
			return nil, err
		}
		return G.Nodes{daN, dwN, dbN, nil}, nil
	}
	return apply(op, a, w, bias, targets)
}

// addScalars adds two scalar cost nodes (the focal and CAM losses).
func (b *builder) addScalars(x, y *G.Node) (*G.Node, error) {
	op := newKernelOp("addcost", []int{0, 0}, nil)
	op.scalarOut = true
	op.run = func(out []float32, in [][]float32) error {
		out[0] = in[0][0] + in[1][0]
		return nil
	}
	op.diffWRT = []bool{true, true}
	op.symDiff = func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		return G.Nodes{grad, grad}, nil
	}
	return apply(op, x, y)
}
