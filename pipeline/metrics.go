package pipeline

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pipeline's Prometheus collectors.
type Metrics struct {
	Files      *prometheus.CounterVec
	Stage      *prometheus.HistogramVec
	QueueDepth prometheus.Gauge
	InFlight   prometheus.Gauge
	Model      *prometheus.GaugeVec
}

// NewMetrics creates the collectors and registers them with reg (nil: not
// registered, for tests and one-shot commands).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Files: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fracd_files_total",
			Help: "Files that reached a terminal state, by outcome (done, rejected, duplicate) and rejection reason.",
		}, []string{"outcome", "reason"}),
		Stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fracd_stage_seconds",
			Help:    "Time spent per pipeline stage.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"stage"}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fracd_queue_depth",
			Help: "Complete files waiting in the inbox or spool/work for a worker.",
		}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "fracd_in_flight",
			Help: "Files being processed now.",
		}),
		Model: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "fracd_active_model",
			Help: "1 for the model in use, labelled by id, arch and weights sha256.",
		}, []string{"model_id", "arch", "weights_sha256"}),
	}
	if reg != nil {
		reg.MustRegister(m.Files, m.Stage, m.QueueDepth, m.InFlight, m.Model)
	}
	return m
}

func (m *Metrics) observe(stage string, d time.Duration) {
	m.Stage.WithLabelValues(stage).Observe(d.Seconds())
}

func (m *Metrics) setModel(info ModelInfo) {
	m.Model.Reset()
	m.Model.WithLabelValues(info.ID, info.Arch, info.WeightsSHA256).Set(1)
}
