// Package kernels holds the classifier's numeric kernels on plain float32
// slices: im2col/col2im convolutions on OpenBLAS GEMMs, Winograd F(2x2,3x3)
// and F(4x4,3x3), train-mode BatchNorm, max and average pooling, ReLU, on
// NCHW tensors and (where the oneDNN path needs them) on the blocked
// nChw16c layout. Nothing here knows gorgonia: the classifier wraps each
// kernel in a graph op. Work is split over GOMAXPROCS goroutines, each
// calling single-threaded OpenBLAS on its block.
package kernels
