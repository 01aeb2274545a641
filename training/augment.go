package training

import (
	"fmt"
	"math"
	"math/rand"

	"github.com/fracd/fracd/preprocess"
)

// Augment configures the random changes made to each training image before
// normalisation. Zero values switch each one off. Every draw comes from a
// generator seeded by (run seed, epoch, image), so an epoch's images do
// not depend on the order they are drawn in or on a resume.
type Augment struct {
	Flip       bool    `json:"flip,omitempty"`       // mirror left-right with probability 1/2
	Rotate     float64 `json:"rotate,omitempty"`     // max rotation in degrees (uniform in ±Rotate)
	Scale      float64 `json:"scale,omitempty"`      // zoom uniform in [1-Scale, 1+Scale]
	Translate  float64 `json:"translate,omitempty"`  // shift uniform in ±Translate of the side, each axis
	Brightness float64 `json:"brightness,omitempty"` // multiply by uniform [1-B, 1+B]
	Contrast   float64 `json:"contrast,omitempty"`   // stretch about the mean by uniform [1-C, 1+C]
}

// DefaultAugment is the recipe's augmentation: the torchvision-style
// flip, small affine and jitter that suit radiographs (no vertical flip,
// no large rotations: anatomy has an up).
var DefaultAugment = Augment{Flip: true, Rotate: 10, Scale: 0.1, Translate: 0.06, Brightness: 0.2, Contrast: 0.2}

// On reports whether any augmentation is enabled.
func (a Augment) On() bool { return a != Augment{} }

func (a Augment) validate() error {
	for _, f := range []struct {
		name   string
		v, max float64
	}{{"rotate", a.Rotate, 45}, {"scale", a.Scale, 0.5}, {"translate", a.Translate, 0.5},
		{"brightness", a.Brightness, 0.9}, {"contrast", a.Contrast, 0.9}} {
		if !(f.v >= 0 && f.v <= f.max) {
			return fmt.Errorf("training: augment %s=%v: want a number in [0,%v]", f.name, f.v, f.max)
		}
	}
	return nil
}

// augSeed mixes (seed, epoch, index) into one generator seed (splitmix64).
func augSeed(seed int64, epoch, i int) int64 {
	x := uint64(epochSeed(seed, epoch)) ^ (uint64(i)+1)*0x94D049BB133111EB
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return int64(x)
}

// augmentedDataset draws one augmented version of each cached plane per
// epoch and normalises it as inference does.
type augmentedDataset struct {
	*Dataset
	aug   Augment
	seed  int64
	epoch int
	buf   []float32
}

func (d *augmentedDataset) Example(i int, dst []float32) (float32, error) {
	if i < 0 || i >= d.Cache.Len() {
		return 0, fmt.Errorf("training: example %d out of range [0,%d)", i, d.Cache.Len())
	}
	s := d.Cache.Side()
	if n := preprocess.TensorLenFor(s); len(dst) < n {
		return 0, fmt.Errorf("training: example buffer has %d floats, want %d", len(dst), n)
	}
	if len(d.buf) != s*s {
		d.buf = make([]float32, s*s)
	}
	rng := newAugRand(d.seed, d.epoch, i)
	d.aug.apply(rng, d.Cache.Plane(i).Pix, d.buf, s)
	for c := 0; c < 3; c++ {
		out := dst[c*s*s : (c+1)*s*s]
		m, sd := d.Mean[c], d.Std[c]
		for p, v := range d.buf {
			out[p] = (v - m) / sd
		}
	}
	return d.Cache.Labels[i], nil
}

// newAugRand is the generator of image i's draws in an epoch.
func newAugRand(seed int64, epoch, i int) *rand.Rand {
	return rand.New(rand.NewSource(augSeed(seed, epoch, i)))
}

// apply writes the augmented plane src (s x s, uint8) into dst as values
// in [0,1]. The draws are made in a fixed order whether or not each
// augmentation is on, so switching one off does not change the others.
func (a Augment) apply(rng *rand.Rand, src []byte, dst []float32, s int) {
	a.draw(rng, s).warp(src, dst, s)
}

// augDraw is one draw of every augmentation for one image.
type augDraw struct {
	flip, affine         bool
	angle, scale, tx, ty float64
	bright, contrast     float64
}

// draw makes the draws in a fixed order whether or not each augmentation
// is on, so switching one off does not change the others.
func (a Augment) draw(rng *rand.Rand, s int) augDraw {
	d := augDraw{flip: rng.Float64() < 0.5}
	d.angle = (2*rng.Float64() - 1) * a.Rotate * math.Pi / 180
	d.scale = 1 + (2*rng.Float64()-1)*a.Scale
	d.tx = (2*rng.Float64() - 1) * a.Translate * float64(s)
	d.ty = (2*rng.Float64() - 1) * a.Translate * float64(s)
	d.bright = 1 + (2*rng.Float64()-1)*a.Brightness
	d.contrast = 1 + (2*rng.Float64()-1)*a.Contrast
	if !a.Flip {
		d.flip = false
	}
	d.affine = a.Rotate != 0 || a.Scale != 0 || a.Translate != 0
	return d
}

func (d augDraw) warp(src []byte, dst []float32, s int) {
	// Inverse mapping: for each output pixel, the source point it comes
	// from (rotation and scale about the centre, then the shift); bilinear,
	// black outside like the preprocessing's padding.
	c := float64(s-1) / 2
	cos, sin := math.Cos(d.angle)/d.scale, math.Sin(d.angle)/d.scale
	var sum float64
	for y := 0; y < s; y++ {
		for x := 0; x < s; x++ {
			xo := x
			if d.flip {
				xo = s - 1 - x
			}
			var v float64
			if !d.affine {
				v = float64(src[y*s+xo])
			} else {
				dx, dy := float64(xo)-c-d.tx, float64(y)-c-d.ty
				sx := cos*dx + sin*dy + c
				sy := -sin*dx + cos*dy + c
				v = bilinear(src, s, sx, sy)
			}
			v = v / 255 * d.bright
			dst[y*s+x] = float32(v)
			sum += v
		}
	}
	mean := float32(sum / float64(s*s))
	k := float32(d.contrast)
	for p, v := range dst {
		v = (v-mean)*k + mean
		dst[p] = min(max(v, 0), 1)
	}
}

// mapRect returns the box, in the augmented plane, around where warp puts
// the plane region r (pixel-centre coordinates, the forward map of warp's
// inverse one).
func (d augDraw) mapRect(r Rect, s int) Rect {
	c := float64(s-1) / 2
	cos, sin := math.Cos(d.angle)*d.scale, math.Sin(d.angle)*d.scale
	out := Rect{X0: math.Inf(1), Y0: math.Inf(1), X1: math.Inf(-1), Y1: math.Inf(-1)}
	for _, p := range [4][2]float64{{r.X0, r.Y0}, {r.X1, r.Y0}, {r.X0, r.Y1}, {r.X1, r.Y1}} {
		x, y := p[0], p[1]
		if d.affine {
			dx, dy := x-c, y-c
			x = cos*dx - sin*dy + c + d.tx
			y = sin*dx + cos*dy + c + d.ty
		}
		if d.flip {
			x = float64(s-1) - x
		}
		out.X0, out.X1 = min(out.X0, x), max(out.X1, x)
		out.Y0, out.Y1 = min(out.Y0, y), max(out.Y1, y)
	}
	return out
}

func bilinear(src []byte, s int, x, y float64) float64 {
	if x <= -1 || y <= -1 || x >= float64(s) || y >= float64(s) {
		return 0
	}
	x0, y0 := int(math.Floor(x)), int(math.Floor(y))
	fx, fy := x-float64(x0), y-float64(y0)
	at := func(xx, yy int) float64 {
		if xx < 0 || yy < 0 || xx >= s || yy >= s {
			return 0
		}
		return float64(src[yy*s+xx])
	}
	top := at(x0, y0)*(1-fx) + at(x0+1, y0)*fx
	bot := at(x0, y0+1)*(1-fx) + at(x0+1, y0+1)*fx
	return top*(1-fy) + bot*fy
}

// Schedules.
const (
	ScheduleConstant = "constant"
	ScheduleCosine   = "cosine" // linear warm-up, then cosine decay to 0
)

// lrSchedule returns the learning rate of each step, or nil for a
// constant rate. total is the run's number of steps.
func lrSchedule(kind string, lr float64, warmup, total int64) func(int64) float64 {
	if kind != ScheduleCosine {
		return nil
	}
	return func(step int64) float64 {
		if step < warmup {
			// From lr/10 up to lr: a cold start at full rate destabilises
			// freshly initialised BatchNorm layers.
			return lr * (0.1 + 0.9*float64(step)/float64(warmup))
		}
		if step >= total {
			return lr * 1e-3
		}
		t := float64(step-warmup) / float64(max(1, total-warmup))
		return max(lr*1e-3, lr*0.5*(1+math.Cos(math.Pi*t)))
	}
}

// stepsPerEpoch mirrors classifier.Trainer.Epoch: a final batch of one image
// is dropped (train-mode BatchNorm needs two).
func stepsPerEpoch(n, batch int) int64 {
	s := n / batch
	if r := n % batch; r >= 2 || (r == 1 && n == 1) {
		s++
	}
	return int64(s)
}
