package ingest

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/observe"
)

// Remote is what a node that applies nothing learns from the state the
// partitions' owners published (the online store).
type Remote struct {
	// Published returns once the published state includes, in each
	// partition of at, the record at its offset. Consent changes and
	// erasures wait for it; events and item metadata only with
	// PublishedAll (read-your-writes), else they are acknowledged once
	// durable and become visible when published. Nil: nothing waits.
	Published    func(ctx context.Context, at map[int]uint64) error
	PublishedAll bool
	// Consent is what each of users allows, as published. An error refuses
	// the batch (ErrUnavailable): without it, events of a user who
	// withheld storage consent could be stored.
	Consent func(ctx context.Context, users []string) ([]event.Consent, error)
}

// NewAppender is the write path of a node that applies nothing (role api):
// records are acknowledged once the broker stored them, and the workers
// that own their partitions apply them. Consent and erasure are records
// like events: the owner of the subject's partition applies them (erasure
// cannot rewrite a broker log: ErrCannotRedact). Item metadata is appended
// to every partition (see Items).
func NewAppender(plog PartitionedLog, remote Remote, m *observe.Metrics, logger *slog.Logger, opts Options) *Service {
	s := New(nil, nil, nil, m, logger, opts)
	s.plog = plog
	s.appendOnly, s.remote = true, remote
	return s
}

// SetRemote sets what a node that applies nothing reads back (before the
// first request).
func (s *Service) SetRemote(r Remote) { s.remote = r }

// consents is what each event's user allows: from the engine, or, on a
// node that applies nothing, from the published state.
func (s *Service) consents(ctx context.Context, events []event.Interaction) ([]event.Consent, error) {
	out := make([]event.Consent, len(events))
	if !s.appendOnly {
		for i := range events {
			out[i] = s.engine.Consent(events[i].User)
		}
		return out, nil
	}
	if s.remote.Consent == nil {
		for i := range out {
			out[i] = event.FullConsent
		}
		return out, nil
	}
	users := make([]string, len(events))
	for i := range events {
		users[i] = events[i].User
	}
	cs, err := s.remote.Consent(ctx, users)
	if err != nil {
		return nil, fmt.Errorf("%w: consent: %w", ErrUnavailable, err)
	}
	return cs, nil
}

// OnePartition is partition p of plog as a log of one partition (0), so a
// Service applies that partition alone, into an engine of its own (role
// worker: one engine per owned partition).
func OnePartition(plog PartitionedLog, p int) PartitionedLog { return onePartition{plog, p} }

type onePartition struct {
	PartitionedLog
	p int
}

func (o onePartition) Partitions() int { return 1 }

// PartitionID is the broker's number of this log's partition p (always 0):
// metrics label partitions with it.
func (o onePartition) PartitionID(int) int { return o.p }

func (o onePartition) Append(ctx context.Context, recs []Keyed) (map[int]uint64, error) {
	for i := range recs {
		if recs[i].Pinned {
			recs[i].Partition = o.p // its partition 0
		}
	}
	at, err := o.PartitionedLog.Append(ctx, recs)
	if err != nil {
		return nil, err
	}
	out := make(map[int]uint64, 1)
	if off, ok := at[o.p]; ok {
		out[0] = off
	}
	return out, nil
}

func (o onePartition) Reader(_ int, from uint64) (PartitionReader, error) {
	return o.PartitionedLog.Reader(o.p, from)
}

func (o onePartition) DeadLetter(ctx context.Context, _ int, offset uint64, reason string, data []byte) error {
	return o.PartitionedLog.DeadLetter(ctx, o.p, offset, reason, data)
}

func (o onePartition) Backlogs(ctx context.Context, applied []uint64) ([]Backlog, error) {
	all := make([]uint64, o.p+1)
	all[o.p] = applied[0]
	b, err := o.PartitionedLog.Backlogs(ctx, all)
	if err != nil {
		return nil, err
	}
	return b[o.p:], nil
}
