// Package cache owns the read-through cache in front of the online feature store: an in-process
// L1 (otter, W-TinyLFU) with per-key TTL, jitter and negative caching, cross-batch singleflight,
// XFetch early refresh, stale-while-revalidate and invalidation between instances over a Bus.
// Bound: a value is served at most TTL*(1+Jitter)+StaleFor after its load; while the bus is down
// that is the only bound on a missed invalidation, and L1 is flushed when the bus comes back.
package cache
