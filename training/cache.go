package training

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	_ "image/jpeg" // FracAtlas and most label sets are JPEG
	_ "image/png"
	"log/slog"
	"math"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/preprocess"
)

// PlaneBytes is the memory one cached image takes at the seed's plane
// size: a Size x Size uint8 plane (Cache.PlaneBytes for other sizes).
const PlaneBytes = preprocess.Size * preprocess.Size

// DefaultCacheBytes bounds the plane cache: 4 GiB is about 85,000 images.
const DefaultCacheBytes int64 = 4 << 30

// Skip reasons.
const (
	SkipMissing    = "missing"    // no file for the row
	SkipUnreadable = "unreadable" // the file cannot be read
	SkipDecode     = "decode"     // not a decodable PNG/JPEG (e.g. truncated)
	SkipPreprocess = "preprocess" // decoded, but preprocessing refused it
)

// Skipped is one image left out of the cache. It names the image by CSV row
// and content hash only: file names can carry identifiers.
type Skipped struct {
	Row    int    `json:"row"`
	SHA256 string `json:"sha256,omitempty"`
	Reason string `json:"reason"`
	Err    string `json:"error,omitempty"`
}

// Cache holds the preprocessed planes of the usable examples of one split,
// in label-file order.
type Cache struct {
	Planes []byte    // len(Labels) planes of PlaneBytes(), row-major
	Labels []float32 // 0 or 1
	Rows   []int     // the CSV row of each plane
	Size   int       // plane side; 0 means preprocess.Size
	// Regions holds each image's fracture outline boxes in plane pixels
	// (nil when no example had outlines).
	Regions [][]Rect
}

func (c *Cache) regions(i int) []Rect {
	if c.Regions == nil {
		return nil
	}
	return c.Regions[i]
}

// Len is the number of cached images.
func (c *Cache) Len() int { return len(c.Labels) }

// Side is the side of the cached square planes.
func (c *Cache) Side() int {
	if c.Size == 0 {
		return preprocess.Size
	}
	return c.Size
}

// PlaneBytes is the memory one cached plane takes.
func (c *Cache) PlaneBytes() int { return c.Side() * c.Side() }

// Plane returns image i as an *image.Gray sharing the cache's memory.
func (c *Cache) Plane(i int) *image.Gray {
	s, n := c.Side(), c.PlaneBytes()
	return &image.Gray{Pix: c.Planes[i*n : (i+1)*n], Stride: s, Rect: image.Rect(0, 0, s, s)}
}

// BuildCaches decodes and preprocesses (exactly as inference does:
// preprocess.PlaneInto on the decoded image) every example with a file,
// once, into one cache per split. Images that cannot be read, decoded or
// preprocessed are skipped and reported, never fatal. maxBytes bounds the
// planes' total memory (<= 0: DefaultCacheBytes); a label set that would
// exceed it is refused before anything is decoded.
func BuildCaches(ctx context.Context, ls *LabelSet, maxBytes int64) (map[string]*Cache, []Skipped, error) {
	return BuildCachesWith(ctx, ls, CacheOptions{MaxBytes: maxBytes})
}

// BuildCachesSized is BuildCaches for size x size planes (a model whose
// input size is not the seed's 224).
func BuildCachesSized(ctx context.Context, ls *LabelSet, maxBytes int64, size int) (map[string]*Cache, []Skipped, error) {
	return BuildCachesWith(ctx, ls, CacheOptions{MaxBytes: maxBytes, Size: size})
}

// CacheOptions configure BuildCachesWith.
type CacheOptions struct {
	MaxBytes int64    // bound on the planes' memory; <= 0: DefaultCacheBytes
	Size     int      // plane side; 0: preprocess.Size
	Progress Progress // told of each image done (read, decoded or skipped); may be nil
}

// BuildCachesWith is BuildCaches with every option.
func BuildCachesWith(ctx context.Context, ls *LabelSet, opt CacheOptions) (map[string]*Cache, []Skipped, error) {
	maxBytes, size := opt.MaxBytes, opt.Size
	if size == 0 {
		size = preprocess.Size
	}
	if maxBytes <= 0 {
		maxBytes = DefaultCacheBytes
	}
	if err := preprocess.CheckPlaneSize(size); err != nil {
		return nil, nil, fmt.Errorf("training: %w", err)
	}
	planeLen := size * size // bytes per plane at this size (PlaneBytes is the seed's)
	var todo []int
	var skipped []Skipped
	for i, e := range ls.Examples {
		if e.Path == "" {
			skipped = append(skipped, Skipped{Row: e.Row, Reason: SkipMissing})
			if opt.Progress != nil {
				opt.Progress.Add(1) // done too: the bar counts every row
			}
			continue
		}
		todo = append(todo, i)
	}
	if need := int64(len(todo)) * int64(planeLen); need > maxBytes {
		return nil, nil, fmt.Errorf("training: %d images need %d MiB of plane cache, over the %d MiB bound (raise --cache-mb)",
			len(todo), need>>20, maxBytes>>20)
	}
	// One buffer per split, sized for all its candidates and compacted in
	// place afterwards, so the peak is the bound and not twice it.
	caches := map[string]*Cache{}
	slot := make([]int, len(todo))
	for k, i := range todo {
		e := ls.Examples[i]
		c := caches[e.Split]
		if c == nil {
			c = &Cache{Size: size}
			caches[e.Split] = c
		}
		slot[k] = len(c.Labels)
		c.Labels = append(c.Labels, b2f(e.Fractured))
		c.Rows = append(c.Rows, e.Row)
	}
	outlined := false
	for _, e := range ls.Examples {
		outlined = outlined || len(e.Outlines) > 0
	}
	for _, c := range caches {
		c.Planes = make([]byte, len(c.Labels)*planeLen)
		if outlined {
			c.Regions = make([][]Rect, len(c.Labels))
		}
	}
	results := make([]*Skipped, len(todo))
	// Each worker runs the (internally parallel) chain on its own image;
	// results land by index, so the order never depends on scheduling.
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				e := ls.Examples[todo[k]]
				c := caches[e.Split]
				var w, h int
				results[k], w, h = loadPlane(e, c.Plane(slot[k]))
				if results[k] == nil && len(e.Outlines) > 0 {
					c.Regions[slot[k]] = planeRegions(e.Outlines, w, h, size) // own slot: no race
				}
				if opt.Progress != nil {
					opt.Progress.Add(1)
				}
			}
		}()
	}
	var err error
feed:
	for k := range todo {
		select {
		case next <- k:
		case <-ctx.Done():
			err = fmt.Errorf("training: preprocessing images: %w", ctx.Err())
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return nil, nil, err
	}
	keep := map[*Cache]int{}
	for k, i := range todo {
		c := caches[ls.Examples[i].Split]
		if results[k] != nil {
			skipped = append(skipped, *results[k])
			continue
		}
		j, s := keep[c], slot[k]
		if j != s {
			copy(c.Planes[j*planeLen:(j+1)*planeLen], c.Planes[s*planeLen:(s+1)*planeLen])
			c.Labels[j], c.Rows[j] = c.Labels[s], c.Rows[s]
			if c.Regions != nil {
				c.Regions[j] = c.Regions[s]
			}
		}
		keep[c] = j + 1
	}
	for name, c := range caches {
		n := keep[c]
		c.Planes, c.Labels, c.Rows = c.Planes[:n*planeLen:n*planeLen], c.Labels[:n:n], c.Rows[:n:n]
		if c.Regions != nil {
			c.Regions = c.Regions[:n:n]
		}
		if n == 0 {
			delete(caches, name)
		}
	}
	return caches, skipped, nil
}

// loadPlane reads, decodes and preprocesses one example into dst and
// returns the source's size (for mapping outlines), or why it was skipped.
func loadPlane(e Example, dst *image.Gray) (*Skipped, int, int) {
	data, err := os.ReadFile(e.Path)
	if err != nil {
		return &Skipped{Row: e.Row, Reason: SkipUnreadable, Err: "cannot read file"}, 0, 0
	}
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	if e.DICOM {
		// An archive file: render and preprocess exactly as inference does.
		f, err := dicomio.Parse(data)
		if err != nil {
			return &Skipped{Row: e.Row, SHA256: sha, Reason: SkipDecode, Err: dicomio.Reason(err)}, 0, 0
		}
		g, err := f.Render8(0)
		if err != nil {
			return &Skipped{Row: e.Row, SHA256: sha, Reason: SkipDecode, Err: dicomio.Reason(err)}, 0, 0
		}
		if err := preprocess.PlaneInto(dst, g); err != nil {
			return &Skipped{Row: e.Row, SHA256: sha, Reason: SkipPreprocess, Err: err.Error()}, 0, 0
		}
		return nil, g.Bounds().Dx(), g.Bounds().Dy()
	}
	// Check the size before decoding so that a huge image is refused
	// without allocating its pixels.
	if c, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil && int64(c.Width)*int64(c.Height) > preprocess.MaxPixels {
		return &Skipped{Row: e.Row, SHA256: sha, Reason: SkipPreprocess, Err: preprocess.ErrTooLarge.Error()}, 0, 0
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return &Skipped{Row: e.Row, SHA256: sha, Reason: SkipDecode, Err: err.Error()}, 0, 0
	}
	if err := preprocess.PlaneInto(dst, img); err != nil {
		return &Skipped{Row: e.Row, SHA256: sha, Reason: SkipPreprocess, Err: err.Error()}, 0, 0
	}
	return nil, img.Bounds().Dx(), img.Bounds().Dy()
}

func b2f(b bool) float32 {
	if b {
		return 1
	}
	return 0
}

// Dataset adapts a Cache to classifier.Dataset: each Example expands the
// cached plane with preprocess.ToTensor and the model's normalisation, as
// inference does.
type Dataset struct {
	Cache     *Cache
	Mean, Std [3]float32
}

// Len is the number of images.
func (d *Dataset) Len() int { return d.Cache.Len() }

// Example writes image i's model input into dst and returns its label.
func (d *Dataset) Example(i int, dst []float32) (float32, error) {
	if i < 0 || i >= d.Cache.Len() {
		return 0, fmt.Errorf("training: example %d out of range [0,%d)", i, d.Cache.Len())
	}
	n := preprocess.TensorLenFor(d.Cache.Side())
	if len(dst) < n {
		return 0, fmt.Errorf("training: example buffer has %d floats, want %d", len(dst), n)
	}
	preprocess.ToTensor(d.Cache.Plane(i), d.Mean, d.Std, dst[:n])
	return d.Cache.Labels[i], nil
}

// Progress is told how far a long phase has got (cmd/fracd draws a bar on
// a terminal, else logs). Add may be called from several goroutines only
// where a caller says so; BuildCachesWith serialises nothing, so its
// Progress must be safe for concurrent use.
type Progress interface {
	Add(n int64)
	Finish()
}

// ProgressFunc starts the report of one phase: what it is, the unit
// counted and the total (<= 0: unknown).
type ProgressFunc func(what, unit string, total int64) Progress

// WithProgress returns ds telling p of every example read: the trainer and
// the predictors read each image once per pass.
func WithProgress(ds classifier.Dataset, p Progress) classifier.Dataset {
	if p == nil {
		return ds
	}
	return &countingDataset{Dataset: ds, p: p}
}

type countingDataset struct {
	classifier.Dataset
	p Progress
}

func (d *countingDataset) Example(i int, dst []float32) (float32, error) {
	d.p.Add(1)
	return d.Dataset.Example(i, dst)
}

// progress wraps the training Dataset to log how far an epoch has got:
// Trainer.Epoch is one long call, and on CPUs an epoch takes minutes.
type progress struct {
	classifier.Dataset
	log          *slog.Logger
	epoch, every int
	seen         int
	start        time.Time
}

func (p *progress) Example(i int, dst []float32) (float32, error) {
	if p.seen == 0 {
		p.start = time.Now()
	}
	p.seen++
	if p.every > 0 && p.seen%p.every == 0 && p.seen < p.Len() {
		p.log.Info("training: epoch progress", "epoch", p.epoch, "images", p.seen, "of", p.Len(),
			"elapsed_s", math.Round(time.Since(p.start).Seconds()))
	}
	return p.Dataset.Example(i, dst)
}
