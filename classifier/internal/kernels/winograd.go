package kernels

import "github.com/fracd/fracd/classifier/internal/vec"

// Winograd F(m x m, 3x3) for stride-1, pad-1 3x3 convolutions: each t x t
// input tile (t = m+2) is transformed (V = Bᵀ d B), the t² transform
// positions become t² independent GEMMs against pre-transformed weights
// (U = G g Gᵀ), and each t x t product tile maps back to an m x m output
// tile (Y = Aᵀ M A). Two schemes, which differ only in their tile sides
// and three 1-D transforms (winogradScheme); one driver runs both:
//
//   - F(2x2, 3x3): 16 multiplies per 4 outputs instead of 36, at float32
//     rounding comparable to the direct method (the transforms only add,
//     subtract and halve).
//   - F(4x4, 3x3), for the larger maps: 36 multiplies per 16 outputs
//     (F(2x2) needs 64, the direct method 144). Interpolation points 0, ±1,
//     ±2: the transforms scale by at most 8 (input) and 1/24 (weights), so
//     float32 rounding grows by roughly an order of magnitude over F(2x2),
//     still orders below the 1e-4 parity tolerance.
//
// Weights are transformed in float64: once per graph in inference, every
// step in training (WinogradTrainForward).

// winogradScheme is one F(m x m, 3x3). Its transforms work on whole rows of
// tiles (vectors), so the driver calls them once per tile row, not per
// element.
type winogradScheme struct {
	m, t int // output and input tile side, t = m+2
	// minTiles: the fewest output tiles (over the batch) for which the
	// scheme beats the next simpler method here.
	minTiles *int
	// g is G applied to one column or row of three taps (t values used).
	g func(a, b, c float64) [6]float64
	// bt applies Bᵀ down t vectors: out[r][i] = sum_k Bᵀ[r][k] in[k][i].
	bt func(in, out *[6][]float32)
	// btTiles applies Bᵀ across each tile of one transformed row tr (tile
	// x spans tr[m*x : m*x+t]), writing position c of tile x to o[c][x].
	btTiles func(tr []float32, o *[6][]float32)
	// at applies Aᵀ down t vectors into m: out[j][i] = sum_k Aᵀ[j][k] in[k][i].
	at func(in *[6][]float32, out *[4][]float32)
	// atTiles applies Aᵀ across tiles: output x's m values from c[k][x].
	atTiles func(c *[6][]float32, o []float32)
}

var (
	winograd2 = winogradScheme{m: 2, t: 4, minTiles: &winogradMinTiles, g: g2, bt: bt2, btTiles: btTiles2, at: at2, atTiles: atTiles2}
	winograd4 = winogradScheme{m: 4, t: 6, minTiles: &winograd4MinTiles, g: g4, bt: bt4, btTiles: btTiles4, at: at4, atTiles: atTiles4}
)

// winogradMinTiles is the fewest 2x2 output tiles (over the batch) for
// which Winograd beats im2col+GEMM here: below it, the 16/9 larger
// transformed weights and the transforms cost more than the saved flops.
var winogradMinTiles = 48

// winograd4MinTiles: below it (the 14x14 maps: 16 tiles, a quarter of
// them padding) F(2x2)'s better-shaped GEMMs win (measured).
var winograd4MinTiles = 48

// winogradBudget caps each transformed tensor (floats); a variable so tests
// can force several groups.
var winogradBudget = 4 << 20

// F(2x2, 3x3): G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1], Bᵀ rows (1 0 -1 0),
// (0 1 1 0), (0 -1 1 0), (0 1 0 -1), Aᵀ rows (1 1 1 0), (0 1 -1 -1).

func g2(a, b, c float64) [6]float64 {
	return [6]float64{a, 0.5 * (a + b + c), 0.5 * (a - b + c), c}
}

func bt2(in, out *[6][]float32) {
	r0, r1, r2, r3 := in[0], in[1], in[2], in[3]
	t0, t1, t2, t3 := out[0], out[1], out[2], out[3]
	r1, r2, r3 = r1[:len(r0)], r2[:len(r0)], r3[:len(r0)]
	t0, t1, t2, t3 = t0[:len(r0)], t1[:len(r0)], t2[:len(r0)], t3[:len(r0)]
	for i := range t0 {
		a, b, c, d := r0[i], r1[i], r2[i], r3[i]
		t0[i], t1[i], t2[i], t3[i] = a-c, b+c, c-b, b-d
	}
}

func btTiles2(tr []float32, o *[6][]float32) {
	o0, o1, o2, o3 := o[0], o[1], o[2], o[3]
	for tx := range o0 {
		q := tr[2*tx : 2*tx+4]
		a, b, c, d := q[0], q[1], q[2], q[3]
		o0[tx], o1[tx], o2[tx], o3[tx] = a-c, b+c, c-b, b-d
	}
}

func at2(in *[6][]float32, out *[4][]float32) {
	a, b, c, d := in[0], in[1], in[2], in[3]
	s0, s1 := out[0], out[1]
	for tx := range s0 {
		s0[tx] = a[tx] + b[tx] + c[tx]
		s1[tx] = b[tx] - c[tx] - d[tx]
	}
}

func atTiles2(c *[6][]float32, o []float32) {
	c0, c1, c2, c3 := c[0], c[1], c[2], c[3]
	for tx := range c0 {
		o[2*tx] = c0[tx] + c1[tx] + c2[tx]
		o[2*tx+1] = c1[tx] - c2[tx] - c3[tx]
	}
}

// F(4x4, 3x3), points 0, ±1, ±2: G rows (¼ 0 0), -⅙(1 1 1), -⅙(1 -1 1),
// (1/24 1/12 ⅙), (1/24 -1/12 ⅙), (0 0 1); Bᵀ and Aᵀ as written out below.

func g4(a, b, c float64) [6]float64 {
	return [6]float64{
		a / 4,
		-(a + b + c) / 6,
		-(a - b + c) / 6,
		a/24 + b/12 + c/6,
		a/24 - b/12 + c/6,
		c,
	}
}

// bt6 is F(4x4)'s Bᵀ on one column of six values.
func bt6(a, b, c, d, e, f float32) (t0, t1, t2, t3, t4, t5 float32) {
	return 4*a - 5*c + e, e + d - 4*(b+c), e - d + 4*(b-c), e - c + 2*(d-b), e - c - 2*(d-b), 4*b - 5*d + f
}

func bt4(in, out *[6][]float32) {
	d0, d1, d2, d3, d4, d5 := in[0], in[1], in[2], in[3], in[4], in[5]
	t0, t1, t2, t3, t4, t5 := out[0], out[1], out[2], out[3], out[4], out[5]
	n := len(t0) // one length for all, so the loop needs no bounds checks
	d0, d1, d2, d3, d4, d5 = d0[:n], d1[:n], d2[:n], d3[:n], d4[:n], d5[:n]
	t1, t2, t3, t4, t5 = t1[:n], t2[:n], t3[:n], t4[:n], t5[:n]
	for i := range t0 {
		v0, v1, v2, v3, v4, v5 := bt6(d0[i], d1[i], d2[i], d3[i], d4[i], d5[i])
		t0[i], t1[i], t2[i], t3[i], t4[i], t5[i] = v0, v1, v2, v3, v4, v5
	}
}

func btTiles4(tr []float32, o *[6][]float32) {
	o0, o1, o2, o3, o4, o5 := o[0], o[1], o[2], o[3], o[4], o[5]
	n := len(o0)
	o1, o2, o3, o4, o5 = o1[:n], o2[:n], o3[:n], o4[:n], o5[:n]
	for tx := range o0 {
		q := tr[4*tx : 4*tx+6]
		v0, v1, v2, v3, v4, v5 := bt6(q[0], q[1], q[2], q[3], q[4], q[5])
		o0[tx], o1[tx], o2[tx], o3[tx], o4[tx], o5[tx] = v0, v1, v2, v3, v4, v5
	}
}

// at6 is F(4x4)'s Aᵀ on one column of six values.
func at6(m0, m1, m2, m3, m4, m5 float32) (s0, s1, s2, s3 float32) {
	p, q := m1+m2, m1-m2
	pp, qq := m3+m4, m3-m4
	return m0 + p + pp, q + 2*qq, p + 4*pp, q + 8*qq + m5
}

func at4(in *[6][]float32, out *[4][]float32) {
	m0, m1, m2, m3, m4, m5 := in[0], in[1], in[2], in[3], in[4], in[5]
	s0, s1, s2, s3 := out[0], out[1], out[2], out[3]
	n := len(s0)
	m0, m1, m2, m3, m4, m5 = m0[:n], m1[:n], m2[:n], m3[:n], m4[:n], m5[:n]
	s1, s2, s3 = s1[:n], s2[:n], s3[:n]
	for tx := range s0 {
		v0, v1, v2, v3 := at6(m0[tx], m1[tx], m2[tx], m3[tx], m4[tx], m5[tx])
		s0[tx], s1[tx], s2[tx], s3[tx] = v0, v1, v2, v3
	}
}

func atTiles4(c *[6][]float32, o []float32) {
	c0, c1, c2, c3, c4, c5 := c[0], c[1], c[2], c[3], c[4], c[5]
	n := len(c0)
	c1, c2, c3, c4, c5 = c1[:n], c2[:n], c3[:n], c4[:n], c5[:n]
	for tx := range c0 {
		v0, v1, v2, v3 := at6(c0[tx], c1[tx], c2[tx], c3[tx], c4[tx], c5[tx])
		q := o[4*tx : 4*tx+4]
		q[0], q[1], q[2], q[3] = v0, v1, v2, v3
	}
}

// schemeFor is the scheme whose transformed weights u are (t², Cout, Cin).
func schemeFor(g *Geom, u []float32) *winogradScheme {
	if len(u) == 36*g.Cout*g.C {
		return &winograd4
	}
	return &winograd2
}

// applies reports whether s is worthwhile for a 3x3/s1/p1 conv of n images.
func (s *winogradScheme) applies(g *Geom, n int) bool {
	if g.K != 3 || g.S != 1 || g.P != 1 {
		return false
	}
	return n*((g.OH+s.m-1)/s.m)*((g.OW+s.m-1)/s.m) >= *s.minTiles
}

// WinogradApplies reports whether the Winograd path is worthwhile: it needs
// enough tiles per GEMM, else the 16/9 larger transformed weights dominate.
func WinogradApplies(g *Geom, n int) bool { return winograd2.applies(g, n) }

// Winograd4Applies reports whether F(4x4) should replace F(2x2) for a
// 3x3/s1/p1 conv: only with enough 4x4 tiles per GEMM (the 56x56 and 28x28
// maps of a 224 px ResNet at batch 1).
func Winograd4Applies(g *Geom, n int) bool {
	return WinogradApplies(g, n) && winograd4.applies(g, n)
}

// WinogradWeights transforms w (Cout, Cin, 3, 3) into U for F(2x2): 16
// matrices of (Cout, Cin), position-major.
func WinogradWeights(w []float32, cout, cin int) []float32 {
	return winograd2.weights(nil, w, cout, cin)
}

// Winograd4Weights is WinogradWeights for F(4x4): 36 matrices.
func Winograd4Weights(w []float32, cout, cin int) []float32 {
	return winograd4.weights(nil, w, cout, cin)
}

// weights transforms w (Cout, Cin, 3, 3) into U = G g Gᵀ, t² matrices of
// (Cout, Cin), position-major, reusing dst's storage.
func (s *winogradScheme) weights(dst, w []float32, cout, cin int) []float32 {
	t := s.t
	n := t * t * cout * cin
	u := dst
	if cap(u) < n {
		u = make([]float32, n)
	}
	u = u[:n]
	for co := 0; co < cout; co++ {
		for ci := 0; ci < cin; ci++ {
			g := w[(co*cin+ci)*9 : (co*cin+ci)*9+9]
			// G g, column by column
			var c [3][6]float64
			for j := 0; j < 3; j++ {
				c[j] = s.g(float64(g[j]), float64(g[3+j]), float64(g[6+j]))
			}
			// (G g) Gᵀ, row by row
			for i := 0; i < t; i++ {
				row := s.g(c[0][i], c[1][i], c[2][i])
				for j := 0; j < t; j++ {
					u[((i*t+j)*cout+co)*cin+ci] = float32(row[j])
				}
			}
		}
	}
	return u
}

// WinogradForward computes y = conv3x3(x) + epilogue for n images using the
// transformed weights u (16 matrices: F(2x2); 36: F(4x4)), in groups of
// images sized so the transformed input and product (t² planes each) stay
// within a bounded Workspace.
func WinogradForward(ws *Workspace, g *Geom, n int, x, u, y, bias, res []float32, relu bool) {
	s := schemeFor(g, u)
	tpi := ((g.OH + s.m - 1) / s.m) * ((g.OW + s.m - 1) / s.m)
	group := max(1, winogradBudget/(s.t*s.t*max(g.C, g.Cout)*tpi))
	inLen, outLen := g.C*g.InPlaneLen, g.Cout*g.OHW
	for n0 := 0; n0 < n; n0 += group {
		m := min(group, n-n0)
		var r []float32
		if res != nil {
			r = res[n0*outLen : (n0+m)*outLen]
		}
		s.group(ws, g, m, x[n0*inLen:(n0+m)*inLen], u, y[n0*outLen:(n0+m)*outLen], bias, r, relu)
	}
}

// group runs one group of n images: input transform, t² GEMMs, output
// transform with the epilogue.
func (s *winogradScheme) group(ws *Workspace, g *Geom, n int, x, u, y, bias, res []float32, relu bool) {
	mt, t, tt := s.m, s.t, s.t*s.t
	th, tw := (g.OH+mt-1)/mt, (g.OW+mt-1)/mt
	tpi := th * tw // tiles per image
	nt := n * tpi  // GEMM columns
	cin, cout := g.C, g.Cout
	v := ws.buf(&ws.col, 0, tt*cin*nt)
	m := ws.buf(&ws.tmp, 0, tt*cout*nt)
	inLen, outLen := cin*g.InPlaneLen, cout*g.OHW
	h, w := g.H, g.W
	pw := mt*tw + 2 // padded row width: input columns -1 .. mt*tw
	// input transform, parallel over (image, channel) planes; one row of
	// tiles at a time (Bᵀ down whole padded rows, then across each tile) so
	// every loop runs over contiguous memory
	ParallelFor(n*cin, func(lo, hi int) {
		rows := make([]float32, t*pw)
		tr := make([]float32, t*pw)
		var in, out, o [6][]float32
		for r := 0; r < t; r++ {
			in[r], out[r] = rows[r*pw:(r+1)*pw], tr[r*pw:(r+1)*pw]
		}
		stride := cin * nt
		for pl := lo; pl < hi; pl++ {
			img, ci := pl/cin, pl%cin
			src := x[img*inLen+ci*g.InPlaneLen : img*inLen+(ci+1)*g.InPlaneLen]
			for ty := 0; ty < th; ty++ {
				for r := 0; r < t; r++ {
					dst := in[r]
					iy := mt*ty - 1 + r
					if iy < 0 || iy >= h {
						clear(dst)
						continue
					}
					dst[0] = 0
					copy(dst[1:1+w], src[iy*w:(iy+1)*w])
					clear(dst[1+w:])
				}
				s.bt(&in, &out)
				// written position-major, tiles contiguous
				base := ci*nt + img*tpi + ty*tw
				for r := 0; r < t; r++ {
					for c := 0; c < t; c++ {
						at := base + (r*t+c)*stride
						o[c] = v[at : at+tw]
					}
					s.btTiles(out[r], &o)
				}
			}
		}
	})
	// t² independent GEMMs: M[ξ] = U[ξ] (Cout x Cin) * V[ξ] (Cin x nt)
	RunDynamic(tt, 1, func(_, lo, hi int) {
		for xi := lo; xi < hi; xi++ {
			Sgemm(false, false, cout, nt, cin, 1, u[xi*cout*cin:], cin, v[xi*cin*nt:], nt, 0, m[xi*cout*nt:], nt)
		}
	})
	// output transform + epilogue, parallel over (image, channel) planes,
	// one row of tiles at a time
	stride := cout * nt
	ParallelFor(n*cout, func(lo, hi int) {
		sbuf := make([]float32, mt*t*tw)
		obuf := make([]float32, mt*tw)
		var mk, sc [6][]float32
		var sj [4][]float32
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
				// S = Aᵀ M: m rows j of t columns c, each tw tiles wide
				for c := 0; c < t; c++ {
					for r := 0; r < t; r++ {
						at := base + (r*t+c)*stride
						mk[r] = m[at : at+tw]
					}
					for j := 0; j < mt; j++ {
						sj[j] = sbuf[(j*t+c)*tw : (j*t+c+1)*tw]
					}
					s.at(&mk, &sj)
				}
				// Y = S A: output row j, mt*tw columns
				for j := 0; j < mt; j++ {
					oy := mt*ty + j
					if oy >= g.OH {
						break
					}
					for c := 0; c < t; c++ {
						sc[c] = sbuf[(j*t+c)*tw : (j*t+c+1)*tw]
					}
					o := obuf[:mt*tw]
					s.atTiles(&sc, o)
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

// WinogradTrainForward is WinogradForward (no epilogue) for weights w
// (Cout, Cin, 3, 3) that change every step, as in training: they are
// transformed into the workspace on each call.
func WinogradTrainForward(ws *Workspace, g *Geom, n int, x, w, y []float32) {
	ws.u = winograd2.weights(ws.u, w, g.Cout, g.C)
	WinogradForward(ws, g, n, x, ws.u, y, nil, nil, false)
}

// WinogradTrainBackwardData computes the input gradient dx of a 3x3/s1/p1
// convolution from dy by Winograd: the transposed convolution of such a
// conv is again one, with the kernel rotated and the channels swapped.
func WinogradTrainBackwardData(ws *Workspace, g *Geom, n int, dy, w, dx []float32) {
	gt := NewGeom(g.Cout, g.OH, g.OW, g.C, 3, 1, 1)
	ws.wt = rotateTranspose3x3(ws.wt, w, g.Cout, g.C)
	ws.u = winograd2.weights(ws.u, ws.wt, g.C, g.Cout)
	WinogradForward(ws, &gt, n, dy, ws.u, dx, nil, nil, false)
}

// rotateTranspose3x3 returns w (Cout, Cin, 3, 3) rotated by 180 degrees
// with the channel axes swapped: the kernel of the transposed convolution.
func rotateTranspose3x3(dst, w []float32, cout, cin int) []float32 {
	if cap(dst) < len(w) {
		dst = make([]float32, len(w))
	}
	dst = dst[:len(w)]
	for co := 0; co < cout; co++ {
		for ci := 0; ci < cin; ci++ {
			src := w[(co*cin+ci)*9 : (co*cin+ci)*9+9]
			d := dst[(ci*cout+co)*9 : (ci*cout+co)*9+9]
			for k := 0; k < 9; k++ {
				d[k] = src[8-k]
			}
		}
	}
	return dst
}
