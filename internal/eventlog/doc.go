// Package eventlog owns Ripple's durable, ordered event log: Append answers
// only after the batch is durable, offsets increase by one per record, and
// Read replays from any retained offset. The embedded implementation stores
// records in Pebble with group commit; Kafka and NATS JetStream implement the
// same Log interface.
package eventlog
