//go:build nodnnl

package dnnl

import "errors"

// Built with -tags nodnnl: no oneDNN; the classifier uses its own kernels.

type Layout int

const (
	NCHW Layout = iota
	Blocked
	Any
)

const Block = 16

const (
	ArgSrc = iota + 1
	ArgDst
	ArgWeights
	ArgDiffWeights
	ArgWorkspace
)

type ConvKind int

const (
	ConvInference ConvKind = iota
	ConvTraining
	ConvBackwardData
	ConvBackwardWeights
	ConvInferenceBF16
	ConvInferenceBF16Out
)

var errMissing = errors.New("dnnl: built without oneDNN (-tags nodnnl)")

func Available() bool  { return false }
func NativeBF16() bool { return false }

type Prim struct {
	Scratch int
	Impl    string
}

type MD struct{}

func Conv(ConvKind, int, int, int, int, int, int, int, int, Layout, Layout, bool, bool, bool, int) (*Prim, error) {
	return nil, errMissing
}
func Pool(ConvKind, bool, int, int, int, int, int, int, int, int) (*Prim, error) {
	return nil, errMissing
}
func PlainMD(int, int, int, int, Layout, bool) MD { return MD{} }
func BF16MD(int, int, int, int, Layout) MD        { return MD{} }
func Reorder(MD, MD, int) (*Prim, error)          { return nil, errMissing }
func (p *Prim) MD(int) MD                         { return MD{} }
func (p *Prim) ArgFloats(int) int                 { return 0 }
func (a MD) Same(MD) bool                         { return false }
func (p *Prim) Exec([]byte, ...[]float32) error   { return errMissing }
