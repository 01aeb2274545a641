package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fracd/fracd/internal/fsutil"
	"github.com/fracd/fracd/watcher"
	"github.com/spf13/cobra"
)

func newReceiveCmd(m *Main) *cobra.Command {
	var aet string
	var port int
	cmd := &cobra.Command{
		Use:   "receive",
		Short: "Receive DICOM over the network (C-STORE, with dcmtk's storescp) into the inbox",
		Long: `Runs dcmtk's storescp as a DICOM storage SCP. storescp writes each object
under its final name while receiving it, so it writes into spool/incoming (on
the inbox's filesystem) and each completed file is then renamed into the
inbox, where fracd serve picks it up. Files left in spool/incoming by a crash
are moved into the inbox at start (a partial one is then rejected as
truncated, and kept). SIGTERM/SIGINT stop storescp.`,
		Example: `  fracd receive --aet FRACD --port 11112`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !validAET(aet) {
				return fmt.Errorf("receive: --aet %q is not an AE title (1-16 printable ASCII characters, no backslash)", aet)
			}
			if port < 1 || port > 65535 {
				return fmt.Errorf("receive: --port %d is not a TCP port (1-65535)", port)
			}
			return m.receive(cmd.Context(), aet, port)
		},
	}
	cmd.Flags().StringVar(&aet, "aet", "FRACD", "AE title to answer to")
	cmd.Flags().IntVar(&port, "port", 11112, "TCP port to listen on")
	return cmd
}

// shellQuote quotes s for /bin/sh, which storescp runs the reception command with.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (m *Main) receive(ctx context.Context, aet string, port int) error {
	c := m.Config
	bin, err := exec.LookPath("storescp")
	if err != nil {
		return fmt.Errorf("receive: dcmtk's storescp is needed (apt-get install dcmtk): %w", err)
	}
	inbox, err := filepath.Abs(c.Paths.Inbox)
	if err != nil {
		return fmt.Errorf("receive: paths.inbox: %w", err)
	}
	staging, err := filepath.Abs(filepath.Join(c.Paths.Spool, "incoming"))
	if err != nil {
		return fmt.Errorf("receive: paths.spool: %w", err)
	}
	if err := os.MkdirAll(inbox, 0o750); err != nil {
		return fmt.Errorf("receive: create inbox: %w", err)
	}
	if err := os.MkdirAll(staging, 0o700); err != nil {
		return fmt.Errorf("receive: create %s: %w", staging, err)
	}
	// The hand-over is a rename: atomic only within one filesystem.
	same, err := watcher.SameFilesystem(inbox, staging)
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if !same {
		return fmt.Errorf("receive: paths.inbox and paths.spool must be on the same filesystem; %s and %s are not", inbox, staging)
	}
	if n, err := moveAll(staging, inbox); err != nil {
		return err
	} else if n > 0 {
		m.Logger.Warn("receive: files left in spool/incoming by an earlier stop moved into the inbox", "files", n)
	}
	// #p/#f is the completed file; +uf names it by a fresh UID, so names
	// carry no identifier and never collide; mv -n never overwrites.
	onReception := "mv -n -- \"#p/#f\" " + shellQuote(inbox+"/")
	// +xa: take every transfer syntax dcmtk knows, compressed ones included.
	args := []string{"-aet", aet, "-od", staging, "+uf", "+xa", "-xcr", onReception, strconv.Itoa(port)}
	if m.Config.Log.Level == "debug" {
		args = append([]string{"-v"}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = m.Stderr, m.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Stop cleanly: SIGTERM first, SIGKILL if it lingers.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	// Pdeathsig follows the thread that started the child: keep it.
	runtime.LockOSThread()
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("receive: start storescp: %w", err)
	}
	m.Logger.Info("receiving", "aet", aet, "port", port, "staging", staging)
	err = cmd.Wait()
	runtime.UnlockOSThread()
	if ctx.Err() != nil {
		// A file cut off by the stop stays in spool/incoming and is moved
		// at the next start; the sender, unacknowledged, sends it again.
		m.Logger.Info("receive stopped")
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("receive: storescp exited with status %d (port %d in use?)", ee.ExitCode(), port)
	}
	if err != nil {
		return fmt.Errorf("receive: storescp: %w", err)
	}
	return errors.New("receive: storescp exited")
}

// moveAll renames every regular file of dir into the inbox.
func moveAll(dir, inbox string) (int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("receive: list %s: %w", dir, err)
	}
	n := 0
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		dst := filepath.Join(inbox, e.Name())
		if _, err := os.Lstat(dst); err == nil {
			continue // never overwrite
		}
		if err := os.Rename(filepath.Join(dir, e.Name()), dst); err != nil {
			return n, fmt.Errorf("receive: move a file into the inbox: %w", fsutil.ScrubPath(err))
		}
		n++
	}
	return n, nil
}
