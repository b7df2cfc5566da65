package cache

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Tiers of the "tier" label: l1 is the in-process cache, store the loader behind it.
const (
	tierL1    = "l1"
	tierStore = "store"
)

// Metrics are the Prometheus metrics of the caches of a process; one Metrics serves many caches,
// told apart by the "cache" label. Labels are bounded: cache name and tier, never keys.
type Metrics struct {
	hits           *prometheus.CounterVec
	misses         *prometheus.CounterVec
	staleServed    *prometheus.CounterVec
	negativeHits   *prometheus.CounterVec
	loadErrors     *prometheus.CounterVec
	earlyRefreshes *prometheus.CounterVec
	evictions      *prometheus.CounterVec
	invalidations  *prometheus.CounterVec
	flushes        *prometheus.CounterVec
	servedAge      *prometheus.HistogramVec
}

// NewMetrics creates the cache metrics and registers them with reg, if not nil. Metrics that reg
// already has (another NewMetrics on the same registry) are shared rather than rejected.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ripple_cache_" + name, Help: help}, labels)
		return register(reg, c)
	}
	m := &Metrics{
		hits:           counter("hits_total", "Keys served with a value, by tier: l1 fresh hits, store values found by a load.", "cache", "tier"),
		misses:         counter("misses_total", "Keys not served by a tier: l1 misses that needed a load, store absences.", "cache", "tier"),
		staleServed:    counter("stale_served_total", "Keys served past their TTL (stale-while-revalidate or stale-on-error).", "cache", "tier"),
		negativeHits:   counter("negative_hits_total", "Keys served from a cached absence.", "cache", "tier"),
		loadErrors:     counter("load_errors_total", "Failed batch loads.", "cache"),
		earlyRefreshes: counter("early_refreshes_total", "Keys refreshed before expiry by XFetch.", "cache"),
		evictions:      counter("evictions_total", "L1 entries evicted for size.", "cache"),
		invalidations:  counter("invalidations_received_total", "Keys invalidated by other instances over the bus.", "cache"),
		flushes:        counter("flushes_total", "L1 flushes because invalidations may have been missed (bus (re)subscribed).", "cache"),
		servedAge: register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ripple_cache_served_age_seconds",
			Help:    "Age of served values: now minus when they were loaded.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12), // 1ms .. ~70min
		}, []string{"cache"})),
	}
	return m
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err) // a name clash with a different metric is a programming error
	}
	return c
}

// cacheMetrics are the children of Metrics for one cache, resolved once so the hit path does
// no label lookups.
type cacheMetrics struct {
	l1Hits, l1Misses, storeHits, storeMisses prometheus.Counter
	staleServed, negativeHits                prometheus.Counter
	loadErrors, earlyRefreshes, evictions    prometheus.Counter
	invalidations, flushes                   prometheus.Counter
	age                                      prometheus.Observer
}

func (m *Metrics) forCache(name string) cacheMetrics {
	return cacheMetrics{
		l1Hits:         m.hits.WithLabelValues(name, tierL1),
		l1Misses:       m.misses.WithLabelValues(name, tierL1),
		storeHits:      m.hits.WithLabelValues(name, tierStore),
		storeMisses:    m.misses.WithLabelValues(name, tierStore),
		staleServed:    m.staleServed.WithLabelValues(name, tierL1),
		negativeHits:   m.negativeHits.WithLabelValues(name, tierL1),
		loadErrors:     m.loadErrors.WithLabelValues(name),
		earlyRefreshes: m.earlyRefreshes.WithLabelValues(name),
		evictions:      m.evictions.WithLabelValues(name),
		invalidations:  m.invalidations.WithLabelValues(name),
		flushes:        m.flushes.WithLabelValues(name),
		age:            m.servedAge.WithLabelValues(name),
	}
}

// count adds the outcome of one GetBatch pass over L1.
func (c *cacheMetrics) count(hits, negHits, stale, misses int) {
	add(c.l1Hits, hits)
	add(c.negativeHits, negHits)
	add(c.staleServed, stale)
	add(c.l1Misses, misses)
}

func add(c prometheus.Counter, n int) {
	if n > 0 {
		c.Add(float64(n))
	}
}
