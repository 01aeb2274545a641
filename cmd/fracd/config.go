package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fracd/fracd/anonymize"
	"github.com/fracd/fracd/dicomio"
	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Config is fracd's whole configuration. Every key has a working default
// (defaultConfig); config.yaml at the repository root documents each one.
type Config struct {
	Paths     PathsConfig   `mapstructure:"paths" json:"paths"`
	Workers   int           `mapstructure:"workers" json:"workers"`
	Settle    time.Duration `mapstructure:"settle" json:"settle"`
	Rescan    time.Duration `mapstructure:"rescan" json:"rescan"`
	MinFreeMB int64         `mapstructure:"min_free_mb" json:"min_free_mb"`
	Shutdown  time.Duration `mapstructure:"shutdown_timeout" json:"shutdown_timeout"`
	// StallTimeout is how long one file may stay in a worker before /readyz
	// reports the worker as hung.
	StallTimeout time.Duration   `mapstructure:"stall_timeout" json:"stall_timeout"`
	DICOM        DICOMConfig     `mapstructure:"dicom" json:"dicom"`
	Anonymize    AnonymizeConfig `mapstructure:"anonymize" json:"anonymize"`
	Model        ModelConfig     `mapstructure:"model" json:"model"`
	Log          LogConfig       `mapstructure:"log" json:"log"`
	HTTP         HTTPConfig      `mapstructure:"http" json:"http"`
	Delivery     DeliveryConfig  `mapstructure:"delivery" json:"delivery"`
	Report       ReportConfig    `mapstructure:"report" json:"report"`
	Audit        AuditConfig     `mapstructure:"audit" json:"audit"`
}

// AuditConfig configures the audit trail.
type AuditConfig struct {
	// KeyFile holds the key that chains audit rows with HMAC-SHA256; empty
	// means audit.key in the database's folder. Writers create it (0600).
	KeyFile string `mapstructure:"key_file" json:"key_file"`
}

// AuditKeyFile is where the audit key lives.
func (c Config) AuditKeyFile() string {
	if c.Audit.KeyFile != "" {
		return c.Audit.KeyFile
	}
	return filepath.Join(filepath.Dir(c.Paths.DB), "audit.key")
}

// ReportConfig tunes fracd report's monitoring.
type ReportConfig struct {
	// DriftTolerance is how far (absolute) a week's flagged rate or mean
	// probability may move from the model's validation figure unwarned.
	DriftTolerance float64 `mapstructure:"drift_tolerance" json:"drift_tolerance"`
}

type PathsConfig struct {
	Inbox   string `mapstructure:"inbox" json:"inbox"`
	Spool   string `mapstructure:"spool" json:"spool"`
	Archive string `mapstructure:"archive" json:"archive"`
	DB      string `mapstructure:"db" json:"db"`
	Models  string `mapstructure:"models" json:"models"`
}

type DICOMConfig struct {
	// MaxPixelBytes bounds rows x columns x frames x bytes per sample before
	// anything is allocated.
	MaxPixelBytes int64 `mapstructure:"max_pixel_bytes" json:"max_pixel_bytes"`
	// MaxFileBytes bounds one input file, and the data set a deflated file
	// inflates to.
	MaxFileBytes int64 `mapstructure:"max_file_bytes" json:"max_file_bytes"`
	// MaxInflateRatio bounds what a deflated data set or a compressed frame
	// may expand to per input byte (outputs up to 16 MiB exempt): the
	// decompression-bomb guard, with MaxFileBytes as its absolute bound.
	MaxInflateRatio float64 `mapstructure:"max_inflate_ratio" json:"max_inflate_ratio"`
}

type AnonymizeConfig struct {
	SecretFile                   string `mapstructure:"secret_file" json:"secret_file"`
	RetainLongitudinalModified   bool   `mapstructure:"retain_longitudinal_modified_dates" json:"retain_longitudinal_modified_dates"`
	RetainPatientCharacteristics bool   `mapstructure:"retain_patient_characteristics" json:"retain_patient_characteristics"`
	RetainDeviceIdentity         bool   `mapstructure:"retain_device_identity" json:"retain_device_identity"`
	RetainInstitutionIdentity    bool   `mapstructure:"retain_institution_identity" json:"retain_institution_identity"`
	RetainUIDs                   bool   `mapstructure:"retain_uids" json:"retain_uids"`
	CleanDescriptors             bool   `mapstructure:"clean_descriptors" json:"clean_descriptors"`
	AllowBurnedIn                bool   `mapstructure:"allow_burned_in_annotation" json:"allow_burned_in_annotation"`
	RejectRiskySOPClasses        bool   `mapstructure:"reject_risky_sop_classes" json:"reject_risky_sop_classes"`
	// BurnedInSOPClasses overrides the SOP classes treated as risky; empty
	// means the built-in list (Secondary Capture, Ultrasound, ...).
	BurnedInSOPClasses []string `mapstructure:"burned_in_sop_classes" json:"burned_in_sop_classes"`
	// CleanVocabulary adds words that Clean Descriptors accepts.
	CleanVocabulary   []string                `mapstructure:"clean_vocabulary" json:"clean_vocabulary"`
	RetainSafePrivate bool                    `mapstructure:"retain_safe_private" json:"retain_safe_private"`
	SafePrivate       []anonymize.PrivateAttr `mapstructure:"safe_private" json:"safe_private"`
}

type ModelConfig struct {
	// Path to a safetensors file; empty means the registry's active model.
	Path string `mapstructure:"path" json:"path"`
	// Threshold overrides the model's own decision threshold when > 0.
	Threshold float64 `mapstructure:"threshold" json:"threshold"`
	// Precision of inference convolutions: f32, or bf16 on CPUs with
	// AVX512-BF16 (about twice as fast; see docs/model-card.md).
	Precision string `mapstructure:"precision" json:"precision"`
}

type LogConfig struct {
	Level  string `mapstructure:"level" json:"level"`
	Format string `mapstructure:"format" json:"format"`
}

// DeliveryConfig names the hospital's PACS that results (SR and secondary
// capture) are sent back to; delivery is off while Host is empty.
type DeliveryConfig struct {
	AET         string        `mapstructure:"aet" json:"aet"`
	Host        string        `mapstructure:"host" json:"host"`
	Port        int           `mapstructure:"port" json:"port"`
	CallingAET  string        `mapstructure:"calling_aet" json:"calling_aet"`
	MaxAttempts int           `mapstructure:"max_attempts" json:"max_attempts"`
	Backoff     time.Duration `mapstructure:"backoff" json:"backoff"`
	MaxBackoff  time.Duration `mapstructure:"max_backoff" json:"max_backoff"`
	Timeout     time.Duration `mapstructure:"timeout" json:"timeout"`
}

type HTTPConfig struct {
	Listen string `mapstructure:"listen" json:"listen"`
}

func defaultConfig() Config {
	return Config{
		Paths: PathsConfig{
			Inbox:   "data/inbox",
			Spool:   "data/spool",
			Archive: "data/archive",
			DB:      "data/fracd.db",
			Models:  "data/models",
		},
		Workers:      0,
		Settle:       2 * time.Second,
		Rescan:       30 * time.Second,
		MinFreeMB:    512,
		Shutdown:     30 * time.Second,
		StallTimeout: 10 * time.Minute,
		DICOM:        DICOMConfig{MaxPixelBytes: 1 << 30, MaxFileBytes: dicomio.DefaultMaxFileBytes, MaxInflateRatio: dicomio.DefaultMaxInflateRatio},
		Anonymize: AnonymizeConfig{
			SecretFile:            "data/secret.key",
			RejectRiskySOPClasses: true,
			BurnedInSOPClasses:    []string{},
			CleanVocabulary:       []string{},
			SafePrivate:           []anonymize.PrivateAttr{},
		},
		Model: ModelConfig{Precision: "f32"},
		Log:   LogConfig{Level: "info", Format: "text"},
		HTTP:  HTTPConfig{Listen: "127.0.0.1:9464"},
		Delivery: DeliveryConfig{AET: "PACS", Port: 104, CallingAET: "FRACD", MaxAttempts: 8,
			Backoff: 30 * time.Second, MaxBackoff: time.Hour, Timeout: 60 * time.Second},
		Report: ReportConfig{DriftTolerance: 0.10},
	}
}

// EffectiveWorkers resolves workers = 0 to two per core: each file also
// waits on fsyncs, the database and reads, which the other files' work
// fills (bench --e2e on 2 cores, cores busy: 2 workers ~1.6, 3 ~1.77, 4 to
// 8 ~1.85).
func (c Config) EffectiveWorkers() int {
	if c.Workers > 0 {
		return c.Workers
	}
	return 2 * runtime.NumCPU()
}

// Validate checks values that decode fine but make no sense, naming the key.
func (c Config) Validate() error {
	empty := func(p string) bool { return strings.TrimSpace(p) == "" }
	errs := failures(
		check{empty(c.Paths.Inbox), "paths.inbox", "must not be empty"},
		check{empty(c.Paths.Spool), "paths.spool", "must not be empty"},
		check{empty(c.Paths.Archive), "paths.archive", "must not be empty"},
		check{empty(c.Paths.DB), "paths.db", "must not be empty"},
		check{empty(c.Paths.Models), "paths.models", "must not be empty"},
		check{empty(c.Anonymize.SecretFile), "anonymize.secret_file", "must not be empty"},
		check{c.Workers < 0, "workers", "must be >= 0 (0 means two per core)"},
		check{c.Settle <= 0, "settle", "must be a positive duration such as 2s"},
		check{c.Rescan <= 0, "rescan", "must be a positive duration such as 30s"},
		check{c.Shutdown <= 0, "shutdown_timeout", "must be a positive duration"},
		check{c.StallTimeout <= 0, "stall_timeout", "must be a positive duration such as 10m"},
		check{c.MinFreeMB < 0, "min_free_mb", "must be >= 0"},
		check{c.DICOM.MaxPixelBytes <= 0, "dicom.max_pixel_bytes", "must be > 0"},
		check{c.DICOM.MaxFileBytes <= 0, "dicom.max_file_bytes", "must be > 0"},
		check{!(c.DICOM.MaxInflateRatio >= 1), "dicom.max_inflate_ratio", "must be >= 1"},
		check{c.Model.Threshold < 0 || c.Model.Threshold > 1, "model.threshold", "must be between 0 and 1 (0 means the model's own)"},
		check{!slices.Contains([]string{"f32", "bf16"}, c.Model.Precision), "model.precision", fmt.Sprintf("%q is not one of f32, bf16", c.Model.Precision)},
		check{!slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(c.Log.Level)), "log.level",
			fmt.Sprintf("%q is not one of debug, info, warn, error", c.Log.Level)},
		check{!slices.Contains([]string{"text", "json"}, c.Log.Format), "log.format", fmt.Sprintf("%q is not one of text, json", c.Log.Format)},
		check{!(c.Report.DriftTolerance > 0 && c.Report.DriftTolerance <= 1), "report.drift_tolerance",
			"must be in (0, 1], an absolute difference of rates or probabilities"},
	)
	errs = append(errs, c.Delivery.validate()...)
	return errors.Join(errs...)
}

// check is one validation rule: when failed, key is reported with why.
type check struct {
	failed   bool
	key, why string
}

// failures are the errors of the failed checks, in order.
func failures(checks ...check) []error {
	var errs []error
	for _, c := range checks {
		if c.failed {
			errs = append(errs, fmt.Errorf("%s: %s", c.key, c.why))
		}
	}
	return errs
}

// knownKeys lists every leaf key of Config as viper spells it.
func knownKeys() map[string]bool {
	keys := map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := f.Tag.Get("mapstructure")
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
				walk(f.Type, prefix+name+".")
				continue
			}
			keys[prefix+name] = true
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	return keys
}

// setDefaults registers every default with viper so that environment
// variables (FRACD_PATHS_INBOX, ...) are seen for every key.
func setDefaults(v *viper.Viper, c Config) {
	var walk func(val reflect.Value, prefix string)
	walk = func(val reflect.Value, prefix string) {
		t := val.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := prefix + f.Tag.Get("mapstructure")
			if f.Type.Kind() == reflect.Struct {
				walk(val.Field(i), name+".")
				continue
			}
			v.SetDefault(name, val.Field(i).Interface())
		}
	}
	walk(reflect.ValueOf(c), "")
}

// loadConfig reads the optional config file, FRACD_* environment variables
// and flags (bound by the caller), in increasing priority. An unknown key in
// the file is an error naming the key and the file.
func loadConfig(v *viper.Viper, file string, explicit bool) (Config, string, error) {
	setDefaults(v, defaultConfig())
	v.SetEnvPrefix("FRACD")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	used := ""
	if file != "" {
		if _, err := os.Stat(file); err != nil {
			if explicit || !errors.Is(err, os.ErrNotExist) {
				return Config{}, "", fmt.Errorf("config: %w", err)
			}
		} else {
			fv := viper.New()
			fv.SetConfigFile(file)
			if err := fv.ReadInConfig(); err != nil {
				return Config{}, "", fmt.Errorf("config: %s: %w", file, err)
			}
			known := knownKeys()
			var unknown []string
			for _, k := range fv.AllKeys() {
				if !known[k] {
					unknown = append(unknown, k)
				}
			}
			if len(unknown) > 0 {
				sort.Strings(unknown)
				return Config{}, "", fmt.Errorf("config: %s: unknown key %s", file, strings.Join(unknown, ", "))
			}
			if err := v.MergeConfigMap(fv.AllSettings()); err != nil {
				return Config{}, "", fmt.Errorf("config: %s: %w", file, err)
			}
			used = file
		}
	}
	var c Config
	decode := func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.WeaklyTypedInput = true
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(mapstructure.StringToTimeDurationHookFunc())
	}
	if err := v.Unmarshal(&c, decode); err != nil {
		return Config{}, "", fmt.Errorf("config%s: %w", inFile(used), err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, "", fmt.Errorf("config%s: %w", inFile(used), err)
	}
	return c, used, nil
}

func inFile(f string) string {
	if f == "" {
		return ""
	}
	return ": " + f
}
