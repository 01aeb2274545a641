package dicomio

// Integer inverse DCT of the IJG library's "islow" method (the default of
// libjpeg, libjpeg-turbo, GDCM and dcmtk), so lossy JPEG decodes to the same
// samples as the reference decoders: a separable Loeffler-Ligtenberg-Moschytz
// transform with 13-bit fixed-point constants.

const (
	idctConstBits = 13
	fix0298631336 = 2446
	fix0390180644 = 3196
	fix0541196100 = 4433
	fix0765366865 = 6270
	fix0899976223 = 7373
	fix1175875602 = 9633
	fix1501321110 = 12299
	fix1847759065 = 15137
	fix1961570560 = 16069
	fix2053119869 = 16819
	fix2562915447 = 20995
	fix3072711026 = 25172
)

func descale(x int64, n uint) int64 { return (x + 1<<(n-1)) >> n }

// idctIslow transforms one dequantised block (natural order) into samples.
// pass1 is 2 for 8-bit and 1 for 12-bit data, as in IJG's PASS1_BITS;
// samples are level-shifted by center and clamped to [0, maxv].
func idctIslow(in *[64]int64, out []int32, stride int, pass1 uint, center, maxv int64) {
	var ws [64]int64
	for c := range 8 {
		if in[8+c] == 0 && in[16+c] == 0 && in[24+c] == 0 && in[32+c] == 0 &&
			in[40+c] == 0 && in[48+c] == 0 && in[56+c] == 0 {
			dc := in[c] << pass1
			for k := range 8 {
				ws[8*k+c] = dc
			}
			continue
		}
		z2, z3 := in[16+c], in[48+c]
		z1 := (z2 + z3) * fix0541196100
		tmp2 := z1 - z3*fix1847759065
		tmp3 := z1 + z2*fix0765366865
		z2, z3 = in[c], in[32+c]
		tmp0 := (z2 + z3) << idctConstBits
		tmp1 := (z2 - z3) << idctConstBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2

		tmp0, tmp1, tmp2, tmp3 = in[56+c], in[40+c], in[24+c], in[8+c]
		z1, z2, z3 = tmp0+tmp3, tmp1+tmp2, tmp0+tmp2
		z4 := tmp1 + tmp3
		z5 := (z3 + z4) * fix1175875602
		tmp0 *= fix0298631336
		tmp1 *= fix2053119869
		tmp2 *= fix3072711026
		tmp3 *= fix1501321110
		z1 *= -fix0899976223
		z2 *= -fix2562915447
		z3 *= -fix1961570560
		z4 *= -fix0390180644
		z3 += z5
		z4 += z5
		tmp0 += z1 + z3
		tmp1 += z2 + z4
		tmp2 += z2 + z3
		tmp3 += z1 + z4

		n := idctConstBits - pass1
		ws[c] = descale(tmp10+tmp3, n)
		ws[56+c] = descale(tmp10-tmp3, n)
		ws[8+c] = descale(tmp11+tmp2, n)
		ws[48+c] = descale(tmp11-tmp2, n)
		ws[16+c] = descale(tmp12+tmp1, n)
		ws[40+c] = descale(tmp12-tmp1, n)
		ws[24+c] = descale(tmp13+tmp0, n)
		ws[32+c] = descale(tmp13-tmp0, n)
	}
	clamp := func(v int64) int32 {
		v += center
		if v < 0 {
			return 0
		}
		if v > maxv {
			return int32(maxv)
		}
		return int32(v)
	}
	n := idctConstBits + pass1 + 3
	for r := range 8 {
		w := ws[8*r : 8*r+8]
		o := out[r*stride : r*stride+8]
		z2, z3 := w[2], w[6]
		z1 := (z2 + z3) * fix0541196100
		tmp2 := z1 - z3*fix1847759065
		tmp3 := z1 + z2*fix0765366865
		tmp0 := (w[0] + w[4]) << idctConstBits
		tmp1 := (w[0] - w[4]) << idctConstBits
		tmp10, tmp13 := tmp0+tmp3, tmp0-tmp3
		tmp11, tmp12 := tmp1+tmp2, tmp1-tmp2

		tmp0, tmp1, tmp2, tmp3 = w[7], w[5], w[3], w[1]
		z1, z2, z3 = tmp0+tmp3, tmp1+tmp2, tmp0+tmp2
		z4 := tmp1 + tmp3
		z5 := (z3 + z4) * fix1175875602
		tmp0 *= fix0298631336
		tmp1 *= fix2053119869
		tmp2 *= fix3072711026
		tmp3 *= fix1501321110
		z1 *= -fix0899976223
		z2 *= -fix2562915447
		z3 *= -fix1961570560
		z4 *= -fix0390180644
		z3 += z5
		z4 += z5
		tmp0 += z1 + z3
		tmp1 += z2 + z4
		tmp2 += z2 + z3
		tmp3 += z1 + z4

		o[0] = clamp(descale(tmp10+tmp3, n))
		o[7] = clamp(descale(tmp10-tmp3, n))
		o[1] = clamp(descale(tmp11+tmp2, n))
		o[6] = clamp(descale(tmp11-tmp2, n))
		o[2] = clamp(descale(tmp12+tmp1, n))
		o[5] = clamp(descale(tmp12-tmp1, n))
		o[3] = clamp(descale(tmp13+tmp0, n))
		o[4] = clamp(descale(tmp13-tmp0, n))
	}
}
