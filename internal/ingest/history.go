package ingest

import (
	"context"
	"fmt"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
)

// Interactions calls fn with every interaction the log still holds, up to
// what the engine has applied, partition by partition on a partitioned log
// (a user's events stay in one partition, in order). It is what training
// reads.
func (s *Service) Interactions(ctx context.Context, fn func(*event.Interaction) error) error {
	if s.plog == nil {
		return LogInteractions(ctx, s.log, s.engine, fn)
	}
	for p := range s.plog.Partitions() {
		upto := s.engine.AppliedPartition(p)
		if upto == 0 {
			continue
		}
		r, err := s.plog.Reader(p, 1)
		if err != nil {
			return fmt.Errorf("ingest: partition %d: %w", p, err)
		}
		err = interactions(ctx, r, 1, upto, true, s.engine, fn)
		_ = r.Close()
		if err != nil {
			return fmt.Errorf("ingest: partition %d: %w", p, err)
		}
	}
	return nil
}

// LogInteractions is Interactions over an embedded log, up to what engine
// applied.
func LogInteractions(ctx context.Context, lg eventlog.Log, engine *features.Engine, fn func(*event.Interaction) error) error {
	return interactions(ctx, lg, max(lg.Start(), 1), engine.Applied(), false, engine, fn)
}

// interactions reads [from, upto] of r. Redacted records (erased users) are
// gone from the log already; users who withheld personalisation consent (as
// engine knows it) are left out, as the engine leaves them out of every
// shared aggregate. Undecodable records are skipped, as the applier skips
// them; check skips the records a partitioned applier dead-letters.
func interactions(ctx context.Context, r recordReader, from, upto uint64, check bool, engine *features.Engine, fn func(*event.Interaction) error) error {
	b := batchApplier{check: check}
	skip := func(uint64, []byte, error) error { return nil }
	for from <= upto {
		next, err := b.read(ctx, r, from, 16384, skip)
		if err != nil {
			return err
		}
		for i := range b.recs {
			rec := &b.recs[i]
			if b.offs[i] > upto || rec.Kind != event.KindInteraction || !engine.Consent(rec.Interaction.User).Personalization {
				continue
			}
			if err := fn(&rec.Interaction); err != nil {
				return err
			}
		}
		if next <= from {
			return nil // nothing more readable
		}
		from = next
	}
	return ctx.Err()
}
