package kernels

// The cgo directive links OpenBLAS into any binary importing this package, so
// that gonum's netlib bindings resolve without extra CGO_LDFLAGS (Debian
// package libopenblas-dev).

/*
#cgo LDFLAGS: -lopenblas
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);
extern char* openblas_get_corename(void);
*/
import "C"

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/netlib/blas/netlib"
)

// BLAS is OpenBLAS through gonum's netlib cgo bindings; used both by these
// kernels and (the classifier hands it to gorgonia.Use) by gorgonia's
// stock ops.
var BLAS = netlib.Implementation{}

func init() {
	// The kernels split work across GOMAXPROCS goroutines themselves and
	// call OpenBLAS single-threaded from each (see ConvForward).
	SetBLASThreads(1)
}

// Sgemm computes C = alpha*op(A)*op(B) + beta*C on row-major matrices.
func Sgemm(tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if tA {
		ta = blas.Trans
	}
	if tB {
		tb = blas.Trans
	}
	BLAS.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SetBLASThreads sets OpenBLAS's thread count (it defaults to the number of
// cores, or OPENBLAS_NUM_THREADS).
func SetBLASThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// BLASThreads reports OpenBLAS's current thread count.
func BLASThreads() int { return int(C.openblas_get_num_threads()) }

// BLASCore names the OpenBLAS kernel family in use. OPENBLAS_CORETYPE
// selects it (this machine's environment pins Haswell; OpenBLAS 0.3.21 does
// not know AMD Zen 5 anyway).
func BLASCore() string { return C.GoString(C.openblas_get_corename()) }
