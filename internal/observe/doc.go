// Package observe owns Ripple's telemetry plumbing: the Prometheus registry
// and every collector the other packages update; OpenTelemetry tracing (the
// tracer provider, the in-process tail sampler that keeps every failed and
// slow trace, W3C propagation and the HTTP server span); and the slog JSON
// logger that stamps trace and request ids and hashes or drops user ids.
// Collectors and providers are passed down explicitly: no global state
// beyond OpenTelemetry's propagator.
package observe
