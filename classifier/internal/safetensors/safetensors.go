// Package safetensors reads and writes the classifier's weights format,
// Hugging Face's safetensors (8-byte little-endian header length, JSON
// header, raw little-endian data): F32, F16, BF16 and F64 tensors decoded
// to float32, I64/I32 scalars, string metadata. It knows nothing of
// networks; the classifier maps its parameter names onto the entries.
package safetensors

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"

	"github.com/fracd/fracd/internal/fsutil"
)

// Tensor is one entry of a safetensors header.
type Tensor struct {
	Dtype   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// File is a parsed safetensors file: header entries, metadata and the raw
// data section.
type File struct {
	Tensors  map[string]Tensor
	Metadata map[string]string
	data     []byte
}

// Parse parses the safetensors container (8-byte little-endian header
// length, JSON header, data) and validates every offset. The File keeps
// raw as its data section.
func Parse(raw []byte) (*File, error) {
	if len(raw) < 8 {
		return nil, fmt.Errorf("safetensors: file too short (%d bytes)", len(raw))
	}
	hl := binary.LittleEndian.Uint64(raw[:8])
	if hl > uint64(len(raw)-8) || hl > 100<<20 {
		return nil, fmt.Errorf("safetensors: header length %d exceeds file size %d", hl, len(raw))
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+hl], &hdr); err != nil {
		return nil, fmt.Errorf("safetensors: header JSON: %w", err)
	}
	f := &File{Tensors: map[string]Tensor{}, Metadata: map[string]string{}, data: raw[8+hl:]}
	for name, msg := range hdr {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("safetensors: __metadata__: %w", err)
			}
			continue
		}
		var t Tensor
		if err := json.Unmarshal(msg, &t); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		es, err := dtypeSize(t.Dtype)
		if err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", name, err)
		}
		n := int64(numel(t.Shape))
		if t.Offsets[0] < 0 || t.Offsets[1] < t.Offsets[0] || t.Offsets[1] > int64(len(f.data)) || t.Offsets[1]-t.Offsets[0] != n*int64(es) {
			return nil, fmt.Errorf("safetensors: tensor %q: data offsets %v do not fit %s%v in %d data bytes", name, t.Offsets, t.Dtype, t.Shape, len(f.data))
		}
		f.Tensors[name] = t
	}
	return f, nil
}

func dtypeSize(dt string) (int, error) {
	switch dt {
	case "F32", "I32":
		return 4, nil
	case "F16", "BF16":
		return 2, nil
	case "F64", "I64":
		return 8, nil
	}
	return 0, fmt.Errorf("unsupported dtype %s", dt)
}

// Floats decodes a floating-point tensor to float32.
func (f *File) Floats(name string) ([]float32, error) {
	t, ok := f.Tensors[name]
	if !ok {
		return nil, fmt.Errorf("tensor %q missing", name)
	}
	b := f.data[t.Offsets[0]:t.Offsets[1]]
	n := numel(t.Shape)
	out := make([]float32, n)
	switch t.Dtype {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
	case "F16":
		for i := range out {
			out[i] = HalfToFloat(binary.LittleEndian.Uint16(b[2*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
		}
	default:
		return nil, fmt.Errorf("tensor %q: dtype %s is not floating point", name, t.Dtype)
	}
	return out, nil
}

// Integer decodes a scalar integer tensor (num_batches_tracked).
func (f *File) Integer(name string) (int64, error) {
	t, ok := f.Tensors[name]
	if !ok {
		return 0, fmt.Errorf("tensor %q missing", name)
	}
	if numel(t.Shape) != 1 {
		return 0, fmt.Errorf("tensor %q: shape %v, want a scalar", name, t.Shape)
	}
	b := f.data[t.Offsets[0]:t.Offsets[1]]
	switch t.Dtype {
	case "I64":
		return int64(binary.LittleEndian.Uint64(b)), nil
	case "I32":
		return int64(int32(binary.LittleEndian.Uint32(b))), nil
	}
	return 0, fmt.Errorf("tensor %q: dtype %s, want I64", name, t.Dtype)
}

// HalfToFloat converts IEEE 754 binary16 to float32 exactly.
func HalfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// subnormal: renormalise
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Entry is one tensor to write.
type Entry struct {
	Name  string
	Shape []int
	F32   []float32 // F32 storage (F16 when Half is set), or
	I64   *int64    // I64 scalar
	Half  bool
}

// Write writes entries (sorted by name, as the reference
// implementation does) with metadata, durably (fsutil.WriteFileAtomic:
// temporary file, fsync, rename, fsync of the folder).
// It returns the file's SHA-256 (hex), the model identity callers record.
func Write(path string, entries []Entry, meta map[string]string) (sha string, err error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	hdr := map[string]any{}
	if len(meta) > 0 {
		hdr["__metadata__"] = meta
	}
	var off int64
	for _, e := range entries {
		var size int64
		dt := "F32"
		switch {
		case e.I64 != nil:
			dt, size = "I64", 8
		case e.Half:
			dt, size = "F16", int64(2*len(e.F32))
		default:
			size = int64(4 * len(e.F32))
		}
		shape := e.Shape
		if shape == nil {
			shape = []int{}
		}
		hdr[e.Name] = Tensor{Dtype: dt, Shape: shape, Offsets: [2]int64{off, off + size}}
		off += size
	}
	hj, err := json.Marshal(hdr)
	if err != nil {
		return "", fmt.Errorf("safetensors: header: %w", err)
	}
	for len(hj)%8 != 0 {
		hj = append(hj, ' ')
	}
	buf := make([]byte, 8, 8+len(hj)+int(off))
	binary.LittleEndian.PutUint64(buf, uint64(len(hj)))
	buf = append(buf, hj...)
	for _, e := range entries {
		if e.I64 != nil {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(*e.I64))
			continue
		}
		if e.Half {
			for _, v := range e.F32 {
				buf = binary.LittleEndian.AppendUint16(buf, FloatToHalf(v))
			}
			continue
		}
		for _, v := range e.F32 {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
	}
	// Durable, not just atomic: a crash after Save returns must not leave
	// a registered model or a checkpoint that resume trusts half written.
	if err := fsutil.WriteFileAtomic(path, buf, 0o644); err != nil {
		return "", fmt.Errorf("safetensors: write %s: %w", path, err)
	}
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), nil
}

// FloatToHalf converts float32 to IEEE 754 binary16, rounding to nearest
// even; out-of-range values become ±Inf.
func FloatToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127+15 >= 0x1f: // overflow
		return sign | 0x7c00
	case exp-127+15 <= 0: // subnormal half (or zero)
		if exp-127+15 < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint32(14 - (exp - 127 + 15))
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(exp-127+15)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // may carry into the exponent, which is still correct
	}
	return sign | uint16(h)
}

// numel is the element count of a shape (1 for a scalar's empty shape).
func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}
