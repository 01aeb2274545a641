package kernels

import "github.com/fracd/fracd/classifier/internal/vec"

// Winograd F(4x4, 3x3) for the larger feature maps of inference graphs:
// 6x6 input tiles, 36 GEMMs, 4x4 output tiles, i.e. 36 multiplies per 16
// outputs (F(2x2) needs 64, the direct method 144). Interpolation points
// 0, ±1, ±2: the transforms scale by at most 8 (input) and 1/24 (weights),
// so float32 rounding grows by roughly an order of magnitude over F(2x2),
// still orders below the 1e-4 parity tolerance. Weights are transformed
// once, in float64, when the graph is built.

// Winograd4Weights transforms w (Cout, Cin, 3, 3) into U = G g Gᵀ: 36
// matrices of (Cout, Cin), position-major.
func Winograd4Weights(w []float32, cout, cin int) []float32 {
	u := make([]float32, 36*cout*cin)
	gt := func(a, b, c float64) [6]float64 {
		return [6]float64{
			a / 4,
			-(a + b + c) / 6,
			-(a - b + c) / 6,
			a/24 + b/12 + c/6,
			a/24 - b/12 + c/6,
			c,
		}
	}
	for co := 0; co < cout; co++ {
		for ci := 0; ci < cin; ci++ {
			g := w[(co*cin+ci)*9 : (co*cin+ci)*9+9]
			// t = G g (6x3), column by column
			var t [3][6]float64
			for j := 0; j < 3; j++ {
				t[j] = gt(float64(g[j]), float64(g[3+j]), float64(g[6+j]))
			}
			// U = t Gᵀ (6x6)
			for i := 0; i < 6; i++ {
				row := gt(t[0][i], t[1][i], t[2][i])
				for j := 0; j < 6; j++ {
					u[((i*6+j)*cout+co)*cin+ci] = float32(row[j])
				}
			}
		}
	}
	return u
}

// Winograd4Applies reports whether F(4x4) should replace F(2x2) for a
// 3x3/s1/p1 conv: only with enough 4x4 tiles per GEMM (the 56x56 and 28x28
// maps of a 224 px ResNet at batch 1).
func Winograd4Applies(g *Geom, n int) bool {
	if !WinogradApplies(g, n) {
		return false
	}
	return n*((g.OH+3)/4)*((g.OW+3)/4) >= winograd4MinTiles
}

// winograd4MinTiles: below it (the 14x14 maps: 16 tiles, a quarter of
// them padding) F(2x2)'s better-shaped GEMMs win (measured).
var winograd4MinTiles = 48

func winograd4Forward(ws *Workspace, g *Geom, n int, x, u, y, bias, res []float32, relu bool) {
	tpi := ((g.OH + 3) / 4) * ((g.OW + 3) / 4)
	group := max(1, winogradBudget/(36*max(g.C, g.Cout)*tpi))
	inLen, outLen := g.C*g.InPlaneLen, g.Cout*g.OHW
	for n0 := 0; n0 < n; n0 += group {
		m := min(group, n-n0)
		var r []float32
		if res != nil {
			r = res[n0*outLen : (n0+m)*outLen]
		}
		winograd4Group(ws, g, m, x[n0*inLen:(n0+m)*inLen], u, y[n0*outLen:(n0+m)*outLen], bias, r, relu)
	}
}

func winograd4Group(ws *Workspace, g *Geom, n int, x, u, y, bias, res []float32, relu bool) {
	th, tw := (g.OH+3)/4, (g.OW+3)/4
	tpi := th * tw
	nt := n * tpi
	cin, cout := g.C, g.Cout
	v := ws.buf(&ws.col, 0, 36*cin*nt)
	m := ws.buf(&ws.tmp, 0, 36*cout*nt)
	inLen, outLen := cin*g.InPlaneLen, cout*g.OHW
	h, w := g.H, g.W
	pw := 4*tw + 2 // padded row: input columns -1 .. 4*tw
	// input transform V = Bᵀ d B, per (image, channel) plane, one row of
	// tiles at a time (rows first over whole padded rows, then columns)
	ParallelFor(n*cin, func(lo, hi int) {
		rows := make([]float32, 6*pw)
		tr := make([]float32, 6*pw)
		stride := cin * nt
		for pl := lo; pl < hi; pl++ {
			img, ci := pl/cin, pl%cin
			src := x[img*inLen+ci*g.InPlaneLen : img*inLen+(ci+1)*g.InPlaneLen]
			for ty := 0; ty < th; ty++ {
				for r := 0; r < 6; r++ {
					dst := rows[r*pw : (r+1)*pw]
					iy := 4*ty - 1 + r
					if iy < 0 || iy >= h {
						clear(dst)
						continue
					}
					dst[0] = 0
					copy(dst[1:1+w], src[iy*w:(iy+1)*w])
					clear(dst[1+w:])
				}
				d0, d1, d2, d3, d4, d5 := rows[:pw], rows[pw:2*pw], rows[2*pw:3*pw], rows[3*pw:4*pw], rows[4*pw:5*pw], rows[5*pw:6*pw]
				t0, t1, t2, t3, t4, t5 := tr[:pw], tr[pw:2*pw], tr[2*pw:3*pw], tr[3*pw:4*pw], tr[4*pw:5*pw], tr[5*pw:6*pw]
				for i := range t0 {
					a, b, c, d, e, f := d0[i], d1[i], d2[i], d3[i], d4[i], d5[i]
					t0[i] = 4*a - 5*c + e
					t1[i] = e + d - 4*(b+c)
					t2[i] = e - d + 4*(b-c)
					t3[i] = e - c + 2*(d-b)
					t4[i] = e - c - 2*(d-b)
					t5[i] = 4*b - 5*d + f
				}
				base := ci*nt + img*tpi + ty*tw
				for r := 0; r < 6; r++ {
					t := tr[r*pw : (r+1)*pw]
					o := func(c int) []float32 {
						s := base + (r*6+c)*stride
						return v[s : s+tw]
					}
					o0, o1, o2, o3, o4, o5 := o(0), o(1), o(2), o(3), o(4), o(5)
					for tx := range o0 {
						q := t[4*tx : 4*tx+6]
						a, b, c, d, e, f := q[0], q[1], q[2], q[3], q[4], q[5]
						o0[tx] = 4*a - 5*c + e
						o1[tx] = e + d - 4*(b+c)
						o2[tx] = e - d + 4*(b-c)
						o3[tx] = e - c + 2*(d-b)
						o4[tx] = e - c - 2*(d-b)
						o5[tx] = 4*b - 5*d + f
					}
				}
			}
		}
	})
	// 36 independent GEMMs: M[ξ] = U[ξ] (Cout x Cin) * V[ξ] (Cin x nt)
	RunDynamic(36, 1, func(_, lo, hi int) {
		for xi := lo; xi < hi; xi++ {
			Sgemm(false, false, cout, nt, cin, 1, u[xi*cout*cin:], cin, v[xi*cin*nt:], nt, 0, m[xi*cout*nt:], nt)
		}
	})
	// output transform Y = Aᵀ M A + epilogue, per (image, channel) plane
	stride := cout * nt
	ParallelFor(n*cout, func(lo, hi int) {
		sbuf := make([]float32, 24*tw)
		obuf := make([]float32, 4*4*tw)
		for pl := lo; pl < hi; pl++ {
			img, co := pl/cout, pl%cout
			dst := y[img*outLen+co*g.OHW : img*outLen+(co+1)*g.OHW]
			var rr []float32
			if res != nil {
				rr = res[img*outLen+co*g.OHW : img*outLen+(co+1)*g.OHW]
			}
			var b float32
			if bias != nil {
				b = bias[co]
			}
			for ty := 0; ty < th; ty++ {
				base := co*nt + img*tpi + ty*tw
				// s = Aᵀ M: 4 rows j of 6 columns c, each tw tiles wide
				for c := 0; c < 6; c++ {
					mk := func(r int) []float32 {
						s := base + (r*6+c)*stride
						return m[s : s+tw]
					}
					m0, m1, m2, m3, m4, m5 := mk(0), mk(1), mk(2), mk(3), mk(4), mk(5)
					s0, s1, s2, s3 := sbuf[c*tw:(c+1)*tw], sbuf[(6+c)*tw:(7+c)*tw], sbuf[(12+c)*tw:(13+c)*tw], sbuf[(18+c)*tw:(19+c)*tw]
					for tx := range s0 {
						p, q := m1[tx]+m2[tx], m1[tx]-m2[tx]
						pp, qq := m3[tx]+m4[tx], m3[tx]-m4[tx]
						s0[tx] = m0[tx] + p + pp
						s1[tx] = q + 2*qq
						s2[tx] = p + 4*pp
						s3[tx] = q + 8*qq + m5[tx]
					}
				}
				// Y = s A: output row j, 4*tw columns
				for j := 0; j < 4; j++ {
					oy := 4*ty + j
					if oy >= g.OH {
						break
					}
					sj := sbuf[j*6*tw : (j+1)*6*tw]
					c0, c1, c2, c3, c4, c5 := sj[:tw], sj[tw:2*tw], sj[2*tw:3*tw], sj[3*tw:4*tw], sj[4*tw:5*tw], sj[5*tw:6*tw]
					o := obuf[:4*tw]
					for tx := range c0 {
						p, q := c1[tx]+c2[tx], c1[tx]-c2[tx]
						pp, qq := c3[tx]+c4[tx], c3[tx]-c4[tx]
						o[4*tx] = c0[tx] + p + pp
						o[4*tx+1] = q + 2*qq
						o[4*tx+2] = p + 4*pp
						o[4*tx+3] = q + 8*qq + c5[tx]
					}
					drow := dst[oy*g.OW : (oy+1)*g.OW]
					o = o[:len(drow)]
					var rrow []float32
					if rr != nil {
						rrow = rr[oy*g.OW : (oy+1)*g.OW]
						rrow = rrow[:len(o)]
					}
					switch {
					case rrow != nil && relu:
						for i := vec.BiasResRelu(o, rrow, b); i < len(o); i++ {
							o[i] = Relu32(o[i] + b + rrow[i])
						}
					case relu:
						for i := vec.BiasRelu(o, b); i < len(o); i++ {
							o[i] = Relu32(o[i] + b)
						}
					default:
						for i := range o {
							o[i] += b
						}
						for i := range rrow {
							o[i] += rrow[i]
						}
					}
					copy(drow, o)
				}
			}
		}
	})
}
