package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

func TestDurableDirsSyncEachParentOnce(t *testing.T) {
	var synced []string
	fail := false
	d := &durableDirs{sync: func(dir string) error {
		if fail {
			return errors.New("disk gone")
		}
		synced = append(synced, dir)
		return nil
	}}
	steps := []struct {
		dir   string
		force bool
		want  []string // the parents synced by this call
	}{
		{"/a/s1/r1", false, []string{"/a/s1"}},
		{"/a/s1", false, []string{"/a"}},
		{"/a/s1/r1", false, nil}, // known: a second instance of the series
		{"/a/s1", false, nil},
		{"/a/s1/r2", false, []string{"/a/s1"}}, // a new series of a known study
		{"/a/s1/r1", true, []string{"/a/s1"}},  // the folder was created again
	}
	for i, s := range steps {
		synced = nil
		if err := d.syncEntry(s.dir, s.force); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(synced, s.want) {
			t.Errorf("step %d syncEntry(%s, %v): synced %v, want %v", i, s.dir, s.force, synced, s.want)
		}
	}
	// A failed sync is not remembered: the next call tries again.
	fail = true
	if err := d.syncEntry("/a/s2/r1", false); err == nil {
		t.Fatal("sync error not returned")
	}
	fail, synced = false, nil
	if err := d.syncEntry("/a/s2/r1", false); err != nil || !slices.Equal(synced, []string{"/a/s2"}) {
		t.Errorf("after a failed sync: err %v, synced %v, want [/a/s2]", err, synced)
	}
	// Past the bound the set starts over rather than growing.
	for i := range maxDurableDirs + 10 {
		if err := d.syncEntry(fmt.Sprintf("/b/%d/r", i), false); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(d.done); n > maxDurableDirs {
		t.Errorf("%d folders remembered, bound %d", n, maxDurableDirs)
	}
}
