// Package kafka is the Kafka event log: a Producer that returns only once
// every record is acknowledged by all in-sync replicas, a PartitionReader
// that reads one partition from an explicit offset with the eventlog.Log read
// shape, a Group that only decides which worker owns which partition, and a
// dead-letter writer. Offsets are stored with the state a worker produced,
// never committed to Kafka, so a Group never commits.
//
// Offsets: a Ripple offset is the Kafka offset plus one (ripple = kafka+1), so
// a partition starts at 1 like every eventlog.Log and 0 can mean "nothing
// applied yet".
package kafka
