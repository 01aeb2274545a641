//go:build !nodnnl

// Package dnnl wraps the few oneDNN (libdnnl 2.x, Debian's libdnnl-dev)
// primitives the classifier runs: convolution forward / backward data /
// backward weights with fused bias, sum and ReLU, max and average pooling,
// and reorders between layouts. (Batch normalisation stays in Go: oneDNN's
// float32 statistics round differently from PyTorch's float64 ones, enough
// to flip ReLU masks and miss the golden gradients by more than 1e-3.)
//
// Every buffer is Go memory passed for the duration of one call; each
// primitive uses a user scratchpad, so primitives owned by different
// callers can run concurrently. Build with -tags nodnnl where the library
// is missing (Available then reports false and the classifier keeps its own
// kernels).
package dnnl

/*
#cgo LDFLAGS: -ldnnl -lgomp
#include "glue.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Layout of a 4-D activation tensor.
type Layout int

// Layouts (values shared with glue.h).
const (
	NCHW    Layout = C.FD_NCHW
	Blocked Layout = C.FD_BLOCKED // nChw16c: channels in blocks of 16, innermost
	Any     Layout = C.FD_ANY
)

// Block is the channel block of the Blocked layout.
const Block = 16

// Argument identifiers (oneDNN's DNNL_ARG_*), for ArgFloats and MD.
const (
	ArgSrc         = C.DNNL_ARG_SRC
	ArgDst         = C.DNNL_ARG_DST
	ArgWeights     = C.DNNL_ARG_WEIGHTS
	ArgDiffWeights = C.DNNL_ARG_DIFF_WEIGHTS
	ArgWorkspace   = C.DNNL_ARG_WORKSPACE
)

// ConvKind selects what a convolution primitive computes.
type ConvKind int

// Convolution kinds.
const (
	ConvInference ConvKind = iota
	ConvTraining
	ConvBackwardData
	ConvBackwardWeights
	// ConvInferenceBF16 is ConvInference with bfloat16 source and weights
	// (bias and destination stay float32): see BF16MD for the source.
	ConvInferenceBF16
	// ConvInferenceBF16Out is ConvInferenceBF16 with a bfloat16
	// destination too (the sum post-op then reads the residual in
	// bfloat16 from it); accumulation stays float32.
	ConvInferenceBF16Out
)

var (
	initOnce sync.Once
	initErr  error
)

// Available reports whether oneDNN is linked and its CPU engine started.
func Available() bool {
	initOnce.Do(func() {
		if st := C.fd_init(); st != 0 {
			initErr = fmt.Errorf("dnnl: engine: status %d", int(st))
		}
	})
	return initErr == nil
}

// NativeBF16 reports whether the CPU computes bfloat16 natively
// (AVX512-BF16); elsewhere oneDNN emulates it, more slowly than float32.
func NativeBF16() bool { return Available() && C.fd_native_bf16() != 0 }

// Prim is one compiled oneDNN primitive.
type Prim struct {
	p *C.fd_prim
	// Scratch is the scratchpad it needs, in bytes (pass at least this).
	Scratch int
	// Impl names the implementation oneDNN chose (e.g. "jit:avx512_core").
	Impl string
	nthr int
}

func wrap(p *C.fd_prim, st C.int, what string, nthr int) (*Prim, error) {
	if st != 0 {
		return nil, fmt.Errorf("dnnl: create %s: status %d", what, int(st))
	}
	pr := &Prim{p: p, Scratch: int(p.scratch), Impl: C.GoString(&p.impl[0]), nthr: nthr}
	runtime.SetFinalizer(pr, func(pr *Prim) { C.fd_free(pr.p) })
	return pr, nil
}

func b2i(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Conv compiles a 2-D convolution (square kernel k, stride s, padding p)
// of n images (c, h, w) to oc channels. Weights are in the primitive's own
// format (see MD(ArgWeights) and Reorder); bias is per output channel;
// sum adds the destination's previous contents (the residual) before
// relu. Backward kinds ignore bias, sum and relu.
func Conv(kind ConvKind, n, c, h, w, oc, k, s, p int, src, dst Layout, bias, sum, relu bool, nthr int) (*Prim, error) {
	if !Available() {
		return nil, initErr
	}
	var out *C.fd_prim
	st := C.fd_conv(&out, C.int(kind), C.int(n), C.int(c), C.int(h), C.int(w), C.int(oc), C.int(k), C.int(s), C.int(p),
		C.int(src), C.int(dst), b2i(bias), b2i(sum), b2i(relu), C.int(nthr))
	return wrap(out, st, fmt.Sprintf("conv kind %d %dx%dx%dx%d->%d k%d s%d", kind, n, c, h, w, oc, k, s), nthr)
}

// Pool compiles k x k max (avg false) or average pooling over Blocked
// tensors; training adds the max-pool workspace, backward computes the
// input gradient.
func Pool(kind ConvKind, avg bool, n, c, h, w, k, s, p, nthr int) (*Prim, error) {
	if !Available() {
		return nil, initErr
	}
	kd := map[ConvKind]int{ConvInference: 0, ConvTraining: 1, ConvBackwardData: 2}[kind]
	var out *C.fd_prim
	st := C.fd_pool(&out, C.int(kd), b2i(avg), C.int(n), C.int(c), C.int(h), C.int(w), C.int(k), C.int(s), C.int(p), C.int(nthr))
	return wrap(out, st, "pool", nthr)
}

// MD is a memory descriptor: a tensor's shape and layout.
type MD struct {
	md    *C.dnnl_memory_desc_t
	owner any // keeps the primitive (or allocation) alive
}

// MD returns the descriptor of argument arg (ArgSrc, ArgWeights, ...).
func (p *Prim) MD(arg int) MD { return MD{md: C.fd_arg_md(p.p, C.int(arg)), owner: p} }

// ArgFloats returns the float32 count of argument arg's buffer (rounded up:
// workspaces are bytes).
func (p *Prim) ArgFloats(arg int) int { return (int(C.fd_arg_size(p.p, C.int(arg))) + 3) / 4 }

type ownedMD struct{ md *C.dnnl_memory_desc_t }

// PlainMD describes an n x c x h x w tensor in layout l (weights: OIHW).
func PlainMD(n, c, h, w int, l Layout, weights bool) MD { return newMD(n, c, h, w, l, weights, false) }

// BF16MD describes an n x c x h x w activation in layout l, in bfloat16
// (2 bytes an element: a buffer of n*c*h*w/2 float32s, rounded up, holds it).
func BF16MD(n, c, h, w int, l Layout) MD { return newMD(n, c, h, w, l, false, true) }

func newMD(n, c, h, w int, l Layout, weights, bf16 bool) MD {
	md := C.fd_md(C.int(n), C.int(c), C.int(h), C.int(w), C.int(l), b2i(weights), b2i(bf16))
	o := &ownedMD{md}
	runtime.SetFinalizer(o, func(o *ownedMD) { C.fd_md_free(o.md) })
	return MD{md: md, owner: o}
}

// Same reports whether two descriptors describe the same memory layout.
func (a MD) Same(b MD) bool { return C.fd_same_md(a.md, b.md) != 0 }

// Reorder compiles a copy from layout from to layout to.
func Reorder(from, to MD, nthr int) (*Prim, error) {
	if !Available() {
		return nil, initErr
	}
	var out *C.fd_prim
	st := C.fd_reorder(&out, from.md, to.md, C.int(nthr))
	pr, err := wrap(out, st, "reorder", nthr)
	runtime.KeepAlive(from.owner)
	runtime.KeepAlive(to.owner)
	return pr, err
}

func ptr(b []float32) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

// Exec runs the primitive on bufs, in the order the constructors document
// (convolution forward: src, weights, [bias,] dst; backward data: diff_dst,
// weights, diff_src; backward weights: src, diff_dst, diff_weights; pooling
// forward: src, dst[, workspace]; pooling backward: diff_dst, diff_src[,
// workspace]; reorder: from, to). scratch must
// hold Scratch bytes.
func (p *Prim) Exec(scratch []byte, bufs ...[]float32) error {
	if len(bufs) > 10 {
		return fmt.Errorf("dnnl: exec: %d buffers, at most 10", len(bufs))
	}
	if len(scratch) < p.Scratch {
		return fmt.Errorf("dnnl: exec: scratchpad %d bytes, want %d", len(scratch), p.Scratch)
	}
	var a [10]unsafe.Pointer
	for i, b := range bufs {
		a[i] = ptr(b)
	}
	var sp unsafe.Pointer
	if p.Scratch > 0 {
		sp = unsafe.Pointer(&scratch[0])
	}
	st := C.fd_exec(p.p, C.int(p.nthr), a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], sp)
	runtime.KeepAlive(p)
	runtime.KeepAlive(bufs)
	runtime.KeepAlive(scratch)
	if st != 0 {
		return fmt.Errorf("dnnl: exec %s: status %d", p.Impl, int(st))
	}
	return nil
}
