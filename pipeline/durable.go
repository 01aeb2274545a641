package pipeline

import (
	"path/filepath"
	"sync"

	"github.com/fracd/fracd/internal/fsutil"
)

// durableDirs remembers the folders whose entry in their parent this run
// has fsync'd, so that the archive syncs a study's and a series' parent
// once, not for every instance. A folder is only added after the sync that
// followed its creation (MkdirAll comes first), so a later instance in it
// needs none; a new run starts empty and syncs each folder once again,
// which covers folders an earlier run created but crashed before syncing.
type durableDirs struct {
	mu   sync.Mutex
	done map[string]bool
	sync func(dir string) error // fsutil.SyncDir; tests count the calls
}

// maxDurableDirs bounds the memory: past it the set starts over, which
// costs only syncs that were not needed.
const maxDurableDirs = 1 << 16

// syncEntry makes dir's entry in its parent durable, unless this run has
// and force is false (force: the folder was just created, perhaps again
// after someone removed it).
func (d *durableDirs) syncEntry(dir string, force bool) error {
	d.mu.Lock()
	known := d.done[dir]
	d.mu.Unlock()
	if known && !force {
		return nil
	}
	syncDir := d.sync
	if syncDir == nil {
		syncDir = fsutil.SyncDir
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done == nil || len(d.done) >= maxDurableDirs {
		d.done = map[string]bool{}
	}
	d.done[dir] = true
	return nil
}
