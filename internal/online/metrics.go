package online

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ripple-rec/ripple/internal/features"
)

// publisherMetrics describe the store path: writes, their latency, how far
// behind the store is, and what the published feature values look like
// (freshness per group, default rate and distribution per feature).
type publisherMetrics struct {
	writes       *prometheus.CounterVec
	writeSeconds prometheus.Histogram
	entities     prometheus.Counter
	resyncs      prometheus.Counter
	values       *prometheus.CounterVec
	defaults     *prometheus.CounterVec
	dist         *prometheus.SummaryVec

	newest  [3]atomic.Int64 // newest computed_at published, per group
	sampleN atomic.Uint64
	// perFeature caches each feature's series: resolving labels per
	// value published cost 5% of a worker's CPU.
	perFeature sync.Map // feature name -> *featureSeries
	// byPosition caches each group's series in the order observe last
	// saw its values (an engine reads them in spec order): no lookup by
	// name per value. Only the publisher's writer goroutine observes.
	byPosition [len(groups)][]*featureSeries
}

type featureSeries struct {
	name             string
	values, defaults prometheus.Counter
	dist             prometheus.Observer
}

func (m *publisherMetrics) series(name string) *featureSeries {
	if s, ok := m.perFeature.Load(name); ok {
		return s.(*featureSeries)
	}
	s, _ := m.perFeature.LoadOrStore(name, &featureSeries{name: name, values: m.values.WithLabelValues(name),
		defaults: m.defaults.WithLabelValues(name), dist: m.dist.WithLabelValues(name)})
	return s.(*featureSeries)
}

var groups = [3]string{features.EntityUser, features.EntityItem, features.EntityGlobal}

func groupIndex(g string) int {
	for i, x := range groups {
		if x == g {
			return i
		}
	}
	return 0
}

// distSample: one materialized entity in this many feeds the value
// distribution summaries; counts see every value.
const distSample = 16

func newPublisherMetrics(reg prometheus.Registerer, p *Publisher) *publisherMetrics {
	m := &publisherMetrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ripple_store_publish_writes_total",
			Help: "Flushes of changed feature records to the online store, by result."}, []string{"result"}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ripple_store_publish_write_seconds",
			Help: "Duration of one flush to the online store.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		entities: prometheus.NewCounter(prometheus.CounterOpts{Name: "ripple_store_published_entities_total",
			Help: "Entity records written to or deleted from the online store."}),
		resyncs: prometheus.NewCounter(prometheus.CounterOpts{Name: "ripple_store_resyncs_total",
			Help: "Full rewrites of the online store after it was found behind (restart, data loss)."}),
		values: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ripple_feature_values_total",
			Help: "Feature values materialized for the online store, by feature."}, []string{"feature"}),
		defaults: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ripple_feature_defaults_total",
			Help: "Materialized feature values that were the typed default (null rate = defaults/values)."}, []string{"feature"}),
		dist: prometheus.NewSummaryVec(prometheus.SummaryOpts{Name: "ripple_feature_value",
			Help:       "Sampled distribution of numeric feature values as published.",
			Objectives: map[float64]float64{0.5: 0.05, 0.99: 0.001}, MaxAge: 10 * time.Minute},
			[]string{"feature"}),
	}
	// Counted from 0, so the first failure shows in rate() and increase().
	m.writes.WithLabelValues("ok")
	m.writes.WithLabelValues("failed")
	if reg == nil {
		return m
	}
	reg.MustRegister(m.writes, m.writeSeconds, m.entities, m.resyncs, m.values, m.defaults, m.dist)
	for i, g := range groups {
		i := i
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ripple_feature_group_staleness_seconds",
			Help:        "Age of the most recently computed value published for the feature group.",
			ConstLabels: prometheus.Labels{"group": g}}, func() float64 {
			t := m.newest[i].Load()
			if t == 0 {
				return 0
			}
			return math.Max(0, float64(time.Now().UnixMilli()-t)/1000)
		}))
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ripple_store_publish_pending_seconds",
			Help: "Age of the oldest feature change not yet written to the online store."}, p.pendingAge),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ripple_store_published_offset",
			Help: "Log offset the online store has acknowledged for this node's source."},
			func() float64 { return float64(p.Published()) }),
	)
	return m
}

func (m *publisherMetrics) observe(group string, computedAt int64, vals []features.NamedValue) {
	gi := groupIndex(group)
	g := &m.newest[gi]
	for {
		cur := g.Load()
		if computedAt <= cur || g.CompareAndSwap(cur, computedAt) {
			break
		}
	}
	sample := m.sampleN.Add(1)%distSample == 0
	cached := m.byPosition[gi]
	for i, v := range vals {
		if i == len(cached) {
			cached = append(cached, nil)
		}
		fs := cached[i]
		if fs == nil || fs.name != v.Name {
			fs = m.series(v.Name)
			cached[i] = fs
		}
		fs.values.Inc()
		if v.Default {
			fs.defaults.Inc()
			continue
		}
		if f, ok := v.Value.Value.(float64); ok && sample && !math.IsInf(f, 0) && !math.IsNaN(f) {
			fs.dist.Observe(f)
		}
	}
	m.byPosition[gi] = cached
}
