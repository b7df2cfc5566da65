// Package nats is Ripple's event log on NATS JetStream: one stream whose
// subjects <prefix>.0 … <prefix>.P-1 are the partitions, records keyed by user
// (PartitionOf) so one user's events stay ordered in one partition, appends
// answered only after the server stored them, and per-partition readers that
// read by explicit offset because workers keep their offsets with their state.
//
// Offsets are JetStream stream sequences. They increase within a partition but
// are not dense there: the sequence is shared by all partitions of the stream,
// so the offset after a record is its offset + 1, not the next record's.
package nats
