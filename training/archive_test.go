package training

import (
	"fmt"
	"math"
	"testing"
)

func TestAssignPatients(t *testing.T) {
	pos := map[string]bool{}
	for i := 0; i < 300; i++ {
		pos[fmt.Sprintf("p%03d", i)] = i%5 == 0 // 60 positive patients
	}
	a := assignPatients(pos, nil, 7)
	if len(a) != 300 {
		t.Fatalf("%d assigned, want 300", len(a))
	}
	// Stratified: each class within one patient of 70/20/10.
	for _, class := range []bool{false, true} {
		n, c := 0, map[string]int{}
		for k, s := range a {
			if pos[k] == class {
				n++
				c[s]++
			}
		}
		for _, tg := range splitTargets {
			if math.Abs(float64(c[tg.name])-tg.share*float64(n)) > 1 {
				t.Errorf("class %v: %d of %d in %s, want about %.0f", class, c[tg.name], n, tg.name, tg.share*float64(n))
			}
		}
	}
	// Seeded and deterministic; another seed gives another assignment.
	b := assignPatients(pos, nil, 7)
	other := assignPatients(pos, nil, 8)
	same, differ := true, false
	for k := range a {
		same = same && a[k] == b[k]
		differ = differ || a[k] != other[k]
	}
	if !same || !differ {
		t.Errorf("same seed identical: %v, other seed differs: %v", same, differ)
	}
	// Known patients keep their split and are not returned; new ones fill
	// the shares with the known ones counted.
	known := map[string]string{}
	for k, s := range a {
		known[k] = s
	}
	for i := 300; i < 330; i++ {
		pos[fmt.Sprintf("p%03d", i)] = false
	}
	fresh := assignPatients(pos, known, 7)
	if len(fresh) != 30 {
		t.Fatalf("%d newly assigned, want the 30 new patients", len(fresh))
	}
	for k := range fresh {
		if _, ok := known[k]; ok {
			t.Errorf("known patient %s reassigned", k)
		}
	}
}
