package kafka

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter record headers. The value and key are the original record's.
const (
	HeaderReason    = "ripple-dlq-reason"
	HeaderPartition = "ripple-dlq-partition" // source partition, decimal
	HeaderOffset    = "ripple-dlq-offset"    // source Ripple offset, decimal
)

// DeadLetterTopic is where records from topic that cannot be applied go.
func DeadLetterTopic(topic string) string { return topic + ".dlq" }

// DeadLetterOptions configures NewDeadLetters.
type DeadLetterOptions struct {
	Brokers []string
	// Topic is the source topic; letters go to DeadLetterTopic(Topic), which
	// must exist.
	Topic string
	// Counter, if set, is incremented per stored letter.
	Counter prometheus.Counter
}

// DeadLetters writes records a worker cannot apply, with the reason, so a bad
// record never blocks its partition.
type DeadLetters struct {
	p       *Producer
	counter prometheus.Counter
	n       atomic.Uint64
}

// NewDeadLetters makes a dead-letter writer; it does not contact the brokers.
func NewDeadLetters(opts DeadLetterOptions) (*DeadLetters, error) {
	if opts.Topic == "" {
		return nil, errors.New("kafka: dead letters need a source topic")
	}
	p, err := NewProducer(ProducerOptions{Brokers: opts.Brokers, Topic: DeadLetterTopic(opts.Topic), ClientID: "ripple-dlq"})
	if err != nil {
		return nil, err
	}
	return &DeadLetters{p: p, counter: opts.Counter}, nil
}

// Send stores rec, read from partition at Ripple offset offset, with reason,
// and returns once it is acknowledged (errors wrap ErrUnavailable). The
// worker should not advance past the record until Send succeeds.
func (d *DeadLetters) Send(ctx context.Context, reason string, partition int32, offset uint64, rec Record) error {
	err := d.p.produce(ctx, []*kgo.Record{{
		Key:   rec.Key,
		Value: rec.Value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderReason, Value: []byte(reason)},
			{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(partition), 10)},
			{Key: HeaderOffset, Value: strconv.AppendUint(nil, offset, 10)},
		},
	}})
	if err != nil {
		return err
	}
	d.n.Add(1)
	if d.counter != nil {
		d.counter.Inc()
	}
	return nil
}

// Count is how many letters Send stored since NewDeadLetters.
func (d *DeadLetters) Count() uint64 { return d.n.Load() }

// Close closes the underlying producer.
func (d *DeadLetters) Close() { d.p.Close() }
