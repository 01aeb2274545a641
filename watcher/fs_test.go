//go:build linux

package watcher

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestSameFilesystem(t *testing.T) {
	tmp := t.TempDir()
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	for _, d := range []string{a, b} {
		writeFile(t, filepath.Join(d, "x"), 1)
	}
	cases := []struct {
		name    string
		a, b    string
		same    bool
		wantErr bool
	}{
		{"siblings", a, b, true, false},
		{"file and folder", filepath.Join(a, "x"), b, true, false},
		{"procfs", a, "/proc", false, false},
		{"missing", a, filepath.Join(tmp, "nope"), false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			same, err := SameFilesystem(c.a, c.b)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if same != c.same {
				t.Fatalf("same = %v, want %v", same, c.same)
			}
		})
	}
}

func TestFreeBytesMatchesDf(t *testing.T) {
	dir := t.TempDir()
	got, err := FreeBytes(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got == 0 {
		t.Fatal("no free bytes reported")
	}
	if _, err := FreeBytes(filepath.Join(dir, "nope")); err == nil {
		t.Fatal("no error for a missing path")
	}
	out, err := exec.Command("df", "-B1", "--output=avail", dir).Output()
	if err != nil {
		t.Skipf("df unavailable (%v); the non-zero check above stands", err)
	}
	lines := strings.Fields(string(out))
	want, err := strconv.ParseUint(lines[len(lines)-1], 10, 64)
	if err != nil {
		t.Fatalf("parse df output %q: %v", out, err)
	}
	// Others write to the same disk meanwhile: allow 1% or 256 MiB.
	diff := int64(got) - int64(want)
	if diff < 0 {
		diff = -diff
	}
	if tol := max(int64(want/100), 256<<20); diff > tol {
		t.Fatalf("FreeBytes = %d, df says %d", got, want)
	}
}

func TestOpenForWriting(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, 10)
	if open, known := openForWriting(p); open || !known {
		t.Skipf("file leases unavailable here (open=%v known=%v)", open, known)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if open, known := openForWriting(p); !open || !known {
		t.Errorf("while open for writing: open=%v known=%v", open, known)
	}
	r, err := os.Open(p) // readers do not count
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if open, known := openForWriting(p); open || !known {
		t.Errorf("after close: open=%v known=%v", open, known)
	}
}
