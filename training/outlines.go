package training

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/preprocess"
)

// Rect is an axis-aligned box: in an Example, a fracture outline's box as
// fractions of the source image (0..1); in a Cache, in plane pixels.
type Rect struct{ X0, Y0, X1, Y1 float64 }

// Outlines are fracture outline boxes by image file name, from a
// FracAtlas-style annotations.json ({"images": {"IMG.jpg": [{"bbox": [x,
// y, w, h]}]}}, fractions of the image).
type Outlines struct {
	ByImage map[string][]Rect
	SHA256  string // of the file's bytes, recorded with the run
}

// LoadOutlines reads an annotations file.
func LoadOutlines(path string) (*Outlines, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("training: annotations: %w", err)
	}
	var doc struct {
		Images map[string][]struct {
			BBox []float64 `json:"bbox"`
		} `json:"images"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("training: annotations %s: %w", filepath.Base(path), err)
	}
	if len(doc.Images) == 0 {
		return nil, fmt.Errorf("training: annotations %s: no \"images\" with outlines", filepath.Base(path))
	}
	o := &Outlines{ByImage: map[string][]Rect{}}
	for name, list := range doc.Images {
		for k, a := range list {
			b := a.BBox
			if len(b) != 4 || !(b[2] > 0 && b[3] > 0) || b[0] < 0 || b[1] < 0 || b[0]+b[2] > 1+1e-6 || b[1]+b[3] > 1+1e-6 {
				return nil, fmt.Errorf("training: annotations %s: image %q outline %d: bbox %v is not [x, y, w, h] inside [0,1]", filepath.Base(path), name, k, b)
			}
			o.ByImage[name] = append(o.ByImage[name], Rect{b[0], b[1], b[0] + b[2], b[1] + b[3]})
		}
	}
	sum := sha256.Sum256(raw)
	o.SHA256 = hex.EncodeToString(sum[:])
	return o, nil
}

// Attach gives each fractured example of ls the outlines of its image
// (matched by file name) and returns how many fractured examples got one.
func (o *Outlines) Attach(ls *LabelSet) int {
	n := 0
	for i := range ls.Examples {
		e := &ls.Examples[i]
		if !e.Fractured || e.Path == "" {
			continue
		}
		if r := o.ByImage[filepath.Base(e.Path)]; len(r) > 0 {
			e.Outlines = r
			n++
		}
	}
	return n
}

// planeRegions maps source-fraction outlines onto the size x size plane of
// a w x h source.
func planeRegions(outs []Rect, w, h, size int) []Rect {
	if len(outs) == 0 {
		return nil
	}
	g := preprocess.PlaneGeometrySized(w, h, size)
	rs := make([]Rect, len(outs))
	for i, o := range outs {
		x0, y0 := g.FromSource(o.X0*float64(w), o.Y0*float64(h))
		x1, y1 := g.FromSource(o.X1*float64(w), o.Y1*float64(h))
		rs[i] = Rect{x0, y0, x1, y1}
	}
	return rs
}

// camTargets writes the CAM targets of one image (fh x fw cells over an s
// x s plane): every cell negative without a fracture; with one, the cells
// its regions overlap positive and the others unsupervised (evidence may
// spread around a fracture); unsupervised everywhere for a fractured image
// without outlines.
func camTargets(label float32, regions []Rect, s, fh, fw int, dst []float32) {
	if label < 0.5 {
		for i := range dst[:fh*fw] {
			dst[i] = classifier.CAMNegative
		}
		return
	}
	for i := range dst[:fh*fw] {
		dst[i] = classifier.CAMUnsupervised
	}
	cw, ch := float64(s)/float64(fw), float64(s)/float64(fh)
	for _, r := range regions {
		x0 := max(0, int(math.Floor(r.X0/cw)))
		x1 := min(fw-1, int(math.Ceil(r.X1/cw))-1)
		y0 := max(0, int(math.Floor(r.Y0/ch)))
		y1 := min(fh-1, int(math.Ceil(r.Y1/ch))-1)
		for y := y0; y <= y1; y++ {
			for x := x0; x <= x1; x++ {
				dst[y*fw+x] = classifier.CAMPositive
			}
		}
	}
}

// CAMTarget gives image i's targets (classifier.CAMDataset).
func (d *Dataset) CAMTarget(i, fh, fw int, dst []float32) error {
	if i < 0 || i >= d.Cache.Len() {
		return fmt.Errorf("training: example %d out of range [0,%d)", i, d.Cache.Len())
	}
	camTargets(d.Cache.Labels[i], d.Cache.regions(i), d.Cache.Side(), fh, fw, dst)
	return nil
}

// CAMTarget gives image i's targets after the same augmentation Example
// drew for it (the draws depend only on seed, epoch and i).
func (d *augmentedDataset) CAMTarget(i, fh, fw int, dst []float32) error {
	if i < 0 || i >= d.Cache.Len() {
		return fmt.Errorf("training: example %d out of range [0,%d)", i, d.Cache.Len())
	}
	rs := d.Cache.regions(i)
	if len(rs) > 0 {
		s := d.Cache.Side()
		draw := d.aug.draw(newAugRand(d.seed, d.epoch, i), s)
		moved := make([]Rect, len(rs))
		for k, r := range rs {
			moved[k] = draw.mapRect(r, s)
		}
		rs = moved
	}
	camTargets(d.Cache.Labels[i], rs, d.Cache.Side(), fh, fw, dst)
	return nil
}

// forwardCAM lets a wrapping dataset pass CAM targets through.
func forwardCAM(ds classifier.Dataset, i, fh, fw int, dst []float32) error {
	if c, ok := ds.(classifier.CAMDataset); ok {
		return c.CAMTarget(i, fh, fw, dst)
	}
	for k := range dst[:fh*fw] {
		dst[k] = classifier.CAMUnsupervised
	}
	return nil
}

func (d *countingDataset) CAMTarget(i, fh, fw int, dst []float32) error {
	return forwardCAM(d.Dataset, i, fh, fw, dst)
}

func (p *progress) CAMTarget(i, fh, fw int, dst []float32) error {
	return forwardCAM(p.Dataset, i, fh, fw, dst)
}
