package classifier

import (
	"fmt"
	"strconv"
	"strings"
)

// Arch describes a torchvision-style ResNet with a single output logit.
type Arch struct {
	Name       string // canonical name: resnet18 … resnet152, basic[a,b,c,d], bottleneck[a,b,c,d]
	Bottleneck bool   // Bottleneck blocks (expansion 4, stride on the 3x3) instead of BasicBlock
	Blocks     [4]int // blocks per stage
}

var namedArchs = map[string]Arch{
	"resnet18":  {Name: "resnet18", Blocks: [4]int{2, 2, 2, 2}},
	"resnet34":  {Name: "resnet34", Blocks: [4]int{3, 4, 6, 3}},
	"resnet50":  {Name: "resnet50", Bottleneck: true, Blocks: [4]int{3, 4, 6, 3}},
	"resnet101": {Name: "resnet101", Bottleneck: true, Blocks: [4]int{3, 4, 23, 3}},
	"resnet152": {Name: "resnet152", Bottleneck: true, Blocks: [4]int{3, 8, 36, 3}},
}

// ParseArch accepts resnet18/34/50/101/152 and the small test variants
// "basic[a,b,c,d]" / "bottleneck[a,b,c,d]" (block counts per stage).
func ParseArch(s string) (Arch, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if a, ok := namedArchs[s]; ok {
		return a, nil
	}
	for _, kind := range []string{"basic", "bottleneck"} {
		if !strings.HasPrefix(s, kind+"[") || !strings.HasSuffix(s, "]") {
			continue
		}
		parts := strings.Split(s[len(kind)+1:len(s)-1], ",")
		if len(parts) != 4 {
			return Arch{}, fmt.Errorf("classifier: arch %q: want 4 block counts", s)
		}
		a := Arch{Bottleneck: kind == "bottleneck"}
		for i, p := range parts {
			n, err := strconv.Atoi(strings.TrimSpace(p))
			if err != nil || n < 1 || n > 64 {
				return Arch{}, fmt.Errorf("classifier: arch %q: bad block count %q", s, p)
			}
			a.Blocks[i] = n
		}
		a.Name = fmt.Sprintf("%s[%d,%d,%d,%d]", kind, a.Blocks[0], a.Blocks[1], a.Blocks[2], a.Blocks[3])
		// A named architecture keeps its familiar name.
		for _, na := range namedArchs {
			if na.Bottleneck == a.Bottleneck && na.Blocks == a.Blocks {
				a.Name = na.Name
			}
		}
		return a, nil
	}
	return Arch{}, fmt.Errorf("classifier: unknown arch %q (want resnet18/34/50/101/152, basic[a,b,c,d] or bottleneck[a,b,c,d])", s)
}

func (a Arch) expansion() int {
	if a.Bottleneck {
		return 4
	}
	return 1
}

// FeatureDim is the width of the pooled feature vector feeding fc.
func (a Arch) FeatureDim() int { return 512 * a.expansion() }

// convSpec is one convolution (no bias, as in torchvision).
type convSpec struct {
	w                    *param
	cin, cout, k, stride int
	pad                  int
}

// bnSpec is one BatchNorm2d with its running statistics.
type bnSpec struct {
	weight, bias, mean, variance, tracked *param
	c                                     int
}

type blockSpec struct {
	convs  []convSpec // 2 (basic) or 3 (bottleneck)
	bns    []bnSpec
	down   *convSpec // projection shortcut, nil for identity
	downBN *bnSpec
}

// netSpec is the resolved network: every layer bound to its parameters.
type netSpec struct {
	arch   Arch
	conv1  convSpec
	bn1    bnSpec
	blocks []blockSpec
	fcW    *param
	fcB    *param
	params []*param // in torchvision state_dict order
	byName map[string]*param
}

type paramKind int

const (
	kindConv paramKind = iota
	kindBNWeight
	kindBNBias
	kindBNMean
	kindBNVar
	kindBNTracked
	kindFCWeight
	kindFCBias
)

// param is one state_dict entry. num_batches_tracked keeps its int64 in
// tracked; every other entry is float32 data.
type param struct {
	name    string
	shape   []int
	kind    paramKind
	data    []float32
	tracked int64
}

// trainable reports whether the optimiser updates this entry.
func (p *param) trainable() bool {
	return p.kind != kindBNMean && p.kind != kindBNVar && p.kind != kindBNTracked
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// buildNet lays out the architecture exactly as torchvision builds it and
// allocates (zeroed) parameters.
func buildNet(a Arch) *netSpec {
	n := &netSpec{arch: a, byName: map[string]*param{}}
	add := func(name string, kind paramKind, shape ...int) *param {
		p := &param{name: name, shape: shape, kind: kind}
		if kind != kindBNTracked {
			p.data = make([]float32, numel(shape))
		}
		n.params = append(n.params, p)
		n.byName[name] = p
		return p
	}
	conv := func(name string, cin, cout, k, stride int) convSpec {
		return convSpec{w: add(name+".weight", kindConv, cout, cin, k, k), cin: cin, cout: cout, k: k, stride: stride, pad: k / 2}
	}
	bn := func(name string, c int) bnSpec {
		return bnSpec{
			weight:   add(name+".weight", kindBNWeight, c),
			bias:     add(name+".bias", kindBNBias, c),
			mean:     add(name+".running_mean", kindBNMean, c),
			variance: add(name+".running_var", kindBNVar, c),
			tracked:  add(name+".num_batches_tracked", kindBNTracked),
			c:        c,
		}
	}
	n.conv1 = conv("conv1", 3, 64, 7, 2)
	n.conv1.pad = 3
	n.bn1 = bn("bn1", 64)
	inplanes := 64
	exp := a.expansion()
	for stage := 0; stage < 4; stage++ {
		planes := 64 << stage
		stride := 1
		if stage > 0 {
			stride = 2
		}
		for b := 0; b < a.Blocks[stage]; b++ {
			pre := fmt.Sprintf("layer%d.%d.", stage+1, b)
			s := 1
			if b == 0 {
				s = stride
			}
			var blk blockSpec
			if a.Bottleneck {
				blk.convs = append(blk.convs, conv(pre+"conv1", inplanes, planes, 1, 1))
				blk.bns = append(blk.bns, bn(pre+"bn1", planes))
				blk.convs = append(blk.convs, conv(pre+"conv2", planes, planes, 3, s))
				blk.bns = append(blk.bns, bn(pre+"bn2", planes))
				blk.convs = append(blk.convs, conv(pre+"conv3", planes, planes*exp, 1, 1))
				blk.bns = append(blk.bns, bn(pre+"bn3", planes*exp))
			} else {
				blk.convs = append(blk.convs, conv(pre+"conv1", inplanes, planes, 3, s))
				blk.bns = append(blk.bns, bn(pre+"bn1", planes))
				blk.convs = append(blk.convs, conv(pre+"conv2", planes, planes, 3, 1))
				blk.bns = append(blk.bns, bn(pre+"bn2", planes))
			}
			if b == 0 && (s != 1 || inplanes != planes*exp) {
				d := conv(pre+"downsample.0", inplanes, planes*exp, 1, s)
				d.pad = 0
				dbn := bn(pre+"downsample.1", planes*exp)
				blk.down, blk.downBN = &d, &dbn
			}
			inplanes = planes * exp
			n.blocks = append(n.blocks, blk)
		}
	}
	n.fcW = add("fc.weight", kindFCWeight, 1, inplanes)
	n.fcB = add("fc.bias", kindFCBias, 1)
	return n
}

// ParamCount is the number of trainable scalars (what torchvision's
// sum(p.numel() for p in model.parameters()) reports).
func (n *netSpec) paramCount() int {
	c := 0
	for _, p := range n.params {
		if p.trainable() {
			c += len(p.data)
		}
	}
	return c
}
