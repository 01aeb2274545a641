package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fracd/fracd/store"
)

// writeTrainSet writes n PNGs (every other one with a bright bar, the
// positive class) plus one truncated PNG, and a generic label CSV with
// every third row in val.
func writeTrainSet(t *testing.T, dir string, n int) (images, labels string) {
	t.Helper()
	rng := rand.New(rand.NewSource(3))
	images = filepath.Join(dir, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("path,fractured,split\n")
	for i := 0; i <= n; i++ {
		img := image.NewGray(image.Rect(0, 0, 90, 70))
		for p := range img.Pix {
			img.Pix[p] = uint8(50 + rng.Intn(50))
		}
		pos := i%2 == 1
		if pos {
			for y := 10; y < 60; y++ {
				for x := 40; x < 48; x++ {
					img.SetGray(x, y, color.Gray{Y: 250})
				}
			}
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		data := b.Bytes()
		if i == n {
			data, pos = data[:len(data)/3], false // truncated: must be skipped
		}
		name := fmt.Sprintf("x%02d.png", i)
		if err := os.WriteFile(filepath.Join(images, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		split := "train"
		if i%3 == 0 {
			split = "val"
		}
		fmt.Fprintf(&csv, "%s,%d,%s\n", name, map[bool]int{true: 1}[pos], split)
	}
	labels = filepath.Join(dir, "labels.csv")
	if err := os.WriteFile(labels, []byte(csv.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return images, labels
}

func TestTrainCommandRegistersAndAudits(t *testing.T) {
	dir := t.TempDir()
	images, labels := writeTrainSet(t, dir, 12)
	db, models := filepath.Join(dir, "fracd.db"), filepath.Join(dir, "models")
	conf := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("paths:\n  db: %s\n  models: %s\n", db, models)), 0o644); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	base := []string{"-c", conf, "train", "--images", images, "--labels", labels, "--run-dir", run,
		"--arch", "basic[1,1,1,1]", "--batch", "4", "--epochs", "1"}

	if _, _, err := runFracd(t, append(base, "--activate")...); err == nil || !strings.Contains(err.Error(), "--register") {
		t.Fatalf("--activate without --register: err %v", err)
	}
	out, _, err := runFracd(t, append(base, "--register", "--activate")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"skipped 1 of 13 images: map[decode:1]", "best epoch 1", "registered fracd-run-", ", active"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, _, err = runFracd(t, "-c", conf, "model", "list", "--format", "json")
	if err != nil {
		t.Fatal(err)
	}
	var ms []store.Model
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(ms) != 1 || !ms[0].Active || ms[0].TrainingRunID == "" || ms[0].Arch != "basic[1,1,1,1]" ||
		ms[0].Path != filepath.Join(models, ms[0].WeightsSHA256+".safetensors") {
		t.Fatalf("registry %+v", ms)
	}
	if _, err := os.Stat(ms[0].Path); err != nil {
		t.Errorf("registered weights not copied: %v", err)
	}

	sdb, err := store.OpenReadOnly(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer sdb.Close()
	var status string
	if err := sdb.SQL().QueryRow(`SELECT status FROM training_runs WHERE id = ?`, ms[0].TrainingRunID).Scan(&status); err != nil || status != "finished" {
		t.Errorf("training_runs status %q, err %v", status, err)
	}
	audit, err := sdb.ListAudit(context.Background(), store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range audit {
		actions = append(actions, a.Action)
	}
	want := "training.run training.run training.run model.registered model.promoted"
	if got := strings.Join(actions, " "); got != want {
		t.Errorf("audit actions %q, want %q", got, want)
	}
	if out, _, err := runFracd(t, "-c", conf, "audit", "verify"); err != nil {
		t.Errorf("audit verify: %v\n%s", err, out)
	}

	// The finished run directory is not silently reused; --resume extends it.
	if _, _, err := runFracd(t, base...); err == nil || !strings.Contains(err.Error(), "--resume") {
		t.Errorf("second run into the same directory: err %v", err)
	}
	out, _, err = runFracd(t, append(base[:len(base)-1], "2", "--resume")...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "run "+ms[0].TrainingRunID+": 2 epochs") {
		t.Errorf("resumed run output:\n%s", out)
	}
	if out, _, err := runFracd(t, "-c", conf, "audit", "verify"); err != nil {
		t.Errorf("audit verify after resume: %v\n%s", err, out)
	}
}
