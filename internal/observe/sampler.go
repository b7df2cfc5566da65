package observe

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Sampling happens in two steps, because a head sampler cannot know
// whether a trace will fail or be slow:
//
//   - headSampler runs when a span starts. It records every span, so the
//     tail sampler sees it end, and sets the W3C sampled flag (which the
//     response's and any outgoing traceparent carry) when the caller's
//     traceparent was sampled or the trace id falls in the ratio share.
//   - tailSampler, a SpanProcessor, buffers the ended spans of each trace
//     until its local root ends, then keeps the whole trace when a span
//     failed, the root was slow, or the head decided to sample it; other
//     traces are dropped without reaching the exporter.

// Decision reasons, the reason label of ripple_trace_decisions_total.
const (
	reasonError      = "error"       // a span has status Error
	reasonSlow       = "slow"        // the root ran slow_threshold or longer
	reasonParent     = "parent"      // the caller's traceparent said sampled
	reasonRatio      = "ratio"       // the trace id is in the sample_ratio share
	reasonSampledOut = "sampled_out" // none of the above
	reasonExpired    = "expired"     // still open after max_age and none of the above
)

// Reasons spans are dropped before a decision, the reason label of
// ripple_trace_dropped_spans_total.
const (
	dropMaxTraces   = "max_traces"   // max_traces traces already in flight
	dropMaxSpans    = "max_spans"    // the trace already holds max_spans_per_trace spans
	dropExportQueue = "export_queue" // kept, but the exporter is export_queue spans behind
)

// headSampler records every span; it samples (sets the flag) when the
// parent is sampled or ratioKeeps says so.
type headSampler struct {
	bound uint64
	desc  string
}

func newHeadSampler(ratio float64) headSampler {
	return headSampler{bound: ratioBound(ratio), desc: fmt.Sprintf("RippleTail{ratio=%g}", ratio)}
}

// ratioBound is the upper bound ratioKeeps compares with, computed as
// OpenTelemetry's TraceIDRatioBased sampler does.
func ratioBound(ratio float64) uint64 {
	switch {
	case ratio >= 1:
		return 1 << 63
	case ratio <= 0:
		return 0
	}
	return uint64(ratio * (1 << 63))
}

// ratioKeeps is the deterministic share test: the same answer for a trace
// id in every process with the same ratio, and the same answer as
// OpenTelemetry's TraceIDRatioBased, so Ripple agrees with other services.
// Trace ids are random, so their low 63 bits are as good as a hash.
func ratioKeeps(id trace.TraceID, bound uint64) bool {
	return binary.BigEndian.Uint64(id[8:16])>>1 < bound
}

func (s headSampler) ShouldSample(p sdktrace.SamplingParameters) sdktrace.SamplingResult {
	psc := trace.SpanContextFromContext(p.ParentContext)
	d := sdktrace.RecordOnly
	if psc.IsSampled() || ratioKeeps(p.TraceID, s.bound) {
		d = sdktrace.RecordAndSample
	}
	return sdktrace.SamplingResult{Decision: d, Tracestate: psc.TraceState()}
}

func (s headSampler) Description() string { return s.desc }

// tailSampler buffers the spans of in-flight traces and decides each trace
// when its local root (the span whose parent is remote or absent) ends.
// Every bound drops and counts: max spans per trace, max traces in
// flight, max age of a trace (checked whenever a span ends).
type tailSampler struct {
	slow      time.Duration
	maxSpans  int
	maxTraces int
	maxAge    time.Duration
	out       *exportQueue
	m         *traceMetrics

	mu     sync.Mutex
	traces map[trace.TraceID]*traceBuf
	// head..tail is every buffered trace, oldest first: expiry looks at
	// the head only.
	head, tail *traceBuf
	// recent remembers the last decisions, so a span ending after its
	// root (a background cache refresh started by the request) follows its
	// trace instead of opening a buffer that can only expire.
	recent decisions
	closed bool
}

type traceBuf struct {
	id         trace.TraceID
	spans      []sdktrace.ReadOnlySpan
	first      time.Time // end time of the first buffered span
	failed     bool      // a span, kept or dropped at the limit, has status Error
	sampled    bool      // the head sampler sampled the trace
	prev, next *traceBuf
}

func newTailSampler(cfg Tracing, out *exportQueue, m *traceMetrics) *tailSampler {
	return &tailSampler{slow: cfg.SlowThreshold, maxSpans: cfg.MaxSpansPerTrace, maxTraces: cfg.MaxTraces,
		maxAge: cfg.MaxAge, out: out, m: m, traces: make(map[trace.TraceID]*traceBuf),
		recent: newDecisions(cfg.MaxTraces)}
}

func (t *tailSampler) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// duration is how long a span ran.
func duration(s sdktrace.ReadOnlySpan) time.Duration { return s.EndTime().Sub(s.StartTime()) }

func isLocalRoot(s sdktrace.ReadOnlySpan) bool {
	p := s.Parent()
	return !p.IsValid() || p.IsRemote()
}

func (t *tailSampler) OnEnd(s sdktrace.ReadOnlySpan) {
	id := s.SpanContext().TraceID()
	failed := s.Status().Code == codes.Error
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	expired := t.expireLocked(s.EndTime())
	b := t.traces[id]
	if isLocalRoot(s) {
		if b != nil {
			t.removeLocked(b)
		}
		reason := t.decide(s, b, failed)
		t.recent.put(id, reason != reasonSampledOut)
		t.mu.Unlock()
		t.finish(b, s, reason)
	} else {
		var late, keepLate bool
		switch {
		case b != nil:
		case t.recentLocked(id, &keepLate):
			late = true
		case len(t.traces) >= t.maxTraces:
			t.mu.Unlock()
			t.m.dropped(dropMaxTraces, 1)
			t.flushExpired(expired)
			return
		default:
			b = &traceBuf{id: id, first: s.EndTime(), sampled: s.SpanContext().IsSampled()}
			t.traces[id] = b
			t.pushLocked(b)
		}
		switch {
		case late:
		case len(b.spans) >= t.maxSpans:
			b.failed = b.failed || failed
			t.mu.Unlock()
			t.m.dropped(dropMaxSpans, 1)
			t.flushExpired(expired)
			return
		default:
			b.spans = append(b.spans, s)
			b.failed = b.failed || failed
		}
		t.mu.Unlock()
		if late && (keepLate || failed) {
			t.out.push([]sdktrace.ReadOnlySpan{s})
		}
	}
	t.flushExpired(expired)
}

func (t *tailSampler) recentLocked(id trace.TraceID, keep *bool) bool {
	k, ok := t.recent.get(id)
	*keep = k
	return ok
}

// decide gives the reason a trace whose local root just ended is kept, or
// reasonSampledOut.
func (t *tailSampler) decide(root sdktrace.ReadOnlySpan, b *traceBuf, rootFailed bool) string {
	switch {
	case rootFailed || b != nil && b.failed:
		return reasonError
	case duration(root) >= t.slow:
		return reasonSlow
	case root.Parent().IsRemote() && root.Parent().IsSampled():
		return reasonParent
	case root.SpanContext().IsSampled():
		return reasonRatio
	}
	return reasonSampledOut
}

// decideOpen is decide for a trace whose root has not ended, open for at
// least open: at max_age (expiry) or at shutdown. Its root has run at
// least that long, so the trace is slow once open reaches slow_threshold.
func (t *tailSampler) decideOpen(b *traceBuf, open time.Duration) string {
	switch {
	case b.failed:
		return reasonError
	case open >= t.slow:
		return reasonSlow
	case b.sampled:
		return reasonRatio
	}
	return reasonExpired
}

// finish exports b's spans and root when reason keeps them.
func (t *tailSampler) finish(b *traceBuf, root sdktrace.ReadOnlySpan, reason string) {
	t.m.decided(reason)
	if reason == reasonSampledOut || reason == reasonExpired {
		return
	}
	var spans []sdktrace.ReadOnlySpan
	if b != nil {
		spans = b.spans
	}
	if root != nil {
		spans = append(spans, root)
	}
	t.out.push(spans)
}

// expireLocked unlinks the traces first seen more than max_age before now.
func (t *tailSampler) expireLocked(now time.Time) []*traceBuf {
	var out []*traceBuf
	for t.head != nil && now.Sub(t.head.first) > t.maxAge {
		b := t.head
		t.removeLocked(b)
		out = append(out, b)
	}
	return out
}

func (t *tailSampler) flushExpired(bs []*traceBuf) {
	for _, b := range bs {
		t.finish(b, nil, t.decideOpen(b, t.maxAge))
	}
}

func (t *tailSampler) pushLocked(b *traceBuf) {
	b.prev = t.tail
	if t.tail != nil {
		t.tail.next = b
	} else {
		t.head = b
	}
	t.tail = b
}

func (t *tailSampler) removeLocked(b *traceBuf) {
	delete(t.traces, b.id)
	if b.prev != nil {
		b.prev.next = b.next
	} else {
		t.head = b.next
	}
	if b.next != nil {
		b.next.prev = b.prev
	} else {
		t.tail = b.prev
	}
	b.prev, b.next = nil, nil
}

// inFlight is how many traces are buffered now.
func (t *tailSampler) inFlight() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return float64(len(t.traces))
}

// Shutdown decides every trace still open as if it expired, exports what
// is kept and stops the exporter.
func (t *tailSampler) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	var open []*traceBuf
	for t.head != nil {
		b := t.head
		t.removeLocked(b)
		open = append(open, b)
	}
	t.mu.Unlock()
	for _, b := range open {
		t.finish(b, nil, t.decideOpen(b, time.Since(b.first)))
	}
	return t.out.shutdown(ctx)
}

// ForceFlush exports the kept spans waiting in the queue. Open traces stay
// open: they are not decided yet.
func (t *tailSampler) ForceFlush(ctx context.Context) error { return t.out.flush(ctx) }

// decisions is a fixed-size memory of the last trace decisions.
type decisions struct {
	keep map[trace.TraceID]bool
	ring []trace.TraceID
	next int
}

func newDecisions(n int) decisions {
	return decisions{keep: make(map[trace.TraceID]bool, n), ring: make([]trace.TraceID, 0, n)}
}

func (d *decisions) put(id trace.TraceID, keep bool) {
	if _, ok := d.keep[id]; ok {
		d.keep[id] = d.keep[id] || keep
		return
	}
	if len(d.ring) < cap(d.ring) {
		d.ring = append(d.ring, id)
	} else {
		delete(d.keep, d.ring[d.next])
		d.ring[d.next] = id
		d.next = (d.next + 1) % len(d.ring)
	}
	d.keep[id] = keep
}

func (d *decisions) get(id trace.TraceID) (keep, ok bool) {
	keep, ok = d.keep[id]
	return keep, ok
}

// exportQueue hands kept spans to the exporter from one goroutine, in
// batches, so no request waits for an export. It holds at most max spans;
// beyond that kept spans are dropped and counted.
type exportQueue struct {
	exp    sdktrace.SpanExporter
	max    int
	m      *traceMetrics
	logger *slog.Logger

	mu      sync.Mutex
	pending []sdktrace.ReadOnlySpan
	closed  bool

	wake    chan struct{}
	flushes chan chan error
	stop    chan struct{}
	done    chan struct{}
	lastLog atomic.Int64 // unix ns of the last export error logged
}

const (
	exportBatch   = 512
	exportEvery   = time.Second
	exportTimeout = 10 * time.Second
)

func newExportQueue(exp sdktrace.SpanExporter, max int, m *traceMetrics, logger *slog.Logger) *exportQueue {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	q := &exportQueue{exp: exp, max: max, m: m, logger: logger, wake: make(chan struct{}, 1),
		flushes: make(chan chan error), stop: make(chan struct{}), done: make(chan struct{})}
	go q.run()
	return q
}

func (q *exportQueue) push(spans []sdktrace.ReadOnlySpan) {
	if len(spans) == 0 {
		return
	}
	q.mu.Lock()
	if q.closed || len(q.pending)+len(spans) > q.max {
		q.mu.Unlock()
		q.m.dropped(dropExportQueue, len(spans))
		return
	}
	q.pending = append(q.pending, spans...)
	full := len(q.pending) >= exportBatch
	q.mu.Unlock()
	if full {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

func (q *exportQueue) run() {
	defer close(q.done)
	tick := time.NewTicker(exportEvery)
	defer tick.Stop()
	for {
		select {
		case <-q.wake:
			q.export()
		case <-tick.C:
			q.export()
		case reply := <-q.flushes:
			reply <- q.export()
		case <-q.stop:
			q.export()
			return
		}
	}
}

// export sends everything pending, in batches.
func (q *exportQueue) export() error {
	q.mu.Lock()
	spans := q.pending
	q.pending = nil
	q.mu.Unlock()
	var first error
	for len(spans) > 0 {
		n := min(len(spans), exportBatch)
		ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
		err := q.exp.ExportSpans(ctx, spans[:n])
		cancel()
		if err != nil {
			q.m.exportErrors.Inc()
			q.logError(err)
			if first == nil {
				first = err
			}
		} else {
			q.m.exported.Add(float64(n))
		}
		spans = spans[n:]
	}
	return first
}

// logError logs an export failure at most once a minute: a collector that
// is down must not flood the logs.
func (q *exportQueue) logError(err error) {
	now := time.Now().UnixNano()
	last := q.lastLog.Load()
	if now-last < int64(time.Minute) || !q.lastLog.CompareAndSwap(last, now) {
		return
	}
	q.logger.Warn("trace export failed; spans dropped (logged at most once a minute)", "err", err)
}

func (q *exportQueue) flush(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case q.flushes <- reply:
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *exportQueue) shutdown(ctx context.Context) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	select {
	case <-q.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return q.exp.Shutdown(ctx)
}

// traceMetrics counts the sampler's decisions and drops.
type traceMetrics struct {
	decisions    *prometheus.CounterVec // decision, reason
	droppedSpans *prometheus.CounterVec // reason
	exported     prometheus.Counter
	exportErrors prometheus.Counter
	// The series, resolved once: a decision costs no label hashing.
	byReason map[string]prometheus.Counter // decisions by reason
	byDrop   map[string]prometheus.Counter // dropped spans by reason
}

func newTraceMetrics() *traceMetrics {
	m := &traceMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ripple_trace_decisions_total",
			Help: "Traces decided by the tail sampler: decision kept|dropped, reason error|slow|parent|ratio|sampled_out|expired.",
		}, []string{"decision", "reason"}),
		droppedSpans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ripple_trace_dropped_spans_total",
			Help: "Spans dropped because a tracing buffer was full: max_traces, max_spans (per trace), export_queue.",
		}, []string{"reason"}),
		exported: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ripple_trace_exported_spans_total", Help: "Spans handed to the trace exporter successfully.",
		}),
		exportErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ripple_trace_export_errors_total", Help: "Failed trace export calls (their spans are lost).",
		}),
	}
	// Every series exists from the start, so rate() and alerts see zeros.
	m.byReason, m.byDrop = map[string]prometheus.Counter{}, map[string]prometheus.Counter{}
	for _, r := range []string{reasonError, reasonSlow, reasonParent, reasonRatio} {
		m.byReason[r] = m.decisions.WithLabelValues("kept", r)
	}
	for _, r := range []string{reasonSampledOut, reasonExpired} {
		m.byReason[r] = m.decisions.WithLabelValues("dropped", r)
	}
	for _, r := range []string{dropMaxTraces, dropMaxSpans, dropExportQueue} {
		m.byDrop[r] = m.droppedSpans.WithLabelValues(r)
	}
	return m
}

func (m *traceMetrics) register(reg prometheus.Registerer, inFlight func() float64) error {
	for _, c := range []prometheus.Collector{m.decisions, m.droppedSpans, m.exported, m.exportErrors,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "ripple_trace_buffered_traces", Help: "Traces whose spans wait in the tail sampler for their root to end.",
		}, inFlight)} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// decided counts a decision; the reason says whether it was kept.
func (m *traceMetrics) decided(reason string) { m.byReason[reason].Inc() }

func (m *traceMetrics) dropped(reason string, n int) { m.byDrop[reason].Add(float64(n)) }
