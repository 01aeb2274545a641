package classifier

import (
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestLayerSpeed(t *testing.T) {
	if testing.Short() {
		t.Skip()
	}
	ws := &workspace{}
	var totW, totC time.Duration
	for _, s := range [][7]int{
		{3, 224, 64, 7, 2, 3, 1}, {64, 56, 64, 3, 1, 1, 4}, {64, 56, 128, 3, 2, 1, 1}, {128, 28, 128, 3, 1, 1, 3}, {64, 56, 128, 1, 2, 0, 1},
		{128, 28, 256, 3, 2, 1, 1}, {256, 14, 256, 3, 1, 1, 3}, {128, 28, 256, 1, 2, 0, 1},
		{256, 14, 512, 3, 2, 1, 1}, {512, 7, 512, 3, 1, 1, 3}, {256, 14, 512, 1, 2, 0, 1},
	} {
		g := newConvGeom(s[0], s[1], s[1], s[2], s[3], s[4], s[5])
		x := make([]float32, g.c*g.h*g.w)
		w := make([]float32, g.cout*g.kdim)
		y := make([]float32, g.cout*g.ohw)
		b := make([]float32, g.cout)
		convForward(ws, &g, 1, x, w, y, b, nil, true)
		const reps = 20
		w0, c0 := time.Now(), cpuTime()
		for i := 0; i < reps; i++ {
			convForward(ws, &g, 1, x, w, y, b, nil, true)
		}
		wall, cpu := time.Since(w0)/reps, (cpuTime()-c0)/reps
		fl := 2 * float64(g.cout*g.ohw*g.kdim)
		t.Logf("%v: wall %.3f ms cpu %.3f ms  %.0f GFLOP/s per cpu-second  x%d", s, float64(wall.Microseconds())/1000, float64(cpu.Microseconds())/1000, fl/cpu.Seconds()/1e9, s[6])
		totW += wall * time.Duration(s[6])
		totC += cpu * time.Duration(s[6])
	}
	t.Logf("total resnet18 convs: wall %v cpu %v", totW, totC)
}
