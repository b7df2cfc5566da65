package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ripple-rec/ripple/internal/eventlog"
)

// gapWait bounds how long Read polls for records the broker says exist. It
// matters only when everything up to the end is invisible to a read_committed
// consumer (transaction markers, aborted records): Read then returns nothing
// and Wait blocks until a real record arrives.
const gapWait = 500 * time.Millisecond

// ReaderOptions configures NewPartitionReader.
type ReaderOptions struct {
	Brokers   []string
	Topic     string
	Partition int32
	// From is the Ripple offset of the first record to fetch (0 or 1 = the
	// start); reading from elsewhere later re-seeks.
	From uint64
}

// PartitionReader reads one partition from an explicit offset, without a
// consumer group, with eventlog.Log's read shape. It is meant for one
// goroutine: Read and Wait serialize. Offsets are Ripple offsets
// (kafka offset + 1). Records are read_committed: aborted transactional records
// and transaction markers are gaps in the offsets.
type PartitionReader struct {
	brokers   []string
	topic     string
	partition int32

	mu   sync.Mutex
	cl   *kgo.Client
	adm  *kadm.Client
	pos  uint64        // Ripple offset the client fetches from next, as far as buf shows
	buf  []*kgo.Record // fetched, not yet delivered; offsets >= pos
	done bool

	start, end atomic.Uint64 // latest known, Ripple offsets
}

// NewPartitionReader starts fetching opts.Partition from opts.From.
func NewPartitionReader(opts ReaderOptions) (*PartitionReader, error) {
	if len(opts.Brokers) == 0 || opts.Topic == "" || opts.Partition < 0 {
		return nil, errors.New("kafka: reader needs brokers, a topic and a partition")
	}
	r := &PartitionReader{brokers: opts.Brokers, topic: opts.Topic, partition: opts.Partition}
	r.start.Store(1)
	r.end.Store(1)
	if err := r.seek(max(opts.From, 1)); err != nil {
		return nil, err
	}
	return r, nil
}

// seek restarts fetching at from. A new client is the one way to be sure no
// fetch from the old position is still buffered; seeks are rare.
func (r *PartitionReader) seek(from uint64) error {
	if r.cl != nil {
		r.cl.Close()
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(r.brokers...),
		kgo.ClientID("ripple-reader"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			r.topic: {r.partition: kgo.NewOffset().At(int64(from - 1))},
		}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Below the log start (retention), continue from the start, as
		// eventlog.Log's Read does.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		r.cl = nil
		return fmt.Errorf("kafka: reader: %w", err)
	}
	r.cl, r.adm, r.pos, r.buf = cl, kadm.NewClient(cl), from, nil
	return nil
}

// position makes the next record fetched the first with offset >= from.
func (r *PartitionReader) position(from uint64) error {
	if r.done {
		return eventlog.ErrClosed
	}
	from = max(from, 1)
	if from == r.pos {
		return nil
	}
	if from > r.pos && len(r.buf) > 0 && rippleOffset(r.buf[len(r.buf)-1].Offset) >= from {
		r.drop(from)
		return nil
	}
	return r.seek(from)
}

// drop discards buffered records below from.
func (r *PartitionReader) drop(from uint64) {
	i := 0
	for i < len(r.buf) && rippleOffset(r.buf[i].Offset) < from {
		i++
	}
	r.buf = r.buf[i:]
	r.pos = from
}

// Read calls fn for up to max records with offset >= from, in order, and
// returns the offset after the last one delivered (from if none). Offsets
// need not be dense: next is last+1, not from+count. It returns what the
// broker has without waiting for more; data is valid only during fn.
func (r *PartitionReader) Read(ctx context.Context, from uint64, max int, fn func(offset uint64, data []byte) error) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.position(from); err != nil {
		return from, err
	}
	if len(r.buf) == 0 {
		if _, end, err := r.refresh(ctx); err != nil {
			return r.pos, err
		} else if end > r.pos {
			pctx, cancel := context.WithTimeout(ctx, gapWait)
			err := r.poll(pctx)
			cancel()
			if ctx.Err() != nil {
				return r.pos, ctx.Err()
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return r.pos, err
			}
		}
	}
	n := 0
	for n < max && len(r.buf) > 0 {
		rec := r.buf[0]
		off := rippleOffset(rec.Offset)
		if err := fn(off, rec.Value); err != nil {
			return r.pos, err
		}
		r.buf[0] = nil
		r.buf = r.buf[1:]
		r.pos = off + 1
		n++
	}
	return r.pos, nil
}

// Wait blocks until a record with offset >= from has been fetched or ctx ends.
func (r *PartitionReader) Wait(ctx context.Context, from uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.position(from); err != nil {
		return err
	}
	for len(r.buf) == 0 {
		if err := r.poll(ctx); err != nil {
			return err
		}
	}
	return nil
}

// poll appends one fetch to buf, blocking until records or an error arrive.
func (r *PartitionReader) poll(ctx context.Context) error {
	fs := r.cl.PollFetches(ctx)
	var err error
	fs.EachError(func(_ string, _ int32, e error) {
		if err == nil {
			err = e
		}
	})
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		r.observe(p.LogStartOffset, p.LastStableOffset)
		for _, rec := range p.Records {
			// A fetch can start before the requested offset (batches are
			// fetched whole); the client trims, this is a second guard.
			if rippleOffset(rec.Offset) >= r.pos {
				r.buf = append(r.buf, rec)
			}
		}
	})
	if err != nil && len(r.buf) == 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("kafka: fetch %s/%d: %w", r.topic, r.partition, err)
	}
	return nil
}

// observe raises the known start and end; both only grow.
func (r *PartitionReader) observe(start, end int64) {
	raise := func(v *atomic.Uint64, kafka int64) {
		if kafka < 0 {
			return
		}
		n := rippleOffset(kafka)
		for {
			old := v.Load()
			if n <= old || v.CompareAndSwap(old, n) {
				return
			}
		}
	}
	raise(&r.start, start)
	raise(&r.end, end)
}

// Refresh asks the brokers for the partition's start and end (read_committed
// end: the last stable offset) and returns them, updating Start and End.
func (r *PartitionReader) Refresh(ctx context.Context) (start, end uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return 0, 0, eventlog.ErrClosed
	}
	return r.refresh(ctx)
}

func (r *PartitionReader) refresh(ctx context.Context) (uint64, uint64, error) {
	lookup := func(list func(context.Context, ...string) (kadm.ListedOffsets, error)) (int64, error) {
		los, err := list(ctx, r.topic)
		if err != nil {
			return 0, fmt.Errorf("%w: list offsets %s: %w", ErrUnavailable, r.topic, err)
		}
		lo, ok := los.Lookup(r.topic, r.partition)
		if !ok {
			return 0, fmt.Errorf("kafka: partition %s/%d not found", r.topic, r.partition)
		}
		if lo.Err != nil {
			return 0, fmt.Errorf("%w: list offsets %s/%d: %w", ErrUnavailable, r.topic, r.partition, lo.Err)
		}
		return lo.Offset, nil
	}
	start, err := lookup(r.adm.ListStartOffsets)
	if err != nil {
		return 0, 0, err
	}
	end, err := lookup(r.adm.ListCommittedOffsets)
	if err != nil {
		return 0, 0, err
	}
	r.observe(start, end)
	return r.start.Load(), r.end.Load(), nil
}

// End is the latest known end: the offset after the last stable record, as of
// the last fetch or Refresh. It never goes back and never blocks.
func (r *PartitionReader) End() uint64 { return r.end.Load() }

// Start is the latest known oldest retained offset.
func (r *PartitionReader) Start() uint64 { return r.start.Load() }

// Close stops fetching. It waits for a Read or Wait in progress to return, so
// cancel their ctx first.
func (r *PartitionReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		r.done = true
		r.cl.Close()
		r.buf = nil
	}
	return nil
}

func rippleOffset(kafka int64) uint64 { return uint64(kafka) + 1 }

// Lag is how many records a worker that applied up to applied (0 = none) is
// behind a partition whose End is end. It counts offsets, so transaction
// markers in the range count too.
func Lag(end, applied uint64) uint64 {
	if end <= applied+1 {
		return 0
	}
	return end - 1 - applied
}
