package training

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tinyArch keeps the always-on tests fast on two shared cores.
const tinyArch = "basic[1,1,1,1]"

// synthImage draws a noisy gray "radiograph"; positives get a bright bar
// (the "fracture"), so a model can learn the classes.
func synthImage(rng *rand.Rand, w, h int, bar bool) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetGray(x, y, color.Gray{Y: uint8(60 + rng.Intn(40) + x*40/w)})
		}
	}
	if bar {
		x0 := w/4 + rng.Intn(w/2)
		for y := h / 5; y < 4*h/5; y++ {
			for x := x0; x < x0+w/12+1 && x < w; x++ {
				img.SetGray(x, y, color.Gray{Y: 240})
			}
		}
	}
	return img
}

func writePNG(t *testing.T, path string, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// synthSet writes nNeg+nPos PNGs under dir/img and a generic labels.csv
// (path,fractured[,split]); split gives each row's split, nil for none.
// Extra rows: bad lists files to add with broken content (name -> bytes),
// labelled negative and put into train.
func synthSet(t *testing.T, dir string, nNeg, nPos int, split func(i int, pos bool) string, bad map[string][]byte) (images, labels string) {
	t.Helper()
	rng := rand.New(rand.NewSource(42))
	images = filepath.Join(dir, "img")
	var csv strings.Builder
	if split != nil {
		csv.WriteString("path,fractured,split\n")
	} else {
		csv.WriteString("path,fractured\n")
	}
	row := func(name string, pos bool, s string) {
		y := 0
		if pos {
			y = 1
		}
		if split != nil {
			fmt.Fprintf(&csv, "%s,%d,%s\n", name, y, s)
		} else {
			fmt.Fprintf(&csv, "%s,%d\n", name, y)
		}
	}
	classes := make([]bool, nNeg+nPos)
	for i := nNeg; i < len(classes); i++ {
		classes[i] = true
	}
	// Mixed so that file order is not class order.
	rng.Shuffle(len(classes), func(i, j int) { classes[i], classes[j] = classes[j], classes[i] })
	for i, pos := range classes {
		name := fmt.Sprintf("case%03d.png", i)
		writePNG(t, filepath.Join(images, name), synthImage(rng, 96+rng.Intn(64), 80+rng.Intn(64), pos))
		s := ""
		if split != nil {
			s = split(i, pos)
		}
		row(name, pos, s)
	}
	for name, data := range bad {
		if data != nil {
			if err := os.WriteFile(filepath.Join(images, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		row(name, false, "train")
	}
	labels = filepath.Join(dir, "labels.csv")
	if err := os.WriteFile(labels, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return images, labels
}

// tensorBytes returns the data section of a safetensors file (everything
// after the header), i.e. the weights without the metadata.
func tensorBytes(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 8 {
		t.Fatalf("%s: too short for safetensors", path)
	}
	n := binary.LittleEndian.Uint64(raw)
	if 8+n > uint64(len(raw)) {
		t.Fatalf("%s: header length %d beyond the file", path, n)
	}
	return raw[8+n:]
}
