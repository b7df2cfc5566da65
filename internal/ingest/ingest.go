package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/store"
)

// Options tune the write path.
type Options struct {
	SnapshotEvery  time.Duration // 0: only on shutdown
	DedupIDs       int
	DedupAge       time.Duration
	ReadBatch      int
	RetentionFloor func(offset uint64) // told the newest snapshot offset; nil ok
	// LagEvery is how often the consumer lag of a broker log's partitions
	// is measured (0: every second).
	LagEvery time.Duration
	// Tracing records the durable append and the wait for apply as spans of
	// the caller's trace, and each applied batch as a trace of its own.
	// nil: no spans.
	Tracing trace.TracerProvider
}

// Service is the write path. Create with New, then Start.
type Service struct {
	log     eventlog.Log   // nil when plog is set
	plog    PartitionedLog // nil: the embedded log
	readers []PartitionReader
	letters letterPolicy // partitioned: how records that cannot be applied are set aside
	engine  *features.Engine
	snaps   *store.Snapshots // nil: no snapshots (tests, eval)
	dedup   *event.Deduper
	metrics *observe.Metrics
	logger  *slog.Logger
	tracer  trace.Tracer
	opts    Options

	applyMu sync.Mutex // held by the applier; snapshots take it to get a cut
	batch   batchApplier
	snapMu  sync.Mutex // one snapshot at a time
	applied chan struct{}
	appMu   sync.Mutex // guards applied channel swap

	ready    atomic.Bool
	started  atomic.Bool
	lastSnap atomic.Int64  // unix ms of the last snapshot; 0: none
	lagged   atomic.Uint64 // partitioned: records not yet applied, as last measured
	pending  pendingQueue

	// appendOnly: a node that applies nothing (NewAppender); published
	// is what its appends wait for instead.
	appendOnly bool
	remote     Remote

	afterApply  func(applied uint64)
	specChanged bool       // Recover rebuilt the state under new feature specs
	eraseMu     sync.Mutex // one erasure's snapshot-purge-redact at a time

	stop chan struct{}
	done chan struct{}
}

// AfterApply sets a hook the applier calls after every applied batch, on
// its goroutine and before waiters are woken: what it does is visible to
// a request as soon as that request's events count as applied. Set it
// before Start.
func (s *Service) AfterApply(fn func(applied uint64)) { s.afterApply = fn }

// SpecChanged reports whether Recover rebuilt the state because the
// feature specs changed: values computed under the old specs elsewhere
// (the online store) must be rewritten.
func (s *Service) SpecChanged() bool { return s.specChanged }

// Result is what POST /v1/events answers.
type Result struct {
	Accepted   int
	Duplicates int
	// Refused lists the indices of events not stored because their user
	// withheld storage consent.
	Refused []int
}

// New wires the service. It does not read anything yet.
func New(log eventlog.Log, engine *features.Engine, snaps *store.Snapshots, m *observe.Metrics, logger *slog.Logger, opts Options) *Service {
	if opts.DedupIDs <= 0 {
		opts.DedupIDs = 1_000_000
	}
	if opts.DedupAge <= 0 {
		opts.DedupAge = 24 * time.Hour
	}
	if opts.ReadBatch <= 0 {
		opts.ReadBatch = 4096
	}
	if opts.LagEvery <= 0 {
		opts.LagEvery = time.Second
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{log: log, engine: engine, snaps: snaps, dedup: event.NewDeduper(opts.DedupIDs, opts.DedupAge),
		metrics: m, logger: logger, opts: opts, applied: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
		tracer: observe.Tracer(opts.Tracing, "github.com/ripple-rec/ripple/internal/ingest")}
}

// Recover loads the latest snapshot and replays the log tail until the
// state includes every record that was durable when Recover began. Call
// before Start; the node is not ready until it returns.
func (s *Service) Recover(ctx context.Context) error {
	if s.appendOnly {
		s.ready.Store(true)
		return nil
	}
	if s.snaps != nil {
		info, ok, err := s.snaps.Load(s.engine.Restore)
		switch {
		case errors.Is(err, features.ErrSpecChanged):
			// The meta entry sorts first, so nothing was restored yet.
			s.logger.Warn("feature specs changed since the snapshot; rebuilding state from the log")
			s.specChanged = true
		case err != nil:
			return fmt.Errorf("ingest: load snapshot: %w", err)
		case ok:
			s.lastSnap.Store(info.Written.UnixMilli())
			s.logger.Info("snapshot loaded", "offset", info.Offset, "vector", s.engine.AppliedVector(), "entries", info.Entries, "bytes", info.Bytes)
		}
	}
	if s.plog != nil {
		return s.recoverPartitioned(ctx)
	}
	if a := s.engine.Applied(); a+1 < s.log.Start() {
		// Retention is held back by the snapshot floor, so this means the
		// snapshot was lost: state would silently miss events.
		return fmt.Errorf("ingest: log starts at %d but state includes only up to %d: records were dropped before they were snapshotted", s.log.Start(), a)
	}
	return s.catchUp(ctx)
}

func (s *Service) catchUp(ctx context.Context) error {
	end := s.log.End()
	s.rebuildDedup(ctx, end)
	start := time.Now()
	from := s.engine.Applied() + 1
	n := 0
	for from < end {
		next, err := s.applyFrom(ctx, from)
		if err != nil {
			return err
		}
		n += int(next - from)
		from = next
	}
	s.logger.Info("replayed log tail", "records", n, "seconds", time.Since(start).Seconds(), "applied", s.engine.Applied())
	s.ready.Store(true)
	return nil
}

// rebuildDedup re-reads the ids of the newest records so retries of events
// acknowledged before a restart are still recognised.
func (s *Service) rebuildDedup(ctx context.Context, end uint64) {
	s.reserveIDs(ctx, s.log, end, uint64(s.opts.DedupIDs))
}

// reserveIDs marks the event ids of r's records in [end-window, end) as seen.
func (s *Service) reserveIDs(ctx context.Context, r recordReader, end, window uint64) {
	from := uint64(1)
	if end > window {
		from = end - window
	}
	now := time.Now().UnixMilli()
	var rec event.Record
	ids := make([]string, 1)
	for from < end {
		next, err := r.Read(ctx, from, s.opts.ReadBatch, func(_ uint64, data []byte) error {
			if event.DecodeBinary(data, &rec) == nil && rec.Kind == event.KindInteraction && rec.Interaction.ID != "" {
				ids[0] = rec.Interaction.ID
				s.dedup.Reserve(ids, now)
			}
			return nil
		})
		if err != nil || next == from {
			return
		}
		from = next
	}
}

// Ready reports whether recovery finished.
func (s *Service) Ready() bool { return s.ready.Load() }

// Start runs the applier until Close.
func (s *Service) Start() {
	s.started.Store(true)
	if s.appendOnly {
		go func() { <-s.stop; close(s.done) }()
		return
	}
	if s.plog != nil {
		go s.runPartitioned()
		return
	}
	go s.run()
}

// snapshotTicker ticks every SnapshotEvery; nil channel when snapshots are
// off. Both appliers (one log, partitioned) use it.
func (s *Service) snapshotTicker() (<-chan time.Time, func()) {
	if s.snaps == nil || s.opts.SnapshotEvery <= 0 {
		return nil, func() {}
	}
	t := time.NewTicker(s.opts.SnapshotEvery)
	return t.C, t.Stop
}

func (s *Service) run() {
	defer close(s.done)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-s.stop; cancel() }()
	tick, stopTick := s.snapshotTicker()
	defer stopTick()
	for {
		// Checked on every pass, so sustained ingest cannot starve snapshots.
		select {
		case <-tick:
			if err := s.Snapshot(); err != nil {
				s.logger.Error("snapshot failed", "err", err)
			}
		default:
		}
		from := s.engine.Applied() + 1
		if s.log.End() > from {
			if _, err := s.applyFrom(ctx, from); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.logger.Error("apply failed; retrying", "from", from, "err", err)
				time.Sleep(100 * time.Millisecond)
			}
			continue
		}
		// Wait for new records or the snapshot tick, whichever comes first.
		// The snapshot itself is taken here, on the applier's goroutine, so
		// two snapshots can never overlap.
		waitCtx, waitCancel := context.WithCancel(ctx)
		waitDone, watcherDone := make(chan struct{}), make(chan struct{})
		snapDue := false
		go func() {
			defer close(watcherDone)
			select {
			case <-tick:
				snapDue = true
				waitCancel()
			case <-waitDone:
			}
		}()
		err := s.log.Wait(waitCtx, from)
		close(waitDone)
		<-watcherDone
		waitCancel()
		if ctx.Err() != nil {
			return
		}
		if snapDue {
			if err := s.Snapshot(); err != nil {
				s.logger.Error("snapshot failed", "err", err)
			}
			continue
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			s.logger.Error("log wait failed", "err", err)
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// applyFrom applies one read batch and wakes waiters. Each batch is a span
// and, as the applier serves no request, a trace of its own: sampled like
// any other, so kept when it fails or is slow.
func (s *Service) applyFrom(ctx context.Context, from uint64) (uint64, error) {
	ctx, span := s.tracer.Start(ctx, "ingest.apply")
	s.applyMu.Lock()
	next, err := s.batch.apply(ctx, s.log, s.engine, from, s.opts.ReadBatch, func(off uint64, err error) error {
		// A record the log acknowledged but we cannot decode is a bug or
		// disk corruption: skip it loudly rather than wedge the node.
		s.logger.Error("skipping undecodable log record", "offset", off, "err", err)
		return nil
	})
	if s.afterApply != nil && next > from {
		s.afterApply(s.engine.Applied())
	}
	s.applyMu.Unlock()
	if n := next - from; n > 0 && s.metrics != nil {
		s.metrics.Applied.Add(float64(n))
	}
	s.notifyApplied()
	if span.IsRecording() {
		span.SetAttributes(attribute.Int64("ripple.log.from", int64(from)), attribute.Int64("ripple.records", int64(next-from)))
	}
	observe.SetError(span, err)
	span.End()
	return next, err
}

func (s *Service) notifyApplied() {
	applied := s.engine.Applied()
	if s.metrics != nil && s.log != nil {
		end := s.log.End()
		if end > applied+1 {
			s.metrics.ApplyLag.Set(float64(end - applied - 1))
		} else {
			s.metrics.ApplyLag.Set(0)
		}
		if t, ok := s.pending.popUpTo(applied); ok {
			s.metrics.ApplyLagSec.Set(time.Since(t).Seconds())
		}
	}
	s.appMu.Lock()
	close(s.applied)
	s.applied = make(chan struct{})
	s.appMu.Unlock()
}

// WaitApplied blocks until the state includes offset (of the embedded log,
// or of partition 0).
func (s *Service) WaitApplied(ctx context.Context, offset uint64) error {
	if err := s.waitUntil(ctx, func() bool { return s.engine.Applied() >= offset }); err != nil {
		return fmt.Errorf("ingest: waiting for offset %d to be applied: %w", offset, err)
	}
	return nil
}

// waitUntil blocks until done, checked after every applied batch, or ctx ends.
func (s *Service) waitUntil(ctx context.Context, done func() bool) error {
	for {
		s.appMu.Lock()
		ch := s.applied
		s.appMu.Unlock()
		if done() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Events appends a validated batch durably and returns once the feature
// state reflects it. Ids already seen count as duplicates and are dropped.
func (s *Service) Events(ctx context.Context, events []event.Interaction) (Result, error) {
	ids := make([]string, len(events))
	for i := range events {
		ids[i] = events[i].ID
	}
	var dup []bool
	for {
		var wait <-chan struct{}
		if dup, wait = s.dedup.TryReserve(ids, time.Now().UnixMilli()); wait == nil {
			break
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return Result{}, fmt.Errorf("ingest: an event with the same id is still being appended: %w", ctx.Err())
		}
	}
	var res Result
	consent, err := s.consents(ctx, events)
	if err != nil {
		var mine []string
		for i, id := range ids {
			if !dup[i] && id != "" {
				mine = append(mine, id)
			}
		}
		s.dedup.Release(mine)
		return res, err
	}
	recs := make([]Keyed, 0, len(events))
	var reserved []string
	buf := make([]byte, 0, len(events)*96)
	var rec event.Record
	rec.Kind = event.KindInteraction
	for i := range events {
		if dup[i] {
			res.Duplicates++
			continue
		}
		if !consent[i].Storage {
			res.Refused = append(res.Refused, i)
			if ids[i] != "" {
				s.dedup.Release([]string{ids[i]})
			}
			continue
		}
		if ids[i] != "" {
			reserved = append(reserved, ids[i])
		}
		rec.Interaction = events[i]
		start := len(buf)
		buf = event.AppendBinary(buf, &rec)
		k := Keyed{Value: buf[start:len(buf):len(buf)], ID: ids[i]}
		if s.plog != nil {
			k.Key = []byte(events[i].User) // the embedded log has no keys: no copy on its hot path
		}
		recs = append(recs, k)
	}
	if len(recs) == 0 {
		return res, nil
	}
	if err := s.append(ctx, recs); err != nil {
		if errors.Is(err, ErrApplyPending) {
			s.dedup.Commit(reserved)
			res.Accepted = len(recs)
			return res, err
		}
		s.dedup.Release(reserved)
		return res, err
	}
	s.dedup.Commit(reserved)
	res.Accepted = len(recs)
	return res, nil
}

// Items appends item metadata records, keyed by item: one item's updates
// stay in order. From a node that applies nothing (NewAppender), every
// partition gets a copy instead: the workers apply each partition into an
// engine of its own, which needs the categories of every item its users
// touch (category trending and affinity); each partition still keeps the
// item's updates in order. (One engine applying every partition must not
// get copies: it could apply an older update's copy after a newer one's.)
func (s *Service) Items(ctx context.Context, items []event.Item) error {
	copies, pinned := 1, s.appendOnly && s.plog != nil
	if pinned {
		copies = s.plog.Partitions()
	}
	recs := make([]Keyed, 0, len(items)*copies)
	for i := range items {
		v := event.AppendBinary(nil, &event.Record{Kind: event.KindItem, Item: items[i]})
		for p := range copies {
			recs = append(recs, Keyed{Key: []byte(items[i].ID), Value: v, Pinned: pinned, Partition: p})
		}
	}
	return s.append(ctx, recs)
}

// EraseUser is Erase without the count.
func (s *Service) EraseUser(ctx context.Context, user string) error {
	_, err := s.Erase(ctx, user)
	return err
}

// SetConsent records what user allows, durably, and returns once it
// applies: later events of a user without storage consent are refused,
// and without personalisation consent they feed no one else's features.
func (s *Service) SetConsent(ctx context.Context, user string, c event.Consent) error {
	rec := event.Record{Kind: event.KindUser, User: event.User{ID: user, TS: time.Now().UnixMilli(), Attributes: c.Attributes()}}
	return s.appendSeen(ctx, []Keyed{{Key: []byte(user), Value: event.AppendBinary(nil, &rec)}}, true)
}

// Consent is what user allows now (on a node that applies nothing: as
// published, full consent when that cannot be read).
func (s *Service) Consent(user string) event.Consent {
	if s.appendOnly {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cs, err := s.consents(ctx, []event.Interaction{{User: user}})
		if err != nil {
			return event.FullConsent
		}
		return cs[0]
	}
	return s.engine.Consent(user)
}

// redactor is a log that can erase records in place (the embedded log).
type redactor interface {
	Redact(ctx context.Context, replace func(offset uint64, data []byte) []byte) (int, error)
}

// ErrCannotRedact means the log keeps records it cannot rewrite: the
// user's state is gone but their raw events are not.
var ErrCannotRedact = errors.New("ingest: this event log cannot erase records")

// EraseUser erases user everywhere this node keeps them:
//   - an erase tombstone is appended and applied (state, consent and, through
//     the publisher, the online store and cache tiers);
//   - a snapshot is taken at that cut and older snapshots are purged from
//     disk, so no restart can bring the user back;
//   - every log record about the user, the tombstone included, is replaced
//     by a redacted record and purged from disk.
//
// It returns how many log records were redacted.
func (s *Service) Erase(ctx context.Context, user string) (int, error) {
	rec := event.Record{Kind: event.KindErase, User: event.User{ID: user, TS: time.Now().UnixMilli()}}
	tomb, err := s.appendAt(ctx, []Keyed{{Key: []byte(user), Value: event.AppendBinary(nil, &rec)}}, true)
	if err != nil {
		// Including ErrApplyPending: nothing below may run before the
		// tombstone is applied. The caller retries; erasure is idempotent.
		return 0, err
	}
	s.eraseMu.Lock()
	defer s.eraseMu.Unlock()
	if s.snaps != nil {
		if err := s.Snapshot(); err != nil {
			return 0, fmt.Errorf("ingest: erase: %w", err)
		}
		if err := s.snaps.Purge(ctx); err != nil {
			return 0, fmt.Errorf("ingest: erase: %w", err)
		}
	}
	r, ok := s.log.(redactor)
	if !ok {
		return 0, ErrCannotRedact
	}
	redacted := event.AppendBinary(nil, &event.Record{Kind: event.KindRedacted})
	var dec event.Record
	n, err := r.Redact(ctx, func(off uint64, data []byte) []byte {
		// Records after the tombstone are a new life of the same id,
		// acknowledged and applied after the erasure: they stay.
		if off > tomb || event.DecodeBinary(data, &dec) != nil || dec.Subject() != user {
			return nil
		}
		return redacted
	})
	if err != nil {
		return n, fmt.Errorf("ingest: erase: %w", err)
	}
	if s.metrics != nil {
		s.metrics.Erasures.Inc()
		s.metrics.Erased.Add(float64(n))
	}
	return n, nil
}

// append stores recs durably, then waits until the state includes them
// (read-your-writes). Keys and ids matter only to a partitioned log.
func (s *Service) append(ctx context.Context, recs []Keyed) error {
	return s.appendSeen(ctx, recs, false)
}

// appendSeen is append; on a node that applies nothing, mustSee waits for
// the records to be published even without Remote.PublishedAll (consent
// and erasure must have taken effect when they are answered).
func (s *Service) appendSeen(ctx context.Context, recs []Keyed, mustSee bool) error {
	_, err := s.appendAt(ctx, recs, mustSee)
	return err
}

// appendAt is append that also returns the offset of the last record in
// the embedded log (0 with a partitioned log, or when nothing became
// durable).
func (s *Service) appendAt(ctx context.Context, recs []Keyed, mustSee bool) (uint64, error) {
	start := time.Now()
	actx, span := s.tracer.Start(ctx, "eventlog.append")
	var (
		first uint64
		at    map[int]uint64
		err   error
	)
	if s.plog != nil {
		at, err = s.plog.Append(actx, recs)
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	} else {
		payloads := make([][]byte, len(recs))
		for i := range recs {
			payloads[i] = recs[i].Value
		}
		first, err = s.log.Append(actx, payloads)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("ripple.records", len(recs)))
	}
	observe.SetError(span, err)
	span.End()
	if err != nil {
		return 0, fmt.Errorf("ingest: append: %w", err)
	}
	if s.metrics != nil {
		s.metrics.AppendBatch.Observe(time.Since(start).Seconds())
	}
	wctx, span := s.tracer.Start(ctx, "ingest.wait_applied")
	var last uint64
	switch {
	case s.appendOnly && (s.remote.Published == nil || !(mustSee || s.remote.PublishedAll)):
	case s.appendOnly:
		err = s.remote.Published(wctx, at)
	case s.plog != nil:
		err = s.waitPartitions(wctx, at)
	default:
		last = first + uint64(len(recs)) - 1
		s.pending.push(last, time.Now())
		err = s.WaitApplied(wctx, last)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int64("ripple.log.offset", int64(last)))
	}
	observe.SetError(span, err)
	span.End()
	if err != nil {
		return last, fmt.Errorf("%w: %w", ErrApplyPending, err)
	}
	return last, nil
}

// ErrApplyPending means the records are durable (acknowledge them) but the
// feature state did not include them before the caller's deadline.
var ErrApplyPending = errors.New("ingest: durable but not yet applied")

// Snapshot writes the state at the current applied offset. Apply pauses
// while the state is encoded in memory; the Pebble write happens after.
func (s *Service) Snapshot() error {
	if s.snaps == nil || s.engine == nil {
		return nil
	}
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	start := time.Now()
	type kv struct{ k, v []byte }
	var entries []kv
	var arena []byte
	s.applyMu.Lock()
	offset := s.engine.Applied()
	err := s.engine.Snapshot(func(k, v []byte) error {
		ks := len(arena)
		arena = append(arena, k...)
		vs := len(arena)
		arena = append(arena, v...)
		entries = append(entries, kv{arena[ks:vs:vs], arena[vs:len(arena):len(arena)]})
		return nil
	})
	s.applyMu.Unlock()
	if err != nil {
		return err
	}
	// The arena may have been reallocated while growing: re-slice from the
	// final arena using the recorded lengths.
	pos := 0
	for i := range entries {
		kl, vl := len(entries[i].k), len(entries[i].v)
		entries[i].k = arena[pos : pos+kl : pos+kl]
		pos += kl
		entries[i].v = arena[pos : pos+vl : pos+vl]
		pos += vl
	}
	info, err := s.snaps.Write(offset, func(put func(k, v []byte) error) error {
		for _, e := range entries {
			if err := put(e.k, e.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ingest: snapshot: %w", err)
	}
	s.lastSnap.Store(info.Written.UnixMilli())
	if s.opts.RetentionFloor != nil {
		s.opts.RetentionFloor(offset)
	}
	if s.metrics != nil {
		s.metrics.SnapshotSecs.Observe(time.Since(start).Seconds())
	}
	s.logger.Info("snapshot written", "offset", offset, "entries", info.Entries, "bytes", info.Bytes, "seconds", time.Since(start).Seconds())
	return nil
}

// SnapshotAge is seconds since the last snapshot, or -1 if none.
func (s *Service) SnapshotAge() float64 {
	t := s.lastSnap.Load()
	if t == 0 {
		return -1
	}
	return time.Since(time.UnixMilli(t)).Seconds()
}

// Close stops the applier after it has applied everything durable, then
// writes a final snapshot. A service that never started (recovery failed)
// has nothing trustworthy to snapshot and closes at once.
func (s *Service) Close() error {
	if !s.started.Load() {
		s.closeReaders() // opened by a recovery that failed or was not followed by Start
		return nil
	}
	select {
	case <-s.stop:
		return nil
	default:
	}
	if s.log != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = s.WaitApplied(ctx, s.log.End()-1)
	}
	close(s.stop)
	<-s.done
	return s.Snapshot()
}

// pendingQueue remembers when recent appends returned, to export how long
// records wait between durable append and apply.
type pendingQueue struct {
	mu    sync.Mutex
	items []pendingItem
}

type pendingItem struct {
	last uint64
	at   time.Time
}

func (q *pendingQueue) push(last uint64, at time.Time) {
	q.mu.Lock()
	if len(q.items) < 1024 {
		q.items = append(q.items, pendingItem{last, at})
	}
	q.mu.Unlock()
}

// popUpTo drops entries the applier has passed and returns the oldest one's time.
func (q *pendingQueue) popUpTo(applied uint64) (time.Time, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var t time.Time
	ok := false
	i := 0
	for ; i < len(q.items) && q.items[i].last <= applied; i++ {
		if !ok {
			t, ok = q.items[i].at, true
		}
	}
	q.items = append(q.items[:0], q.items[i:]...)
	return t, ok
}
