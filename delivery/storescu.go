package delivery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Reasons a send fails: the fixed vocabulary stored in deliveries.last_error
// (a tool's own message could quote a file name or an identifier).
const (
	ReasonUnreachable         = "unreachable"
	ReasonAssociationRejected = "association_rejected"
	ReasonAssociationAborted  = "association_aborted"
	ReasonStoreFailed         = "store_failed"
	ReasonTimeout             = "timeout"
	ReasonInterrupted         = "interrupted"
	ReasonFileMissing         = "file_missing"
	ReasonInternal            = "internal"
)

// Destination is the hospital's PACS.
type Destination struct {
	AET        string // called AE title
	Host       string
	Port       int
	CallingAET string // ours
}

func (d Destination) String() string {
	return d.AET + "@" + d.Host + ":" + strconv.Itoa(d.Port)
}

// SendError is a failed send with its reason.
type SendError struct {
	Reason string
	Err    error
}

func (e *SendError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *SendError) Unwrap() error { return e.Err }

// ReasonOf returns the vocabulary reason of a send error.
func ReasonOf(err error) string {
	var se *SendError
	if errors.As(err, &se) {
		return se.Reason
	}
	return ReasonInternal
}

// Sender stores one file at a destination. A nil error means the destination
// acknowledged it (C-STORE success).
type Sender interface {
	Send(ctx context.Context, d Destination, path string) error
}

// StoreSCU sends with dcmtk's storescu, one association per file so that one
// acknowledgement covers exactly one object.
type StoreSCU struct {
	Path    string        // default "storescu"
	Timeout time.Duration // connection, ACSE, DIMSE and socket timeouts; default 60s
}

// Send runs storescu and classifies its outcome. Cancelling ctx kills it.
func (s StoreSCU) Send(ctx context.Context, d Destination, path string) error {
	bin := s.Path
	if bin == "" {
		bin = "storescu"
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	secs := strconv.Itoa(max(1, int(timeout.Round(time.Second)/time.Second)))
	calling := d.CallingAET
	if calling == "" {
		calling = "FRACD"
	}
	// A whole send may take the connection, association and transfer
	// timeouts in turn; beyond that it is hung.
	ctx, cancel := context.WithTimeout(ctx, 4*timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-v", "-aet", calling, "-aec", d.AET,
		"-to", secs, "-ta", secs, "-td", secs, "-ts", secs, d.Host, strconv.Itoa(d.Port), path)
	cmd.SysProcAttr = sysProcAttr()
	cmd.WaitDelay = 2 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Pdeathsig follows the thread that started the child: keep it alive
	// until storescu exits, so a killed daemon leaves no sender running on
	// that could complete a transfer nobody records.
	runtime.LockOSThread()
	err := cmd.Run()
	runtime.UnlockOSThread()
	return classify(ctx, err, out.String())
}

func classify(ctx context.Context, runErr error, out string) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &SendError{ReasonTimeout, errors.New("storescu did not finish in time")}
	case ctx.Err() != nil:
		return &SendError{ReasonInterrupted, ctx.Err()}
	}
	var ee *exec.ExitError
	if runErr != nil && !errors.As(runErr, &ee) {
		return &SendError{ReasonInternal, fmt.Errorf("run storescu: %w", runErr)}
	}
	failed := false
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "E: ") || strings.HasPrefix(l, "F: ") {
			failed = true
		}
	}
	if runErr == nil && !failed && strings.Contains(out, "Received Store Response") {
		return nil
	}
	// Only the vocabulary reason and storescu's exit status are kept: its
	// messages quote the file name.
	status := "storescu reported failure"
	if ee != nil {
		status = fmt.Sprintf("storescu exit status %d", ee.ExitCode())
	}
	switch {
	case strings.Contains(out, "Connection refused"), strings.Contains(out, "No route to host"),
		strings.Contains(out, "Name or service not known"), strings.Contains(out, "Network is unreachable"):
		return &SendError{ReasonUnreachable, errors.New(status)}
	case strings.Contains(out, "Association Rejected"):
		return &SendError{ReasonAssociationRejected, errors.New(status)}
	case strings.Contains(out, "Peer aborted Association"), strings.Contains(out, "Association Aborted"),
		strings.Contains(out, "Connection reset"), strings.Contains(out, "Broken pipe"):
		return &SendError{ReasonAssociationAborted, errors.New(status)}
	case strings.Contains(strings.ToLower(out), "timeout"):
		return &SendError{ReasonTimeout, errors.New(status)}
	}
	return &SendError{ReasonStoreFailed, errors.New(status)}
}
