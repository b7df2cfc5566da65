// Package features owns Ripple's streaming interaction features: declarative
// YAML specs (window counts and sums, rates with priors, sessions, last-N,
// recency, affinity, trending, co-visitation), the Engine that folds log
// records into per-entity state in log order, reads at event time with
// computed_at stamps and typed defaults, and the snapshot codec.
package features
