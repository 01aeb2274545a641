package kernels

import "math"

// Train-mode BatchNorm2d (batch statistics) on NCHW and on blocked
// (nChw16c) tensors, with the arithmetic PyTorch's CPU kernel uses: float64
// statistics, y = x*scale + shift in float32, float64 gradient sums.

// BNEps is BatchNorm2d's default eps.
const BNEps = 1e-5

// bnMomentum is BatchNorm2d's default running-statistics momentum.
const bnMomentum = 0.1

// BNRunning is the running statistics a train-mode forward pass updates
// (momentum 0.1, unbiased variance); nil updates none (gradient checks).
type BNRunning struct{ Mean, Var []float32 }

// BatchNormForward normalises x (N, C, HW) with its batch statistics into
// y, optionally with ReLU, saving each channel's mean and 1/std for
// BatchNormBackward and updating run.
func BatchNormForward(n, c, hw int, x, gamma, beta, y, mean, invstd []float32, run *BNRunning, relu bool) {
	m := n * hw
	ParallelFor(c, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			var s float64
			for i := 0; i < n; i++ {
				s += sum64(x[(i*c+ch)*hw : (i*c+ch+1)*hw])
			}
			mu := s / float64(m)
			var ss float64
			for i := 0; i < n; i++ {
				ss += sqdev64(x[(i*c+ch)*hw:(i*c+ch+1)*hw], mu)
			}
			variance := ss / float64(m)
			inv := 1 / math.Sqrt(variance+BNEps)
			mean[ch], invstd[ch] = float32(mu), float32(inv)
			scale, shift := bnAffine(gamma[ch], beta[ch], mu, inv)
			for i := 0; i < n; i++ {
				src := x[(i*c+ch)*hw : (i*c+ch+1)*hw]
				dst := y[(i*c+ch)*hw : (i*c+ch+1)*hw]
				dst = dst[:len(src)]
				if relu {
					for j, v := range src {
						dst[j] = Relu32(v*scale + shift)
					}
				} else {
					for j, v := range src {
						dst[j] = v*scale + shift
					}
				}
			}
			run.update(ch, mu, variance, ss, m)
		}
	})
}

// bnAffine folds normalisation and the affine parameters into one
// multiply-add per element, rounded once to float32.
func bnAffine(gamma, beta float32, mean, invstd float64) (scale, shift float32) {
	return float32(float64(gamma) * invstd), float32(float64(beta) - mean*float64(gamma)*invstd)
}

// update moves channel ch's running statistics towards the batch's mean
// and unbiased variance (ss is the sum of squared deviations of m values).
func (r *BNRunning) update(ch int, mean, variance, ss float64, m int) {
	if r == nil {
		return
	}
	unbiased := variance
	if m > 1 {
		unbiased = ss / float64(m-1)
	}
	r.Mean[ch] = float32((1-bnMomentum)*float64(r.Mean[ch]) + bnMomentum*mean)
	r.Var[ch] = float32((1-bnMomentum)*float64(r.Var[ch]) + bnMomentum*unbiased)
}

// sum64 sums in float64 with four independent accumulators (the add
// latency, not bandwidth, bounds a single running sum).
func sum64(v []float32) float64 {
	var a, b, c, d float64
	i := 0
	for ; i+4 <= len(v); i += 4 {
		q := v[i : i+4]
		a += float64(q[0])
		b += float64(q[1])
		c += float64(q[2])
		d += float64(q[3])
	}
	for ; i < len(v); i++ {
		a += float64(v[i])
	}
	return (a + b) + (c + d)
}

// sqdev64 is the float64 sum of squared deviations from mean.
func sqdev64(v []float32, mean float64) float64 {
	var a, b, c, d float64
	i := 0
	for ; i+4 <= len(v); i += 4 {
		q := v[i : i+4]
		e0, e1, e2, e3 := float64(q[0])-mean, float64(q[1])-mean, float64(q[2])-mean, float64(q[3])-mean
		a += e0 * e0
		b += e1 * e1
		c += e2 * e2
		d += e3 * e3
	}
	for ; i < len(v); i++ {
		e := float64(v[i]) - mean
		a += e * e
	}
	return (a + b) + (c + d)
}

// BatchNormBackward computes the input gradient dx and the parameter
// gradients dgamma, dbeta of BatchNormForward from its saved mean and
// invstd; y is the forward output (the ReLU mask when relu).
func BatchNormBackward(n, c, hw int, x, y, gamma, dy, mean, invstd, dx, dgamma, dbeta []float32, relu bool) {
	m := float64(n * hw)
	dg, db := dgamma, dbeta
	ParallelFor(c, func(lo, hi int) {
		for ch := lo; ch < hi; ch++ {
			mean, invstd := mean[ch], invstd[ch]
			var sdy, sdyx [4]float64
			for i := 0; i < n; i++ {
				off := (i*c + ch) * hw
				xs, ys, ds := x[off:off+hw], y[off:off+hw], dy[off:off+hw]
				ys, xs = ys[:len(ds)], xs[:len(ds)]
				for j, d := range ds {
					if relu {
						d = maskGrad(d, positiveMask(ys[j]))
					}
					sdy[j&3] += float64(d)
					sdyx[j&3] += float64(d) * float64(xs[j]-mean)
				}
			}
			dbeta := (sdy[0] + sdy[1]) + (sdy[2] + sdy[3])
			dgamma := ((sdyx[0] + sdyx[1]) + (sdyx[2] + sdyx[3])) * float64(invstd)
			dg[ch], db[ch] = float32(dgamma), float32(dbeta)
			k := float32(float64(gamma[ch]) * float64(invstd))
			a := float32(dbeta / m)
			bcoef := float32(dgamma / m * float64(invstd))
			for i := 0; i < n; i++ {
				off := (i*c + ch) * hw
				xs, ys, ds, out := x[off:off+hw], y[off:off+hw], dy[off:off+hw], dx[off:off+hw]
				ys, xs, out = ys[:len(ds)], xs[:len(ds)], out[:len(ds)]
				for j, d := range ds {
					if relu {
						d = maskGrad(d, positiveMask(ys[j]))
					}
					out[j] = k * (d - a - (xs[j]-mean)*bcoef)
				}
			}
		}
	})
}

// BatchNormBackwardBlocked is BatchNormBackward on nChw16c tensors, from
// BatchNormForwardBlocked's mean and biased variance, accumulated in float64 as PyTorch's CPU
// kernel does (oneDNN's float32 sums move the early-layer gradients of the
// golden checks by more than 1e-3). y is the forward output (the ReLU
// mask when relu).
func BatchNormBackwardBlocked(n, c, hw int, x, y, gamma, dy, mean, variance, dx, dgamma, dbeta []float32, relu bool) {
	const B = Block
	cb := c / B
	m := float64(n * hw)
	ParallelFor(cb, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			var mu, inv [B]float64
			for l := 0; l < B; l++ {
				mu[l] = float64(mean[blk*B+l])
				inv[l] = 1 / math.Sqrt(float64(variance[blk*B+l])+BNEps)
			}
			var sdy, sdyx [B]float64
			for i := 0; i < n; i++ {
				off := (i*cb + blk) * hw * B
				xs, ys, ds := x[off:off+hw*B], y[off:off+hw*B], dy[off:off+hw*B]
				for q := 0; q < hw; q++ {
					xv, yv, dv := xs[q*B:q*B+B], ys[q*B:q*B+B], ds[q*B:q*B+B]
					for l := 0; l < B; l++ {
						d := dv[l]
						if relu {
							d = maskGrad(d, positiveMask(yv[l]))
						}
						sdy[l] += float64(d)
						sdyx[l] += float64(d) * (float64(xv[l]) - mu[l])
					}
				}
			}
			var k, a, bc, mf [B]float32
			for l := 0; l < B; l++ {
				ch := blk*B + l
				dbeta[ch] = float32(sdy[l])
				dg := sdyx[l] * inv[l]
				dgamma[ch] = float32(dg)
				k[l] = float32(float64(gamma[ch]) * inv[l])
				a[l] = float32(sdy[l] / m)
				bc[l] = float32(dg / m * inv[l])
				mf[l] = float32(mu[l])
			}
			for i := 0; i < n; i++ {
				off := (i*cb + blk) * hw * B
				xs, ys, ds, out := x[off:off+hw*B], y[off:off+hw*B], dy[off:off+hw*B], dx[off:off+hw*B]
				for q := 0; q < hw; q++ {
					xv, yv, dv, ov := xs[q*B:q*B+B], ys[q*B:q*B+B], ds[q*B:q*B+B], out[q*B:q*B+B]
					for l := 0; l < B; l++ {
						d := dv[l]
						if relu {
							d = maskGrad(d, positiveMask(yv[l]))
						}
						ov[l] = k[l] * (d - a[l] - (xv[l]-mf[l])*bc[l])
					}
				}
			}
		}
	})
}

// BatchNormForwardBlocked is BatchNormForward on nChw16c tensors, with the same
// arithmetic per channel (float64 sums with four accumulators per image
// plane, y = x*scale + shift in float32), so its outputs round like the
// NCHW kernel's and PyTorch's. mean and variance receive the batch mean
// and biased variance.
func BatchNormForwardBlocked(n, c, hw int, x, gamma, beta, y, mean, variance []float32, run *BNRunning, relu bool) {
	const B = Block
	cb := c / B
	m := n * hw
	ParallelFor(cb, func(lo, hi int) {
		for blk := lo; blk < hi; blk++ {
			var s [B]float64
			for i := 0; i < n; i++ {
				xs := x[(i*cb+blk)*hw*B : (i*cb+blk+1)*hw*B]
				var acc [4][B]float64
				q := 0
				for ; q+4 <= hw; q += 4 {
					for r := 0; r < 4; r++ {
						v := xs[(q+r)*B : (q+r)*B+B]
						for l := 0; l < B; l++ {
							acc[r][l] += float64(v[l])
						}
					}
				}
				for ; q < hw; q++ {
					v := xs[q*B : q*B+B]
					for l := 0; l < B; l++ {
						acc[0][l] += float64(v[l])
					}
				}
				for l := 0; l < B; l++ {
					s[l] += (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l])
				}
			}
			var mu, ss [B]float64
			for l := 0; l < B; l++ {
				mu[l] = s[l] / float64(m)
			}
			for i := 0; i < n; i++ {
				xs := x[(i*cb+blk)*hw*B : (i*cb+blk+1)*hw*B]
				var acc [4][B]float64
				q := 0
				for ; q+4 <= hw; q += 4 {
					for r := 0; r < 4; r++ {
						v := xs[(q+r)*B : (q+r)*B+B]
						for l := 0; l < B; l++ {
							e := float64(v[l]) - mu[l]
							acc[r][l] += e * e
						}
					}
				}
				for ; q < hw; q++ {
					v := xs[q*B : q*B+B]
					for l := 0; l < B; l++ {
						e := float64(v[l]) - mu[l]
						acc[0][l] += e * e
					}
				}
				for l := 0; l < B; l++ {
					ss[l] += (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l])
				}
			}
			var scale, shift [B]float32
			for l := 0; l < B; l++ {
				ch := blk*B + l
				v := ss[l] / float64(m)
				invstd := 1 / math.Sqrt(v+BNEps)
				mean[ch], variance[ch] = float32(mu[l]), float32(v)
				scale[l], shift[l] = bnAffine(gamma[ch], beta[ch], mu[l], invstd)
				run.update(ch, mu[l], v, ss[l], m)
			}
			for i := 0; i < n; i++ {
				off := (i*cb + blk) * hw * B
				xs, ys := x[off:off+hw*B], y[off:off+hw*B]
				for q := 0; q < hw; q++ {
					v, o := xs[q*B:q*B+B], ys[q*B:q*B+B]
					if relu {
						for l := 0; l < B; l++ {
							o[l] = Relu32(v[l]*scale[l] + shift[l])
						}
					} else {
						for l := 0; l < B; l++ {
							o[l] = v[l]*scale[l] + shift[l]
						}
					}
				}
			}
		}
	})
}
