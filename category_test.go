package fracd

import "testing"

func TestCategorize(t *testing.T) {
	cases := []struct {
		name string
		th   Thresholds
		p    float64
		want Category
	}{
		{"two thresholds, above definite", Thresholds{0.3, 0.7}, 0.9, CategoryFracture},
		{"two thresholds, at definite", Thresholds{0.3, 0.7}, 0.7, CategoryFracture},
		{"two thresholds, between", Thresholds{0.3, 0.7}, 0.5, CategoryDoubt},
		{"two thresholds, at suspected", Thresholds{0.3, 0.7}, 0.3, CategoryDoubt},
		{"two thresholds, below", Thresholds{0.3, 0.7}, 0.29, CategoryNoFracture},
		{"single threshold, at it", Single(0.5), 0.5, CategoryFracture},
		{"single threshold, just below", Single(0.5), 0.4999, CategoryNoFracture},
		{"single threshold 0", Single(0), 0, CategoryFracture},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.th.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := c.th.Categorize(c.p); got != c.want {
				t.Errorf("Categorize(%g) with %+v = %s, want %s", c.p, c.th, got, c.want)
			}
		})
	}
}

func TestThresholdsValidate(t *testing.T) {
	for _, th := range []Thresholds{{0.7, 0.3}, {-0.1, 0.5}, {0.5, 1.1}} {
		if err := th.Validate(); err == nil {
			t.Errorf("%+v: want an error", th)
		}
	}
}
