// Package observe owns Ripple's telemetry plumbing: the Prometheus registry
// and every collector the other packages update, and the slog JSON logger.
// Collectors live in one struct passed down explicitly: no global state.
package observe
