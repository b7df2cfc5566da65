package resilience

import "github.com/prometheus/client_golang/prometheus"

// Metrics holds the collectors for every Breaker and Pool built with it.
// One Metrics per registry; breakers and pools are told apart by label.
type Metrics struct {
	breakerState       *prometheus.GaugeVec
	breakerCalls       *prometheus.CounterVec
	breakerTransitions *prometheus.CounterVec

	poolInUse     *prometheus.GaugeVec
	poolSize      *prometheus.GaugeVec
	poolWait      *prometheus.HistogramVec
	poolExhausted *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them on reg. A nil reg
// leaves them unregistered, which tests use.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ripple_breaker_state",
			Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}, []string{"breaker"}),
		breakerCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ripple_breaker_calls_total",
			Help: "Calls through a circuit breaker by result: success, failure, timeout, rejected (breaker open), canceled (by the caller; not counted against the dependency).",
		}, []string{"breaker", "result"}),
		breakerTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ripple_breaker_transitions_total",
			Help: "Circuit breaker state changes by the state entered.",
		}, []string{"breaker", "to"}),
		poolInUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ripple_store_pool_in_use",
			Help: "Admission slots held for calls to a store.",
		}, []string{"pool"}),
		poolSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "ripple_store_pool_size",
			Help: "Admission slots available for calls to a store.",
		}, []string{"pool"}),
		poolWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ripple_store_pool_wait_seconds",
			Help:    "Time a granted call waited for an admission slot.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 12), // 100µs .. 205ms
		}, []string{"pool"}),
		poolExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ripple_store_pool_exhausted_total",
			Help: "Calls refused because no admission slot freed up within the wait budget.",
		}, []string{"pool"}),
	}
	if reg != nil {
		reg.MustRegister(m.breakerState, m.breakerCalls, m.breakerTransitions,
			m.poolInUse, m.poolSize, m.poolWait, m.poolExhausted)
	}
	return m
}

// breakerMetrics are one breaker's children, resolved once so the hot path
// does no label lookups.
type breakerMetrics struct {
	state prometheus.Gauge
	calls [numOutcomes]prometheus.Counter
	to    [numStates]prometheus.Counter
}

func (m *Metrics) breaker(name string) *breakerMetrics {
	if m == nil {
		return nil
	}
	bm := &breakerMetrics{state: m.breakerState.WithLabelValues(name)}
	for o := range numOutcomes {
		bm.calls[o] = m.breakerCalls.WithLabelValues(name, o.String())
	}
	for s := range numStates {
		bm.to[s] = m.breakerTransitions.WithLabelValues(name, s.String())
	}
	return bm
}

func (bm *breakerMetrics) call(o outcome) {
	if bm != nil {
		bm.calls[o].Inc()
	}
}

func (bm *breakerMetrics) transition(to State) {
	if bm != nil {
		bm.state.Set(float64(to))
		bm.to[to].Inc()
	}
}

type poolMetrics struct {
	inUse     prometheus.Gauge
	wait      prometheus.Observer
	exhausted prometheus.Counter
}

func (m *Metrics) pool(name string, size int) *poolMetrics {
	m.poolSize.WithLabelValues(name).Set(float64(size))
	return &poolMetrics{
		inUse:     m.poolInUse.WithLabelValues(name),
		wait:      m.poolWait.WithLabelValues(name),
		exhausted: m.poolExhausted.WithLabelValues(name),
	}
}
