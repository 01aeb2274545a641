package classifier

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strconv"

	G "gorgonia.org/gorgonia"

	"github.com/fracd/fracd/classifier/internal/safetensors"
)

// SGD is stochastic gradient descent with momentum and weight decay with
// exactly PyTorch's semantics (torch.optim.SGD, dampening 0, no Nesterov):
//
//	g = grad + wd*p;  v = g on the first step, else v = momentum*v + g;  p -= lr*v
//
// It satisfies gorgonia.Solver. (gorgonia's own Momentum solver applies the
// decay to the velocity instead of the gradient.)
type SGD struct {
	LR, Momentum, WeightDecay float64
	velocity                  [][]float32
}

var _ G.Solver = (*SGD)(nil)

// Step updates every value in place from its gradient. The slice must list
// the same parameters in the same order on every call.
func (s *SGD) Step(vgs []G.ValueGrad) error {
	if s.velocity == nil {
		s.velocity = make([][]float32, len(vgs))
	}
	if len(s.velocity) != len(vgs) {
		return fmt.Errorf("classifier: sgd: %d parameters, solver was started with %d", len(vgs), len(s.velocity))
	}
	for i, vg := range vgs {
		p, err := floats(vg.Value())
		if err != nil {
			return fmt.Errorf("classifier: sgd: param %d: %w", i, err)
		}
		gv, err := vg.Grad()
		if err != nil {
			return fmt.Errorf("classifier: sgd: param %d grad: %w", i, err)
		}
		g, err := floats(gv)
		if err != nil {
			return fmt.Errorf("classifier: sgd: param %d grad: %w", i, err)
		}
		if len(g) != len(p) {
			return fmt.Errorf("classifier: sgd: param %d: grad has %d values, want %d", i, len(g), len(p))
		}
		s.update(i, p, g)
	}
	return nil
}

func (s *SGD) update(i int, p, g []float32) {
	lr, mom, wd := float32(s.LR), float32(s.Momentum), float32(s.WeightDecay)
	v := s.velocity[i]
	first := v == nil
	if first && mom != 0 {
		v = make([]float32, len(p))
		s.velocity[i] = v
	}
	for j := range p {
		d := g[j] + wd*p[j]
		if mom != 0 {
			if first {
				v[j] = d
			} else {
				v[j] = mom*v[j] + d
			}
			d = v[j]
		}
		p[j] -= lr * d
	}
}

// TrainConfig configures a Trainer.
type TrainConfig struct {
	LR          float64 // learning rate
	Momentum    float64
	WeightDecay float64
	Loss        FocalLoss
	InputSize   int   // image side; 0 means the model's InputSize
	Seed        int64 // shuffling seed for Epoch
	// Schedule gives the learning rate of optimiser step s (counted from
	// the run's first step, so a resumed trainer continues the curve);
	// nil keeps LR constant.
	Schedule func(step int64) float64
	// EMADecay > 0 keeps an exponential moving average of the weights and
	// BatchNorm running statistics, updated after every step (EMAModel).
	EMADecay float64
	// CAMWeight > 0 adds that multiple of the CAM supervision loss
	// (loss.go) to the focal loss; Epoch takes the targets from a
	// CAMDataset (other datasets supervise no cell).
	CAMWeight float64
}

// Trainer runs train-mode steps (batch-statistics BatchNorm, running stats
// updated) on a Model. Not safe for concurrent use; it holds the model's
// lock during each step so concurrent Predict calls wait.
type Trainer struct {
	m      *Model
	cfg    TrainConfig
	sgd    *SGD
	graphs map[int]*graph
	steps  int64
	rng    *rand.Rand
	ema    [][]float32 // per float param of m.net.params (nil entry for num_batches_tracked)
	// epochCorrect/epochSeen count train-mode predictions (logit >= 0 vs
	// label) during the last Epoch: the training accuracy.
	epochCorrect, epochSeen int
}

// LastEpochAccuracy is the accuracy of the train-mode predictions (logit >=
// 0, i.e. probability >= 0.5) made during the last Epoch, before each
// batch's update, as training accuracy is usually reported.
func (t *Trainer) LastEpochAccuracy() float64 {
	if t.epochSeen == 0 {
		return 0
	}
	return float64(t.epochCorrect) / float64(t.epochSeen)
}

// NewTrainer prepares training of m.
func NewTrainer(m *Model, cfg TrainConfig) (*Trainer, error) {
	if cfg.LR <= 0 {
		return nil, fmt.Errorf("classifier: trainer: learning rate %v must be positive", cfg.LR)
	}
	if cfg.InputSize == 0 {
		cfg.InputSize = m.Info().InputSize
	}
	return &Trainer{m: m, cfg: cfg, sgd: &SGD{LR: cfg.LR, Momentum: cfg.Momentum, WeightDecay: cfg.WeightDecay},
		graphs: map[int]*graph{}, rng: rand.New(rand.NewSource(cfg.Seed))}, nil
}

// Steps is the number of optimiser steps taken so far (kept across resume).
func (t *Trainer) Steps() int64 { return t.steps }

func (t *Trainer) graphFor(n int) (*graph, error) {
	if gr, ok := t.graphs[n]; ok {
		return gr, nil
	}
	if len(t.graphs) >= 2 { // a full batch and a remainder at most
		for k := range t.graphs {
			delete(t.graphs, k)
		}
	}
	gr, err := t.m.net.trainGraph(n, t.cfg.InputSize, t.cfg.Loss, true, t.cfg.CAMWeight)
	if err != nil {
		return nil, err
	}
	t.graphs[n] = gr
	return gr, nil
}

// StepResult reports one optimiser step.
type StepResult struct {
	Loss   float64
	Logits []float32 // train-mode logits before the update
}

// Step runs forward and backward on one batch (n = len(labels) images of
// 3 x InputSize x InputSize) and applies one SGD update.
func (t *Trainer) Step(ctx context.Context, inputs, labels []float32) (StepResult, error) {
	return t.StepCAM(ctx, inputs, labels, nil)
}

// CAMCells is the side of the last stage's map the CAM targets of an
// image of the trainer's input size cover (cells x cells).
func (t *Trainer) CAMCells() int { return camCells(t.cfg.InputSize) }

// StepCAM is Step with CAM targets (n x CAMCells()^2, see CAMDataset);
// nil supervises no cell. Without CAMWeight the targets are ignored.
func (t *Trainer) StepCAM(ctx context.Context, inputs, labels, camTargets []float32) (StepResult, error) {
	n, s := len(labels), t.cfg.InputSize
	if n == 0 || len(inputs) != n*3*s*s {
		return StepResult{}, fmt.Errorf("classifier: train step: %d floats for %d labels, want %d", len(inputs), n, n*3*s*s)
	}
	if err := ctx.Err(); err != nil {
		return StepResult{}, fmt.Errorf("classifier: train step: %w", err)
	}
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	gr, err := t.graphFor(n)
	if err != nil {
		return StepResult{}, err
	}
	if gr.camTargetsT != nil {
		tg := gr.camTargetsT.Data().([]float32)
		switch {
		case camTargets == nil:
			for i := range tg {
				tg[i] = CAMUnsupervised
			}
		case len(camTargets) != len(tg):
			return StepResult{}, fmt.Errorf("classifier: train step: %d CAM targets, want %d (%d images of %dx%d cells)", len(camTargets), len(tg), n, gr.camH, gr.camW)
		default:
			copy(tg, camTargets)
		}
	}
	if err := gr.run(inputs, labels); err != nil {
		return StepResult{}, fmt.Errorf("classifier: train step: %w", err)
	}
	loss, err := gr.lossValue()
	if err != nil {
		return StepResult{}, err
	}
	lg, err := gr.logitValues()
	if err != nil {
		return StepResult{}, err
	}
	res := StepResult{Loss: loss, Logits: append([]float32(nil), lg...)}
	vgs := make([]G.ValueGrad, len(gr.params))
	for i, p := range gr.params {
		vgs[i] = gr.b.nodes[p]
	}
	if t.cfg.Schedule != nil {
		t.sgd.LR = t.cfg.Schedule(t.steps)
	}
	if err := t.sgd.Step(vgs); err != nil {
		return res, err
	}
	t.steps++
	t.updateEMA()
	t.m.version++
	return res, nil
}

// Dataset supplies labelled, preprocessed images for Epoch.
type Dataset interface {
	Len() int
	// Example writes image i (3 x S x S, normalised) into dst and returns its label (0 or 1).
	Example(i int, dst []float32) (float32, error)
}

// Epoch shuffles ds with the trainer's seeded generator and runs one pass
// in batches of batch images; it returns the mean loss.
func (t *Trainer) Epoch(ctx context.Context, ds Dataset, batch int) (float64, error) {
	if batch <= 0 {
		return 0, errors.New("classifier: epoch: batch must be positive")
	}
	n := ds.Len()
	if n == 0 {
		return 0, errors.New("classifier: epoch: empty dataset")
	}
	order := t.rng.Perm(n)
	t.epochCorrect, t.epochSeen = 0, 0
	per := 3 * t.cfg.InputSize * t.cfg.InputSize
	buf := make([]float32, batch*per)
	labels := make([]float32, batch)
	var cam []float32
	camDS, supervised := ds.(CAMDataset)
	cells := t.CAMCells()
	if t.cfg.CAMWeight > 0 && supervised {
		cam = make([]float32, batch*cells*cells)
	}
	var total float64
	for i := 0; i < n; i += batch {
		b := min(batch, n-i)
		if b == 1 && n > 1 {
			break // train-mode BatchNorm needs more than one value per channel
		}
		for j := 0; j < b; j++ {
			y, err := ds.Example(order[i+j], buf[j*per:(j+1)*per])
			if err != nil {
				return 0, fmt.Errorf("classifier: epoch: example %d: %w", order[i+j], err)
			}
			labels[j] = y
			if cam != nil {
				if err := camDS.CAMTarget(order[i+j], cells, cells, cam[j*cells*cells:(j+1)*cells*cells]); err != nil {
					return 0, fmt.Errorf("classifier: epoch: example %d: CAM target: %w", order[i+j], err)
				}
			}
		}
		var tg []float32
		if cam != nil {
			tg = cam[:b*cells*cells]
		}
		r, err := t.StepCAM(ctx, buf[:b*per], labels[:b], tg)
		if err != nil {
			return 0, err
		}
		total += r.Loss * float64(b)
		for j, z := range r.Logits {
			if (z >= 0) == (labels[j] >= 0.5) {
				t.epochCorrect++
			}
			t.epochSeen++
		}
	}
	return total / float64(n), nil
}

// Checkpoint metadata keys.
const (
	ckptSteps = "trainer_steps"
	ckptMom   = "momentum."
	ckptEMA   = "ema."
)

// emaDecayAt ramps the decay up over the first steps ((1+s)/(10+s), as
// TensorFlow's ExponentialMovingAverage with num_updates does), so the
// average is not dominated by the random initialisation.
func emaDecayAt(d float64, step int64) float32 {
	return float32(min(d, float64(1+step)/float64(10+step)))
}

// updateEMA folds the current parameters into the moving average. Caller
// holds t.m.mu.
func (t *Trainer) updateEMA() {
	if t.cfg.EMADecay <= 0 {
		return
	}
	if t.ema == nil {
		t.ema = make([][]float32, len(t.m.net.params))
		for i, p := range t.m.net.params {
			if p.kind != kindBNTracked {
				t.ema[i] = append([]float32(nil), p.data...)
			}
		}
		return
	}
	d := emaDecayAt(t.cfg.EMADecay, t.steps)
	for i, p := range t.m.net.params {
		e := t.ema[i]
		if e == nil {
			continue
		}
		for j, v := range p.data {
			e[j] = d*e[j] + (1-d)*v
		}
	}
}

// EMAModel returns a new model holding the moving-average weights (and
// running statistics), or nil when EMA is off or no step ran yet.
func (t *Trainer) EMAModel() (*Model, error) {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	if t.ema == nil {
		return nil, nil
	}
	em, err := New(t.m.net.arch.Name, 0)
	if err != nil {
		return nil, err
	}
	for i, p := range t.m.net.params {
		q := em.net.params[i]
		if p.kind == kindBNTracked {
			q.tracked = p.tracked
			continue
		}
		copy(q.data, t.ema[i])
	}
	em.info = t.m.info
	em.version++
	return em, nil
}

// SaveCheckpoint writes the model (as Save does) plus the optimiser's
// momentum buffers and step count, so ResumeTrainer continues exactly.
func (t *Trainer) SaveCheckpoint(path string, info ModelInfo) error {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	var entries []safetensors.Entry
	trainable := 0
	for _, p := range t.m.net.params {
		if p.kind == kindBNTracked {
			v := p.tracked
			entries = append(entries, safetensors.Entry{Name: p.name, Shape: []int{}, I64: &v})
			continue
		}
		entries = append(entries, safetensors.Entry{Name: p.name, Shape: p.shape, F32: p.data})
		if p.trainable() {
			if t.sgd.velocity != nil && t.sgd.velocity[trainable] != nil {
				entries = append(entries, safetensors.Entry{Name: ckptMom + p.name, Shape: p.shape, F32: t.sgd.velocity[trainable]})
			}
			trainable++
		}
	}
	for i, p := range t.m.net.params {
		if t.ema != nil && t.ema[i] != nil {
			entries = append(entries, safetensors.Entry{Name: ckptEMA + p.name, Shape: p.shape, F32: t.ema[i]})
		}
	}
	md := map[string]string{metaArch: t.m.net.arch.Name, ckptSteps: strconv.FormatInt(t.steps, 10),
		metaInputSize: strconv.Itoa(info.InputSize), metaRun: info.TrainingRun, metaID: info.ID}
	if _, err := safetensors.Write(path, entries, md); err != nil {
		return fmt.Errorf("classifier: checkpoint: %w", err)
	}
	return nil
}

// ResumeTrainer loads a checkpoint written by SaveCheckpoint into m (which
// must have the same architecture) and returns a trainer that continues
// with the saved momentum and step count.
func ResumeTrainer(path string, m *Model, cfg TrainConfig) (*Trainer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("classifier: resume: %w", err)
	}
	f, err := safetensors.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("classifier: resume %s: %w", path, err)
	}
	if a := f.Metadata[metaArch]; a != m.net.arch.Name {
		return nil, fmt.Errorf("classifier: resume %s: checkpoint arch %q, model arch %q", path, a, m.net.arch.Name)
	}
	t, err := NewTrainer(m, cfg)
	if err != nil {
		return nil, err
	}
	t.steps, _ = strconv.ParseInt(f.Metadata[ckptSteps], 10, 64)
	m.mu.Lock()
	defer m.mu.Unlock()
	var vel [][]float32
	haveVel := false
	if cfg.EMADecay > 0 {
		// A checkpoint without averages (EMA switched on later) starts the
		// average afresh at the next step.
		if _, err := f.Floats(ckptEMA + m.net.params[0].name); err == nil {
			t.ema = make([][]float32, len(m.net.params))
		}
	}
	for i, p := range m.net.params {
		if p.kind == kindBNTracked {
			if p.tracked, err = f.Integer(p.name); err != nil {
				return nil, fmt.Errorf("classifier: resume %s: %w", path, err)
			}
			continue
		}
		v, err := f.Floats(p.name)
		if err != nil || len(v) != len(p.data) {
			return nil, fmt.Errorf("classifier: resume %s: tensor %q missing or mis-shaped", path, p.name)
		}
		copy(p.data, v)
		if t.ema != nil {
			ev, err := f.Floats(ckptEMA + p.name)
			if err != nil || len(ev) != len(p.data) {
				return nil, fmt.Errorf("classifier: resume %s: tensor %q missing or mis-shaped", path, ckptEMA+p.name)
			}
			t.ema[i] = ev
		}
		if p.trainable() {
			mv, err := f.Floats(ckptMom + p.name)
			if err == nil && len(mv) == len(p.data) {
				haveVel = true
				vel = append(vel, mv)
			} else {
				vel = append(vel, nil)
			}
		}
	}
	if haveVel {
		t.sgd.velocity = vel
	}
	m.version++
	return t, nil
}
