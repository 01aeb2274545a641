// Command fracd is the fracture-detection daemon and its admin and auditor
// tools. Each subcommand lives in its own file; commands lists them all.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/fracd/fracd/pipeline"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// Main is the program: configuration and I/O, shared by every subcommand.
// Tests build one with their own writers and call Run.
type Main struct {
	Config     Config
	ConfigFile string // the file the config came from, "" if none
	Stdin      io.Reader
	Stdout     io.Writer
	Stderr     io.Writer
	Logger     *slog.Logger

	viper *viper.Viper
	// onOutcome, when set, sees each file's terminal outcome in a daemon
	// OpenDaemon starts (bench --e2e counts and times them).
	onOutcome func(pipeline.Outcome)
}

// NewMain returns a Main bound to the process's standard streams.
func NewMain() *Main {
	return &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, viper: viper.New()}
}

// commands are fracd's subcommands, one file each (named after it).
var commands = []func(*Main) *cobra.Command{
	newServeCmd, newProcessCmd, newReceiveCmd, // the daemon and its feeders
	newResultsCmd, newAuditCmd, newReportCmd, // auditors
	newLabelCmd, newModelCmd, newTrainCmd, newBenchCmd, // admins
	newInspectCmd, newRenderCmd, newPreprocessCmd, newAnonymizeCmd, // one file at a time
	newConfigCmd, newVersionCmd,
}

// commandsNeedingNoConfig skip config loading (they must work anywhere).
var commandsNeedingNoConfig = map[string]bool{"version": true, "help": true, "completion": true}

func (m *Main) rootCmd() *cobra.Command {
	var configFile string
	root := &cobra.Command{
		Use:           "fracd",
		Short:         "Fracture detection for radiology: watch an inbox of DICOM studies, de-identify, classify, audit",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if commandsNeedingNoConfig[cmd.Name()] {
				return nil
			}
			return m.loadConfig(cmd, configFile)
		},
	}
	root.SetIn(m.Stdin)
	root.SetOut(m.Stdout)
	root.SetErr(m.Stderr)
	root.PersistentFlags().StringVarP(&configFile, "config", "c", "", "config file (default: $FRACD_CONFIG, else ./config.yaml if present)")
	root.PersistentFlags().String("db", "", "database file (overrides paths.db)")
	root.PersistentFlags().String("log-level", "", "debug, info, warn or error (overrides log.level)")
	root.PersistentFlags().String("log-format", "", "text or json (overrides log.format)")
	for _, f := range commands {
		root.AddCommand(f(m))
	}
	return root
}

func (m *Main) loadConfig(cmd *cobra.Command, file string) error {
	explicit := file != ""
	if !explicit {
		if env := os.Getenv("FRACD_CONFIG"); env != "" {
			file, explicit = env, true
		} else {
			file = "config.yaml"
		}
	}
	for key, flag := range map[string]string{"paths.db": "db", "log.level": "log-level", "log.format": "log-format"} {
		if f := cmd.Flags().Lookup(flag); f != nil && f.Changed {
			m.viper.Set(key, f.Value.String())
		}
	}
	c, used, err := loadConfig(m.viper, file, explicit)
	if err != nil {
		return err
	}
	m.Config, m.ConfigFile = c, used
	m.Logger = newLogger(m.Stderr, c.Log)
	return nil
}

func newLogger(w io.Writer, c LogConfig) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(strings.ToLower(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Run executes one command line.
func (m *Main) Run(ctx context.Context, args []string) error {
	root := m.rootCmd()
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fracd:", err)
		os.Exit(exitCode(err))
	}
}

// exitError carries a specific exit status (e.g. 2 for a broken audit chain).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}
