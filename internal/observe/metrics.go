package observe

import (
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds every Ripple collector on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // route, code
	RequestDuration *prometheus.HistogramVec // route
	InFlight        prometheus.Gauge
	Panics          prometheus.Counter // handler panics turned into JSON 500s

	Events       *prometheus.CounterVec // outcome: accepted|duplicate|rejected
	AppendBatch  prometheus.Histogram   // seconds per durable append
	Applied      prometheus.Counter     // records applied to features
	ApplyLag     prometheus.Gauge       // records appended but not yet applied
	ApplyLagSec  prometheus.Gauge       // age of the oldest unapplied record
	LateEvents   prometheus.CounterFunc
	SnapshotAge  prometheus.GaugeFunc
	SnapshotSecs prometheus.Histogram

	// Broker logs (Kafka, NATS JetStream).
	ConsumerLag        *prometheus.GaugeVec   // partition: records the state does not include yet
	ConsumerLagSec     *prometheus.GaugeVec   // partition: how long the oldest of them has been in the log, at least
	DeadLetters        *prometheus.CounterVec // reason: records set aside in the dead-letter topic or stream
	DeadLetterFailures *prometheus.CounterVec // reason: records skipped because their dead letter could not be stored

	Recommendations *prometheus.CounterVec // degradation
	Candidates      prometheus.Histogram

	Erasures prometheus.Counter // users erased
	Erased   prometheus.Counter // log records redacted by erasures
}

// NewMetrics registers every collector. late and snapshotAge are read at
// scrape time.
func NewMetrics(late func() float64, snapshotAge func() float64) *Metrics {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Metrics{
		Registry: r,
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ripple_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ripple_http_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ripple_http_in_flight_requests", Help: "HTTP requests being served.",
		}),
		Panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ripple_http_panics_total", Help: "Handler panics recovered into a JSON 500 (each one is a bug).",
		}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ripple_events_total", Help: "Ingested events by outcome (accepted, duplicate, rejected).",
		}, []string{"outcome"}),
		AppendBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ripple_eventlog_append_seconds", Help: "Durable append latency per request batch.",
			Buckets: prometheus.ExponentialBuckets(0.0002, 2, 14),
		}),
		Applied: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ripple_features_applied_records_total", Help: "Log records applied to feature state.",
		}),
		ApplyLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ripple_features_apply_lag_records", Help: "Records durable in the log but not yet applied.",
		}),
		ApplyLagSec: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ripple_features_apply_lag_seconds", Help: "Seconds the newest applied batch waited between append and apply.",
		}),
		ConsumerLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ripple_eventlog_consumer_lag_records",
			Help: "Records a broker log partition holds that the feature state does not include yet (log: kafka|nats).",
		}, []string{"partition"}),
		ConsumerLagSec: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ripple_eventlog_consumer_lag_seconds",
			Help: "Seconds the oldest record of a broker log partition not yet applied has been in the log, at least (0 when caught up).",
		}, []string{"partition"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ripple_eventlog_dead_letters_total",
			Help: "Broker log records that cannot be applied (reason: undecodable, invalid), stored in the dead-letter topic or stream and skipped.",
		}, []string{"reason"}),
		DeadLetterFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ripple_eventlog_dead_letter_failures_total",
			Help: "Broker log records that cannot be applied and were skipped without a dead letter, the dead-letter write having failed.",
		}, []string{"reason"}),
		LateEvents: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "ripple_features_late_events_total", Help: "Events beyond the lateness bound, left out of windowed features.",
		}, late),
		SnapshotAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ripple_store_snapshot_age_seconds", Help: "Seconds since the last feature snapshot was written (-1: none).",
		}, snapshotAge),
		SnapshotSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ripple_store_snapshot_duration_seconds", Help: "Time to write a feature snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		}),
		Erasures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ripple_erasures_total", Help: "Users erased (DELETE /v1/users/{user}).",
		}),
		Erased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ripple_erased_records_total", Help: "Event log records redacted by erasures.",
		}),
		Recommendations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ripple_recommendations_total", Help: "Recommendation responses by degradation level.",
		}, []string{"degradation"}),
		Candidates: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "ripple_recommend_candidates", Help: "Candidates scored per recommendation.",
			Buckets: prometheus.ExponentialBuckets(10, 2, 10),
		}),
	}
	r.MustRegister(m.Requests, m.RequestDuration, m.InFlight, m.Events, m.AppendBatch, m.Applied, m.ApplyLag,
		m.ApplyLagSec, m.ConsumerLag, m.ConsumerLagSec, m.DeadLetters, m.DeadLetterFailures, m.LateEvents, m.SnapshotAge, m.SnapshotSecs, m.Recommendations, m.Candidates, m.Erasures, m.Erased, m.Panics)
	return m
}

// NewLogger returns a JSON slog logger at level.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
