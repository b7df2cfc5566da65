package observe

import "github.com/prometheus/client_golang/prometheus"

// WorkerMetrics is what a worker node (serve --role worker) adds: which
// partitions it applies and how they move between workers.
type WorkerMetrics struct {
	PartitionChanges *prometheus.CounterVec // change: assigned, revoked (clean hand-over), lost
	RecoverSeconds   prometheus.Histogram
}

// NewWorkerMetrics registers a worker's metrics in reg. owned is how many
// partitions the worker applies now; partitions how many the log has.
func NewWorkerMetrics(reg prometheus.Registerer, owned func() float64, partitions int) *WorkerMetrics {
	m := &WorkerMetrics{
		PartitionChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ripple_worker_partition_changes_total",
			Help: "Partitions this worker was assigned, had revoked (clean hand-over) or lost (session expired)."}, []string{"change"}),
		RecoverSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ripple_worker_partition_recover_seconds",
			Help:    "Time from an assignment to a partition applying live: snapshot load and log replay.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 9)}),
	}
	for _, change := range []string{"assigned", "revoked", "lost"} {
		m.PartitionChanges.WithLabelValues(change) // counted from 0
	}
	reg.MustRegister(m.PartitionChanges, m.RecoverSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ripple_worker_partitions_owned",
			Help: "Partitions this worker applies (recovered and live)."}, owned),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ripple_eventlog_partitions",
			Help: "Partitions of the broker log this node reads."}, func() float64 { return float64(partitions) }))
	return m
}
