package classifier

import (
	"gorgonia.org/gorgonia"

	"github.com/fracd/fracd/classifier/internal/kernels"
)

func init() {
	// gorgonia's stock ops (the gradient sums at residual joins) use the
	// same OpenBLAS as the kernels.
	gorgonia.Use(kernels.BLAS)
}
