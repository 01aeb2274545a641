package dicomio

import "fmt"

// losslessDecoder implements ISO 10918-1 process 14 (SOF3, Huffman, with
// predictors 1-7 and point transform): transfer syntaxes .57 and .70 (SV1).
type losslessDecoder struct {
	fr     *jpegFrame
	planes [][]int32 // one full-resolution plane per component
}

func newLosslessDecoder(fr *jpegFrame) *losslessDecoder {
	d := &losslessDecoder{fr: fr}
	for range fr.comps {
		d.planes = append(d.planes, make([]int32, fr.width*fr.height))
	}
	return d
}

func (d *losslessDecoder) scan(st *jpegState, sc *jpegScan) error {
	fr := d.fr
	pred, pt := sc.ss, sc.al
	if pred < 1 || pred > 7 {
		// Predictor 0 is only for hierarchical mode.
		if pred != 0 {
			return fmt.Errorf("%w: lossless predictor %d", errJPEG, pred)
		}
	}
	for _, ci := range sc.comps {
		c := fr.comps[ci]
		if c.h != 1 || c.v != 1 {
			if len(fr.comps) > 1 {
				return fmt.Errorf("%w: subsampled lossless JPEG", ErrUnsupportedTransferSyntax)
			}
		}
		if st.dc[c.td] == nil {
			return fmt.Errorf("%w: missing Huffman table", errJPEG)
		}
	}
	w, h := fr.width, fr.height
	mask := int32(1)<<fr.precision - 1
	if fr.precision >= 16 {
		mask = 0xFFFF
	}
	initPred := int32(1) << (fr.precision - pt - 1)
	br := &bitReader{d: sc.data}
	ncomp := len(sc.comps)
	tables := make([]*huffTable, ncomp)
	for k, ci := range sc.comps {
		tables[k] = st.dc[fr.comps[ci].td]
	}
	restart := st.restart // in MCUs = pixels here (H=V=1)
	mcu := 0
	firstRowOfInterval := true
	rowOfReset := 0
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if restart > 0 && mcu > 0 && mcu%restart == 0 {
				br.restart()
				firstRowOfInterval = true
				rowOfReset = y
				if x != 0 {
					// restart mid-row: the reset pixel uses the initial prediction
				}
			}
			resetHere := restart > 0 && mcu%restart == 0
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
				case (y == 0 && x == 0) || (resetHere && mcu > 0) || (restart > 0 && mcu == 0):
					p = initPred
				case y == 0 || (firstRowOfInterval && y == rowOfReset):
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
					default:
						p = 0
					}
				}
				pl[i] = (p + diff) & 0xFFFF
				_ = mask
			}
			mcu++
		}
		if y > rowOfReset {
			firstRowOfInterval = false
		}
		_ = ncomp
	}
	return nil
}

func (d *losslessDecoder) output() []int32 {
	fr := d.fr
	n := fr.width * fr.height
	nc := len(fr.comps)
	out := make([]int32, n*nc)
	pt := 0
	_ = pt
	for c, pl := range d.planes {
		for i, v := range pl {
			out[i*nc+c] = v
		}
	}
	return out
}
