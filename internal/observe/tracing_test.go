package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
)

func TestTracingConfig(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Tracing
		wantErr string
	}{
		{"defaults", DefaultTracing(), ""},
		{"zero value is off", Tracing{}, ""},
		{"unknown exporter", Tracing{Exporter: "jaeger"}, "tracing.exporter"},
		{"ratio above 1", Tracing{Exporter: ExporterStdout, SampleRatio: 1.5}, "tracing.sample_ratio"},
		{"negative ratio", Tracing{Exporter: ExporterStdout, SampleRatio: -0.1}, "tracing.sample_ratio"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tp, shutdown, err := NewTracerProvider(context.Background(), tc.cfg, prometheus.NewRegistry(), nil)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.False(t, tracingOn(tp), "off unless an exporter is named")
			assert.NoError(t, shutdown(context.Background()))
		})
	}
	d := DefaultTracing()
	assert.Equal(t, 0.01, d.SampleRatio)
	assert.Equal(t, 250*time.Millisecond, d.SlowThreshold)
	assert.Equal(t, ExporterOff, d.Exporter)
}

// TestNewTracerProviderSetsW3CPropagator: other libraries that use the
// global propagator read and write traceparent too.
func TestNewTracerProviderSetsW3CPropagator(t *testing.T) {
	_, _, err := NewTracerProvider(context.Background(), Tracing{}, nil, nil)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"traceparent", "tracestate", "baggage"}, otel.GetTextMapPropagator().Fields())
}

// TestOffTracerCostsNothing: with tracing off, an instrumented call site
// (start, guarded attributes, error, end) allocates nothing.
func TestOffTracerCostsNothing(t *testing.T) {
	tr := Tracer(Off(), "test")
	ctx := context.Background()
	err := errors.New("x")
	allocs := testing.AllocsPerRun(1000, func() {
		c, s := tr.Start(ctx, "op")
		if s.IsRecording() {
			s.SetAttributes(attribute.Int("n", 1))
		}
		SetError(s, err)
		s.End()
		_ = c
	})
	assert.Zero(t, allocs)
	assert.Equal(t, ctx, func() context.Context { c, _ := tr.Start(ctx, "op"); return c }(), "the context is returned unchanged")
	assert.False(t, Tracer(nil, "x").(offTracer) != offTracer{}, "a nil provider is off")
}

const (
	incomingTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingSpanID  = "00f067aa0ba902b7"
)

// routedHandler is an API-shaped handler: a ServeMux with patterns, and
// the handler under it reporting the trace id its context carries.
func routedHandler(status int, sawTrace *string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/recommendations/{user}", func(w http.ResponseWriter, r *http.Request) {
		*sawTrace = trace.SpanContextFromContext(r.Context()).TraceID().String()
		w.WriteHeader(status)
	})
	return mux
}

// TestHTTPMiddlewarePropagation: an incoming traceparent continues into the
// server span, the handler's context and the response's traceparent; the
// span is named by route, never by the path holding the user id.
func TestHTTPMiddlewarePropagation(t *testing.T) {
	p := newTestProvider(t, Tracing{SampleRatio: 0})
	var saw string
	h := HTTPMiddleware(p.tp)(routedHandler(http.StatusOK, &saw))
	req := httptest.NewRequest("GET", "/v1/recommendations/u-secret-42?k=5", nil)
	req.Header.Set("traceparent", "00-"+incomingTraceID+"-"+incomingSpanID+"-01")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, WithRequestIDRequest(req, "req-1"))
	require.Equal(t, http.StatusOK, rec.Code)

	assert.Equal(t, incomingTraceID, saw, "the handler's context carries the caller's trace")
	parts := strings.Split(rec.Header().Get("traceparent"), "-")
	require.Len(t, parts, 4, "response traceparent: %q", rec.Header().Get("traceparent"))
	assert.Equal(t, []string{"00", incomingTraceID}, parts[:2])
	assert.NotEqual(t, incomingSpanID, parts[2], "the response names the server span, not the caller's")
	assert.Equal(t, "01", parts[3], "sampled by the caller, so sampled here")

	require.NoError(t, p.tp.ForceFlush(context.Background()))
	spans := p.exp.get()
	require.Len(t, spans, 1, "kept: the caller sampled it")
	s := spans[0]
	assert.Equal(t, "GET /v1/recommendations/{user}", s.Name())
	assert.Equal(t, trace.SpanKindServer, s.SpanKind())
	assert.Equal(t, incomingTraceID, s.SpanContext().TraceID().String())
	assert.Equal(t, parts[2], s.SpanContext().SpanID().String())
	assert.Equal(t, incomingSpanID, s.Parent().SpanID().String())
	assert.True(t, s.Parent().IsRemote())
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		attrs[kv.Key] = kv.Value
		assert.NotContains(t, kv.Value.Emit(), "u-secret-42", "no attribute carries the path's user id")
	}
	assert.Equal(t, "/v1/recommendations/{user}", attrs["http.route"].AsString())
	assert.Equal(t, int64(200), attrs["http.response.status_code"].AsInt64())
	assert.Equal(t, "GET", attrs["http.request.method"].AsString())
	assert.Equal(t, "req-1", attrs["ripple.request_id"].AsString())
	assert.Equal(t, codes.Unset, s.Status().Code)
}

// WithRequestIDRequest is r carrying a request id, as the API's request-id
// middleware (outside the tracing one) leaves it.
func WithRequestIDRequest(r *http.Request, id string) *http.Request {
	return r.WithContext(WithRequestID(r.Context(), id))
}

// TestHTTPMiddlewareKeepsServerErrors: without a sampled caller and with
// sample_ratio 0, a 5xx answer still keeps its trace; a 4xx does not; an
// unrouted request is named by its method only.
func TestHTTPMiddlewareKeepsServerErrors(t *testing.T) {
	cases := []struct {
		status int
		path   string
		kept   bool
		name   string
	}{
		{http.StatusServiceUnavailable, "/v1/recommendations/u1", true, "GET /v1/recommendations/{user}"},
		{http.StatusInternalServerError, "/v1/recommendations/u1", true, "GET /v1/recommendations/{user}"},
		{http.StatusBadRequest, "/v1/recommendations/u1", false, ""},
		{http.StatusOK, "/v1/recommendations/u1", false, ""},
	}
	for _, tc := range cases {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			p := newTestProvider(t, Tracing{SampleRatio: 0})
			var saw string
			rec := httptest.NewRecorder()
			HTTPMiddleware(p.tp)(routedHandler(tc.status, &saw)).ServeHTTP(rec, httptest.NewRequest("GET", tc.path, nil))
			assert.Equal(t, tc.status, rec.Code)
			parts := strings.Split(rec.Header().Get("traceparent"), "-")
			require.Len(t, parts, 4)
			assert.Equal(t, saw, parts[1], "a new trace, named in the response")
			assert.Equal(t, "00", parts[3], "not head-sampled")
			require.NoError(t, p.tp.ForceFlush(context.Background()))
			spans := p.exp.get()
			if !tc.kept {
				assert.Empty(t, spans)
				return
			}
			require.Len(t, spans, 1)
			assert.Equal(t, tc.name, spans[0].Name())
			assert.Equal(t, codes.Error, spans[0].Status().Code)
		})
	}
	t.Run("method pattern", func(t *testing.T) {
		p := newTestProvider(t, Tracing{SampleRatio: 1})
		mux := http.NewServeMux()
		mux.HandleFunc("DELETE /v1/users/{user}", func(http.ResponseWriter, *http.Request) {})
		HTTPMiddleware(p.tp)(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("DELETE", "/v1/users/u1", nil))
		assert.Equal(t, []string{"DELETE /v1/users/{user}"}, p.exported(t))
	})
	t.Run("unrouted", func(t *testing.T) {
		p := newTestProvider(t, Tracing{SampleRatio: 1})
		mux := http.NewServeMux()
		mux.HandleFunc("/v1/x", func(http.ResponseWriter, *http.Request) {})
		HTTPMiddleware(p.tp)(mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/nowhere/u1", nil))
		assert.Equal(t, []string{"POST"}, p.exported(t))
	})
}

func TestHTTPMiddlewareOffIsNext(t *testing.T) {
	next := http.NewServeMux()
	assert.Same(t, next, HTTPMiddleware(nil)(next).(*http.ServeMux))
	assert.Same(t, next, HTTPMiddleware(Off())(next).(*http.ServeMux))
}

// TestHTTPMiddlewareRecordsPanics: a panic nothing inside recovered fails
// the span and keeps propagating.
func TestHTTPMiddlewareRecordsPanics(t *testing.T) {
	p := newTestProvider(t, Tracing{SampleRatio: 0})
	h := HTTPMiddleware(p.tp)(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	assert.PanicsWithValue(t, "boom", func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) })
	require.NoError(t, p.tp.ForceFlush(context.Background()))
	spans := p.exp.get()
	require.Len(t, spans, 1)
	assert.Equal(t, codes.Error, spans[0].Status().Code)
}

// TestStdoutExporterEndToEnd: exporter stdout writes a kept trace as JSON;
// Shutdown flushes it.
func TestStdoutExporterEndToEnd(t *testing.T) {
	var buf bytes.Buffer
	cfg, err := Tracing{Exporter: ExporterStdout, SampleRatio: 0, ServiceName: "ripple-test"}.withDefaults()
	require.NoError(t, err)
	exp, err := newExporter(context.Background(), cfg, &buf)
	require.NoError(t, err)
	tp, err := newProvider(context.Background(), cfg, exp, prometheus.NewRegistry(), nil)
	require.NoError(t, err)
	tr := tp.Tracer("test")

	ctx, root := tr.Start(context.Background(), "kept root")
	_, child := tr.Start(ctx, "failing child")
	child.SetStatus(codes.Error, "boom")
	child.End()
	root.End()
	_, dropped := tr.Start(context.Background(), "dropped root")
	dropped.End()
	require.NoError(t, tp.Shutdown(context.Background()))

	type stdoutSpan struct {
		Name        string
		SpanContext struct{ TraceID string }
		Resource    []struct {
			Key   string
			Value struct{ Value any }
		}
	}
	var got []stdoutSpan
	dec := json.NewDecoder(&buf)
	for {
		var s stdoutSpan
		if err := dec.Decode(&s); errors.Is(err, io.EOF) {
			break
		} else {
			require.NoError(t, err)
		}
		got = append(got, s)
	}
	require.Len(t, got, 2, "the failed trace, whole; not the other")
	assert.ElementsMatch(t, []string{"kept root", "failing child"}, []string{got[0].Name, got[1].Name})
	assert.Equal(t, root.SpanContext().TraceID().String(), got[0].SpanContext.TraceID)
	res := map[string]any{}
	for _, kv := range got[0].Resource {
		res[kv.Key] = kv.Value.Value
	}
	assert.Equal(t, "ripple-test", res["service.name"])
}

// TestOTLPHTTPExporterEndToEnd: exporter otlp-http posts kept spans to the
// collector at endpoint.
func TestOTLPHTTPExporterEndToEnd(t *testing.T) {
	var posts, bytesIn atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/traces" && r.Method == http.MethodPost {
			n, _ := io.Copy(io.Discard, r.Body)
			posts.Add(1)
			bytesIn.Add(n)
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	for _, endpoint := range []string{srv.URL, srv.URL + "/", srv.URL + "/v1/traces", strings.TrimPrefix(srv.URL, "http://")} {
		posts.Store(0)
		tp, shutdown, err := NewTracerProvider(context.Background(),
			Tracing{Exporter: ExporterOTLPHTTP, Endpoint: endpoint, SampleRatio: 1}, prometheus.NewRegistry(), nil)
		require.NoError(t, err)
		_, s := tp.Tracer("test").Start(context.Background(), "root")
		s.End()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		require.NoError(t, shutdown(ctx))
		cancel()
		assert.Equal(t, int64(1), posts.Load(), "endpoint %q", endpoint)
	}
	assert.Positive(t, bytesIn.Load())
}

type traceCollector struct {
	coltracepb.UnimplementedTraceServiceServer
	spans atomic.Int64
}

func (c *traceCollector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans.Add(int64(len(ss.GetSpans())))
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestOTLPGRPCExporterEndToEnd: exporter otlp-grpc sends kept spans to a
// gRPC collector.
func TestOTLPGRPCExporterEndToEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	col := &traceCollector{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()

	tp, shutdown, err := NewTracerProvider(context.Background(),
		Tracing{Exporter: ExporterOTLPGRPC, Endpoint: ln.Addr().String(), SampleRatio: 0}, prometheus.NewRegistry(), nil)
	require.NoError(t, err)
	ctx, root := tp.Tracer("test").Start(context.Background(), "root")
	_, child := tp.Tracer("test").Start(ctx, "child")
	child.SetStatus(codes.Error, "boom")
	child.End()
	root.End()
	_, fine := tp.Tracer("test").Start(context.Background(), "fine")
	fine.End()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, shutdown(sctx))
	assert.Equal(t, int64(2), col.spans.Load(), "the failed trace's two spans")
}

// TestExportErrorsAreCounted: a collector that is down costs a counter and
// one log line, not the request path.
func TestExportErrorsAreCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	logger, err := NewJSONLogger(&logs, 0, LogConfig{})
	require.NoError(t, err)
	cfg, err := Tracing{Exporter: ExporterStdout, SampleRatio: 1}.withDefaults()
	require.NoError(t, err)
	tp, err := newProvider(context.Background(), cfg, failingExporter{}, reg, logger)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		_, s := tp.Tracer("t").Start(context.Background(), "root")
		s.End()
		assert.Error(t, tp.ForceFlush(context.Background()))
	}
	assert.Equal(t, 3.0, metricValue(reg, "ripple_trace_export_errors_total", nil))
	assert.Equal(t, 1, strings.Count(logs.String(), "trace export failed"), "logged once a minute at most")
	require.NoError(t, tp.Shutdown(context.Background()))
}

type failingExporter struct{}

func (failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	return errors.New("collector down")
}
func (failingExporter) Shutdown(context.Context) error { return nil }

// BenchmarkSpanNoop: a span start/end with tracing off.
func BenchmarkSpanNoop(b *testing.B) {
	tr := Tracer(Off(), "bench")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, s := tr.Start(ctx, "op")
		if s.IsRecording() {
			s.SetAttributes(attribute.Int("n", 1))
		}
		s.End()
	}
}

// BenchmarkSpanSampledOut: a root span start/end with tracing on and the
// trace dropped by the tail sampler (fast, healthy, outside the ratio).
func BenchmarkSpanSampledOut(b *testing.B) {
	p := newTestProvider(b, Tracing{SampleRatio: 0, SlowThreshold: time.Hour})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, s := p.tr.Start(ctx, "op")
		if s.IsRecording() {
			s.SetAttributes(attribute.Int("n", 1))
		}
		s.End()
	}
}

// BenchmarkSpanSampledOutWithChild: a root and one child, buffered until the
// root ends, then dropped: the per-request shape.
func BenchmarkSpanSampledOutWithChild(b *testing.B) {
	p := newTestProvider(b, Tracing{SampleRatio: 0, SlowThreshold: time.Hour})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		c, root := p.tr.Start(ctx, "root")
		_, child := p.tr.Start(c, "child")
		child.End()
		root.End()
	}
}

// BenchmarkHTTPMiddleware: what the middleware adds per request, off and
// on with the trace sampled out.
func BenchmarkHTTPMiddleware(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/recommendations/{user}", func(http.ResponseWriter, *http.Request) {})
	for _, bc := range []struct {
		name string
		tp   trace.TracerProvider
	}{{"bare", nil}, {"off", Off()}, {"sampled-out", newTestProvider(b, Tracing{SampleRatio: 0, SlowThreshold: time.Hour}).tp}} {
		b.Run(bc.name, func(b *testing.B) {
			h := http.Handler(mux)
			if bc.tp != nil {
				h = HTTPMiddleware(bc.tp)(mux)
			}
			req := httptest.NewRequest("GET", "/v1/recommendations/u1", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				clear(w.Header())
				h.ServeHTTP(w, req)
			}
		})
	}
}
