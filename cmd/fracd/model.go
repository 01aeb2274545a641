package main

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/fracd/fracd/classifier"
	"github.com/fracd/fracd/preprocess"
	"github.com/fracd/fracd/store"
	"github.com/spf13/cobra"
)

func newModelCmd(m *Main) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Manage the model registry: add, list, show, evaluate, promote, retire, rollback, export",
	}
	cmd.AddCommand(newModelAddCmd(m), newModelListCmd(m), newModelActivateCmd(m), newModelInitCmd(m), newModelExportCmd(m), newModelLocaliseCmd(m), newModelAverageCmd(m))
	cmd.AddCommand(newModelEvaluateCmd(m))
	cmd.AddCommand(newModelLifecycleCmds(m)...)
	return cmd
}

func newModelAddCmd(m *Main) *cobra.Command {
	var id string
	var activate bool
	cmd := &cobra.Command{
		Use:   "add WEIGHTS.safetensors",
		Short: "Check a model file, copy it into paths.models and register it",
		Long: `Loads the weights (every tensor name and shape is checked), copies the file
into paths.models under its sha256 so that it cannot change under the registry,
and records it with an audit row. --activate also makes it the active model;
a running daemon switches to it between files.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			info, dst, err := m.storeModelFile(args[0])
			if err != nil {
				return fmt.Errorf("model add: %w", err)
			}
			if id == "" {
				id = info.ID
			}
			if id == "" {
				id = info.Arch + "-" + info.WeightsSHA256[:12]
			}
			db, err := m.openDB(ctx)
			if err != nil {
				return err
			}
			defer db.Close()
			return m.registerModel(ctx, db, registryEntry(id, info, dst, nil), nil, activate)
		},
	}
	cmd.Flags().StringVar(&id, "id", "", "registry id (default: the file's metadata id, else ARCH-SHA)")
	cmd.Flags().BoolVar(&activate, "activate", false, "make it the active model")
	return cmd
}

// activateModel is --activate at registration (model add, train): a forced
// promotion, since a new model has no evaluation yet.
func activateModel(ctx context.Context, tx *store.Tx, id string) error {
	_, err := promoteModel(ctx, tx, id, promoteOptions{Force: true, Reason: "activated at registration (--activate)"})
	return err
}

func newModelListCmd(m *Main) *cobra.Command {
	return newListCmd(m, "List registered models (read-only)", (*store.DB).Models, []column[store.Model]{
		{"id", func(x store.Model) string { return x.ID }},
		{"arch", func(x store.Model) string { return x.Arch }},
		{"state", func(x store.Model) string { return x.State }},
		{"threshold", func(x store.Model) string { return fmt4(x.Threshold) }},
		{"weights_sha256", func(x store.Model) string { return x.WeightsSHA256 }},
		{"preprocess_version", func(x store.Model) string { return x.PreprocessVersion }},
		{"registered_at", func(x store.Model) string { return fmtTS(x.RegisteredAt) }},
	})
}

// actor names who ran an admin command, for the audit trail: the OS
// account of the process (its uid looked up), as the README says.
func actor() string {
	return "cli:" + osUser(os.Getuid(), os.Getenv("SUDO_UID"))
}

// osUser names the account behind uid from the user database, never from
// $USER or $SUDO_USER, which whoever runs fracd can set to any name. Under
// sudo (uid 0 with SUDO_UID set) it names both, root(sudo:alice): only root
// can set SUDO_UID for a root process. An account with no name is uid:N.
func osUser(uid int, sudoUID string) string {
	name := func(id string) string {
		if u, err := user.LookupId(id); err == nil && u.Username != "" {
			return u.Username
		}
		return "uid:" + id
	}
	n := name(strconv.Itoa(uid))
	if _, err := strconv.Atoi(sudoUID); err == nil && uid == 0 && sudoUID != "0" {
		n += "(sudo:" + name(sudoUID) + ")"
	}
	return n
}

func newModelInitCmd(m *Main) *cobra.Command {
	var (
		arch, out string
		seed      int64
		untrained bool
	)
	cmd := &cobra.Command{
		Use:   "init --untrained -o FILE",
		Short: "Write an UNTRAINED model (random weights) for trying the pipeline end to end",
		Long: `Writes a ResNet with torchvision's random initialisation. Its predictions mean
nothing: it exists so that a new installation can be tried before a trained
model is imported (fracd model add) . Its id starts with "untrained-" so that
every result it produces says so.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !untrained {
				return fmt.Errorf("model init makes a model with random weights: pass --untrained to confirm")
			}
			if out == "" {
				return fmt.Errorf("-o FILE is required")
			}
			cm, err := classifier.New(arch, seed)
			if err != nil {
				return err
			}
			info := cm.Info()
			info.ID = fmt.Sprintf("untrained-%s-seed%d", info.Arch, seed)
			info.PreprocessVersion = preprocess.Version
			if err := os.MkdirAll(filepath.Dir(out), 0o750); err != nil {
				return err
			}
			if err := cm.Save(out, info); err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "wrote %s (%s, untrained)\n", out, info.ID)
			return nil
		},
	}
	cmd.Flags().StringVar(&arch, "arch", "resnet18", "resnet18, resnet34, resnet50, resnet101, resnet152")
	cmd.Flags().Int64Var(&seed, "seed", 1, "initialisation seed")
	cmd.Flags().BoolVar(&untrained, "untrained", false, "confirm that a model with random weights is wanted")
	cmd.Flags().StringVarP(&out, "output", "o", "", "output safetensors file")
	return cmd
}
