package feedback

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	impressions *prometheus.CounterVec
	engaged     *prometheus.CounterVec
	// examples stored, and dropped because the log failed.
	examples, exampleErrors prometheus.Counter
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		impressions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ripple_feedback_impressions_total",
			Help: "Items shown in recommendation lists, by model family (blend, stream-covis-v1) and position bucket."},
			[]string{"model", "position"}),
		engaged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ripple_feedback_engagements_total",
			Help: "Clicks, carts and purchases of shown items within the attribution window, by model family, position bucket and type."},
			[]string{"model", "position", "type"}),
		examples: prometheus.NewCounter(prometheus.CounterOpts{Name: "ripple_feedback_examples_total",
			Help: "Engaged recommendation lists stored as ranking examples (served feature vectors and engagement per position)."}),
		exampleErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "ripple_feedback_examples_dropped_total",
			Help: "Ranking examples dropped because the example log could not store them."}),
	}
	if r != nil {
		r.MustRegister(m.impressions, m.engaged, m.examples, m.exampleErrors)
	}
	return m
}
