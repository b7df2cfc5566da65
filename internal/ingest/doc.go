// Package ingest owns the write path of one Ripple node: deduplicate event
// ids, append durably to the event log, apply the log to the feature engine
// in order, wait until a caller's own records are applied (read-your-writes),
// and snapshot the state with the offset it includes. The log is the
// embedded one, or a partitioned broker log (Kafka, NATS JetStream) whose
// partitions are each applied in order and exactly once, with one offset
// per partition in the snapshot; records a partition holds that cannot be
// applied go to the broker's dead letters, and each partition's lag is
// measured and exported.
package ingest
