package pipeline

import (
	"context"
	"testing"

	"github.com/fracd/fracd"
	"github.com/fracd/fracd/internal/testdicom"
	"github.com/fracd/fracd/store"
)

// TestFindingsRecorded: every result gets its category, and the model's
// boxes (at most 3) in the original image's pixels, stored with the
// prediction.
func TestFindingsRecorded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	spec := testdicom.Spec{Seed: 5, Rows: 300, Cols: 200}
	out := e.claimAndProcess(t, e.drop(t, "a.dcm", mustBytes(t, spec)))
	if out.State != store.StateDone {
		t.Fatalf("state %s (%s)", out.State, out.Reason)
	}
	want := fracd.CategoryNoFracture
	if out.Flagged {
		want = fracd.CategoryFracture
	}
	if out.Category != want {
		t.Errorf("category %q for probability %v at threshold %v; want %q", out.Category, out.Probability, out.Threshold, want)
	}
	if len(out.Boxes) > 3 {
		t.Fatalf("%d boxes, want at most 3", len(out.Boxes))
	}
	for i, b := range out.Boxes {
		if !(b.X0 >= 0 && b.X0 < b.X1 && b.X1 <= 200 && b.Y0 >= 0 && b.Y0 < b.Y1 && b.Y1 <= 300 && b.Score > 0 && b.Score <= out.Probability+1e-6) {
			t.Errorf("box %d %+v outside the 200x300 image or scored above the probability %v", i, b, out.Probability)
		}
	}
	rs, err := e.db.Results(ctx, store.ResultFilter{})
	if err != nil || len(rs) != 1 {
		t.Fatalf("%d results, %v", len(rs), err)
	}
	stored, err := e.db.PredictionBoxes(ctx, rs[0].PredictionID)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != len(out.Boxes) {
		t.Fatalf("stored %d boxes, outcome has %d", len(stored), len(out.Boxes))
	}
	for i := range stored {
		if stored[i] != out.Boxes[i] {
			t.Errorf("box %d stored %+v, outcome %+v", i, stored[i], out.Boxes[i])
		}
	}
	var cat string
	if err := e.db.SQL().QueryRow(`SELECT category FROM predictions WHERE id = ?`, rs[0].PredictionID).Scan(&cat); err != nil || cat != string(want) {
		t.Errorf("stored category %q, %v; want %q", cat, err, want)
	}
}
