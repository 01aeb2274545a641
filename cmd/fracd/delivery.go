package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/delivery"
	"github.com/fracd/fracd/dicomio"
	"github.com/fracd/fracd/pipeline"
	"github.com/fracd/fracd/store"
	"github.com/suyashkumar/dicom/pkg/tag"
)

// Enabled reports whether results are sent to a PACS.
func (c DeliveryConfig) Enabled() bool { return strings.TrimSpace(c.Host) != "" }

// Destination is the PACS as delivery names it.
func (c DeliveryConfig) Destination() delivery.Destination {
	return delivery.Destination{AET: c.AET, Host: c.Host, Port: c.Port, CallingAET: c.CallingAET}
}

// validAET: 1-16 characters of the default repertoire, no backslash, not
// only spaces (PS3.5 AE).
func validAET(s string) bool {
	if len(s) == 0 || len(s) > 16 || strings.TrimSpace(s) == "" {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '\\' {
			return false
		}
	}
	return true
}

func (c DeliveryConfig) validate() []error {
	notAET := func(v string) string {
		return fmt.Sprintf("%q is not an AE title (1-16 printable ASCII characters, no backslash)", v)
	}
	errs := failures(check{!validAET(c.CallingAET), "delivery.calling_aet", notAET(c.CallingAET)})
	if !c.Enabled() {
		return errs
	}
	return append(errs, failures(
		check{!validAET(c.AET), "delivery.aet", notAET(c.AET)},
		check{strings.ContainsAny(c.Host, " \t/\\") || strings.HasPrefix(c.Host, "-"), "delivery.host",
			fmt.Sprintf("%q is not a host name or address", c.Host)},
		check{c.Port < 1 || c.Port > 65535, "delivery.port", fmt.Sprintf("%d is not a TCP port (1-65535)", c.Port)},
		check{c.MaxAttempts < 1, "delivery.max_attempts", "must be >= 1"},
		check{c.Backoff <= 0, "delivery.backoff", "must be a positive duration such as 30s"},
		check{c.MaxBackoff < c.Backoff, "delivery.max_backoff", "must be at least delivery.backoff"},
		check{c.Timeout <= 0, "delivery.timeout", "must be a positive duration such as 60s"},
	)...)
}

// resultSink adapts the pipeline's finished results: it records the study's
// accession pseudonym (for `fracd results --accession`) and, when delivery
// is on, queues the SR and secondary capture.
type resultSink struct {
	db     *store.DB
	secret []byte
	outbox *delivery.Outbox // nil: delivery off
}

func (s *resultSink) Finished(ctx context.Context, f pipeline.Finished) error {
	if acc := accessionOf(f.Original); acc != "" && f.StudyUID != "" {
		key := anonymize.PseudonymAccession(s.secret, acc)
		if err := s.db.Update(ctx, func(tx *store.Tx) error { return tx.AddStudyAccession(ctx, key, f.StudyUID) }); err != nil {
			return err
		}
	}
	if s.outbox == nil {
		return nil
	}
	return s.outbox.Enqueue(ctx, delivery.Result{
		InstanceSHA256: f.SHA256, SOPInstanceUID: f.SOPInstanceUID, ModelID: f.ModelID, ModelArch: f.ModelArch,
		ModelSHA256: f.ModelSHA256, PreprocessVersion: f.PreprocessVersion, Probability: f.Probability,
		Thresholds: f.Thresholds, Boxes: f.Boxes, Original: f.Original,
	})
}

// accessionOf reads Accession Number from the original, "" if none.
func accessionOf(data []byte) string {
	f, err := dicomio.Parse(data)
	if err != nil {
		return ""
	}
	e, err := f.Dataset.FindElementByTag(tag.AccessionNumber)
	if err != nil {
		return ""
	}
	v, ok := e.Value.GetValue().([]string)
	if !ok || len(v) == 0 {
		return ""
	}
	return strings.Trim(v[0], " \x00")
}

// startDelivery installs the result sink on the pipeline and, when delivery
// is configured, runs the outbox worker until ctx ends or stop is called;
// stop waits until it has stopped.
func (m *Main) startDelivery(ctx context.Context, db *store.DB, p *pipeline.Pipeline) (stop func(), err error) {
	c := m.Config
	secret, err := anonymize.LoadOrCreateSecret(c.Anonymize.SecretFile)
	if err != nil {
		return nil, err
	}
	sink := &resultSink{db: db, secret: secret}
	p.SetResultSink(sink)
	if !c.Delivery.Enabled() {
		return func() {}, nil
	}
	b := &delivery.Builder{
		UID:          func(key string) string { return anonymize.PseudonymUID(secret, "fracd/"+key) },
		Manufacturer: "fracd", SoftwareVersion: version,
	}
	ob, err := delivery.New(delivery.Config{
		Dir: filepath.Join(c.Paths.Spool, "outbox"), Destination: c.Delivery.Destination(),
		MaxAttempts: c.Delivery.MaxAttempts, Backoff: c.Delivery.Backoff, MaxBackoff: c.Delivery.MaxBackoff,
	}, db, b, delivery.StoreSCU{Timeout: c.Delivery.Timeout}, m.Logger)
	if err != nil {
		return nil, err
	}
	sink.outbox = ob
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := ob.Run(ctx); err != nil {
			m.Logger.Error("delivery worker stopped", "error", err)
		}
	}()
	m.Logger.Info("delivery on", "destination", c.Delivery.Destination().String())
	return func() { cancel(); wg.Wait() }, nil
}
