// Package cache owns the read-through cache in front of the online feature store: an in-process
// L1 (otter, W-TinyLFU) with per-key TTL and jitter, negative caching, cross-batch singleflight,
// XFetch early refresh, stale-while-revalidate and stale-on-error, and cross-instance invalidation
// over a Bus (Redis pub/sub in production). Staleness bound: an entry is at most TTL+StaleFor old;
// a missed invalidation (bus down, Redis restarted) flushes L1 on resubscribe, so TTL+StaleFor
// remains the only bound while the bus is down. It does not know what it caches.
package cache
