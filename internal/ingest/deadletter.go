package ingest

import (
	"context"
	"errors"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/resilience"
)

// Why a broker log record is set aside: the reason label of
// ripple_eventlog_dead_letters_total and the start of the reason stored with
// the letter (the error follows).
const (
	reasonUndecodable = "undecodable" // not the log encoding of any record
	reasonInvalid     = "invalid"     // decodes, but event.Record.Check refuses it
)

// The dead-letter write policy. A record that cannot be applied is useless
// to the state, and its letter is a copy for operators: the record itself
// stays in its partition, at the offset the logs name, until broker
// retention. So a letter that cannot be stored must not hold the partition
// (every user the partition owns would see frozen features until someone
// fixed the dead-letter topic): each letter gets letterAttempts tries of up
// to letterTimeout, letterBackoff apart and doubling, then the record is
// skipped, counted in ripple_eventlog_dead_letter_failures_total and logged
// at error with its partition and offset (never its bytes). One breaker for
// all partitions stops trying for letterCoolDown once a letter has failed
// every try, so a flood of bad records while the dead letters are down costs
// the partitions one try per cool-down, not the whole retry budget per
// record.
//
// Letters are at least once: a record read again after a restart (its
// offset not yet in a snapshot) is sent again. They carry their source
// partition and offset; NATS drops the copy within its duplicate window.
const (
	letterAttempts = 3
	letterTimeout  = 2 * time.Second
	letterBackoff  = 100 * time.Millisecond
	letterCoolDown = 30 * time.Second
)

// letter is a record of the batch being read that is not applied.
type letter struct {
	off  uint64
	err  error
	data []byte // a copy: the reader's bytes are only valid during its callback
}

// partitionBatch is one partition applier's reusable batch: the records to
// apply and the ones to set aside.
type partitionBatch struct {
	batchApplier
	letters []letter
}

func newPartitionBatch() *partitionBatch {
	return &partitionBatch{batchApplier: batchApplier{check: true}}
}

type letterPolicy struct {
	attempts int
	backoff  time.Duration
	breaker  *resilience.Breaker
}

func newLetterPolicy(timeout, backoff, coolDown time.Duration) letterPolicy {
	return letterPolicy{attempts: letterAttempts, backoff: backoff, breaker: resilience.NewBreaker(resilience.BreakerConfig{
		Name: "dead-letters", Timeout: timeout, MaxFailures: letterAttempts, Window: time.Minute, CoolDown: coolDown,
	})}
}

// send calls store until it succeeds, the tries run out, the breaker is
// open or ctx ends.
func (lp *letterPolicy) send(ctx context.Context, store func(context.Context) error) error {
	var err error
	for attempt := range lp.attempts {
		if attempt > 0 {
			t := time.NewTimer(lp.backoff << (attempt - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		err = lp.breaker.Do(ctx, store)
		if err == nil || errors.Is(err, resilience.ErrOpen) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// deadLetter stores each letter of partition p with its reason, or skips it
// under the policy above. It fails only when ctx ends.
func (s *Service) deadLetter(ctx context.Context, p int, letters []letter) error {
	for _, l := range letters {
		reason := reasonUndecodable
		if errors.Is(l.err, event.ErrInvalid) {
			reason = reasonInvalid
		}
		err := s.letters.send(ctx, func(ctx context.Context) error {
			return s.plog.DeadLetter(ctx, p, l.off, reason+": "+l.err.Error(), l.data)
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			s.logger.Error("dead letter not stored; record skipped (it stays in its partition until retention)",
				"partition", p, "offset", l.off, "reason", reason, "record_err", l.err, "err", err)
			if s.metrics != nil {
				s.metrics.DeadLetterFailures.WithLabelValues(reason).Inc()
			}
			continue
		}
		s.logger.Warn("record dead-lettered", "partition", p, "offset", l.off, "reason", reason, "err", l.err)
		if s.metrics != nil {
			s.metrics.DeadLetters.WithLabelValues(reason).Inc()
		}
	}
	return nil
}
