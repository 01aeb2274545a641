package dicomio

import "fmt"

// losslessDecoder implements ISO 10918-1 process 14 (SOF3, Huffman, with
// predictors 1-7 and point transform): transfer syntaxes .57 and .70 (SV1).
type losslessDecoder struct {
	fr     *jpegFrame
	planes [][]int32 // one full-resolution plane per component
	pt     int       // point transform of the last scan
}

func newLosslessDecoder(fr *jpegFrame) *losslessDecoder {
	d := &losslessDecoder{fr: fr}
	for range fr.comps {
		d.planes = append(d.planes, frameData(fr.width*fr.height))
	}
	return d
}

func (d *losslessDecoder) scan(st *jpegState, sc *jpegScan) error {
	fr := d.fr
	pred, pt := sc.ss, sc.al
	if pred > 7 || pt >= fr.precision {
		return fmt.Errorf("%w: lossless predictor %d, point transform %d", errJPEG, pred, pt)
	}
	d.pt = pt
	tables := make([]*huffTable, len(sc.comps))
	for k, ci := range sc.comps {
		c := fr.comps[ci]
		if c.h != 1 || c.v != 1 {
			return fmt.Errorf("%w: subsampled lossless JPEG", ErrUnsupportedTransferSyntax)
		}
		if tables[k] = st.dc[c.td]; tables[k] == nil {
			return fmt.Errorf("%w: missing Huffman table", errJPEG)
		}
	}
	w, h := fr.width, fr.height
	initPred := int32(1) << (fr.precision - pt - 1)
	br := &bitReader{d: sc.data}
	restart := st.restart // in MCUs, one pixel of every scan component each
	if len(sc.comps) == 1 && restart == 0 {
		return d.scanFast(br, d.planes[sc.comps[0]], tables[0], pred, initPred)
	}
	mcu := 0
	// resetRow: the row where the current restart interval began; that row
	// is predicted like the first line of a scan (H.1.2.1).
	resetRow, resetCol := 0, 0
	for y := range h {
		for x := range w {
			if restart > 0 && mcu > 0 && mcu%restart == 0 {
				br.restart()
				resetRow, resetCol = y, x
			}
			for k, ci := range sc.comps {
				pl := d.planes[ci]
				s, err := br.decode(tables[k])
				if err != nil {
					return err
				}
				var diff int32
				switch {
				case s == 16:
					diff = 32768
				case s > 16:
					return fmt.Errorf("%w: lossless difference category %d", errJPEG, s)
				default:
					diff = br.receiveExtend(s)
				}
				i := y*w + x
				var p int32
				switch {
				case y == resetRow && x == resetCol:
					p = initPred
				case y == resetRow:
					p = pl[i-1]
				case x == 0:
					p = pl[i-w]
				default:
					ra, rb, rc := pl[i-1], pl[i-w], pl[i-w-1]
					switch pred {
					case 1:
						p = ra
					case 2:
						p = rb
					case 3:
						p = rc
					case 4:
						p = ra + rb - rc
					case 5:
						p = ra + ((rb - rc) >> 1)
					case 6:
						p = rb + ((ra - rc) >> 1)
					case 7:
						p = (ra + rb) >> 1
					}
				}
				pl[i] = (p + diff) & 0xFFFF // arithmetic is modulo 2^16 (H.2.1)
			}
			mcu++
		}
	}
	return nil
}

// output interleaves the planes and undoes the point transform. One
// component's plane is the output itself (shifted in place).
func (d *losslessDecoder) output() []int32 {
	fr := d.fr
	nc := len(fr.comps)
	if nc == 1 {
		pl := d.planes[0]
		if d.pt != 0 {
			for i, v := range pl {
				pl[i] = v << d.pt
			}
		}
		return pl
	}
	out := frameData(fr.width * fr.height * nc)
	for c, pl := range d.planes {
		for i, v := range pl {
			out[i*nc+c] = v << d.pt
		}
	}
	return out
}

// scanFast is the common case (one component, no restart intervals) with
// the per-row bookkeeping hoisted out of the sample loop.
func (d *losslessDecoder) scanFast(br *bitReader, pl []int32, tbl *huffTable, pred int, initPred int32) error {
	w, h := d.fr.width, d.fr.height
	for y := range h {
		row := pl[y*w : (y+1)*w]
		var up []int32
		if y > 0 {
			up = pl[(y-1)*w : y*w]
		}
		for x := range row {
			s, err := br.decode(tbl)
			if err != nil {
				return err
			}
			var diff int32
			switch {
			case s == 16:
				diff = 32768
			case s > 16:
				return fmt.Errorf("%w: lossless difference category %d", errJPEG, s)
			default:
				diff = br.receiveExtend(s)
			}
			var p int32
			switch {
			case y == 0:
				if x == 0 {
					p = initPred
				} else {
					p = row[x-1]
				}
			case x == 0:
				p = up[0]
			default:
				switch pred {
				case 1:
					p = row[x-1]
				case 2:
					p = up[x]
				case 3:
					p = up[x-1]
				case 4:
					p = row[x-1] + up[x] - up[x-1]
				case 5:
					p = row[x-1] + ((up[x] - up[x-1]) >> 1)
				case 6:
					p = up[x] + ((row[x-1] - up[x-1]) >> 1)
				case 7:
					p = (row[x-1] + up[x]) >> 1
				}
			}
			row[x] = (p + diff) & 0xFFFF
		}
	}
	return nil
}
