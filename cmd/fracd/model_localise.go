package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
	"github.com/fracd/fracd/training"
)

// outline is one annotated fracture: its box and polygons in fractions of
// the image's width and height (FracAtlas's annotations.json).
type outline struct {
	BBox     [4]float64  `json:"bbox"` // x, y, width, height
	Polygons [][]float64 `json:"polygons"`
}

// LocaliseReport is what model localise measured.
type LocaliseReport struct {
	Model          string  `json:"model"`
	Split          string  `json:"split"`
	Images         int     `json:"images"`
	Fractured      int     `json:"fractured_outlined"`
	Flagged        int     `json:"fractured_flagged"` // outlined fractured images the model flags
	BoxHits        int     `json:"best_box_iou_hits"` // ... whose best box overlaps an outline with IoU >= MinIoU
	AnyBoxHits     int     `json:"any_box_iou_hits"`
	PointingHits   int     `json:"pointing_hits"` // ... whose heat-map peak lies inside an outline polygon
	MinIoU         float64 `json:"min_iou"`
	BoxHitRate     float64 `json:"best_box_hit_rate"`
	AnyBoxHitRate  float64 `json:"any_box_hit_rate"`
	PointingRate   float64 `json:"pointing_rate"`
	MeanBestIoU    float64 `json:"mean_best_iou"`
	MeanBoxesPerIm float64 `json:"mean_boxes_per_flagged_image"`
	BoxCut         float64 `json:"box_cut"` // fraction of the map's peak the boxes are cut at
	// ByCut gives the best-box figures at other cuts, to choose the cut on
	// this split.
	ByCut []CutFigures `json:"by_cut"`
}

// CutFigures are the best-box figures at one cut.
type CutFigures struct {
	Cut         float64 `json:"cut"`
	BoxHits     int     `json:"best_box_iou_hits"`
	MeanBestIoU float64 `json:"mean_best_iou"`
	MeanBoxArea float64 `json:"mean_best_box_area"` // fraction of the plane
}

// localiseCuts are the cuts model localise compares.
var localiseCuts = []float64{0.5, 0.6, 0.7, 0.8, 0.9}

func newModelLocaliseCmd(m *Main) *cobra.Command {
	var (
		images, labels, annotations, split, out string
		examples                                int
		minIoU, cut                             float64
	)
	cmd := &cobra.Command{
		Use:   "localise MODEL --images DIR --labels CSV --annotations JSON",
		Short: "Measure where the model looks: its boxes and heat-map peaks against annotated fracture outlines",
		Long: `For every image of --split (default val) the model's class activation map
(exactly Grad-CAM for this network's head) is cut into at most 3 boxes.
For the fractured images that have outlines (FracAtlas annotations.json)
and that the model flags at its threshold, it counts how often the best box
overlaps an outline's box with IoU >= --min-iou (and any of the boxes), and
the pointing game: how often the map's peak lies inside an outline polygon.
--out DIR writes localise.json and, with --examples N, N pictures of
flagged fractured images with the model's boxes (red) and the outlines
(green). MODEL is a registry id or a weights file.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if images == "" || labels == "" || annotations == "" {
				return errors.New("model localise: --images, --labels and --annotations are required")
			}
			rep, err := runLocalise(cmd.Context(), m, args[0], images, labels, annotations, split, out, examples, minIoU, cut)
			if err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, `| localisation on %s (%s) | value |
|---|---|
| images | %d |
| outlined fractured images | %d |
| of those, flagged by the model | %d |
| best box IoU >= %.2f with an outline | %d (%.1f%%) |
| any box IoU >= %.2f | %d (%.1f%%) |
| pointing game (peak inside an outline) | %d (%.1f%%) |
| mean best-box IoU | %.3f |
| boxes per flagged image | %.2f |
| boxes cut at this fraction of the map's peak | %.2f |
`, rep.Split, rep.Model, rep.Images, rep.Fractured, rep.Flagged, rep.MinIoU, rep.BoxHits, 100*rep.BoxHitRate,
				rep.MinIoU, rep.AnyBoxHits, 100*rep.AnyBoxHitRate, rep.PointingHits, 100*rep.PointingRate, rep.MeanBestIoU, rep.MeanBoxesPerIm, rep.BoxCut)
			fmt.Fprintf(m.Stdout, "\n| cut | best box IoU >= %.2f | mean best-box IoU | mean best-box area (of the plane) |\n|---|---|---|---|\n", rep.MinIoU)
			for _, c := range rep.ByCut {
				fmt.Fprintf(m.Stdout, "| %.1f | %d (%.1f%%) | %.3f | %.3f |\n", c.Cut, c.BoxHits, 100*float64(c.BoxHits)/float64(max(rep.Flagged, 1)), c.MeanBestIoU, c.MeanBoxArea)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&images, "images", "", "image directory")
	f.StringVar(&labels, "labels", "", "label CSV (FracAtlas split.csv)")
	f.StringVar(&annotations, "annotations", "", "FracAtlas annotations.json")
	f.StringVar(&split, "split", training.SplitVal, "train, val or test")
	f.StringVar(&out, "out", "", "directory for localise.json and example pictures")
	f.IntVar(&examples, "examples", 0, "with --out: pictures of this many flagged fractured images")
	f.Float64Var(&minIoU, "min-iou", 0.1, "IoU at which a box counts as on the fracture")
	f.Float64Var(&cut, "box-cut", classifier.DefaultBoxCut, "cut the boxes at this fraction of the map's peak (the daemon's is the default)")
	return cmd
}

// loadModelArg loads a registry id, else a weights file.
func loadModelArg(ctx context.Context, m *Main, arg string) (*classifier.Model, error) {
	path := arg
	if _, err := os.Stat(arg); err != nil {
		db, err := store.OpenReadOnly(ctx, m.Config.Paths.DB)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a file nor, without a database, a model id: %w", arg, err)
		}
		rm, err := db.Model(ctx, arg)
		db.Close()
		if err != nil {
			return nil, err
		}
		path = rm.Path
	}
	return classifier.Load(path)
}

func runLocalise(ctx context.Context, m *Main, modelArg, images, labels, annPath, split, out string, examples int, minIoU, cut float64) (*LocaliseReport, error) {
	if !(cut > 0 && cut <= 1) {
		return nil, fmt.Errorf("model localise: --box-cut %v: want a fraction in (0,1]", cut)
	}
	cm, err := loadModelArg(ctx, m, modelArg)
	if err != nil {
		return nil, fmt.Errorf("model localise: %w", err)
	}
	info := cm.Info()
	raw, err := os.ReadFile(annPath)
	if err != nil {
		return nil, fmt.Errorf("model localise: annotations: %w", err)
	}
	var ann struct {
		Images map[string][]outline `json:"images"`
	}
	if err := json.Unmarshal(raw, &ann); err != nil {
		return nil, fmt.Errorf("model localise: annotations %s: %w", filepath.Base(annPath), err)
	}
	ls, err := training.LoadLabels(labels, images, 1)
	if err != nil {
		return nil, fmt.Errorf("model localise: %w", err)
	}
	sub := *ls
	sub.Examples = nil
	for _, e := range ls.Examples {
		if e.Split == split {
			sub.Examples = append(sub.Examples, e)
		}
	}
	caches, _, err := training.BuildCachesSized(ctx, &sub, 0, info.InputSize)
	if err != nil {
		return nil, fmt.Errorf("model localise: %w", err)
	}
	c := caches[split]
	if c == nil || c.Len() == 0 {
		return nil, fmt.Errorf("model localise: no usable image in split %q", split)
	}
	byRow := map[int]training.Example{}
	for _, e := range sub.Examples {
		byRow[e.Row] = e
	}
	rep := &LocaliseReport{Model: info.ID, Split: split, Images: c.Len(), MinIoU: minIoU, BoxCut: cut}
	rep.ByCut = make([]CutFigures, len(localiseCuts))
	for i, k := range localiseCuts {
		rep.ByCut[i].Cut = k
	}
	ds := &training.Dataset{Cache: c, Mean: info.Mean, Std: info.Std}
	type shown struct {
		path  string
		boxes []classifier.Box
		geom  preprocess.Geometry
		outs  []outline
		iou   float64
	}
	var pictures []shown
	var sumIoU float64
	var nBoxes int
	buf := make([]float32, preprocess.TensorLenFor(info.InputSize))
	for i := 0; i < c.Len(); i++ {
		e := byRow[c.Rows[i]]
		outs := ann.Images[filepath.Base(e.Path)]
		if c.Labels[i] < 0.5 || len(outs) == 0 {
			continue
		}
		rep.Fractured++
		if _, err := ds.Example(i, buf); err != nil {
			return nil, err
		}
		probs, maps, err := cm.HeatMaps(ctx, buf, 1)
		if err != nil {
			return nil, fmt.Errorf("model localise: %w", err)
		}
		if float64(probs[0]) < info.Threshold {
			continue
		}
		rep.Flagged++
		geom, err := sourceGeometry(e.Path, info.InputSize)
		if err != nil {
			return nil, fmt.Errorf("model localise: row %d: %w", e.Row, err)
		}
		// score gives the best box's IoU with an outline and whether any
		// box reaches minIoU.
		score := func(boxes []classifier.Box) (best float64, anyHit bool) {
			for bi, b := range boxes {
				for _, o := range outs {
					x0, y0 := geom.FromSource(o.BBox[0]*float64(geom.SrcW), o.BBox[1]*float64(geom.SrcH))
					x1, y1 := geom.FromSource((o.BBox[0]+o.BBox[2])*float64(geom.SrcW), (o.BBox[1]+o.BBox[3])*float64(geom.SrcH))
					iou := b.IoU(classifier.Box{X0: x0, Y0: y0, X1: x1, Y1: y1})
					if bi == 0 {
						best = max(best, iou)
					}
					anyHit = anyHit || iou >= minIoU
				}
			}
			return best, anyHit
		}
		for i, k := range localiseCuts {
			bs := maps[0].BoxesAt(3, float64(probs[0]), k)
			b, _ := score(bs)
			if b >= minIoU {
				rep.ByCut[i].BoxHits++
			}
			rep.ByCut[i].MeanBestIoU += b
			if len(bs) > 0 {
				side := float64(info.InputSize)
				rep.ByCut[i].MeanBoxArea += (bs[0].X1 - bs[0].X0) * (bs[0].Y1 - bs[0].Y0) / (side * side)
			}
		}
		boxes := maps[0].BoxesAt(3, float64(probs[0]), cut)
		nBoxes += len(boxes)
		best, anyHit := score(boxes)
		sumIoU += best
		if best >= minIoU {
			rep.BoxHits++
		}
		if anyHit {
			rep.AnyBoxHits++
		}
		px, py := maps[0].Peak()
		sx, sy := geom.ToSource(px, py)
		fx, fy := sx/float64(geom.SrcW), sy/float64(geom.SrcH)
		for _, o := range outs {
			hit := false
			for _, poly := range o.Polygons {
				hit = hit || insidePolygon(fx, fy, poly)
			}
			if hit {
				rep.PointingHits++
				break
			}
		}
		if len(pictures) < examples {
			pictures = append(pictures, shown{e.Path, boxes, geom, outs, best})
		}
	}
	if rep.Flagged > 0 {
		f := float64(rep.Flagged)
		rep.BoxHitRate, rep.AnyBoxHitRate, rep.PointingRate = float64(rep.BoxHits)/f, float64(rep.AnyBoxHits)/f, float64(rep.PointingHits)/f
		rep.MeanBestIoU, rep.MeanBoxesPerIm = sumIoU/f, float64(nBoxes)/f
		for i := range rep.ByCut {
			rep.ByCut[i].MeanBestIoU /= f
			rep.ByCut[i].MeanBoxArea /= f
		}
	}
	if out == "" {
		return rep, nil
	}
	if err := os.MkdirAll(out, 0o750); err != nil {
		return nil, fmt.Errorf("model localise: %w", err)
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "localise.json"), append(b, '\n'), 0o640); err != nil {
		return nil, fmt.Errorf("model localise: %w", err)
	}
	sort.SliceStable(pictures, func(i, j int) bool { return pictures[i].iou > pictures[j].iou })
	for i, p := range pictures {
		if err := drawLocalisation(filepath.Join(out, fmt.Sprintf("case-%02d.png", i+1)), p.path, p.geom, p.boxes, p.outs); err != nil {
			return nil, fmt.Errorf("model localise: picture %d: %w", i+1, err)
		}
	}
	return rep, nil
}

func sourceGeometry(path string, size int) (preprocess.Geometry, error) {
	f, err := os.Open(path)
	if err != nil {
		return preprocess.Geometry{}, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return preprocess.Geometry{}, err
	}
	return preprocess.PlaneGeometrySized(cfg.Width, cfg.Height, size), nil
}

// insidePolygon is the even-odd rule for a flat [x1, y1, x2, y2, ...] list.
func insidePolygon(x, y float64, p []float64) bool {
	n := len(p) / 2
	in := false
	for i, j := 0, n-1; i < n; j, i = i, i+1 {
		xi, yi, xj, yj := p[2*i], p[2*i+1], p[2*j], p[2*j+1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}

// drawLocalisation writes the original image, at most 640 px wide, with
// the model's boxes in red and the outlines' boxes and polygons in green.
func drawLocalisation(dst, src string, g preprocess.Geometry, boxes []classifier.Box, outs []outline) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	img, _, err := image.Decode(f)
	f.Close()
	if err != nil {
		return err
	}
	scale := math.Min(1, 640/float64(img.Bounds().Dx()))
	w, h := int(float64(img.Bounds().Dx())*scale), int(float64(img.Bounds().Dy())*scale)
	canvas := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			canvas.Set(x, y, img.At(img.Bounds().Min.X+int(float64(x)/scale), img.Bounds().Min.Y+int(float64(y)/scale)))
		}
	}
	red, green := color.RGBA{255, 40, 40, 255}, color.RGBA{40, 220, 60, 255}
	for _, o := range outs {
		rect(canvas, o.BBox[0]*float64(w), o.BBox[1]*float64(h), (o.BBox[0]+o.BBox[2])*float64(w), (o.BBox[1]+o.BBox[3])*float64(h), green, 1)
		for _, p := range o.Polygons {
			n := len(p) / 2
			for i := 0; i < n; i++ {
				j := (i + 1) % n
				line(canvas, p[2*i]*float64(w), p[2*i+1]*float64(h), p[2*j]*float64(w), p[2*j+1]*float64(h), green)
			}
		}
	}
	for _, b := range boxes {
		x0, y0 := g.ToSource(b.X0, b.Y0)
		x1, y1 := g.ToSource(b.X1, b.Y1)
		rect(canvas, x0*scale, y0*scale, x1*scale, y1*scale, red, 3)
	}
	var out image.Image = canvas
	fo, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if err := png.Encode(fo, out); err != nil {
		fo.Close()
		return err
	}
	return fo.Close()
}

func rect(img draw.Image, x0, y0, x1, y1 float64, c color.Color, width int) {
	for k := 0; k < width; k++ {
		d := float64(k)
		line(img, x0-d, y0-d, x1+d, y0-d, c)
		line(img, x0-d, y1+d, x1+d, y1+d, c)
		line(img, x0-d, y0-d, x0-d, y1+d, c)
		line(img, x1+d, y0-d, x1+d, y1+d, c)
	}
}

func line(img draw.Image, x0, y0, x1, y1 float64, c color.Color) {
	n := int(math.Max(math.Abs(x1-x0), math.Abs(y1-y0))) + 1
	for i := 0; i <= n; i++ {
		t := float64(i) / float64(n)
		img.Set(int(x0+(x1-x0)*t), int(y0+(y1-y0)*t), c)
	}
}
