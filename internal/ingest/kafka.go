package ingest

import (
	"context"
	"fmt"

	"github.com/ripple-rec/ripple/internal/eventlog/kafka"
)

// KafkaOptions configures OpenKafka.
type KafkaOptions struct {
	Brokers []string
	Topic   string
	// Partitions, when set, must match the topic's partition count: a
	// different count would move users between partitions.
	Partitions int
}

// KafkaLog is a Kafka topic as a PartitionedLog. Dead letters go to
// kafka.DeadLetterTopic(Topic), which must exist (created like the topic;
// Ripple does not create topics).
type KafkaLog struct {
	opts KafkaOptions
	prod *kafka.Producer
	dlq  *kafka.DeadLetters
}

// OpenKafka connects a producer and checks the topic's partition count.
func OpenKafka(ctx context.Context, opts KafkaOptions) (*KafkaLog, error) {
	prod, err := kafka.NewProducer(kafka.ProducerOptions{Brokers: opts.Brokers, Topic: opts.Topic})
	if err != nil {
		return nil, err
	}
	dlq, err := kafka.NewDeadLetters(kafka.DeadLetterOptions{Brokers: opts.Brokers, Topic: opts.Topic})
	if err != nil {
		prod.Close()
		return nil, err
	}
	l := &KafkaLog{prod: prod, dlq: dlq}
	n, err := prod.Partitions(ctx)
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("ingest: kafka topic %s: %w", opts.Topic, err)
	}
	if opts.Partitions != 0 && opts.Partitions != n {
		l.Close()
		return nil, fmt.Errorf("ingest: kafka topic %s has %d partitions, configured %d", opts.Topic, n, opts.Partitions)
	}
	opts.Partitions = n
	l.opts = opts
	return l, nil
}

// Partitions is the topic's partition count when it was opened.
func (l *KafkaLog) Partitions() int { return l.opts.Partitions }

// Append produces recs keyed by Key (murmur2, like other Kafka clients)
// or into their pinned partitions.
func (l *KafkaLog) Append(ctx context.Context, recs []Keyed) (map[int]uint64, error) {
	krs := make([]kafka.Record, len(recs))
	for i, r := range recs {
		if r.Pinned && (r.Partition < 0 || r.Partition >= l.opts.Partitions) {
			return nil, fmt.Errorf("ingest: record %d pinned to partition %d of %d", i, r.Partition, l.opts.Partitions)
		}
		krs[i] = kafka.Record{Key: r.Key, Value: r.Value, Pinned: r.Pinned, Partition: r.Partition}
	}
	at, err := l.prod.AppendAt(ctx, krs)
	if err != nil {
		return nil, err
	}
	out := make(map[int]uint64, len(at))
	for p, off := range at {
		out[int(p)] = off
	}
	return out, nil
}

// Reader reads partition p from from, without a consumer group.
func (l *KafkaLog) Reader(p int, from uint64) (PartitionReader, error) {
	r, err := kafka.NewPartitionReader(kafka.ReaderOptions{Brokers: l.opts.Brokers, Topic: l.opts.Topic, Partition: int32(p), From: from})
	if err != nil {
		return nil, err
	}
	return kafkaReader{r}, nil
}

// DeadLetter produces data to the dead-letter topic with the reason and
// its source partition and offset in headers.
func (l *KafkaLog) DeadLetter(ctx context.Context, p int, offset uint64, reason string, data []byte) error {
	return l.dlq.Send(ctx, reason, int32(p), offset, kafka.Record{Value: data})
}

// Backlogs asks for every partition's end in one round. It counts offsets
// (kafka.Lag): a partition a transactional producer writes to may end with
// a commit marker the reader never delivers, one record of lag that stays.
// Ripple's own producer writes none.
func (l *KafkaLog) Backlogs(ctx context.Context, applied []uint64) ([]Backlog, error) {
	ends, err := l.prod.Ends(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Backlog, len(applied))
	for p, a := range applied {
		end, ok := ends[int32(p)]
		if !ok {
			return nil, fmt.Errorf("ingest: kafka topic %s has no partition %d", l.opts.Topic, p)
		}
		out[p] = Backlog{Records: kafka.Lag(end, a), Newest: end - 1}
	}
	return out, nil
}

// Close fails records still buffered and disconnects the producers.
func (l *KafkaLog) Close() error {
	l.prod.Close()
	l.dlq.Close()
	return nil
}

type kafkaReader struct{ *kafka.PartitionReader }

func (r kafkaReader) End(ctx context.Context) (uint64, error) {
	_, end, err := r.Refresh(ctx)
	return end, err
}
