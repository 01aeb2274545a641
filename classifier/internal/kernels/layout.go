package kernels

// The blocked layout oneDNN's kernels use between layers, nChw16c:
// channels in blocks of Block, innermost, so a position's 16 channels are
// one AVX-512 vector.

// Block is the channel block of the blocked layout (dnnl.Block).
const Block = 16

// BlockedIndex is the offset of (image i, channel ch, position q) in an
// nChw16c tensor of c channels and hw positions.
func BlockedIndex(i, ch, q, c, hw int) int {
	return ((i*c+ch&^(Block-1))*hw + q*Block) + ch&(Block-1)
}

// ToBlocked converts an NCHW tensor (c a multiple of 16) to nChw16c.
func ToBlocked(x []float32, n, c, hw int) []float32 {
	out := make([]float32, len(x))
	for i := 0; i < n; i++ {
		for ch := 0; ch < c; ch++ {
			src := x[(i*c+ch)*hw : (i*c+ch+1)*hw]
			for q, v := range src {
				out[BlockedIndex(i, ch, q, c, hw)] = v
			}
		}
	}
	return out
}
