package ingest

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// lagQueryTimeout bounds one round of Backlogs: a broker slower than this
// leaves the records gauge as it was while the seconds keep growing.
const lagQueryTimeout = 5 * time.Second

// sampleLag exports each partition's consumer lag every LagEvery until ctx
// ends. It reads the applied offsets without the apply lock and asks the
// broker from this goroutine of its own, so the appliers never wait for it.
func (s *Service) sampleLag(ctx context.Context) {
	n := s.plog.Partitions()
	track := lagTracker{sightings: make([][]sighting, n)}
	applied := make([]uint64, n)
	// One of a broker log's partitions (a worker's) is labelled with its
	// number in the broker.
	id := func(p int) int { return p }
	if one, ok := s.plog.(interface{ PartitionID(int) int }); ok {
		id = one.PartitionID
	}
	labels := make([]string, n)
	for p := range labels {
		labels[p] = strconv.Itoa(id(p))
	}
	if s.metrics != nil {
		// A partition this service stops applying (a worker released it)
		// leaves no series behind: its last value would alert for ever.
		defer func() {
			for _, l := range labels {
				s.metrics.ConsumerLag.DeleteLabelValues(l)
				s.metrics.ConsumerLagSec.DeleteLabelValues(l)
			}
		}()
	}
	tick := time.NewTicker(s.opts.LagEvery)
	defer tick.Stop()
	failing := false
	for {
		for p := range applied {
			applied[p] = s.engine.AppliedPartition(p)
		}
		qctx, cancel := context.WithTimeout(ctx, lagQueryTimeout)
		backlogs, err := s.plog.Backlogs(qctx, applied)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil && len(backlogs) != n {
			err = fmt.Errorf("ingest: backlogs of %d partitions, want %d", len(backlogs), n)
		}
		if err != nil != failing {
			if failing = err != nil; failing {
				s.logger.Warn("consumer lag unknown: the broker did not say where its partitions end", "err", err)
			} else {
				s.logger.Info("consumer lag known again")
			}
		}
		now := time.Now()
		var total uint64
		for p := range n {
			var b *Backlog
			// Applied again: what was applied while the broker answered
			// is not lag.
			a := s.engine.AppliedPartition(p)
			if err == nil {
				b = &backlogs[p]
				if b.Newest <= a {
					b.Records = 0
				}
				total += b.Records
			}
			secs, known := track.observe(p, a, b, now)
			if s.metrics != nil {
				if b != nil {
					s.metrics.ConsumerLag.WithLabelValues(labels[p]).Set(float64(b.Records))
				}
				if known {
					s.metrics.ConsumerLagSec.WithLabelValues(labels[p]).Set(secs)
				}
			}
		}
		if err == nil {
			s.lagged.Store(total)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ConsumerLag is how many records the partitions of a broker log held that
// the state did not include, as last measured (every LagEvery); 0 before the
// first measurement and with the embedded log.
func (s *Service) ConsumerLag() uint64 { return s.lagged.Load() }

// lagTracker estimates, per partition, how long the oldest record the state
// does not include yet has been in the log: ripple_eventlog_consumer_lag_seconds.
//
// Each sample that finds records past the applied offset remembers the
// newest offset it saw and when (a sighting). The oldest unapplied record was
// in the log by the earliest sighting whose newest offset is past applied
// (offsets only grow, so that newest is this record or a later one): now
// minus that sighting's time is how long it has been there, at least. The
// estimate is a lower bound, short by at most one sampling interval, so an
// alert on it never fires on a guess. It needs no broker timestamp (Kafka's
// are the producers' clocks by default) and does not overstate a quiet
// partition: a record appended a moment ago after an hour of silence is a
// moment old, where now minus the time of the last applied record would say
// an hour. A backlog already there at this process's first sample counts
// from that sample.
type lagTracker struct {
	sightings [][]sighting // per partition, oldest first, newest offsets increasing
}

type sighting struct {
	newest uint64
	at     time.Time
}

// maxSightings bounds the memory of a partition whose lag grows for long;
// past it every other sighting but the oldest is dropped, which keeps the
// estimate a lower bound, in coarser steps.
const maxSightings = 512

// observe folds in one sample of partition p: applied is its applied
// offset, b what the broker said (nil: it did not answer). It returns the
// lag in seconds, and false when it is not known.
func (t *lagTracker) observe(p int, applied uint64, b *Backlog, now time.Time) (float64, bool) {
	s := t.sightings[p]
	i := 0
	for i < len(s) && s[i].newest <= applied {
		i++
	}
	s = append(s[:0], s[i:]...)
	switch {
	case b == nil:
	case b.Records == 0 || b.Newest <= applied:
		s = s[:0]
	case len(s) == 0 || b.Newest > s[len(s)-1].newest:
		if len(s) == maxSightings {
			kept := s[:1]
			for j := 2; j < len(s); j += 2 {
				kept = append(kept, s[j])
			}
			s = kept
		}
		s = append(s, sighting{newest: b.Newest, at: now})
	}
	t.sightings[p] = s
	if len(s) == 0 {
		return 0, b != nil
	}
	return now.Sub(s[0].at).Seconds(), true
}
