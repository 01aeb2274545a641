// Package classifier is the fracture classifier: torchvision-compatible
// ResNet-18/34/50/101/152 (one logit) built on gorgonia with custom
// OpenBLAS-backed Ops, safetensors weights, inference, training and metrics.
package classifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/fracd/fracd/classifier/internal/safetensors"

	"github.com/fracd/fracd/classifier/internal/kernels"
)

// ModelInfo describes a model file: identity, architecture and the
// preprocessing contract its inputs must follow.
type ModelInfo struct {
	ID                string
	Arch              string
	WeightsSHA256     string
	InputSize         int
	Mean, Std         [3]float32
	PreprocessVersion string
	Threshold         float64
	TrainingRun       string
	// Suspected and Definite are the optional two operating points (a
	// high-sensitivity and a high-specificity threshold, Suspected <=
	// Threshold <= Definite); 0 when the model has only Threshold.
	Suspected, Definite float64
	// TTA is the test-time augmentation Predict applies: "" (none) or
	// TTAFlip. It is part of the model: its threshold was chosen with it.
	TTA string
}

// TTAFlip averages the probabilities of the image and its mirror image.
const TTAFlip = "hflip"

// Defaults applied when a weights file's metadata omits a field.
var (
	DefaultMean = [3]float32{0.485, 0.456, 0.406}
	DefaultStd  = [3]float32{0.229, 0.224, 0.225}
)

const (
	defaultInputSize = 224
	defaultThreshold = 0.5
	// maxInferBatch bounds the images run through one inference graph so
	// activation memory stays bounded for large requests.
	maxInferBatch = 8
)

// Model is a ResNet with one output logit. Predict, Logits and HeatMaps are
// safe for concurrent use and run concurrently: each call takes a compiled
// graph of its shape from a small pool (graphs own their buffers); training
// through a Trainer must not run concurrently with prediction on the same
// Model.
type Model struct {
	net  *netSpec
	info ModelInfo

	mu      sync.Mutex // guards info, version, prec, threads, infer (not the runs themselves)
	version uint64     // bumped whenever parameters, the precision or the threads change
	prec    Precision
	threads int // oneDNN threads per inference call; 0: kernels.Workers()
	infer   map[[3]int]*graphPool
}

// Precision is the arithmetic of inference convolutions.
type Precision string

// Precisions. BF16 rounds each convolution's input and weights to
// bfloat16 (8 significant bits) and accumulates in float32: about twice
// as fast where the CPU has AVX512-BF16. It is an option, not the default:
// docs/model-card.md gives its validation evidence for the shipped model.
const (
	PrecisionF32  Precision = "f32"
	PrecisionBF16 Precision = "bf16"
)

// ParsePrecision accepts "f32" (or "") and "bf16".
func ParsePrecision(s string) (Precision, error) {
	switch Precision(s) {
	case "", PrecisionF32:
		return PrecisionF32, nil
	case PrecisionBF16:
		return PrecisionBF16, nil
	}
	return "", fmt.Errorf("classifier: precision %q: want %s or %s", s, PrecisionF32, PrecisionBF16)
}

// SetPrecision sets the inference precision. BF16 needs oneDNN and a
// network whose channel counts oneDNN blocks (every torchvision ResNet);
// on a CPU without AVX512-BF16 oneDNN emulates it, correctly but slower
// than float32, so that is refused too.
func (m *Model) SetPrecision(p Precision) error {
	if p == "" {
		p = PrecisionF32
	}
	switch p {
	case PrecisionF32:
	case PrecisionBF16:
		if err := bf16Ready(m.net); err != nil {
			return err
		}
	default:
		return fmt.Errorf("classifier: precision %q: want %s or %s", p, PrecisionF32, PrecisionBF16)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.prec != p {
		m.prec = p
		m.version++ // compiled graphs are of the old precision
	}
	return nil
}

// SetThreads sets how many OpenMP threads each inference call's oneDNN
// primitives use (0, the default: one per core, at most a few). A caller
// that keeps several calls in flight, like the daemon's workers, sets 1:
// the cores then go to different images instead of every call's threads
// waiting at each layer for the ones another call holds up.
func (m *Model) SetThreads(n int) error {
	if n < 0 {
		return fmt.Errorf("classifier: threads %d: want >= 0", n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.threads != n {
		m.threads = n
		m.version++ // compiled graphs are partitioned for the old count
	}
	return nil
}

// Precision returns the inference precision.
func (m *Model) Precision() Precision {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.prec == "" {
		return PrecisionF32
	}
	return m.prec
}

// New returns a freshly initialised model the way torchvision initialises
// ResNet: Kaiming-normal (fan_out, ReLU) convolutions, BatchNorm weight 1 and
// bias 0, PyTorch's default Linear init; running variance 1. The same seed
// gives the same weights.
func New(arch string, seed int64) (*Model, error) {
	a, err := ParseArch(arch)
	if err != nil {
		return nil, err
	}
	net := buildNet(a)
	rng := rand.New(rand.NewSource(seed))
	for _, p := range net.params {
		switch p.kind {
		case kindConv:
			fanOut := p.shape[0] * p.shape[2] * p.shape[3]
			std := math.Sqrt(2 / float64(fanOut))
			for i := range p.data {
				p.data[i] = float32(rng.NormFloat64() * std)
			}
		case kindBNWeight, kindBNVar:
			for i := range p.data {
				p.data[i] = 1
			}
		case kindFCWeight, kindFCBias:
			// kaiming_uniform(a=sqrt(5)) and the bias rule both give
			// U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
			bound := 1 / math.Sqrt(float64(net.fcW.shape[1]))
			for i := range p.data {
				p.data[i] = float32((rng.Float64()*2 - 1) * bound)
			}
		}
	}
	m := &Model{net: net, infer: map[[3]int]*graphPool{}}
	m.info = ModelInfo{Arch: a.Name, InputSize: defaultInputSize, Mean: DefaultMean, Std: DefaultStd, Threshold: defaultThreshold}
	return m, nil
}

// Info returns the model's metadata.
func (m *Model) Info() ModelInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.info
}

// SetInputSize sets the image side the model takes. A ResNet's global
// average pool accepts any side, so only the metadata changes: training at
// a higher resolution than a model was first trained at starts here.
func (m *Model) SetInputSize(size int) error {
	if size < 32 || size > 4096 {
		return fmt.Errorf("classifier: input size %d outside [32,4096]", size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.info.InputSize = size
	return nil
}

// Arch returns the parsed architecture.
func (m *Model) Arch() Arch { return m.net.arch }

// ParamCount returns the number of trainable parameters (torchvision's
// sum of p.numel() over model.parameters()).
func (m *Model) ParamCount() int { return m.net.paramCount() }

// Load reads a safetensors file with torchvision state_dict names (F32, F16
// or BF16 storage) and its metadata. Every expected tensor must be present
// with the exact shape, and no unexpected tensor may be present.
func Load(path string) (*Model, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("classifier: load: %w", err)
	}
	m, err := loadBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("classifier: load %s: %w", path, err)
	}
	return m, nil
}

func loadBytes(raw []byte) (*Model, error) {
	f, err := safetensors.Parse(raw)
	if err != nil {
		return nil, err
	}
	archName, ok := f.Metadata["arch"]
	if !ok {
		return nil, errors.New(`metadata has no "arch"`)
	}
	a, err := ParseArch(archName)
	if err != nil {
		return nil, err
	}
	net := buildNet(a)
	var problems []string
	for _, p := range net.params {
		t, ok := f.Tensors[p.name]
		if !ok {
			problems = append(problems, fmt.Sprintf("tensor %q missing", p.name))
			continue
		}
		if numel(t.Shape) != numel(p.shape) || len(t.Shape) != len(p.shape) {
			problems = append(problems, fmt.Sprintf("tensor %q has shape %v, want %v", p.name, t.Shape, p.shape))
			continue
		}
		mismatch := false
		for i := range p.shape {
			mismatch = mismatch || t.Shape[i] != p.shape[i]
		}
		if mismatch {
			problems = append(problems, fmt.Sprintf("tensor %q has shape %v, want %v", p.name, t.Shape, p.shape))
			continue
		}
		if p.kind == kindBNTracked {
			v, err := f.Integer(p.name)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			p.tracked = v
			continue
		}
		v, err := f.Floats(p.name)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		copy(p.data, v)
	}
	for name := range f.Tensors {
		if _, ok := net.byName[name]; !ok {
			problems = append(problems, fmt.Sprintf("unexpected tensor %q for arch %s", name, a.Name))
		}
	}
	if len(problems) > 0 {
		if len(problems) > 8 {
			problems = append(problems[:8], fmt.Sprintf("and %d more", len(problems)-8))
		}
		return nil, fmt.Errorf("arch %s: %s", a.Name, strings.Join(problems, "; "))
	}
	sum := sha256.Sum256(raw)
	info, err := infoFromMetadata(f.Metadata, a.Name, hex.EncodeToString(sum[:]))
	if err != nil {
		return nil, err
	}
	return &Model{net: net, info: info, infer: map[[3]int]*graphPool{}}, nil
}

// Metadata keys written by Save and read by Load.
const (
	metaID         = "id"
	metaArch       = "arch"
	metaInputSize  = "input_size"
	metaMean       = "mean"
	metaStd        = "std"
	metaPreprocess = "preprocess_version"
	metaThreshold  = "threshold"
	metaRun        = "training_run"
	metaTTA        = "tta"
	metaSuspected  = "threshold_suspected"
	metaDefinite   = "threshold_definite"
)

func infoFromMetadata(md map[string]string, arch, sha string) (ModelInfo, error) {
	info := ModelInfo{ID: md[metaID], Arch: arch, WeightsSHA256: sha, InputSize: defaultInputSize, Mean: DefaultMean, Std: DefaultStd,
		PreprocessVersion: md[metaPreprocess], Threshold: defaultThreshold, TrainingRun: md[metaRun]}
	if info.ID == "" {
		info.ID = "sha256:" + sha[:16]
	}
	if s, ok := md[metaInputSize]; ok {
		v, err := strconv.Atoi(s)
		if err != nil || v < 32 || v > 4096 {
			return info, fmt.Errorf("metadata %s=%q: want an integer in [32,4096]", metaInputSize, s)
		}
		info.InputSize = v
	}
	for _, kv := range []struct {
		key string
		dst *[3]float32
	}{{metaMean, &info.Mean}, {metaStd, &info.Std}} {
		s, ok := md[kv.key]
		if !ok {
			continue
		}
		parts := strings.Split(s, ",")
		if len(parts) != 3 {
			return info, fmt.Errorf("metadata %s=%q: want 3 comma-separated numbers", kv.key, s)
		}
		for i, p := range parts {
			v, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
			if err != nil {
				return info, fmt.Errorf("metadata %s=%q: %w", kv.key, s, err)
			}
			kv.dst[i] = float32(v)
		}
	}
	for _, v := range info.Std {
		if !(v > 0) {
			return info, fmt.Errorf("metadata %s: std must be positive, got %v", metaStd, info.Std)
		}
	}
	if s, ok := md[metaThreshold]; ok {
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 || v > 1 {
			return info, fmt.Errorf("metadata %s=%q: want a number in [0,1]", metaThreshold, s)
		}
		info.Threshold = v
	}
	for _, kv := range []struct {
		key string
		dst *float64
	}{{metaSuspected, &info.Suspected}, {metaDefinite, &info.Definite}} {
		s, ok := md[kv.key]
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v < 0 || v > 1 {
			return info, fmt.Errorf("metadata %s=%q: want a number in [0,1]", kv.key, s)
		}
		*kv.dst = v
	}
	if (info.Suspected != 0 || info.Definite != 0) && !(info.Suspected <= info.Threshold && info.Threshold <= info.Definite) {
		return info, fmt.Errorf("metadata: thresholds must satisfy %s (%v) <= %s (%v) <= %s (%v)", metaSuspected, info.Suspected,
			metaThreshold, info.Threshold, metaDefinite, info.Definite)
	}
	switch t := md[metaTTA]; t {
	case "", TTAFlip:
		info.TTA = t
	default:
		return info, fmt.Errorf("metadata %s=%q: want %q or nothing", metaTTA, t, TTAFlip)
	}
	return info, nil
}

// Save writes the weights (F32, torchvision state_dict names, running
// statistics and num_batches_tracked included) and info as metadata. The
// arch always comes from the model and info.WeightsSHA256 is ignored; on
// success the model's Info becomes info with both filled in from the file.
func (m *Model) Save(path string, info ModelInfo) error {
	return m.save(path, info, false)
}

// SaveF16 is Save with F16 storage (half the size; weights rounded to
// nearest binary16, num_batches_tracked stays I64).
func (m *Model) SaveF16(path string, info ModelInfo) error {
	return m.save(path, info, true)
}

func (m *Model) save(path string, info ModelInfo, half bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	entries := make([]safetensors.Entry, 0, len(m.net.params))
	for _, p := range m.net.params {
		if p.kind == kindBNTracked {
			v := p.tracked
			entries = append(entries, safetensors.Entry{Name: p.name, Shape: []int{}, I64: &v})
			continue
		}
		entries = append(entries, safetensors.Entry{Name: p.name, Shape: p.shape, F32: p.data, Half: half})
	}
	if info.InputSize == 0 {
		info.InputSize = defaultInputSize
	}
	if info.Std == ([3]float32{}) {
		info.Mean, info.Std = DefaultMean, DefaultStd
	}
	f3 := func(v [3]float32) string {
		return fmt.Sprintf("%s,%s,%s", strconv.FormatFloat(float64(v[0]), 'g', -1, 32),
			strconv.FormatFloat(float64(v[1]), 'g', -1, 32), strconv.FormatFloat(float64(v[2]), 'g', -1, 32))
	}
	md := map[string]string{
		"format":       "pt",
		metaArch:       m.net.arch.Name,
		metaInputSize:  strconv.Itoa(info.InputSize),
		metaMean:       f3(info.Mean),
		metaStd:        f3(info.Std),
		metaThreshold:  strconv.FormatFloat(info.Threshold, 'g', -1, 64),
		metaPreprocess: info.PreprocessVersion,
		metaRun:        info.TrainingRun,
	}
	if info.ID != "" {
		md[metaID] = info.ID
	}
	if info.TTA != "" {
		md[metaTTA] = info.TTA
	}
	if info.Suspected != 0 || info.Definite != 0 {
		md[metaSuspected] = strconv.FormatFloat(info.Suspected, 'g', -1, 64)
		md[metaDefinite] = strconv.FormatFloat(info.Definite, 'g', -1, 64)
	}
	sha, err := safetensors.Write(path, entries, md)
	if err != nil {
		return fmt.Errorf("classifier: save %s: %w", path, err)
	}
	info.Arch, info.WeightsSHA256 = m.net.arch.Name, sha
	if info.ID == "" {
		info.ID = "sha256:" + sha[:16]
	}
	m.info = info
	return nil
}

// Predict runs n preprocessed images (each 3 x S x S, CHW, S = Info().InputSize)
// and returns the probability sigmoid(logit) of each, averaged over the
// model's test-time augmentation (Info().TTA) when it has one.
func (m *Model) Predict(ctx context.Context, inputs []float32, n int) ([]float32, error) {
	m.mu.Lock()
	size, tta := m.info.InputSize, m.info.TTA
	m.mu.Unlock()
	if tta != TTAFlip {
		return m.PredictPlain(ctx, inputs, n, size)
	}
	if err := checkInputs("predict", inputs, n, size); err != nil {
		return nil, err
	}
	// The images and their mirrors go through as one batch of 2n: one
	// pass over the weights instead of two. The mirrors are written
	// straight into the graph's input, never copied out.
	logits, err := m.logits(ctx, images{in: inputs, n: n, size: size, mirrors: true})
	if err != nil {
		return nil, err
	}
	p := make([]float32, n)
	for i := range p {
		p[i] = (sigmoid(logits[i]) + sigmoid(logits[n+i])) / 2
	}
	return p, nil
}

// PredictPlain is Predict without test-time augmentation, at image side size.
func (m *Model) PredictPlain(ctx context.Context, inputs []float32, n, size int) ([]float32, error) {
	logits, err := m.Logits(ctx, inputs, n, size)
	if err != nil {
		return nil, err
	}
	for i, z := range logits {
		logits[i] = float32(1 / (1 + math.Exp(-float64(z))))
	}
	return logits, nil
}

// FlipInputs returns a copy of n CHW images of side size, mirrored left to right.
func FlipInputs(inputs []float32, n, size int) []float32 {
	out := make([]float32, len(inputs))
	flipInto(out, inputs, size)
	return out
}

// flipInto writes the rows of side size in src, mirrored, into dst.
func flipInto(dst, src []float32, size int) {
	for r := 0; r < len(src)/size; r++ {
		s, d := src[r*size:(r+1)*size], dst[r*size:(r+1)*size]
		for x, v := range s {
			d[size-1-x] = v
		}
	}
}

// Logits runs n images of 3 x size x size in eval mode (BatchNorm folded
// into the convolutions) and returns one logit per image.
func (m *Model) Logits(ctx context.Context, inputs []float32, n, size int) ([]float32, error) {
	if err := checkInputs("predict", inputs, n, size); err != nil {
		return nil, err
	}
	return m.logits(ctx, images{in: inputs, n: n, size: size})
}

// checkInputs says what is wrong with n images of 3 x size x size in inputs.
func checkInputs(what string, inputs []float32, n, size int) error {
	if n <= 0 {
		return fmt.Errorf("classifier: %s: n=%d, want > 0", what, n)
	}
	if size < 32 {
		return fmt.Errorf("classifier: %s: image size %d too small (min 32)", what, size)
	}
	if per := 3 * size * size; len(inputs) != n*per {
		return fmt.Errorf("classifier: %s: %d floats for %d images of 3x%dx%d, want %d", what, len(inputs), n, size, size, n*per)
	}
	return nil
}

// logits runs the images of src in batches of at most maxInferBatch and
// returns one logit per image (src.count() of them).
func (m *Model) logits(ctx context.Context, src images) ([]float32, error) {
	total := src.count()
	out := make([]float32, 0, total)
	for i := 0; i < total; i += maxInferBatch {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("classifier: predict: %w", err)
		}
		b := min(maxInferBatch, total-i)
		err := m.withInferGraph(ctx, src, i, b, func(gr *graph) error {
			l, err := gr.logitValues()
			out = append(out, l...)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("classifier: predict: %w", err)
		}
	}
	return out, nil
}

// maxGraphsPerShape bounds the compiled eval graphs of one (batch, size,
// input kind) for graphs whose primitives use threads threads (0: every
// core): each owns its activations, so concurrent callers beyond this many
// wait for a free one. One-thread graphs get one per core, so that as many
// calls as there are cores run side by side (the daemon's workers); graphs
// that use every core need only a few.
func maxGraphsPerShape(threads int) int {
	if threads > 0 {
		return max(2, (kernels.Workers()+threads-1)/threads)
	}
	return max(2, min(kernels.Workers(), 4))
}

// graphPool holds the compiled eval graphs of one shape for one parameter
// version. Graphs are taken for the duration of a run, so calls run
// concurrently on different graphs (no model-wide lock while computing).
type graphPool struct {
	version uint64
	free    []*graph
	total   int
	// wait receives a token whenever a graph is returned.
	wait chan struct{}
}

// images are the inputs of one inference call: n CHW images of side size
// (3 x size x size floats each) and, with mirrors, their mirror images
// after them, as images n..2n-1; the mirrors are never materialised.
type images struct {
	in      []float32
	n, size int
	mirrors bool
}

func (s images) count() int {
	if s.mirrors {
		return 2 * s.n
	}
	return s.n
}

// channels returns image i's 3 planes and whether it is to be mirrored.
func (s images) channels(i int) (planes []float32, mirrored bool) {
	if i >= s.n {
		i, mirrored = i-s.n, true
	}
	per := 3 * s.size * s.size
	return s.in[i*per : (i+1)*per], mirrored
}

// withInferGraph runs images from..from+n-1 of src through a free eval
// graph of that shape, building one when none is free and the pool has
// room, and calls fn with it before handing it back.
func (m *Model) withInferGraph(ctx context.Context, src images, from, n int, fn func(*graph) error) error {
	// Whether the input is a normalised gray image decides the graph kind;
	// the check only reads. A mirror is gray when its original is, so a
	// mirror is checked through its original unless that is in this batch.
	mean, std := m.Info().Mean, m.Info().Std
	gray := true
	for i := from; i < from+n && gray; i++ {
		if orig := i - src.n; src.mirrors && orig >= from && orig < from+n {
			continue
		}
		planes, _ := src.channels(i)
		gray = isGray(planes, src.size, mean, std)
	}
	gr, pool, err := m.takeGraph(ctx, n, src.size, gray)
	if err != nil {
		return err
	}
	defer m.giveGraph(pool, gr)
	fillInput(gr.xT.Data().([]float32), src, from, n, gray, mean, std)
	if err := gr.run(nil, nil); err != nil {
		return err
	}
	return fn(gr)
}

// fillInput writes images from..from+n-1 of src into a graph's input x:
// gray, one plane each (the gray image, undoing channel 0's
// normalisation; the graph's first convolution folds the three); else
// all three planes. Mirrors are written mirrored.
func fillInput(x []float32, src images, from, n int, gray bool, mean, std [3]float32) {
	size := src.size
	plane := size * size
	for j := 0; j < n; j++ {
		planes, mirrored := src.channels(from + j)
		if gray {
			dst := x[j*plane : (j+1)*plane]
			for r := 0; r < size; r++ {
				s, d := planes[r*size:(r+1)*size], dst[r*size:(r+1)*size]
				if mirrored {
					for c, v := range s {
						d[size-1-c] = v*std[0] + mean[0]
					}
				} else {
					for c, v := range s {
						d[c] = v*std[0] + mean[0]
					}
				}
			}
			continue
		}
		dst := x[j*3*plane : (j+1)*3*plane]
		if mirrored {
			flipInto(dst, planes, size)
		} else {
			copy(dst, planes)
		}
	}
}

func (m *Model) takeGraph(ctx context.Context, n, size int, gray bool) (*graph, *graphPool, error) {
	mean, std := m.Info().Mean, m.Info().Std
	key := [3]int{n, size, 0}
	if gray {
		key[2] = 1
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for {
		pool := m.infer[key]
		if pool == nil || pool.version != m.version {
			// Keep at most a few shapes alive: each graph owns activations.
			if pool == nil && len(m.infer) >= 3 {
				for k := range m.infer {
					delete(m.infer, k)
				}
			}
			pool = &graphPool{version: m.version, wait: make(chan struct{}, 1)}
			m.infer[key] = pool
		}
		if k := len(pool.free); k > 0 {
			gr := pool.free[k-1]
			pool.free = pool.free[:k-1]
			return gr, pool, nil
		}
		if pool.total < maxGraphsPerShape(m.threads) {
			// Built under the lock: builds read the parameters, which a
			// Trainer step (holding the lock) may be changing.
			var ms *[2][3]float32
			if gray {
				ms = &[2][3]float32{mean, std}
			}
			gr, err := m.net.inferenceGraph(n, size, ms, m.prec, m.threads)
			if err != nil {
				return nil, nil, fmt.Errorf("build inference graph: %w", err)
			}
			pool.total++
			gr.version, gr.key = pool.version, key
			return gr, pool, nil
		}
		m.mu.Unlock()
		select {
		case <-pool.wait:
		case <-ctx.Done():
			m.mu.Lock()
			return nil, nil, ctx.Err()
		}
		m.mu.Lock()
	}
}

func (m *Model) giveGraph(pool *graphPool, gr *graph) {
	m.mu.Lock()
	if m.infer[gr.key] == pool && pool.version == m.version {
		pool.free = append(pool.free, gr)
	}
	m.mu.Unlock()
	select {
	case pool.wait <- struct{}{}:
	default:
	}
}

// grayPlanes returns the gray plane g of each image when every channel c of
// the inputs equals (g - Mean[c]) / Std[c] (a gray image replicated and
// normalised, the pipeline's model input) to float32 rounding, else nil.
func (m *Model) grayPlanes(in []float32, n, size int) []float32 {
	plane := size * size
	for i := 0; i < n; i++ {
		if !isGray(in[3*i*plane:3*(i+1)*plane], size, m.info.Mean, m.info.Std) {
			return nil
		}
	}
	g := make([]float32, n*plane)
	fillInput(g, images{in: in, n: n, size: size}, 0, n, true, m.info.Mean, m.info.Std)
	return g
}

// isGray reports whether the three planes of one image are one gray image
// normalised per channel, to float32 rounding.
func isGray(in []float32, size int, mean, std [3]float32) bool {
	plane := size * size
	x0, x1, x2 := in[:plane], in[plane:2*plane], in[2*plane:3*plane]
	x1, x2 = x1[:len(x0)], x2[:len(x0)]
	for p, v := range x0 {
		gv := v*std[0] + mean[0]
		e1 := x1[p] - (gv-mean[1])/std[1]
		e2 := x2[p] - (gv-mean[2])/std[2]
		if e1 > 1e-5 || e1 < -1e-5 || e2 > 1e-5 || e2 < -1e-5 {
			return false
		}
	}
	return true
}
