package dicomio

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"testing"
)

// deflateBody compresses the data set of a Part 10 file (after the meta group).
func deflateBody(t *testing.T, data []byte) []byte {
	t.Helper()
	pos := 132
	glen := int(binary.LittleEndian.Uint32(data[140:]))
	pos = 144 + glen
	var out bytes.Buffer
	out.Write(data[:pos])
	w, _ := flate.NewWriter(&out, flate.BestCompression)
	w.Write(data[pos:])
	w.Close()
	return out.Bytes()
}
