package observe

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// testProvider is a provider over an in-memory exporter. Spans reach the
// exporter after flush.
type testProvider struct {
	tp  *sdktrace.TracerProvider
	exp *recorder
	reg *prometheus.Registry
	tr  trace.Tracer
}

// recorder is an exporter that keeps what it got, also after Shutdown.
type recorder struct {
	mu    sync.Mutex
	spans []sdktrace.ReadOnlySpan
}

func (r *recorder) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	r.mu.Lock()
	r.spans = append(r.spans, spans...)
	r.mu.Unlock()
	return nil
}

func (r *recorder) Shutdown(context.Context) error { return nil }

func (r *recorder) get() []sdktrace.ReadOnlySpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sdktrace.ReadOnlySpan(nil), r.spans...)
}

func (r *recorder) names() []string {
	var names []string
	for _, s := range r.get() {
		names = append(names, s.Name())
	}
	return names
}

func newTestProvider(t testing.TB, cfg Tracing) *testProvider {
	t.Helper()
	cfg.Exporter = ExporterStdout // anything but off; the exporter is injected
	cfg, err := cfg.withDefaults()
	require.NoError(t, err)
	p := &testProvider{exp: &recorder{}, reg: prometheus.NewRegistry()}
	p.tp, err = newProvider(context.Background(), cfg, p.exp, p.reg, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.tp.Shutdown(context.Background()) })
	p.tr = p.tp.Tracer("test")
	return p
}

// exported flushes and returns the names of the exported spans.
func (p *testProvider) exported(t testing.TB) []string {
	t.Helper()
	require.NoError(t, p.tp.ForceFlush(context.Background()))
	return p.exp.names()
}

func (p *testProvider) decisions(decision, reason string) float64 {
	return metricValue(p.reg, "ripple_trace_decisions_total", map[string]string{"decision": decision, "reason": reason})
}

func (p *testProvider) droppedSpans(reason string) float64 {
	return metricValue(p.reg, "ripple_trace_dropped_spans_total", map[string]string{"reason": reason})
}

func (p *testProvider) buffered() float64 {
	return metricValue(p.reg, "ripple_trace_buffered_traces", nil)
}

// metricValue is the value of the counter or gauge series of name with
// labels in reg; it panics when there is none.
func metricValue(reg *prometheus.Registry, name string, labels map[string]string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue metric
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	panic("no series " + name)
}

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// span starts and ends a span over [start, start+d) under ctx.
func span(ctx context.Context, tr trace.Tracer, name string, start time.Time, d time.Duration, err error) context.Context {
	ctx, s := tr.Start(ctx, name, trace.WithTimestamp(start))
	if err != nil {
		s.SetStatus(codes.Error, err.Error())
	}
	s.End(trace.WithTimestamp(start.Add(d)))
	return ctx
}

func remoteParent(sampled bool) context.Context {
	flags := trace.TraceFlags(0)
	if sampled {
		flags = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xaa, 1, 2, 3, 4, 5, 6, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, // outside any ratio share
		SpanID:  trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8}, TraceFlags: flags, Remote: true})
	return trace.ContextWithRemoteSpanContext(context.Background(), sc)
}

// TestTailSamplerDecisions: with sample_ratio 0, a trace is kept exactly
// when a span failed, the root was slow, or the caller sampled it, and
// always whole (the children ended before the root).
func TestTailSamplerDecisions(t *testing.T) {
	boom := errors.New("boom")
	cases := []struct {
		name     string
		parent   context.Context
		rootDur  time.Duration
		rootErr  error
		childErr error
		kept     bool
		reason   string
	}{
		{"fast and fine: dropped", context.Background(), 10 * time.Millisecond, nil, nil, false, reasonSampledOut},
		{"child failed", context.Background(), 10 * time.Millisecond, nil, boom, true, reasonError},
		{"root failed", context.Background(), 10 * time.Millisecond, boom, nil, true, reasonError},
		{"slow root", context.Background(), 250 * time.Millisecond, nil, nil, true, reasonSlow},
		{"just under slow", context.Background(), 249 * time.Millisecond, nil, nil, false, reasonSampledOut},
		{"caller sampled", remoteParent(true), time.Millisecond, nil, nil, true, reasonParent},
		{"caller not sampled", remoteParent(false), time.Millisecond, nil, nil, false, reasonSampledOut},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProvider(t, Tracing{SampleRatio: 0, SlowThreshold: 250 * time.Millisecond})
			ctx, root := p.tr.Start(tc.parent, "root", trace.WithTimestamp(t0))
			span(ctx, p.tr, "child", t0.Add(time.Millisecond), time.Millisecond, tc.childErr)
			span(ctx, p.tr, "child2", t0.Add(2*time.Millisecond), time.Millisecond, nil)
			if tc.rootErr != nil {
				root.SetStatus(codes.Error, tc.rootErr.Error())
			}
			root.End(trace.WithTimestamp(t0.Add(tc.rootDur)))
			if tc.kept {
				assert.ElementsMatch(t, []string{"child", "child2", "root"}, p.exported(t))
				assert.Equal(t, 1.0, p.decisions("kept", tc.reason))
			} else {
				assert.Empty(t, p.exported(t))
				assert.Equal(t, 1.0, p.decisions("dropped", tc.reason))
			}
		})
	}
}

// TestTailSamplerRatioShare: of 10,000 fast, healthy traces a ratio of 0.1
// keeps a share within 5 standard deviations of 10%, and exactly the
// traces OpenTelemetry's TraceIDRatioBased sampler picks: another service
// sampling by trace id ratio agrees with Ripple trace by trace.
func TestTailSamplerRatioShare(t *testing.T) {
	const n, ratio = 10_000, 0.1
	p := newTestProvider(t, Tracing{SampleRatio: ratio, ExportQueue: n})
	otelSampler := sdktrace.TraceIDRatioBased(ratio)
	want := map[trace.TraceID]bool{}
	for i := 0; i < n; i++ {
		_, s := p.tr.Start(context.Background(), "root", trace.WithTimestamp(t0))
		id := s.SpanContext().TraceID()
		s.End(trace.WithTimestamp(t0.Add(time.Millisecond)))
		if otelSampler.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: id}).Decision == sdktrace.RecordAndSample {
			want[id] = true
		}
	}
	require.NoError(t, p.tp.ForceFlush(context.Background()))
	got := map[trace.TraceID]bool{}
	for _, s := range p.exp.get() {
		got[s.SpanContext().TraceID()] = true
		assert.True(t, s.SpanContext().IsSampled(), "ratio-kept traces carry the sampled flag downstream")
	}
	sd := math.Sqrt(n * ratio * (1 - ratio))
	assert.InDelta(t, n*ratio, len(got), 5*sd, "kept share")
	assert.Equal(t, want, got, "the same traces as TraceIDRatioBased(%g)", ratio)
	assert.Equal(t, float64(len(got)), p.decisions("kept", reasonRatio))
	assert.Equal(t, float64(n-len(got)), p.decisions("dropped", reasonSampledOut))
}

// TestTailSamplerBounds: spans beyond max_spans_per_trace and traces beyond
// max_traces are dropped and counted; a failed span dropped at the limit
// still keeps its trace; the exporter queue drops what does not fit.
func TestTailSamplerBounds(t *testing.T) {
	t.Run("max spans per trace", func(t *testing.T) {
		p := newTestProvider(t, Tracing{MaxSpansPerTrace: 3})
		ctx, root := p.tr.Start(context.Background(), "root", trace.WithTimestamp(t0))
		for i := 0; i < 5; i++ {
			var err error
			if i == 4 {
				err = errors.New("the last child fails")
			}
			span(ctx, p.tr, "child", t0, time.Millisecond, err)
		}
		root.End(trace.WithTimestamp(t0.Add(time.Millisecond)))
		assert.Len(t, p.exported(t), 4, "3 children and the root")
		assert.Equal(t, 2.0, p.droppedSpans(dropMaxSpans))
		assert.Equal(t, 1.0, p.decisions("kept", reasonError), "the dropped child's failure still counts")
	})
	t.Run("max traces", func(t *testing.T) {
		p := newTestProvider(t, Tracing{MaxTraces: 2, SampleRatio: 1})
		var roots []trace.Span
		for i := 0; i < 3; i++ {
			ctx, root := p.tr.Start(context.Background(), "root", trace.WithTimestamp(t0))
			span(ctx, p.tr, "child", t0, time.Millisecond, nil)
			roots = append(roots, root)
		}
		assert.Equal(t, 2.0, p.buffered())
		assert.Equal(t, 1.0, p.droppedSpans(dropMaxTraces))
		for _, r := range roots {
			r.End(trace.WithTimestamp(t0.Add(time.Millisecond)))
		}
		assert.Len(t, p.exported(t), 5, "two whole traces and the third's root")
		assert.Equal(t, 0.0, p.buffered())
	})
	t.Run("export queue", func(t *testing.T) {
		p := newTestProvider(t, Tracing{ExportQueue: 2, SampleRatio: 1})
		ctx, root := p.tr.Start(context.Background(), "root", trace.WithTimestamp(t0))
		span(ctx, p.tr, "child", t0, time.Millisecond, nil)
		span(ctx, p.tr, "child", t0, time.Millisecond, nil)
		root.End(trace.WithTimestamp(t0.Add(time.Millisecond)))
		assert.Empty(t, p.exported(t))
		assert.Equal(t, 3.0, p.droppedSpans(dropExportQueue))
	})
}

// TestTailSamplerMaxAge: a trace whose root is still open after max_age is
// decided from what it has: slow (so kept) when max_age >= slow_threshold,
// otherwise dropped as expired unless a span failed.
func TestTailSamplerMaxAge(t *testing.T) {
	cases := []struct {
		name   string
		cfg    Tracing
		failed bool
		kept   bool
		reason string
	}{
		{"max age over slow threshold: slow", Tracing{MaxAge: time.Second, SlowThreshold: 250 * time.Millisecond}, false, true, reasonSlow},
		{"max age under slow threshold: expired", Tracing{MaxAge: 100 * time.Millisecond, SlowThreshold: time.Second}, false, false, reasonExpired},
		{"failed: kept", Tracing{MaxAge: 100 * time.Millisecond, SlowThreshold: time.Second}, true, true, reasonError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestProvider(t, tc.cfg)
			var err error
			if tc.failed {
				err = errors.New("boom")
			}
			ctx, _ := p.tr.Start(context.Background(), "never-ends", trace.WithTimestamp(t0))
			span(ctx, p.tr, "old child", t0, time.Millisecond, err)
			// Any span ending later than max_age after it expires it.
			span(context.Background(), p.tr, "other", t0.Add(tc.cfg.MaxAge+time.Second), time.Millisecond, nil)
			if tc.kept {
				assert.Contains(t, p.exported(t), "old child")
				assert.Equal(t, 1.0, p.decisions("kept", tc.reason))
			} else {
				assert.NotContains(t, p.exported(t), "old child")
				assert.Equal(t, 1.0, p.decisions("dropped", tc.reason))
			}
			assert.Equal(t, 0.0, p.buffered())
		})
	}
}

// TestTailSamplerLateSpans: a span that ends after its root (a background
// load the request started) follows its trace's decision.
func TestTailSamplerLateSpans(t *testing.T) {
	p := newTestProvider(t, Tracing{})
	for _, failed := range []bool{true, false} {
		ctx, root := p.tr.Start(context.Background(), "root", trace.WithTimestamp(t0))
		_, late := p.tr.Start(ctx, "late", trace.WithTimestamp(t0))
		if failed {
			root.SetStatus(codes.Error, "boom")
		}
		root.End(trace.WithTimestamp(t0.Add(time.Millisecond)))
		late.End(trace.WithTimestamp(t0.Add(time.Second)))
	}
	assert.ElementsMatch(t, []string{"root", "late"}, p.exported(t), "the failed trace whole, nothing of the other")
	assert.Equal(t, 0.0, p.buffered(), "late spans open no buffer")
}

// TestTailSamplerShutdownExportsOpenFailures: at shutdown, open traces
// that already failed are exported; the others are dropped.
func TestTailSamplerShutdownExportsOpenFailures(t *testing.T) {
	p := newTestProvider(t, Tracing{SlowThreshold: time.Hour})
	ctx, _ := p.tr.Start(context.Background(), "open")
	span(ctx, p.tr, "failed child", time.Now(), 0, errors.New("boom"))
	ctx, _ = p.tr.Start(context.Background(), "open")
	span(ctx, p.tr, "fine child", time.Now(), 0, nil)
	require.NoError(t, p.tp.Shutdown(context.Background()))
	assert.Equal(t, []string{"failed child"}, p.exp.names())
}

// TestTailSamplerConcurrent: many goroutines ending spans of many traces at
// once; every failed trace is exported whole, nothing else, nothing stays
// buffered. Run with -race.
func TestTailSamplerConcurrent(t *testing.T) {
	const workers, traces, children = 8, 200, 4
	p := newTestProvider(t, Tracing{SampleRatio: 0, SlowThreshold: time.Hour, ExportQueue: workers * traces * (children + 1)})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < traces; i++ {
				ctx, root := p.tr.Start(context.Background(), "root")
				var cw sync.WaitGroup
				for c := 0; c < children; c++ {
					cw.Add(1)
					go func() {
						defer cw.Done()
						_, s := p.tr.Start(ctx, "child")
						if i%10 == 0 && c == 0 {
							s.SetStatus(codes.Error, "boom")
						}
						s.End()
					}()
				}
				cw.Wait()
				root.End()
			}
		}()
	}
	wg.Wait()
	failed := workers * traces / 10
	assert.Len(t, p.exported(t), failed*(children+1))
	assert.Equal(t, float64(failed), p.decisions("kept", reasonError))
	assert.Equal(t, float64(workers*traces-failed), p.decisions("dropped", reasonSampledOut))
	assert.Equal(t, 0.0, p.buffered())
}
