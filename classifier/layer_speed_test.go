package classifier

import (
	"testing"
	"time"
)

// TestLayerSpeed (go test -run LayerSpeed -v -speed) compares, per ResNet-18
// 3x3 layer shape at batch 1, best-of-N times of im2col+GEMM vs Winograd.
func TestLayerSpeed(t *testing.T) {
	if !*speedFlag {
		t.Skip("timing only: pass -speed")
	}
	ws := &workspace{}
	var totI, totW time.Duration
	for _, s := range [][4]int{{64, 56, 64, 4}, {128, 28, 128, 3}, {256, 14, 256, 3}, {512, 7, 512, 3}} {
		g := newConvGeom(s[0], s[1], s[1], s[2], 3, 1, 1)
		x := randSlice(rnd(1), g.c*g.h*g.w)
		w := randSlice(rnd(2), g.cout*g.kdim)
		u := winogradWeights(w, g.cout, g.c)
		y := make([]float32, g.cout*g.ohw)
		b := make([]float32, g.cout)
		best := func(f func()) time.Duration {
			f()
			bt := time.Hour
			for i := 0; i < 15; i++ {
				t0 := time.Now()
				f()
				bt = min(bt, time.Since(t0))
			}
			return bt
		}
		ti := best(func() { convForward(ws, &g, 1, x, w, y, b, nil, true) })
		tw := best(func() { winogradForward(ws, &g, 1, x, u, y, b, nil, true) })
		t.Logf("%v: im2col %.3f ms, winograd %.3f ms", s, float64(ti.Microseconds())/1000, float64(tw.Microseconds())/1000)
		totI += ti * time.Duration(s[3])
		totW += tw * time.Duration(s[3])
	}
	t.Logf("resnet18 3x3 s1 layers: im2col %v, winograd %v", totI, totW)
}

func TestPoolSpeed(t *testing.T) {
	if !*speedFlag {
		t.Skip("timing only: pass -speed")
	}
	g := newConvGeom(64, 112, 112, 64, 3, 2, 1)
	x := randSlice(rnd(1), 64*112*112)
	y := make([]float32, 64*g.ohw)
	arg := make([]int32, 64*g.ohw)
	bt := time.Hour
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		for pl := 0; pl < 64; pl++ {
			maxPoolPlane(&g, x[pl*112*112:(pl+1)*112*112], y[pl*g.ohw:(pl+1)*g.ohw], arg[pl*g.ohw:(pl+1)*g.ohw])
		}
		bt = min(bt, time.Since(t0))
	}
	t.Logf("maxpool 64x112x112 single thread: %v", bt)
}

func TestPoolSpeedNonNeg(t *testing.T) {
	if !*speedFlag {
		t.Skip("timing only: pass -speed")
	}
	g := newConvGeom(64, 112, 112, 64, 3, 2, 1)
	x := randSlice(rnd(1), 64*112*112)
	for i := range x {
		x[i] = relu32(x[i])
	}
	y := make([]float32, 64*g.ohw)
	rows := make([]uint32, 112*g.ow)
	bt := time.Hour
	for i := 0; i < 20; i++ {
		t0 := time.Now()
		for pl := 0; pl < 64; pl++ {
			maxPoolNonNeg(&g, x[pl*112*112:(pl+1)*112*112], y[pl*g.ohw:(pl+1)*g.ohw], rows)
		}
		bt = min(bt, time.Since(t0))
	}
	t.Logf("maxpool (non-negative, separable) 64x112x112 single thread: %v", bt)
}
