// Package vec holds AVX2 loops for the classifier's conv epilogue (Go
// assembly cannot live in the cgo package itself).
package vec

import "golang.org/x/sys/cpu"

// The conv epilogue touches every output once after the GEMM; in scalar Go
// it was ~6 % of ResNet-50's CPU time, so its hot loops are AVX2 assembly.

//go:noescape
func biasReluAVX2(x *float32, n int, b float32)

//go:noescape
func biasResReluAVX2(x, r *float32, n int, b float32)

//go:noescape
func biasAVX2(x *float32, n int, b float32)

var hasAVX2 = cpu.X86.HasAVX2

// BiasRelu sets x[i] = max(x[i]+b, 0); it returns how many leading
// elements it did (a multiple of 8), the caller does the rest.
func BiasRelu(x []float32, b float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	biasReluAVX2(&x[0], n, b)
	return n
}

// BiasResRelu sets x[i] = max((x[i]+b)+r[i], 0) like BiasRelu.
func BiasResRelu(x, r []float32, b float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 || len(r) < n {
		return 0
	}
	biasResReluAVX2(&x[0], &r[0], n, b)
	return n
}

// Bias sets x[i] += b like BiasRelu.
func Bias(x []float32, b float32) int {
	n := len(x) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	biasAVX2(&x[0], n, b)
	return n
}
