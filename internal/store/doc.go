// Package store owns the embedded online feature store: a sharded in-memory
// map (no global lock on the hot path) and Pebble snapshots that record the
// log offset they include, so a restart loads the snapshot and replays only
// the log tail. Remote stores (Redis) implement the same read seams.
package store
