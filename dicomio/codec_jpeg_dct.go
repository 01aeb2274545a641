package dicomio

import "fmt"

// dctDecoder implements ISO 10918-1 DCT-based decoding with Huffman coding:
// baseline and extended sequential (SOF0/SOF1, 8 and 12-bit, .50/.51) and
// progressive (SOF2, the retired .53/.55). Samples are returned in the
// colour space they were encoded in (no YCbCr->RGB conversion), with chroma
// upsampled like libjpeg's "fancy" upsampler, as the references do.
type dctDecoder struct {
	fr     *jpegFrame
	bw, bh []int         // blocks per line / column per component (MCU-padded)
	coefs  [][][64]int32 // per component, per block: coefficients in zig-zag order
	eobrun int
	// stream: a sequential one-component frame, whose blocks are transformed
	// into out as they are decoded (no coefficient store). Exact only if its
	// one scan saw the quantisation table output would use: decodeJPEG checks
	// scans and q after the stream and otherwise decodes again, storing.
	stream bool
	out    []int32
	q      [64]int32 // the table the scan used
	scans  int
}

var zigzag = [64]int{
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
}

func newDCTDecoder(fr *jpegFrame, stream bool) *dctDecoder {
	d := &dctDecoder{fr: fr, stream: stream && fr.sof != 0xC2 && len(fr.comps) == 1}
	mcux := (fr.width + 8*fr.hmax - 1) / (8 * fr.hmax)
	mcuy := (fr.height + 8*fr.vmax - 1) / (8 * fr.vmax)
	for _, c := range fr.comps {
		bw, bh := mcux*c.h, mcuy*c.v
		d.bw = append(d.bw, bw)
		d.bh = append(d.bh, bh)
		if !d.stream {
			d.coefs = append(d.coefs, make([][64]int32, bw*bh))
		}
	}
	if d.stream {
		d.out = frameData(fr.width * fr.height)
	}
	return d
}

func (d *dctDecoder) scan(st *jpegState, sc *jpegScan) error {
	fr := d.fr
	progressive := fr.sof == 0xC2
	if !progressive && (sc.ss != 0 || sc.se != 63 || sc.ah != 0 || sc.al != 0) {
		// Some encoders write junk here for sequential scans; the standard fixes them.
		sc.ss, sc.se, sc.ah, sc.al = 0, 63, 0, 0
	}
	if sc.ss > sc.se || sc.se > 63 || (sc.ss == 0 && sc.se != 0 && progressive) {
		return fmt.Errorf("%w: spectral selection %d..%d", errJPEG, sc.ss, sc.se)
	}
	for _, ci := range sc.comps {
		c := fr.comps[ci]
		if sc.ss == 0 && sc.ah == 0 && st.dc[c.td] == nil {
			return fmt.Errorf("%w: missing DC Huffman table", errJPEG)
		}
		if sc.se > 0 && st.ac[c.ta] == nil {
			return fmt.Errorf("%w: missing AC Huffman table", errJPEG)
		}
	}
	br := &bitReader{d: sc.data}
	d.eobrun = 0
	pred := make([]int32, len(fr.comps))
	restart := st.restart
	n := 0
	step := func() {
		if restart > 0 && n > 0 && n%restart == 0 {
			br.restart()
			for k := range pred {
				pred[k] = 0
			}
			d.eobrun = 0
		}
		n++
	}
	if len(sc.comps) == 1 {
		ci := sc.comps[0]
		c := fr.comps[ci]
		// Non-interleaved: only the blocks covering the component's own size.
		cw := (fr.width*c.h + fr.hmax - 1) / fr.hmax
		ch := (fr.height*c.v + fr.vmax - 1) / fr.vmax
		bx, by := (cw+7)/8, (ch+7)/8
		if d.stream {
			d.scans++
			d.q = st.quant[c.tq]
			pass1, center, maxv := d.levels()
			var blk [64]int32
			var deq [64]int64
			for y := range by {
				for x := range bx {
					step()
					blk = [64]int32{}
					if err := d.block(st, sc, br, ci, &blk, &pred[ci]); err != nil {
						return err
					}
					d.grayBlock(&blk, &d.q, &deq, d.out, x, y, pass1, center, maxv)
				}
			}
			return nil
		}
		for y := range by {
			for x := range bx {
				step()
				if err := d.block(st, sc, br, ci, &d.coefs[ci][y*d.bw[ci]+x], &pred[ci]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	mcux := (fr.width + 8*fr.hmax - 1) / (8 * fr.hmax)
	mcuy := (fr.height + 8*fr.vmax - 1) / (8 * fr.vmax)
	for my := range mcuy {
		for mx := range mcux {
			step()
			for _, ci := range sc.comps {
				c := fr.comps[ci]
				for v := range c.v {
					for h := range c.h {
						bi := (my*c.v+v)*d.bw[ci] + mx*c.h + h
						if err := d.block(st, sc, br, ci, &d.coefs[ci][bi], &pred[ci]); err != nil {
							return err
						}
					}
				}
			}
		}
	}
	return nil
}

// block decodes one block's part of a scan into blk (zig-zag order).
func (d *dctDecoder) block(st *jpegState, sc *jpegScan, br *bitReader, ci int, blk *[64]int32, pred *int32) error {
	c := d.fr.comps[ci]
	if d.fr.sof != 0xC2 {
		s, err := br.decode(st.dc[c.td])
		if err != nil {
			return err
		}
		*pred += br.receiveExtend(s)
		blk[0] = *pred
		ac := st.ac[c.ta]
		for k := 1; k < 64; {
			rs, err := br.decode(ac)
			if err != nil {
				return err
			}
			r, s := int(rs>>4), rs&15
			if s == 0 {
				if r != 15 {
					break
				}
				k += 16
				continue
			}
			k += r
			if k > 63 {
				return fmt.Errorf("%w: AC coefficient index", errJPEG)
			}
			blk[k] = br.receiveExtend(s)
			k++
		}
		return nil
	}
	// Progressive (G.1.2).
	if sc.ss == 0 {
		if sc.ah == 0 {
			s, err := br.decode(st.dc[c.td])
			if err != nil {
				return err
			}
			*pred += br.receiveExtend(s)
			blk[0] = *pred << sc.al
		} else if br.bit() != 0 {
			blk[0] |= 1 << sc.al
		}
		return nil
	}
	ac := st.ac[c.ta]
	if sc.ah == 0 {
		if d.eobrun > 0 {
			d.eobrun--
			return nil
		}
		for k := sc.ss; k <= sc.se; {
			rs, err := br.decode(ac)
			if err != nil {
				return err
			}
			r, s := int(rs>>4), rs&15
			if s == 0 {
				if r != 15 {
					d.eobrun = 1<<r - 1
					if r > 0 {
						d.eobrun += int(br.bits(uint(r)))
					}
					break
				}
				k += 16
				continue
			}
			k += r
			if k > 63 {
				return fmt.Errorf("%w: AC coefficient index", errJPEG)
			}
			blk[k] = br.receiveExtend(s) * (1 << sc.al)
			k++
		}
		return nil
	}
	// AC refinement.
	p1 := int32(1) << sc.al
	m1 := int32(-1) << sc.al
	k := sc.ss
	if d.eobrun <= 0 {
		for ; k <= sc.se; k++ {
			rs, err := br.decode(ac)
			if err != nil {
				return err
			}
			r, s := int(rs>>4), rs&15
			var val int32
			if s != 0 {
				if br.bit() != 0 {
					val = p1
				} else {
					val = m1
				}
			} else if r != 15 {
				d.eobrun = 1 << r
				if r > 0 {
					d.eobrun += int(br.bits(uint(r)))
				}
				break
			}
			for ; k <= sc.se; k++ {
				if blk[k] != 0 {
					if br.bit() != 0 && blk[k]&p1 == 0 {
						if blk[k] >= 0 {
							blk[k] += p1
						} else {
							blk[k] += m1
						}
					}
				} else {
					if r == 0 {
						if val != 0 {
							blk[k] = val
						}
						break
					}
					r--
				}
			}
		}
	}
	if d.eobrun > 0 {
		for ; k <= sc.se; k++ {
			if blk[k] != 0 && br.bit() != 0 && blk[k]&p1 == 0 {
				if blk[k] >= 0 {
					blk[k] += p1
				} else {
					blk[k] += m1
				}
			}
		}
		d.eobrun--
	}
	return nil
}

// output dequantises, inverse-transforms and upsamples every component.
func (d *dctDecoder) output(st *jpegState) []int32 {
	if d.stream {
		return d.out
	}
	fr := d.fr
	nc := len(fr.comps)
	out := frameData(fr.width * fr.height * nc)
	pass1, center, maxv := d.levels()
	if nc == 1 {
		d.outputGray(st, out, pass1, center, maxv)
		return out
	}
	for ci, c := range fr.comps {
		q := &st.quant[c.tq]
		pw, ph := d.bw[ci]*8, d.bh[ci]*8
		plane := make([]int32, pw*ph)
		var deq [64]int64
		for by := range d.bh[ci] {
			for bx := range d.bw[ci] {
				blk := &d.coefs[ci][by*d.bw[ci]+bx]
				for k := range 64 {
					deq[zigzag[k]] = int64(blk[k]) * int64(q[k])
				}
				idctIslow(&deq, plane[by*8*pw+bx*8:], pw, pass1, center, maxv)
			}
		}
		// Component's true size (libjpeg's downsampled_width/height).
		cw := (fr.width*c.h + fr.hmax - 1) / fr.hmax
		chh := (fr.height*c.v + fr.vmax - 1) / fr.vmax
		upsample(plane, pw, cw, chh, fr.hmax/c.h, fr.vmax/c.v, fr.hmax%c.h == 0 && fr.vmax%c.v == 0, out, fr.width, fr.height, nc, ci)
	}
	return out
}

// levels returns the IDCT's pass-1 bits, level shift and sample maximum.
func (d *dctDecoder) levels() (pass1 uint, center, maxv int64) {
	pass1 = 2
	if d.fr.precision > 8 {
		pass1 = 1 // IJG's PASS1_BITS for 12-bit samples
	}
	return pass1, int64(1) << (d.fr.precision - 1), int64(1)<<d.fr.precision - 1
}

// outputGray is output for one component, which needs no upsampling: the
// blocks are transformed straight into out (only those inside the image;
// edge blocks through a scratch block) instead of into an MCU-padded plane
// that is then copied.
func (d *dctDecoder) outputGray(st *jpegState, out []int32, pass1 uint, center, maxv int64) {
	w, h := d.fr.width, d.fr.height
	q := &st.quant[d.fr.comps[0].tq]
	var deq [64]int64
	for by := range min(d.bh[0], (h+7)/8) {
		for bx := range min(d.bw[0], (w+7)/8) {
			d.grayBlock(&d.coefs[0][by*d.bw[0]+bx], q, &deq, out, bx, by, pass1, center, maxv)
		}
	}
}

// grayBlock dequantises block (bx, by) of a one-component frame and
// transforms it into out (width x height); deq is scratch.
func (d *dctDecoder) grayBlock(blk, q *[64]int32, deq *[64]int64, out []int32, bx, by int, pass1 uint, center, maxv int64) {
	w, h := d.fr.width, d.fr.height
	for k := range 64 {
		deq[zigzag[k]] = int64(blk[k]) * int64(q[k])
	}
	x0, y0 := bx*8, by*8
	if x0+8 <= w && y0+8 <= h {
		idctIslow(deq, out[y0*w+x0:], w, pass1, center, maxv)
		return
	}
	var edge [64]int32
	idctIslow(deq, edge[:], 8, pass1, center, maxv)
	for y := y0; y < min(y0+8, h); y++ {
		copy(out[y*w+x0:y*w+min(x0+8, w)], edge[(y-y0)*8:])
	}
}

// upsample writes one component plane into the interleaved output, using
// libjpeg's triangle ("fancy") filter for 2x1 and 2x2, replication otherwise.
func upsample(plane []int32, stride, cw, ch, fh, fv int, integral bool, out []int32, w, h, nc, ci int) {
	at := func(x, y int) int32 {
		x = min(max(x, 0), cw-1)
		y = min(max(y, 0), ch-1)
		return plane[y*stride+x]
	}
	switch {
	case fh == 1 && fv == 1:
		for y := range h {
			for x := range w {
				out[(y*w+x)*nc+ci] = plane[y*stride+x]
			}
		}
	case fh == 2 && fv == 1 && integral:
		for y := range h {
			for x := range w {
				i := x / 2
				var v int32
				if cw == 1 {
					v = at(0, y)
				} else if x%2 == 0 {
					if i == 0 {
						v = at(0, y)
					} else {
						v = (3*at(i, y) + at(i-1, y) + 1) >> 2
					}
				} else {
					if i == cw-1 {
						v = at(i, y)
					} else {
						v = (3*at(i, y) + at(i+1, y) + 2) >> 2
					}
				}
				out[(y*w+x)*nc+ci] = v
			}
		}
	case fh == 2 && fv == 2 && integral:
		for y := range h {
			iy := y / 2
			ny := iy - 1
			if y%2 == 1 {
				ny = iy + 1
			}
			colsum := func(i int) int32 { return 3*at(i, iy) + at(i, ny) }
			for x := range w {
				i := x / 2
				this := colsum(i)
				var v int32
				if cw == 1 {
					v = (this*4 + 8) >> 4
				} else if x%2 == 0 {
					if i == 0 {
						v = (this*4 + 8) >> 4
					} else {
						v = (this*3 + colsum(i-1) + 8) >> 4
					}
				} else {
					if i == cw-1 {
						v = (this*4 + 7) >> 4
					} else {
						v = (this*3 + colsum(i+1) + 7) >> 4
					}
				}
				out[(y*w+x)*nc+ci] = v
			}
		}
	default:
		for y := range h {
			for x := range w {
				out[(y*w+x)*nc+ci] = at(x/fh, y/fv)
			}
		}
	}
}
