package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/internal/fsutil"
	"github.com/fracd/fracd/store"
	"github.com/suyashkumar/dicom"
)

// Kinds of result object.
const (
	KindSR = "sr"
	KindSC = "sc"
)

// Config configures an Outbox.
type Config struct {
	Dir         string // spool/outbox: identified objects, 0700/0600
	Destination Destination
	// MaxAttempts sends before a delivery is failed (default 8).
	MaxAttempts int
	// Backoff is the wait after the first failed attempt; it doubles after
	// each further one, up to MaxBackoff (defaults 30s and 1h).
	Backoff, MaxBackoff time.Duration
	Actor               string // audit actor, default "fracd"
}

// Outbox queues result objects in Dir and sends them, one worker, in the
// order they became due. See the package documentation for the guarantee.
type Outbox struct {
	cfg  Config
	db   *store.DB
	b    *Builder
	send Sender
	log  *slog.Logger
	poke chan struct{}
	now  func() time.Time
}

// New creates Dir (0700) and returns an Outbox.
func New(cfg Config, db *store.DB, b *Builder, send Sender, log *slog.Logger) (*Outbox, error) {
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 8
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 30 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Hour
	}
	if cfg.Actor == "" {
		cfg.Actor = "fracd"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("delivery: create outbox: %w", err)
	}
	// MkdirAll leaves an existing folder's mode alone.
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("delivery: outbox mode: %w", err)
	}
	return &Outbox{cfg: cfg, db: db, b: b, send: send, log: log, poke: make(chan struct{}, 1), now: time.Now}, nil
}

var uidRe = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// path is the object's file: named by the de-identified UID, so the name
// itself reveals nothing.
func (o *Outbox) path(sop, kind string) string {
	return filepath.Join(o.cfg.Dir, sop+"."+kind+".dcm")
}

// Enqueue makes the result's SR and secondary capture, writes them into the
// outbox (fsync'd, 0600) and queues their delivery. It is idempotent: an
// object already queued (in any state) is left alone. A result whose objects
// cannot be made (a problem of the input) is recorded as failed, not retried.
func (o *Outbox) Enqueue(ctx context.Context, r Result) error {
	if len(r.SOPInstanceUID) > 64 || !uidRe.MatchString(r.SOPInstanceUID) {
		return fmt.Errorf("delivery: %q is not a de-identified UID", r.SOPInstanceUID)
	}
	var missing []string
	for _, kind := range []string{KindSR, KindSC} {
		_, err := o.db.Delivery(ctx, r.SOPInstanceUID, kind)
		if errors.Is(err, store.ErrNotFound) {
			missing = append(missing, kind)
		} else if err != nil {
			return fmt.Errorf("delivery: %w", err)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sr, sc, err := o.b.Build(r)
	if err != nil {
		o.log.Error("delivery: result objects not made", "sop_instance_uid", r.SOPInstanceUID, "error", err)
		for _, kind := range missing {
			if err := o.queue(ctx, r, kind, store.DeliveryFailed, ReasonInternal); err != nil {
				return err
			}
		}
		return nil
	}
	objs := map[string]dicom.Dataset{KindSR: sr, KindSC: sc}
	for _, kind := range missing {
		// The file first, then the row: a row always has its file.
		if err := dicomio.WriteFile(o.path(r.SOPInstanceUID, kind), objs[kind]); err != nil {
			return fmt.Errorf("delivery: write %s of %s: %w", kind, r.SOPInstanceUID, err)
		}
		if err := o.queue(ctx, r, kind, store.DeliveryPending, ""); err != nil {
			return err
		}
	}
	o.log.Info("delivery queued", "sop_instance_uid", r.SOPInstanceUID, "objects", missing, "category", string(r.Category()))
	select {
	case o.poke <- struct{}{}:
	default:
	}
	return nil
}

func (o *Outbox) queue(ctx context.Context, r Result, kind, state, reason string) error {
	err := o.db.Update(ctx, func(tx *store.Tx) error {
		if err := tx.InsertDelivery(ctx, store.Delivery{SOPInstanceUID: r.SOPInstanceUID, Kind: kind,
			InstanceSHA256: r.InstanceSHA256, Destination: o.cfg.Destination.String(), State: state, LastError: reason}); err != nil {
			return err
		}
		action, detail := store.ActionDeliveryQueued, map[string]any{"sop_instance_uid": r.SOPInstanceUID, "kind": kind,
			"destination": o.cfg.Destination.String(), "category": string(r.Category())}
		if state == store.DeliveryFailed {
			action, detail["reason"] = store.ActionDeliveryFailed, reason
		}
		_, err := tx.AppendAudit(ctx, o.cfg.Actor, action, r.InstanceSHA256, detail)
		return err
	})
	if err != nil {
		return fmt.Errorf("delivery: queue %s of %s: %w", kind, r.SOPInstanceUID, err)
	}
	return nil
}

// Recover runs at start-up, before Run sends anything: a delivery left in
// "sending" was interrupted by a crash and goes back to pending (it may have
// reached the destination: at-least-once); the file of a delivered one that
// a crash left behind is removed.
func (o *Outbox) Recover(ctx context.Context) error {
	ds, err := o.db.Deliveries(ctx, store.DeliverySending, store.DeliveryDelivered)
	if err != nil {
		return fmt.Errorf("delivery: recover: %w", err)
	}
	// Temporary files of a write a crash interrupted (their rows were never
	// inserted; the pipeline calls Enqueue again).
	if tmps, err := filepath.Glob(filepath.Join(o.cfg.Dir, ".dicomio-*.tmp")); err == nil {
		for _, t := range tmps {
			os.Remove(t)
		}
	}
	for _, d := range ds {
		switch d.State {
		case store.DeliveryDelivered:
			if err := o.remove(d); err != nil {
				return err
			}
		case store.DeliverySending:
			o.log.Warn("delivery interrupted by a restart; sending again (the destination may already have it)",
				"sop_instance_uid", d.SOPInstanceUID, "kind", d.Kind, "attempts", d.Attempts)
			d.State, d.LastError, d.NextAttemptAt = store.DeliveryPending, ReasonInterrupted, o.now()
			if err := o.update(ctx, d); err != nil {
				return err
			}
		}
	}
	return nil
}

func (o *Outbox) update(ctx context.Context, d store.Delivery) error {
	if err := o.db.Update(ctx, func(tx *store.Tx) error { return tx.UpdateDelivery(ctx, d) }); err != nil {
		return fmt.Errorf("delivery: %w", err)
	}
	return nil
}

func (o *Outbox) remove(d store.Delivery) error {
	if err := os.Remove(o.path(d.SOPInstanceUID, d.Kind)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("delivery: remove sent %s of %s: %w", d.Kind, d.SOPInstanceUID, err)
	}
	return fsutil.SyncDir(o.cfg.Dir)
}

// Run recovers, then sends due deliveries until ctx ends. It never blocks
// the pipeline: Enqueue only writes files and rows.
func (o *Outbox) Run(ctx context.Context) error {
	if err := o.Recover(ctx); err != nil {
		return err
	}
	for {
		next, err := o.sendDue(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := 5 * time.Second
		if err != nil {
			o.log.Error("delivery worker", "error", err)
		} else if !next.IsZero() {
			wait = min(wait, max(next.Sub(o.now()), 10*time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-o.poke:
		case <-t.C:
		}
		t.Stop()
	}
}

// sendDue sends every pending delivery whose time has come and returns when
// the next one is due (zero if none is pending).
func (o *Outbox) sendDue(ctx context.Context) (time.Time, error) {
	for {
		ds, err := o.db.Deliveries(ctx, store.DeliveryPending)
		if err != nil {
			return time.Time{}, err
		}
		if len(ds) == 0 {
			return time.Time{}, nil
		}
		d := ds[0] // oldest due first
		if d.NextAttemptAt.After(o.now()) {
			return d.NextAttemptAt, nil
		}
		if err := o.sendOne(ctx, d); err != nil || ctx.Err() != nil {
			return time.Time{}, err
		}
	}
}

func (o *Outbox) backoff(attempts int) time.Duration {
	d := o.cfg.Backoff
	for i := 1; i < attempts && d < o.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, o.cfg.MaxBackoff)
}

// sendOne takes one delivery through sending to delivered, pending (retry
// later) or failed.
func (o *Outbox) sendOne(ctx context.Context, d store.Delivery) error {
	path := o.path(d.SOPInstanceUID, d.Kind)
	if _, err := os.Stat(path); err != nil {
		return o.fail(ctx, d, ReasonFileMissing)
	}
	// Recorded before storescu starts: a crash from here on is seen at the
	// next start as an interrupted send.
	// The destination configured now, even if the row was queued for another.
	d.State, d.Attempts, d.Destination = store.DeliverySending, d.Attempts+1, o.cfg.Destination.String()
	if err := o.update(ctx, d); err != nil {
		return err
	}
	err := o.send.Send(ctx, o.cfg.Destination, path)
	// Bookkeeping must finish even when shutdown cancelled the send.
	bg := context.WithoutCancel(ctx)
	if err == nil {
		d.State, d.LastError, d.DeliveredAt = store.DeliveryDelivered, "", o.now()
		err := o.db.Update(bg, func(tx *store.Tx) error {
			if err := tx.UpdateDelivery(bg, d); err != nil {
				return err
			}
			_, err := tx.AppendAudit(bg, o.cfg.Actor, store.ActionDeliveryDelivered, d.InstanceSHA256, map[string]any{
				"sop_instance_uid": d.SOPInstanceUID, "kind": d.Kind, "destination": d.Destination, "attempts": d.Attempts})
			return err
		})
		if err != nil {
			return fmt.Errorf("delivery: record delivered %s of %s: %w", d.Kind, d.SOPInstanceUID, err)
		}
		o.log.Info("delivered", "sop_instance_uid", d.SOPInstanceUID, "kind", d.Kind, "destination", d.Destination, "attempts", d.Attempts)
		// Only now, with the acknowledgement recorded, does the file go.
		return o.remove(d)
	}
	reason := ReasonOf(err)
	if ctx.Err() != nil {
		// Shutdown, not the destination's fault: try again at next start
		// without spending an attempt.
		d.State, d.Attempts, d.LastError, d.NextAttemptAt = store.DeliveryPending, d.Attempts-1, ReasonInterrupted, o.now()
		return o.update(bg, d)
	}
	if d.Attempts >= o.cfg.MaxAttempts {
		return o.fail(bg, d, reason)
	}
	wait := o.backoff(d.Attempts)
	d.State, d.LastError, d.NextAttemptAt = store.DeliveryPending, reason, o.now().Add(wait)
	o.log.Warn("delivery failed; will retry", "sop_instance_uid", d.SOPInstanceUID, "kind", d.Kind,
		"destination", d.Destination, "reason", reason, "attempts", d.Attempts, "retry_in", wait.String())
	return o.update(bg, d)
}

// fail ends a delivery for good. The file stays in the outbox (0600) so an
// admin can still send it by hand; nothing is lost.
func (o *Outbox) fail(ctx context.Context, d store.Delivery, reason string) error {
	d.State, d.LastError = store.DeliveryFailed, reason
	err := o.db.Update(ctx, func(tx *store.Tx) error {
		if err := tx.UpdateDelivery(ctx, d); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, o.cfg.Actor, store.ActionDeliveryFailed, d.InstanceSHA256, map[string]any{
			"sop_instance_uid": d.SOPInstanceUID, "kind": d.Kind, "destination": d.Destination, "attempts": d.Attempts, "reason": reason})
		return err
	})
	if err != nil {
		return fmt.Errorf("delivery: record failed %s of %s: %w", d.Kind, d.SOPInstanceUID, err)
	}
	o.log.Error("delivery failed for good", "sop_instance_uid", d.SOPInstanceUID, "kind", d.Kind,
		"destination", d.Destination, "reason", reason, "attempts", d.Attempts)
	return nil
}
