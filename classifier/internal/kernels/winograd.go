package kernels

// Winograd F(2x2, 3x3) for the stride-1, pad-1 3x3 convolutions of
// inference graphs: each 4x4 input tile is transformed (V = Bᵀ d B), the
// 16 transform positions become 16 independent GEMMs against pre-transformed
// weights (U = G g Gᵀ), and each 4x4 product tile maps back to a 2x2 output
// tile (Y = Aᵀ M A). That is 16 multiplies per 4 outputs instead of 36, at
// float32 rounding comparable to the direct method (the transforms only add,
// subtract and halve).

// WinogradWeights transforms w (Cout, Cin, 3, 3) into U: 16 matrices of
// (Cout, Cin), position-major.
func WinogradWeights(w []float32, cout, cin int) []float32 {
	return winogradWeightsInto(nil, w, cout, cin)
}

// winogradWeightsInto is WinogradWeights reusing dst's storage.
func winogradWeightsInto(dst, w []float32, cout, cin int) []float32 {
	u := dst
	if cap(u) < 16*cout*cin {
		u = make([]float32, 16*cout*cin)
	}
	u = u[:16*cout*cin]
	for co := 0; co < cout; co++ {
		for ci := 0; ci < cin; ci++ {
			g := w[(co*cin+ci)*9 : (co*cin+ci)*9+9]
			// t = G g (4x3)
			var t [4][3]float64
			for j := 0; j < 3; j++ {
				g0, g1, g2 := float64(g[j]), float64(g[3+j]), float64(g[6+j])
				t[0][j] = g0
				t[1][j] = 0.5 * (g0 + g1 + g2)
				t[2][j] = 0.5 * (g0 - g1 + g2)
				t[3][j] = g2
			}
			// U = t Gᵀ (4x4)
			for i := 0; i < 4; i++ {
				a, b, c := t[i][0], t[i][1], t[i][2]
				row := [4]float64{a, 0.5 * (a + b + c), 0.5 * (a - b + c), c}
				for j := 0; j < 4; j++ {
					u[((i*4+j)*cout+co)*cin+ci] = float32(row[j])
				}
			}
		}
	}
	return u
}

// WinogradApplies reports whether the Winograd path is worthwhile: it needs
// enough tiles per GEMM, else the 16/9 larger transformed weights dominate.
func WinogradApplies(g *Geom, n int) bool {
	if g.K != 3 || g.S != 1 || g.P != 1 {
		return false
	}
	th, tw := (g.OH+1)/2, (g.OW+1)/2
	return n*th*tw >= winogradMinTiles
}

// WinogradForward computes y = conv3x3(x) + epilogue for n images using the
// transformed weights u, in groups of images sized so the transformed input
// and product (16 planes each) stay within a bounded Workspace.
// u of 36 (not 16) matrices selects F(4x4, 3x3) (winograd4.go).
func WinogradForward(ws *Workspace, g *Geom, n int, x, u, y, bias, res []float32, relu bool) {
	if len(u) == 36*g.Cout*g.C {
		winograd4Forward(ws, g, n, x, u, y, bias, res, relu)
		return
	}
	tpi := ((g.OH + 1) / 2) * ((g.OW + 1) / 2)
	group := max(1, winogradBudget/(16*max(g.C, g.Cout)*tpi))
	inLen, outLen := g.C*g.InPlaneLen, g.Cout*g.OHW
	for n0 := 0; n0 < n; n0 += group {
		m := min(group, n-n0)
		var r []float32
		if res != nil {
			r = res[n0*outLen : (n0+m)*outLen]
		}
		winogradGroup(ws, g, m, x[n0*inLen:(n0+m)*inLen], u, y[n0*outLen:(n0+m)*outLen], bias, r, relu)
	}
}

// winogradBudget caps each transformed tensor (floats); a variable so tests
// can force several groups.
var winogradBudget = 4 << 20

func winogradGroup(ws *Workspace, g *Geom, n int, x, u, y, bias, res []float32, relu bool) {
	th, tw := (g.OH+1)/2, (g.OW+1)/2
	tpi := th * tw // tiles per image
	nt := n * tpi  // GEMM columns
	cin, cout := g.C, g.Cout
	v := ws.buf(&ws.col, 0, 16*cin*nt)
	m := ws.buf(&ws.tmp, 0, 16*cout*nt)
	inLen, outLen := cin*g.InPlaneLen, cout*g.OHW
	h, w := g.H, g.W
	// input transform, parallel over (image, channel) planes; one row of
	// tiles at a time so every loop runs over contiguous memory
	pw := 2*tw + 2 // padded row width: input columns -1 .. 2*tw
	ParallelFor(n*cin, func(lo, hi int) {
		rows := make([]float32, 4*pw)
		tr := make([]float32, 4*pw)
		stride := cin * nt
		for pl := lo; pl < hi; pl++ {
			img, ci := pl/cin, pl%cin
			src := x[img*inLen+ci*g.InPlaneLen : img*inLen+(ci+1)*g.InPlaneLen]
			for ty := 0; ty < th; ty++ {
				for r := 0; r < 4; r++ {
					dst := rows[r*pw : (r+1)*pw]
					iy := 2*ty - 1 + r
					if iy < 0 || iy >= h {
						clear(dst)
						continue
					}
					dst[0] = 0
					copy(dst[1:1+w], src[iy*w:(iy+1)*w])
					clear(dst[1+w:])
				}
				// rows: t = Bᵀ d
				r0, r1, r2, r3 := rows[:pw], rows[pw:2*pw], rows[2*pw:3*pw], rows[3*pw:4*pw]
				t0, t1, t2, t3 := tr[:pw], tr[pw:2*pw], tr[2*pw:3*pw], tr[3*pw:4*pw]
				for i := range t0 {
					a, b, c, d := r0[i], r1[i], r2[i], r3[i]
					t0[i], t1[i], t2[i], t3[i] = a-c, b+c, c-b, b-d
				}
				// columns: V = t B, written position-major, tiles contiguous
				base := ci*nt + img*tpi + ty*tw
				for r := 0; r < 4; r++ {
					t := tr[r*pw : (r+1)*pw]
					o0 := v[base+(r*4)*stride : base+(r*4)*stride+tw]
					o1 := v[base+(r*4+1)*stride : base+(r*4+1)*stride+tw]
					o2 := v[base+(r*4+2)*stride : base+(r*4+2)*stride+tw]
					o3 := v[base+(r*4+3)*stride : base+(r*4+3)*stride+tw]
					for tx := range o0 {
						q := t[2*tx : 2*tx+4]
						a, b, c, d := q[0], q[1], q[2], q[3]
						o0[tx], o1[tx], o2[tx], o3[tx] = a-c, b+c, c-b, b-d
					}
				}
			}
		}
	})
	// 16 independent GEMMs: M[ξ] = U[ξ] (Cout x Cin) * V[ξ] (Cin x nt)
	RunDynamic(16, 1, func(_, lo, hi int) {
		for xi := lo; xi < hi; xi++ {
			Sgemm(false, false, cout, nt, cin, 1, u[xi*cout*cin:], cin, v[xi*cin*nt:], nt, 0, m[xi*cout*nt:], nt)
		}
	})
	// output transform + epilogue, parallel over (image, channel) planes,
	// one row of tiles at a time
	stride := cout * nt
	ParallelFor(n*cout, func(lo, hi int) {
		sbuf := make([]float32, 8*tw)
		obuf := make([]float32, 2*2*tw)
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
				mk := func(k int) []float32 { return m[base+k*stride : base+k*stride+tw] }
				// s = Aᵀ M: s0c = M0c+M1c+M2c, s1c = M1c-M2c-M3c (rows of 4x4 tile)
				for c := 0; c < 4; c++ {
					a, bb, cc, d := mk(c), mk(4+c), mk(8+c), mk(12+c)
					s0, s1 := sbuf[c*tw:(c+1)*tw], sbuf[(4+c)*tw:(5+c)*tw]
					for tx := range s0 {
						s0[tx] = a[tx] + bb[tx] + cc[tx]
						s1[tx] = bb[tx] - cc[tx] - d[tx]
					}
				}
				// Y = s A, two output rows of 2*tw columns
				for r := 0; r < 2; r++ {
					c0, c1, c2, c3 := sbuf[(4*r)*tw:(4*r+1)*tw], sbuf[(4*r+1)*tw:(4*r+2)*tw], sbuf[(4*r+2)*tw:(4*r+3)*tw], sbuf[(4*r+3)*tw:(4*r+4)*tw]
					o := obuf[r*2*tw : (r+1)*2*tw]
					for tx := range c0 {
						o[2*tx] = c0[tx] + c1[tx] + c2[tx] + b
						o[2*tx+1] = c1[tx] - c2[tx] - c3[tx] + b
					}
					oy := 2*ty + r
					if oy >= g.OH {
						break
					}
					drow := dst[oy*g.OW : (oy+1)*g.OW]
					o = o[:len(drow)]
					if rr != nil {
						rrow := rr[oy*g.OW : (oy+1)*g.OW]
						rrow = rrow[:len(drow)]
						for i := range o {
							o[i] += rrow[i]
						}
					}
					if relu {
						for i, val := range o {
							drow[i] = Relu32(val)
						}
					} else {
						copy(drow, o)
					}
				}
			}
		}
	})
}

// winogradMinTiles is the fewest 2x2 output tiles (over the batch) for
// which Winograd beats im2col+GEMM here: below it, the 16/9 larger
// transformed weights and the transforms cost more than the saved flops.
var winogradMinTiles = 48

// WinogradTrainForward is WinogradForward (no epilogue) for weights w
// (Cout, Cin, 3, 3) that change every step, as in training: they are
// transformed into the workspace on each call.
func WinogradTrainForward(ws *Workspace, g *Geom, n int, x, w, y []float32) {
	ws.u = winogradWeightsInto(ws.u, w, g.Cout, g.C)
	WinogradForward(ws, g, n, x, ws.u, y, nil, nil, false)
}

// WinogradTrainBackwardData computes the input gradient dx of a 3x3/s1/p1
// convolution from dy by Winograd: the transposed convolution of such a
// conv is again one, with the kernel rotated and the channels swapped.
func WinogradTrainBackwardData(ws *Workspace, g *Geom, n int, dy, w, dx []float32) {
	gt := NewGeom(g.Cout, g.OH, g.OW, g.C, 3, 1, 1)
	ws.wt = rotateTranspose3x3(ws.wt, w, g.Cout, g.C)
	ws.u = winogradWeightsInto(ws.u, ws.wt, g.C, g.Cout)
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
