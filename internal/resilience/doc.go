// Package resilience owns what keeps the serving path inside its latency
// budget when a dependency is slow or down: per-call timeouts and circuit
// breakers (Breaker), bounded admission to a dependency (Pool), and the
// degradation level a response reports (Level, Tracker). It knows no
// business logic; typed fallback values live with the features they default.
package resilience
