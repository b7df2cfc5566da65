package api

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// guardMetrics count what the guards refuse. Children are resolved once so
// the request path does no label lookups.
type guardMetrics struct {
	authFailures    map[string]prometheus.Counter // by reason
	rateLimited     map[string]prometheus.Counter // by bucket scope
	limiterFallback prometheus.Counter
	shed            prometheus.Counter
}

// newGuardMetrics registers on reg (nil: unregistered). A second Server on
// the same registry shares the first one's collectors.
func newGuardMetrics(reg prometheus.Registerer, inFlight, maxInFlight func() float64) *guardMetrics {
	authFailures := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ripple_auth_failures_total",
		Help: "Requests refused by authentication: missing, malformed, unknown or revoked key (401), forbidden (403, wrong scope).",
	}, []string{"reason"}))
	rateLimited := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ripple_rate_limited_total",
		Help: "Requests answered 429 by the bucket that was empty: key or tenant.",
	}, []string{"scope"}))
	gm := &guardMetrics{
		authFailures: map[string]prometheus.Counter{},
		rateLimited:  map[string]prometheus.Counter{},
		limiterFallback: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ripple_rate_limit_fallback_total",
			Help: "Rate limit decisions taken by the in-process buckets because the shared (Redis) limiter failed.",
		})),
		shed: register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ripple_shed_total",
			Help: "Requests answered 503 overloaded because max_in_flight requests were being served.",
		})),
	}
	for _, r := range []string{authMissing, authMalformed, authUnknown, authRevoked, authForbidden} {
		gm.authFailures[r] = authFailures.WithLabelValues(r)
	}
	for _, s := range []string{BucketKey, BucketTenant} {
		gm.rateLimited[s] = rateLimited.WithLabelValues(s)
	}
	register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ripple_shed_in_flight_requests", Help: "Requests counted against max_in_flight (health and metrics are not).",
	}, inFlight))
	register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "ripple_shed_max_in_flight", Help: "The max_in_flight bound beyond which requests are shed.",
	}, maxInFlight))
	return gm
}

// register registers c, or returns the collector already registered under
// the same description.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
