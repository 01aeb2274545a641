package classifier

import (
	"context"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fracd/fracd/classifier/internal/safetensors"
)

// Reference counts: torchvision 0.14.1, sum(p.numel() for p in
// model.parameters()) with num_classes=1.
func TestParamCounts(t *testing.T) {
	for _, tc := range []struct {
		arch string
		want int
	}{
		{"resnet18", 11177025},
		{"resnet34", 21285185},
		{"resnet50", 23510081},
		{"resnet101", 42502209},
		{"resnet152", 58145857},
		{"basic[1,1,1,1]", 4906305},
		{"bottleneck[1,1,1,1]", 8017985},
		{"basic[1,2,1,1]", 5201729},
	} {
		a, err := ParseArch(tc.arch)
		if err != nil {
			t.Fatal(err)
		}
		if got := buildNet(a).paramCount(); got != tc.want {
			t.Errorf("%s: %d params, want %d", tc.arch, got, tc.want)
		}
	}
}

func TestParseArch(t *testing.T) {
	for _, tc := range []struct {
		in, name string
		bad      bool
	}{
		{"resnet50", "resnet50", false},
		{"ResNet18", "resnet18", false},
		{"basic[2,2,2,2]", "resnet18", false},
		{"bottleneck[1, 1, 1, 1]", "bottleneck[1,1,1,1]", false},
		{"resnet19", "", true},
		{"basic[1,1,1]", "", true},
		{"basic[1,0,1,1]", "", true},
	} {
		a, err := ParseArch(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%q: err %v, want error %v", tc.in, err, tc.bad)
			continue
		}
		if !tc.bad && a.Name != tc.name {
			t.Errorf("%q: name %q, want %q", tc.in, a.Name, tc.name)
		}
	}
}

func randImages(seed int64, n, size int) []float32 {
	r := rand.New(rand.NewSource(seed))
	x := make([]float32, n*3*size*size)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

func TestNewIsSeededAndTorchvisionInit(t *testing.T) {
	a, _ := New("basic[1,1,1,1]", 7)
	b, _ := New("basic[1,1,1,1]", 7)
	c, _ := New("basic[1,1,1,1]", 8)
	same, differ := true, false
	for i, p := range a.net.params {
		for j := range p.data {
			same = same && p.data[j] == b.net.params[i].data[j]
			differ = differ || p.data[j] != c.net.params[i].data[j]
		}
	}
	if !same || !differ {
		t.Fatalf("seeding: same seed identical=%v, other seed differs=%v", same, differ)
	}
	// Kaiming normal, fan_out: std sqrt(2/(cout*k*k)).
	w := a.net.byName["layer4.0.conv2.weight"]
	_, sum := summary(w.data)
	l2, _ := summary(w.data)
	mean := sum / float64(len(w.data))
	std := math.Sqrt(l2*l2/float64(len(w.data)) - mean*mean)
	if want := math.Sqrt(2.0 / (512 * 9)); math.Abs(std-want) > 0.02*want {
		t.Errorf("conv init std %.5g, want %.5g", std, want)
	}
	bound := 1 / math.Sqrt(512)
	for _, v := range a.net.fcW.data {
		if math.Abs(float64(v)) > bound {
			t.Fatalf("fc weight %g outside ±%g", v, bound)
		}
	}
	for _, name := range []string{"bn1.weight", "bn1.running_var"} {
		for _, v := range a.net.byName[name].data {
			if v != 1 {
				t.Fatalf("%s = %g, want 1", name, v)
			}
		}
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, arch := range []string{"basic[1,1,1,1]", "bottleneck[1,1,1,1]"} {
		t.Run(arch, func(t *testing.T) {
			m, err := New(arch, 3)
			if err != nil {
				t.Fatal(err)
			}
			// non-trivial running stats so eval mode matters
			r := rand.New(rand.NewSource(1))
			for _, p := range m.net.params {
				switch p.kind {
				case kindBNMean:
					for i := range p.data {
						p.data[i] = float32(r.NormFloat64() * 0.1)
					}
				case kindBNVar:
					for i := range p.data {
						p.data[i] = float32(0.5 + r.Float64())
					}
				case kindBNTracked:
					p.tracked = 42
				}
			}
			info := ModelInfo{ID: "m1", InputSize: 64, Mean: [3]float32{0.5, 0.5, 0.5}, Std: [3]float32{0.25, 0.25, 0.25},
				PreprocessVersion: "v3", Threshold: 0.37, TrainingRun: "run-9"}
			path := filepath.Join(t.TempDir(), "m.safetensors")
			if err := m.Save(path, info); err != nil {
				t.Fatal(err)
			}
			l, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			got := l.Info()
			if got.WeightsSHA256 == "" || len(got.WeightsSHA256) != 64 {
				t.Errorf("sha256 %q", got.WeightsSHA256)
			}
			got.WeightsSHA256 = ""
			info.Arch = m.net.arch.Name
			if got != info {
				t.Errorf("info %+v, want %+v", got, info)
			}
			for i, p := range m.net.params {
				q := l.net.params[i]
				if p.tracked != q.tracked {
					t.Fatalf("%s tracked %d, want %d", p.name, q.tracked, p.tracked)
				}
				for j := range p.data {
					if p.data[j] != q.data[j] {
						t.Fatalf("%s[%d] differs", p.name, j)
					}
				}
			}
			x := randImages(5, 2, 64)
			a, err := m.Predict(context.Background(), x, 2)
			if err != nil {
				t.Fatal(err)
			}
			b, err := l.Predict(context.Background(), x, 2)
			if err != nil {
				t.Fatal(err)
			}
			for i := range a {
				if a[i] != b[i] || !(a[i] > 0 && a[i] < 1) {
					t.Errorf("prob %d: %g vs %g", i, a[i], b[i])
				}
			}
		})
	}
}

// TestLoadErrors corrupts a valid file in specific ways and checks that the
// error names what is wrong.
func TestLoadErrors(t *testing.T) {
	m, _ := New("basic[1,1,1,1]", 1)
	base := func() ([]safetensors.Entry, map[string]string) {
		var es []safetensors.Entry
		for _, p := range m.net.params {
			if p.kind == kindBNTracked {
				v := int64(0)
				es = append(es, safetensors.Entry{Name: p.name, Shape: []int{}, I64: &v})
			} else {
				es = append(es, safetensors.Entry{Name: p.name, Shape: p.shape, F32: p.data})
			}
		}
		return es, map[string]string{"arch": "basic[1,1,1,1]"}
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name   string
		mutate func([]safetensors.Entry, map[string]string) []safetensors.Entry
		raw    []byte
		want   string
	}{
		{name: "missing tensor", mutate: func(es []safetensors.Entry, _ map[string]string) []safetensors.Entry {
			for i, e := range es {
				if e.Name == "layer2.0.bn1.running_var" {
					return append(es[:i:i], es[i+1:]...)
				}
			}
			return es
		}, want: `tensor "layer2.0.bn1.running_var" missing`},
		{name: "wrong shape", mutate: func(es []safetensors.Entry, _ map[string]string) []safetensors.Entry {
			for i, e := range es {
				if e.Name == "layer3.0.conv2.weight" {
					es[i].Shape = []int{256, 256, 9, 1}
				}
			}
			return es
		}, want: `tensor "layer3.0.conv2.weight" has shape [256 256 9 1], want [256 256 3 3]`},
		{name: "unexpected tensor", mutate: func(es []safetensors.Entry, _ map[string]string) []safetensors.Entry {
			return append(es, safetensors.Entry{Name: "layer1.1.conv1.weight", Shape: []int{1}, F32: []float32{1}})
		}, want: `unexpected tensor "layer1.1.conv1.weight"`},
		{name: "arch mismatch", mutate: func(es []safetensors.Entry, md map[string]string) []safetensors.Entry {
			md["arch"] = "bottleneck[1,1,1,1]"
			return es
		}, want: `tensor "layer1.0.conv3.weight" missing`},
		{name: "no arch", mutate: func(es []safetensors.Entry, md map[string]string) []safetensors.Entry {
			delete(md, "arch")
			return es
		}, want: `no "arch"`},
		{name: "bad threshold", mutate: func(es []safetensors.Entry, md map[string]string) []safetensors.Entry {
			md["threshold"] = "1.5"
			return es
		}, want: `threshold="1.5"`},
		{name: "truncated", raw: []byte{200, 0, 0, 0, 0, 0, 0, 0, '{'}, want: "header length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if tc.raw != nil {
				if err := os.WriteFile(path, tc.raw, 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				es, md := base()
				es = tc.mutate(es, md)
				if _, err := safetensors.Write(path, es, md); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestPredictBatchingAndConcurrency(t *testing.T) {
	m, _ := New("basic[1,1,1,1]", 11)
	m.info.InputSize = 32
	n := maxInferBatch + 3
	x := randImages(2, n, 32)
	all, err := m.Predict(context.Background(), x, n)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := m.Predict(context.Background(), x[i*3*32*32:(i+1)*3*32*32], 1)
			if err == nil && math.Abs(float64(p[0]-all[i])) > 1e-6 {
				err = errorf("image %d alone %g, in batch %g", i, p[0], all[i])
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if _, err := m.Predict(context.Background(), x[:10], 1); err == nil {
		t.Error("short input accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Predict(ctx, x, n); err == nil {
		t.Error("cancelled context ignored")
	}
}

// TestGrayInputFold checks the folded one-channel stem (used when the three
// input channels are one gray image normalised per channel) against the
// plain three-channel graph, including the zero-padded border.
func TestGrayInputFold(t *testing.T) {
	for _, arch := range []string{"basic[1,1,1,1]", "bottleneck[1,1,1,1]"} {
		r := rand.New(rand.NewSource(4))
		m := modelWithBNStats(arch, 13, r)
		const n, size = 3, 48
		x := make([]float32, n*3*size*size)
		grayInputs(r, x, n, size, m.info.Mean, m.info.Std)
		if m.grayPlanes(x, n, size) == nil {
			t.Fatalf("%s: gray input not recognised", arch)
		}
		got, err := m.Logits(context.Background(), x, n, size)
		if err != nil {
			t.Fatal(err)
		}
		gr, err := m.net.inferenceGraph(n, size, nil, PrecisionF32, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := gr.run(x, nil); err != nil {
			t.Fatal(err)
		}
		want, _ := gr.logitValues()
		for i := range want {
			if !closeRel(float64(got[i]), float64(want[i]), 1e-4, 1e-5) {
				t.Errorf("%s image %d: folded %g, three-channel %g", arch, i, got[i], want[i])
			}
		}
		x[5] += 0.01 // no longer a replicated gray image
		if m.grayPlanes(x, n, size) != nil {
			t.Errorf("%s: perturbed input taken for gray", arch)
		}
	}
}

// TestHalfRoundTrip: SaveF16 stores every weight rounded to the nearest
// binary16 and Load reads exactly that back (the conversions themselves
// are checked in internal/safetensors).
func TestHalfRoundTrip(t *testing.T) {
	m, _ := New("basic[1,1,1,1]", 2)
	path := filepath.Join(t.TempDir(), "h.safetensors")
	if err := m.SaveF16(path, ModelInfo{InputSize: 32}); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range m.net.params {
		for j, v := range p.data {
			if want := safetensors.HalfToFloat(safetensors.FloatToHalf(v)); l.net.params[i].data[j] != want {
				t.Fatalf("%s[%d] = %g, want %g", p.name, j, l.net.params[i].data[j], want)
			}
		}
	}
}

func TestEvaluateDataset(t *testing.T) {
	m, _ := New("basic[1,1,1,1]", 3)
	m.info.InputSize = 32
	ds := sliceDataset{x: randImages(6, 5, 32), labels: []float32{0, 1, 0, 1, 1}, per: 3 * 32 * 32}
	met, probs, err := m.EvaluateDataset(context.Background(), ds, 2, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := m.Predict(context.Background(), ds.x, 5)
	for i := range want {
		// batches of 2 vs 5 group the GEMMs differently: rounding only
		if math.Abs(float64(probs[i]-want[i])) > 1e-6 {
			t.Errorf("prob %d: %g vs %g", i, probs[i], want[i])
		}
	}
	if met.N != 5 || met.Positives != 3 {
		t.Errorf("metrics %+v", met)
	}
}
