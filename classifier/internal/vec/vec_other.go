//go:build !amd64

package vec

// Portable builds have no vector epilogue: the scalar loops do all of it.

func BiasRelu(x []float32, b float32) int       { return 0 }
func BiasResRelu(x, r []float32, b float32) int { return 0 }
func Bias(x []float32, b float32) int           { return 0 }
