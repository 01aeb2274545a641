package classifier

import (
	"errors"
	"fmt"
)

// Average returns a model whose every weight and BatchNorm running
// statistic is the mean of the models' (a "model soup"): models fine-tuned
// from one starting point usually lie in one basin of the loss, where
// their average often generalises as well as their ensemble does, at the
// cost of a single network. The models must share the architecture; the
// result takes the first model's metadata (set the rest when saving).
func Average(models ...*Model) (*Model, error) {
	if len(models) == 0 {
		return nil, errors.New("classifier: average: no model")
	}
	arch := models[0].net.arch.Name
	out, err := New(arch, 0)
	if err != nil {
		return nil, err
	}
	for _, m := range models[1:] {
		if m.net.arch.Name != arch {
			return nil, fmt.Errorf("classifier: average: %s and %s differ", arch, m.net.arch.Name)
		}
	}
	k := float64(len(models))
	for i, p := range out.net.params {
		if p.kind == kindBNTracked {
			p.tracked = models[0].net.params[i].tracked
			continue
		}
		for j := range p.data {
			var s float64
			for _, m := range models {
				s += float64(m.net.params[i].data[j])
			}
			p.data[j] = float32(s / k)
		}
	}
	out.info = models[0].Info()
	out.info.WeightsSHA256 = ""
	out.version++
	return out, nil
}
