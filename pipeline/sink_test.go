package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fracd/fracd"
	"github.com/fracd/fracd/internal/testdicom"
)

type recordingSink struct {
	mu   sync.Mutex
	got  []Finished
	errs []error
}

func (s *recordingSink) Finished(ctx context.Context, f Finished) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, f)
	if len(s.errs) > 0 {
		err := s.errs[0]
		s.errs = s.errs[1:]
		return err
	}
	return nil
}

// TestResultSink: the sink sees each done result with the identified
// original; a failing sink leaves the file in spool/work, and the retry (as
// after a crash between commit and sink) hands the committed result over
// again; duplicates and rejections are not handed over.
func TestResultSink(t *testing.T) {
	cases := []struct {
		name      string
		errs      []error
		wantCalls int
	}{
		{"sink succeeds", nil, 1},
		{"sink fails once", []error{errors.New("disk full")}, 2},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			sink := &recordingSink{errs: c.errs}
			e.p.SetResultSink(sink)
			data := mustBytes(t, testdicom.Spec{Seed: 40 + i})
			job, err := e.p.Claim(ctx, e.drop(t, "a.dcm", data))
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.p.Process(ctx, job)
			if c.errs != nil {
				if err == nil {
					t.Fatal("a failing sink must fail the job")
				}
				if _, err := os.Stat(job.Path); err != nil {
					t.Fatalf("work file gone after a failing sink: %v", err)
				}
				jobs, _ := e.p.Pending()
				if len(jobs) != 1 {
					t.Fatalf("%d pending", len(jobs))
				}
				if _, err := e.p.Process(ctx, jobs[0]); err != nil {
					t.Fatal(err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			// The same bytes again and a non-DICOM file: no hand-over.
			e.claimAndProcess(t, e.drop(t, "again.dcm", data))
			e.claimAndProcess(t, e.drop(t, "bad.txt", []byte("not dicom")))
			if len(sink.got) != c.wantCalls {
				t.Fatalf("%d hand-overs, want %d", len(sink.got), c.wantCalls)
			}
			last := sink.got[len(sink.got)-1]
			first := sink.got[0]
			if !bytes.Equal(last.Original, data) || last.SOPInstanceUID == "" || last.ModelID == "" || last.ModelSHA256 == "" {
				t.Errorf("hand-over %+v lacks the original or the result", last.SHA256)
			}
			if last.Probability != first.Probability || last.Threshold != first.Threshold || last.SOPInstanceUID != first.SOPInstanceUID {
				t.Errorf("the recovered hand-over differs from the first: %+v vs %+v", last.Probability, first.Probability)
			}
			if entries, _ := os.ReadDir(filepath.Join(e.root, "spool", "work")); len(entries) != 0 {
				t.Errorf("spool/work not empty")
			}
		})
	}
}

func TestSinkThresholds(t *testing.T) {
	cases := []struct {
		name      string
		info      ModelInfo
		threshold float64
		want      fracd.Thresholds
	}{
		{"one threshold", ModelInfo{Threshold: 0.5}, 0.5, fracd.Single(0.5)},
		{"two operating points", ModelInfo{Threshold: 0.4, Suspected: 0.2, Definite: 0.8}, 0.4, fracd.Thresholds{Suspected: 0.2, Definite: 0.8}},
		{"override outside them", ModelInfo{Threshold: 0.4, Suspected: 0.2, Definite: 0.8}, 0.9, fracd.Single(0.9)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := thresholds(c.info, c.threshold); got != c.want {
				t.Errorf("thresholds = %+v, want %+v", got, c.want)
			}
		})
	}
}
