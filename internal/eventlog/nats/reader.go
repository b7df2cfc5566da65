package nats

import (
	"context"
	"errors"
	"fmt"
	"time"

	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ripple-rec/ripple/internal/eventlog"
)

const (
	// fetchBatch caps one pull request; Read loops for larger max.
	fetchBatch = 1024
	// consumerIdle is how long the server keeps a reader's consumer without
	// pull requests. A reader idle longer just recreates it.
	consumerIdle = 2 * time.Minute
	// waitSlice bounds one server-side pull in Wait, so Wait notices a lost
	// connection within it even when ctx has no deadline.
	waitSlice = 10 * time.Second
	// retryPause spaces Wait's attempts while the broker is unreachable.
	retryPause = 200 * time.Millisecond
	// deleteTimeout bounds removing a consumer we no longer need; the server
	// reaps it after consumerIdle anyway.
	deleteTimeout = 500 * time.Millisecond
)

// PartitionReader reads one partition by offset: an ephemeral, unacked
// JetStream pull consumer filtered on the partition's subject, positioned at
// the offset the caller asks for and recreated when the caller moves, the
// server loses it, or a delivery goes missing.
//
// Offsets are stream sequences (see the package comment): increasing, not
// dense. Read returns last delivered + 1 as the offset to continue from.
//
// A PartitionReader is for one goroutine (one worker owns a partition);
// cancel Wait's ctx to stop it.
type PartitionReader struct {
	l       *Log
	p       int
	subject string

	cons    jetstream.Consumer // nil until needed or after a failure
	epoch   *connEpoch         // the connection cons was created on
	used    time.Time          // last pull, to outrun the server's idle reaping
	pos     uint64             // the consumer's next delivery is the first record >= pos
	consSeq uint64             // consumer sequence of the last delivery, to detect gaps
	peek    jetstream.Msg      // fetched by Wait, not yet passed to Read
	closed  bool
}

// Reader returns a reader of partition p.
func (l *Log) Reader(p int) (*PartitionReader, error) {
	if p < 0 || p >= len(l.subjects) {
		return nil, fmt.Errorf("eventlog/nats: partition %d of %d", p, len(l.subjects))
	}
	return &PartitionReader{l: l, p: p, subject: l.subjects[p]}, nil
}

// Read calls fn for up to max records of the partition with offset >= from,
// in order, and returns the offset to continue from: the last delivered
// offset + 1, or from if none was delivered; if fn fails, fn's offset. It
// returns what the server holds now and does not wait for more. data is only
// valid during fn.
func (r *PartitionReader) Read(ctx context.Context, from uint64, max int, fn func(offset uint64, data []byte) error) (uint64, error) {
	from = max1(from)
	if r.closed {
		return from, eventlog.ErrClosed
	}
	at := from // where reading continues
	delivered, failures, catchUp := 0, 0, 0
	deliver := func(m jetstream.Msg) (bool, error) {
		md, err := m.Metadata()
		if err != nil {
			r.drop()
			return false, fmt.Errorf("eventlog/nats: %s: %w", r.subject, err)
		}
		if md.Sequence.Consumer != r.consSeq+1 || md.Sequence.Stream < r.pos {
			// A delivery went missing (e.g. to an abandoned pull): go back.
			r.drop()
			return false, nil
		}
		r.consSeq = md.Sequence.Consumer
		if err := fn(md.Sequence.Stream, m.Data()); err != nil {
			// The consumer has moved past this record; the next Read starts over.
			at = md.Sequence.Stream
			r.drop()
			return false, err
		}
		r.pos = md.Sequence.Stream + 1
		at = r.pos
		delivered++
		return true, nil
	}

	for delivered < max {
		if err := ctx.Err(); err != nil {
			return at, err
		}
		if err := r.position(ctx, at); err != nil {
			return at, err
		}
		if m := r.peek; m != nil {
			r.peek = nil
			if ok, err := deliver(m); !ok {
				if err != nil {
					return at, err
				}
				continue
			}
		}
		want := min(max-delivered, fetchBatch)
		if want == 0 {
			break
		}
		batch, err := r.cons.FetchNoWait(want)
		if err != nil {
			r.drop()
			if failures++; failures > 2 {
				return at, fmt.Errorf("%w: fetch %s: %w", ErrUnavailable, r.subject, err)
			}
			continue
		}
		got, restart := 0, false
	recv:
		for {
			select {
			case m, ok := <-batch.Messages():
				if !ok {
					break recv
				}
				got++
				ok, err := deliver(m)
				if err != nil {
					return at, err
				}
				if !ok {
					restart = true
					break recv
				}
			case <-ctx.Done():
				// The rest of this pull may still arrive; start afresh next time.
				r.drop()
				return at, ctx.Err()
			}
		}
		if restart {
			// A gap: the new consumer resends from at. Twice in one Read means
			// something keeps dropping deliveries.
			if failures++; failures > 2 {
				return at, fmt.Errorf("%w: %s: deliveries keep going missing", ErrUnavailable, r.subject)
			}
			continue
		}
		if err := batch.Error(); err != nil {
			r.drop()
			if failures++; failures > 2 {
				return at, fmt.Errorf("%w: fetch %s: %w", ErrUnavailable, r.subject, err)
			}
			continue
		}
		if got < want {
			// Caught up with what the consumer has seen. A record the
			// server acknowledged a moment ago may not have reached the
			// consumer yet: when this Read found nothing but the partition
			// holds more, look again briefly, so a record is readable once
			// Append returned. (Only then: a Read that delivered records
			// costs no extra round trip.)
			if delivered > 0 {
				break
			}
			if end, err := r.End(ctx); err == nil && end > at && catchUp < maxCatchUp {
				catchUp++
				if err := pauseFor(ctx, time.Duration(catchUp)*time.Millisecond); err != nil {
					return at, err
				}
				continue
			}
			break
		}
	}
	return at, nil
}

// maxCatchUp bounds the extra looks Read takes at a partition whose end is
// past what its consumer delivered (about 45 ms in all).
const maxCatchUp = 9

// Wait blocks until the partition holds a record with offset >= from, or
// ctx ends. While the broker is unreachable it keeps retrying until ctx ends.
func (r *PartitionReader) Wait(ctx context.Context, from uint64) error {
	from = max1(from)
	for {
		if r.closed {
			return eventlog.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := r.position(ctx, from); err != nil {
			if err := pause(ctx); err != nil {
				return err
			}
			continue
		}
		if r.peek != nil {
			return nil
		}
		// The pull ends with the slice, ctx, or the connection it was sent on.
		sliceCtx, cancel := context.WithTimeout(ctx, waitSlice)
		stop := context.AfterFunc(r.epoch.ctx, cancel)
		m, err := r.cons.Next(jetstream.FetchContext(sliceCtx))
		stop()
		cancel()
		switch {
		case m != nil:
			md, mdErr := m.Metadata()
			if mdErr != nil || md.Sequence.Consumer != r.consSeq+1 {
				r.drop()
				continue
			}
			// Read delivers it; Wait only learns that it exists.
			r.peek = m
			return nil
		case err == nil, errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil, errors.Is(err, jetstream.ErrNoMessages):
			// The slice ended without a record: pull again.
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			// nats.ErrTimeout (no record in the slice) is the common case;
			// anything else may mean the consumer is gone: recreate it.
			if !isTimeout(err) {
				r.drop()
				if err := pause(ctx); err != nil {
					return err
				}
			}
		}
	}
}

// position makes sure a consumer exists whose next delivery is the first
// record >= from.
func (r *PartitionReader) position(ctx context.Context, from uint64) error {
	epoch := r.l.conn.Load()
	if r.cons != nil && r.pos == from && r.epoch == epoch && time.Since(r.used) < consumerIdle/2 {
		r.used = time.Now()
		return nil
	}
	if r.cons != nil && r.epoch == epoch {
		r.deleteConsumer()
	}
	c, err := r.l.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     r.subject,
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: consumerIdle,
		MemoryStorage:     true,
	})
	if err != nil {
		return fmt.Errorf("%w: consumer for %s at %d: %w", ErrUnavailable, r.subject, from, err)
	}
	r.cons, r.epoch, r.used = c, epoch, time.Now()
	r.pos, r.consSeq, r.peek = from, 0, nil
	return nil
}

// drop forgets the consumer but keeps pos, so the next call recreates it
// where reading left off. It does not talk to the server, which may be down;
// the server reaps the consumer after consumerIdle.
func (r *PartitionReader) drop() {
	r.cons, r.consSeq, r.peek = nil, 0, nil
}

func (r *PartitionReader) deleteConsumer() {
	ctx, cancel := context.WithTimeout(context.Background(), deleteTimeout)
	defer cancel()
	_ = r.l.stream.DeleteConsumer(ctx, r.cons.CachedInfo().Name)
	r.drop()
}

// End is the partition's last offset + 1, or, for an empty partition, the
// stream's last sequence + 1: either way every record appended later has an
// offset >= End.
func (r *PartitionReader) End(ctx context.Context) (uint64, error) {
	newest, err := r.l.Newest(ctx, r.p)
	if err != nil {
		return 0, err
	}
	if newest > 0 {
		return newest + 1, nil
	}
	info, err := r.l.stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: stream info: %w", ErrUnavailable, err)
	}
	return info.State.LastSeq + 1, nil
}

// Start is the partition's oldest retained offset, or End if it is empty.
func (r *PartitionReader) Start(ctx context.Context) (uint64, error) {
	m, err := r.l.stream.GetMsg(ctx, 1, jetstream.WithGetMsgSubject(r.subject))
	if err == nil {
		return m.Sequence, nil
	}
	if !errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, fmt.Errorf("%w: first of %s: %w", ErrUnavailable, r.subject, err)
	}
	return r.End(ctx)
}

// Close deletes the reader's consumer. It does not close the Log.
func (r *PartitionReader) Close() error {
	if r.cons != nil && !r.l.nc.IsClosed() {
		r.deleteConsumer()
	}
	r.drop()
	r.closed = true
	return nil
}

func isTimeout(err error) bool { return errors.Is(err, natsio.ErrTimeout) }

func max1(off uint64) uint64 { return max(off, 1) }

func pause(ctx context.Context) error { return pauseFor(ctx, retryPause) }

func pauseFor(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
