// Package redis is the Redis implementation of store.Online (single node or
// Cluster, through rueidis). It owns the key layout (a version prefix, one
// hash per entity under a hash tag), the write scripts that keep a flush
// idempotent, and the guards every call passes: an admission bound on calls
// in flight, a deadline and a circuit breaker per path (read, write).
package redis
