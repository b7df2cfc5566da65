package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"

	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/store"
)

// Keyed is one record for a partitioned log. Key chooses the partition (the
// user, so one user's records stay in order) unless Pinned, which stores it
// in Partition; ID, when set, lets a broker that can (NATS JetStream) drop
// a retried copy.
type Keyed struct {
	Key, Value []byte
	ID         string
	Pinned     bool
	Partition  int
}

// PartitionedLog is what the write path needs from a partitioned broker log
// (Kafka, NATS JetStream): a keyed producer and a reader per partition.
type PartitionedLog interface {
	Partitions() int
	// Append returns nil only once the broker acknowledged every record,
	// with, for each partition written, the offset of the last record
	// stored there.
	Append(ctx context.Context, recs []Keyed) (map[int]uint64, error)
	// Reader reads partition p, starting at offset from.
	Reader(p int, from uint64) (PartitionReader, error)
	// DeadLetter stores data, the record at offset of partition p, with the
	// reason it cannot be applied, outside the partitions (a dead-letter
	// topic or stream), and returns nil once the broker acknowledged it.
	DeadLetter(ctx context.Context, p int, offset uint64, reason string, data []byte) error
	// Backlogs is, for each partition p, what it holds after offset
	// applied[p], asked of the broker. It is called from a goroutine of its
	// own while the readers read.
	Backlogs(ctx context.Context, applied []uint64) ([]Backlog, error)
}

// Backlog is what one partition holds that the state does not include yet.
type Backlog struct {
	Records uint64 // records after the applied offset
	Newest  uint64 // offset of the partition's newest record; 0: it has none
}

// PartitionReader reads one partition; offsets increase but need not be
// dense. One goroutine uses it.
type PartitionReader interface {
	recordReader
	// Wait blocks until a record with offset >= from can be read or ctx ends.
	Wait(ctx context.Context, from uint64) error
	// End is the offset after the partition's last stored record, asked of
	// the broker.
	End(ctx context.Context) (uint64, error)
	Close() error
}

// ErrUnavailable means the partitioned log did not acknowledge the records
// (broker unreachable, refused, or slower than the caller's deadline):
// nothing was acknowledged, and a retry with the same event ids is safe.
var ErrUnavailable = errors.New("ingest: event log unavailable")

// NewPartitioned wires the write path over a partitioned log. One engine
// applies every partition: readers run one goroutine per partition and apply
// under one lock, each partition from its own applied offset (the engine's
// vector, stored in snapshots), which is exactly-once per partition
// (invariant 3 makes the interleaving irrelevant). RetentionFloor is not
// used: broker retention is the broker's.
func NewPartitioned(plog PartitionedLog, engine *features.Engine, snaps *store.Snapshots, m *observe.Metrics, logger *slog.Logger, opts Options) *Service {
	s := New(nil, engine, snaps, m, logger, opts)
	s.plog = plog
	s.letters = newLetterPolicy(letterTimeout, letterBackoff, letterCoolDown)
	if m != nil {
		// Counted from 0, so the first letter shows in rate() and increase().
		for _, reason := range []string{reasonUndecodable, reasonInvalid} {
			m.DeadLetters.WithLabelValues(reason)
			m.DeadLetterFailures.WithLabelValues(reason)
		}
	}
	return s
}

// recoverPartitioned opens a reader per partition at the restored vector and
// applies each partition up to the end it had when recovery reached it.
// Event ids of each partition's newest DedupIDs/partitions offsets are
// marked seen first, so a client's retry of an event acknowledged before the
// restart is still a duplicate: on Kafka (dense offsets) that is the newest
// DedupIDs events; on NATS (stream sequences) fewer, and JetStream's own
// duplicate window covers recent retries there.
func (s *Service) recoverPartitioned(ctx context.Context) error {
	n := s.plog.Partitions()
	for p := range s.engine.AppliedVector() {
		if p >= n {
			return fmt.Errorf("ingest: the snapshot has partition %d but the log has %d partitions: users would move between partitions", p, n)
		}
	}
	start := time.Now()
	s.readers = make([]PartitionReader, 0, n)
	b := newPartitionBatch()
	records := 0
	for p := range n {
		from := s.engine.AppliedPartition(p) + 1
		r, err := s.plog.Reader(p, from)
		if err != nil {
			s.closeReaders()
			return fmt.Errorf("ingest: partition %d: %w", p, err)
		}
		s.readers = append(s.readers, r)
		end, err := r.End(ctx)
		if err != nil {
			s.closeReaders()
			return fmt.Errorf("ingest: partition %d: %w", p, err)
		}
		s.reserveIDs(ctx, r, end, uint64(max(1, s.opts.DedupIDs/n)))
		for from < end {
			next, err := s.applyPartition(ctx, p, r, b, from)
			if err != nil {
				s.closeReaders()
				return fmt.Errorf("ingest: replay partition %d: %w", p, err)
			}
			records += len(b.recs)
			if next == from {
				// Nothing readable yet below end: wait a little, then
				// leave the rest (gaps, aborted transactions) to the
				// live applier.
				wctx, cancel := context.WithTimeout(ctx, time.Second)
				err := r.Wait(wctx, from)
				cancel()
				if err != nil {
					break
				}
			}
			from = next
		}
	}
	s.logger.Info("replayed partitions", "partitions", n, "records", records, "seconds", time.Since(start).Seconds(),
		"vector", s.engine.AppliedVector())
	s.ready.Store(true)
	return nil
}

// closeReaders closes the readers in parallel: a client's close can take a
// while when its brokers are gone.
func (s *Service) closeReaders() {
	var wg sync.WaitGroup
	for _, r := range s.readers {
		wg.Go(func() { _ = r.Close() })
	}
	wg.Wait()
	s.readers = nil
}

// runPartitioned runs one applier per partition, the lag sampler and the
// snapshot ticker until Close.
func (s *Service) runPartitioned() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for p, r := range s.readers {
		wg.Go(func() { s.runPartition(ctx, p, r) })
	}
	wg.Go(func() { s.sampleLag(ctx) })
	tick, stopTick := s.snapshotTicker()
	defer stopTick()
	for {
		select {
		case <-tick:
			// Snapshot takes the apply lock: the vector it stores is a cut.
			if err := s.Snapshot(); err != nil {
				s.logger.Error("snapshot failed", "err", err)
			}
		case <-s.stop:
			cancel()
			wg.Wait()
			s.closeReaders()
			return
		}
	}
}

func (s *Service) runPartition(ctx context.Context, p int, r PartitionReader) {
	b := newPartitionBatch()
	for {
		from := s.engine.AppliedPartition(p) + 1
		err := r.Wait(ctx, from)
		if err == nil {
			_, err = s.applyPartition(ctx, p, r, b, from)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.logger.Error("partition apply failed; retrying", "partition", p, "from", from, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// applyPartition reads one batch of partition p (outside the apply lock, so
// partitions decode in parallel), sets aside the records it cannot apply
// (deadLetter), applies the rest, and wakes waiters.
func (s *Service) applyPartition(ctx context.Context, p int, r PartitionReader, b *partitionBatch, from uint64) (uint64, error) {
	ctx, span := s.tracer.Start(ctx, "ingest.apply")
	b.letters = b.letters[:0]
	next, err := b.read(ctx, r, from, s.opts.ReadBatch, func(off uint64, data []byte, err error) error {
		b.letters = append(b.letters, letter{off: off, err: err, data: bytes.Clone(data)})
		return nil
	})
	if lerr := s.deadLetter(ctx, p, b.letters); lerr != nil {
		// Stopping: apply nothing of this batch, so no record after a
		// letter not yet sent counts as applied; it is all read again.
		next, err = from, lerr
		b.offs, b.recs = b.offs[:0], b.recs[:0]
	}
	s.applyMu.Lock()
	s.engine.ApplyPartition(p, b.offs, b.recs)
	// Skipped records count as handled (see batchApplier.apply).
	if next > from && err == nil && s.engine.AppliedPartition(p) < next-1 {
		s.engine.SetAppliedPartition(p, next-1)
	}
	if s.afterApply != nil && next > from {
		s.afterApply(s.engine.Applied())
	}
	s.applyMu.Unlock()
	if s.metrics != nil && len(b.recs) > 0 {
		s.metrics.Applied.Add(float64(len(b.recs)))
	}
	s.notifyApplied()
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("ripple.log.partition", p), attribute.Int64("ripple.log.from", int64(from)),
			attribute.Int("ripple.records", len(b.recs)), attribute.Int("ripple.dead_letters", len(b.letters)))
	}
	observe.SetError(span, err)
	span.End()
	return next, err
}

// waitPartitions blocks until the state includes, in each partition of at,
// the record at its offset: read-your-writes for records whose positions the
// broker acknowledged.
func (s *Service) waitPartitions(ctx context.Context, at map[int]uint64) error {
	err := s.waitUntil(ctx, func() bool {
		for p, off := range at {
			if s.engine.AppliedPartition(p) < off {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("ingest: waiting for %v to be applied: %w", at, err)
	}
	return nil
}
