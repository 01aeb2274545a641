package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

func newConfigCmd(m *Main) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the effective configuration (file, FRACD_* environment, flags), secrets redacted",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := json.Marshal(m.Config)
			if err != nil {
				return err
			}
			var tree map[string]any
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.UseNumber() // keep large integers exact
			if err := dec.Decode(&tree); err != nil {
				return err
			}
			normalizeNumbers(tree)
			redact(tree)
			// Durations print as Go durations, not nanoseconds.
			tree["settle"] = m.Config.Settle.String()
			tree["rescan"] = m.Config.Rescan.String()
			tree["shutdown_timeout"] = m.Config.Shutdown.String()
			src := m.ConfigFile
			if src == "" {
				src = "(none: defaults)"
			}
			switch format {
			case "json":
				tree["config_file"] = src
				enc := json.NewEncoder(m.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(tree)
			case "yaml":
				fmt.Fprintf(m.Stdout, "# config file: %s\n", src)
				return yaml.NewEncoder(m.Stdout).Encode(tree)
			default:
				return fmt.Errorf("--format: %q is not one of yaml, json", format)
			}
		},
	}
	cmd.Flags().StringVar(&format, "format", "yaml", "yaml or json")
	return cmd
}

// redact hides the value of any key that holds a secret itself (a path to a
// secret file is not one).
func redact(tree map[string]any) {
	for k, v := range tree {
		switch vv := v.(type) {
		case map[string]any:
			redact(vv)
		default:
			lk := strings.ToLower(k)
			if (strings.Contains(lk, "secret") || strings.Contains(lk, "password") || strings.Contains(lk, "token")) &&
				!strings.HasSuffix(lk, "_file") && !strings.HasSuffix(lk, "_path") {
				tree[k] = "<redacted>"
			}
		}
	}
}

// normalizeNumbers turns json.Number into int64 or float64 so YAML prints
// numbers, not strings.
func normalizeNumbers(tree map[string]any) {
	for k, v := range tree {
		switch vv := v.(type) {
		case map[string]any:
			normalizeNumbers(vv)
		case json.Number:
			if i, err := vv.Int64(); err == nil {
				tree[k] = i
			} else if f, err := vv.Float64(); err == nil {
				tree[k] = f
			}
		}
	}
}
