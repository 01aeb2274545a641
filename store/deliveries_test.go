package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDeliveries(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "fracd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sha := strings.Repeat("d", 64)
	err = db.Update(ctx, func(tx *Tx) error {
		if err := tx.InsertInstance(ctx, Instance{SHA256: sha, State: StateDone, StudyUID: "2.25.5", SOPInstanceUID: "2.25.6"}); err != nil {
			return err
		}
		for _, k := range []string{"sr", "sc"} {
			if err := tx.InsertDelivery(ctx, Delivery{SOPInstanceUID: "2.25.6", Kind: k, InstanceSHA256: sha, Destination: "PACS@127.0.0.1:104"}); err != nil {
				return err
			}
		}
		return tx.AddStudyAccession(ctx, "key1", "2.25.5")
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		d       Delivery
		wantErr bool
	}{
		{"retry later", Delivery{SOPInstanceUID: "2.25.6", Kind: "sr", State: DeliveryPending, Attempts: 1, LastError: "unreachable", NextAttemptAt: time.Now().Add(time.Minute)}, false},
		{"delivered", Delivery{SOPInstanceUID: "2.25.6", Kind: "sc", State: DeliveryDelivered, Attempts: 1, DeliveredAt: time.Now()}, false},
		{"reason outside the vocabulary", Delivery{SOPInstanceUID: "2.25.6", Kind: "sr", State: DeliveryFailed, LastError: "Fakename^Testpatient refused"}, true},
		{"unknown state", Delivery{SOPInstanceUID: "2.25.6", Kind: "sr", State: "lost"}, true},
		{"no such delivery", Delivery{SOPInstanceUID: "2.25.9", Kind: "sr", State: DeliveryPending}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := db.Update(ctx, func(tx *Tx) error { return tx.UpdateDelivery(ctx, c.d) })
			if (err != nil) != c.wantErr {
				t.Fatalf("err %v, want error %v", err, c.wantErr)
			}
		})
	}
	sr, err := db.Delivery(ctx, "2.25.6", "sr")
	if err != nil || sr.State != DeliveryPending || sr.LastError != "unreachable" || sr.Attempts != 1 {
		t.Fatalf("sr %+v, %v", sr, err)
	}
	if ds, _ := db.Deliveries(ctx, DeliveryDelivered); len(ds) != 1 || ds[0].Kind != "sc" || ds[0].DeliveredAt.IsZero() {
		t.Fatalf("delivered %+v", ds)
	}
	if err := db.Update(ctx, func(tx *Tx) error { return tx.AddStudyAccession(ctx, "key1", "2.25.5") }); err != nil {
		t.Fatalf("adding an accession twice: %v", err)
	}
	if s, _ := db.StudiesByAccession(ctx, "key1"); len(s) != 1 || s[0] != "2.25.5" {
		t.Fatalf("studies %v", s)
	}
	if r, err := db.ResultsForStudies(ctx, []string{"2.25.5"}); err != nil || len(r) != 0 {
		t.Fatalf("results %v %v (no prediction yet)", r, err)
	}
}
