package feedback

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	impressions *prometheus.CounterVec
	engaged     *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		impressions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ripple_feedback_impressions_total",
			Help: "Items shown in recommendation lists, by model family (blend, stream-covis-v1) and position bucket."},
			[]string{"model", "position"}),
		engaged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ripple_feedback_engagements_total",
			Help: "Clicks, carts and purchases of shown items within the attribution window, by model family, position bucket and type."},
			[]string{"model", "position", "type"}),
	}
	if r != nil {
		r.MustRegister(m.impressions, m.engaged)
	}
	return m
}
