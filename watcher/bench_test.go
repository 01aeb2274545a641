package watcher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCheckTick measures one settle tick over a full table of emitted,
// unclaimed files: the steady cost of the bound, paid every Settle/4.
func BenchmarkCheckTick(b *testing.B) {
	w, err := New(Config{Dir: b.TempDir()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < DefaultMaxTracked; i++ {
		w.entries[fmt.Sprintf("/inbox/%d", i)] = &entry{state: inFlight, emitted: now}
	}
	w.nInFlight = DefaultMaxTracked
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.check(now)
	}
}

// BenchmarkRescan measures a periodic walk of an inbox holding 2,000 files
// in 20 folders, all already tracked (the steady state between bursts).
func BenchmarkRescan(b *testing.B) {
	dir := b.TempDir()
	for i := 0; i < 2000; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%04d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, 16), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	w, err := New(Config{Dir: dir}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := w.rescan(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := w.rescan(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
