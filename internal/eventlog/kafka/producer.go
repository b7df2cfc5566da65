package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrUnavailable wraps every error from Append: the records were not
// acknowledged, so the caller must not acknowledge them either (the API
// answers 503). Whether they were stored is unknown; event ids deduplicate a
// retry.
var ErrUnavailable = errors.New("kafka: event log unavailable")

// DefaultMaxBufferedRecords bounds the producer's memory while the brokers are
// slow or down; once full, Append waits for space until its ctx ends.
const DefaultMaxBufferedRecords = 10000

// DefaultDeliveryTimeout bounds how long a record whose Append already
// failed (ctx ended) may still be delivered: after it the record is dropped,
// unless a request carrying it is in flight (idempotence forbids guessing).
const DefaultDeliveryTimeout = time.Minute

// Record is one event: Key is the user id, so that one user's events stay
// ordered in one partition.
type Record struct {
	Key, Value []byte
	// Pinned stores the record in Partition instead of Key's partition:
	// a record that every partition needs (item metadata) is appended
	// once per partition.
	Pinned    bool
	Partition int
}

// HeaderPinned marks a record stored in the partition it names (decimal),
// whatever its key: the partitioner honours it (see Record.Pinned).
const HeaderPinned = "ripple-pinned"

// ProducerOptions configures NewProducer.
type ProducerOptions struct {
	Brokers []string
	Topic   string
	// MaxBufferedRecords defaults to DefaultMaxBufferedRecords.
	MaxBufferedRecords int
	// DeliveryTimeout defaults to DefaultDeliveryTimeout.
	DeliveryTimeout time.Duration
	// ClientID names the client in broker logs and metrics (default "ripple").
	ClientID string
}

// Producer appends records to one topic, partitioned by key the way the Java
// client does (murmur2), with acks=all and idempotence.
type Producer struct {
	cl    *kgo.Client
	adm   *kadm.Client
	topic string
}

// NewProducer makes a producer; it does not contact the brokers.
func NewProducer(opts ProducerOptions) (*Producer, error) {
	if len(opts.Brokers) == 0 || opts.Topic == "" {
		return nil, errors.New("kafka: producer needs brokers and a topic")
	}
	if opts.MaxBufferedRecords <= 0 {
		opts.MaxBufferedRecords = DefaultMaxBufferedRecords
	}
	if opts.DeliveryTimeout <= 0 {
		opts.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if opts.ClientID == "" {
		opts.ClientID = "ripple"
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(opts.Brokers...),
		kgo.ClientID(opts.ClientID),
		kgo.DefaultProduceTopic(opts.Topic),
		// Invariant 1: an acknowledged event is on every in-sync replica.
		// Idempotence is franz-go's default and requires acks=all; it keeps
		// retries from duplicating or reordering records within a partition.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// nil hasher = Kafka's murmur2, so other Kafka clients agree on
		// which partition owns a user.
		kgo.RecordPartitioner(pinnedOrKeyed{kgo.StickyKeyPartitioner(nil)}),
		kgo.MaxBufferedRecords(opts.MaxBufferedRecords),
		kgo.RecordDeliveryTimeout(opts.DeliveryTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka: producer: %w", err)
	}
	return &Producer{cl: cl, adm: kadm.NewClient(cl), topic: opts.Topic}, nil
}

// Append produces recs and returns nil only once every one of them is
// acknowledged by all in-sync replicas. Any other outcome, including ctx
// ending first, is an error wrapping ErrUnavailable. An error means "not
// acknowledged", not "not stored": records already handed to the client keep
// being retried until stored or DeliveryTimeout passes, so a caller's retry
// must be deduplicated by event id.
func (p *Producer) Append(ctx context.Context, recs []Record) error {
	_, err := p.AppendAt(ctx, recs)
	return err
}

// AppendAt is Append that also says where the records went: for each
// partition it wrote to, the Ripple offset of the last record stored there.
// A reader that has delivered those offsets has seen every record (what a
// read-your-writes wait needs).
func (p *Producer) AppendAt(ctx context.Context, recs []Record) (map[int32]uint64, error) {
	krs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		krs[i] = &kgo.Record{Key: r.Key, Value: r.Value}
		if r.Pinned {
			krs[i].Partition = int32(r.Partition)
			krs[i].Headers = []kgo.RecordHeader{{Key: HeaderPinned, Value: strconv.AppendInt(nil, int64(r.Partition), 10)}}
		}
	}
	w, err := p.produceAt(ctx, krs)
	if err != nil {
		return nil, err
	}
	return w.last, nil
}

// produce is Append for prepared records (the dead-letter writer adds headers).
func (p *Producer) produce(ctx context.Context, krs []*kgo.Record) error {
	_, err := p.produceAt(ctx, krs)
	return err
}

func (p *Producer) produceAt(ctx context.Context, krs []*kgo.Record) (*ackWait, error) {
	if len(krs) == 0 {
		return &ackWait{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: produce to %s: %w", ErrUnavailable, p.topic, err)
	}
	w := newAckWait(len(krs))
	// The context given to Produce decides when franz-go gives up on a
	// buffered record, and it fails every buffered record of a partition
	// once the first one's context ends: a caller's short deadline would
	// fail other callers' records. So records live by the producer's
	// client (Close fails them) and the delivery timeout; ctx only stops
	// Produce from waiting for buffer space, through rctx, which is canceled
	// only if ctx ends while Produce calls are still being made. rctx has
	// no cancelable parent, so leaving it uncanceled holds nothing. (If it
	// is canceled, records of this call already buffered fail too, and with
	// them later records of their partitions: only when the buffer is full.)
	rctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	for _, r := range krs {
		p.cl.Produce(rctx, r, w.promise)
	}
	stop()
	select {
	case <-w.done:
		if err := w.firstErr(); err != nil {
			return nil, fmt.Errorf("%w: produce to %s: %w", ErrUnavailable, p.topic, err)
		}
		return w, nil
	case <-ctx.Done():
		// Records not yet acknowledged stay buffered: they may still be
		// stored, up to the delivery timeout. Not waiting for them keeps
		// the caller's deadline.
		return nil, fmt.Errorf("%w: produce to %s: %w", ErrUnavailable, p.topic, context.Cause(ctx))
	}
}

// ackWait collects the promises of one Append.
type ackWait struct {
	mu   sync.Mutex
	left int
	err  error
	last map[int32]uint64 // partition → Ripple offset of the last record stored
	done chan struct{}
}

func newAckWait(n int) *ackWait {
	return &ackWait{left: n, last: make(map[int32]uint64), done: make(chan struct{})}
}

func (w *ackWait) promise(r *kgo.Record, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil && w.err == nil {
		w.err = err
	}
	if err == nil {
		w.last[r.Partition] = max(w.last[r.Partition], rippleOffset(r.Offset))
	}
	w.left--
	if w.left == 0 {
		close(w.done)
	}
}

func (w *ackWait) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Partitions is the topic's partition count, asked of the brokers.
func (p *Producer) Partitions(ctx context.Context) (int, error) {
	return partitions(ctx, p.adm, p.topic)
}

func partitions(ctx context.Context, adm *kadm.Client, topic string) (int, error) {
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("%w: list topic %s: %w", ErrUnavailable, topic, err)
	}
	td, ok := tds[topic]
	if !ok {
		return 0, fmt.Errorf("kafka: topic %s not found", topic)
	}
	if td.Err != nil {
		return 0, fmt.Errorf("kafka: topic %s: %w", topic, td.Err)
	}
	return len(td.Partitions), nil
}

// Ends is, for every partition of the topic, the Ripple offset after its
// last stable record (the read_committed end a PartitionReader's End
// reports), asked of the brokers in one round.
func (p *Producer) Ends(ctx context.Context) (map[int32]uint64, error) {
	los, err := p.adm.ListCommittedOffsets(ctx, p.topic)
	if err != nil {
		return nil, fmt.Errorf("%w: list offsets %s: %w", ErrUnavailable, p.topic, err)
	}
	ends := make(map[int32]uint64, len(los[p.topic]))
	for part, lo := range los[p.topic] {
		if lo.Err != nil {
			return nil, fmt.Errorf("%w: list offsets %s/%d: %w", ErrUnavailable, p.topic, part, lo.Err)
		}
		ends[part] = rippleOffset(lo.Offset)
	}
	return ends, nil
}

// Close fails records still buffered and closes connections.
func (p *Producer) Close() {
	p.cl.Close()
}

// pinnedOrKeyed partitions a record marked HeaderPinned into the partition
// it was given, every other record as byKey does.
type pinnedOrKeyed struct{ byKey kgo.Partitioner }

func (p pinnedOrKeyed) ForTopic(topic string) kgo.TopicPartitioner {
	return pinnedTopic{p.byKey.ForTopic(topic)}
}

type pinnedTopic struct{ byKey kgo.TopicPartitioner }

func pinned(r *kgo.Record) bool {
	for _, h := range r.Headers {
		if h.Key == HeaderPinned {
			return true
		}
	}
	return false
}

func (t pinnedTopic) RequiresConsistency(r *kgo.Record) bool {
	return pinned(r) || t.byKey.RequiresConsistency(r)
}

func (t pinnedTopic) Partition(r *kgo.Record, n int) int {
	if pinned(r) {
		return int(r.Partition)
	}
	return t.byKey.Partition(r, n)
}

// OnNewBatch keeps byKey's stickiness for records without a key.
func (t pinnedTopic) OnNewBatch() {
	if o, ok := t.byKey.(kgo.TopicPartitionerOnNewBatch); ok {
		o.OnNewBatch()
	}
}
