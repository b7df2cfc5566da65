package observe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Exporters a Tracing config may name.
const (
	ExporterOff      = "off"
	ExporterStdout   = "stdout"
	ExporterOTLPHTTP = "otlp-http"
	ExporterOTLPGRPC = "otlp-grpc"
)

// Tracing is the `tracing:` config section.
//
// Every span is recorded while its trace is in flight; when the trace's
// local root ends, the whole trace is exported if any span failed, if the
// root took slow_threshold or longer, if the caller's traceparent said
// sampled, or if its trace id falls in the sample_ratio share (the same
// test as OpenTelemetry's TraceIDRatioBased, so services agree); otherwise
// it is dropped. A caller's traceparent with sampled=0 does not drop a
// trace here: Ripple still keeps its failures, its slow traces and its
// ratio share. The limits bound the memory those in-flight traces hold.
type Tracing struct {
	Exporter string `yaml:"exporter"` // off | stdout | otlp-http | otlp-grpc
	// Endpoint is the OTLP collector: a URL (http:// is plaintext, https://
	// TLS; for otlp-http a URL without a path posts to /v1/traces) or a
	// bare host:port (plaintext). Empty: the exporter's default
	// (localhost:4318 for HTTP, localhost:4317 for gRPC) or the
	// OTEL_EXPORTER_OTLP_* environment variables.
	Endpoint      string        `yaml:"endpoint"`
	SampleRatio   float64       `yaml:"sample_ratio"`   // share of the other traces kept, 0..1
	SlowThreshold time.Duration `yaml:"slow_threshold"` // traces at least this long are kept
	ServiceName   string        `yaml:"service_name"`   // OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win
	// Bounds of the in-process tail sampler; spans beyond them are dropped
	// and counted in ripple_trace_dropped_spans_total.
	MaxSpansPerTrace int           `yaml:"max_spans_per_trace"`
	MaxTraces        int           `yaml:"max_traces"`   // traces in flight
	MaxAge           time.Duration `yaml:"max_age"`      // a trace still open this long is decided without its root
	ExportQueue      int           `yaml:"export_queue"` // kept spans waiting for the exporter
}

// DefaultTracing is tracing off, with the sampling defaults that apply
// once an exporter is chosen.
func DefaultTracing() Tracing {
	return Tracing{Exporter: ExporterOff, SampleRatio: 0.01, SlowThreshold: 250 * time.Millisecond, ServiceName: "ripple",
		MaxSpansPerTrace: 512, MaxTraces: 4096, MaxAge: 30 * time.Second, ExportQueue: 8192}
}

// withDefaults fills unset fields (zero values) from DefaultTracing, except
// SampleRatio, where 0 means "only errors, slow and sampled parents".
func (c Tracing) withDefaults() (Tracing, error) {
	d := DefaultTracing()
	if c.Exporter == "" {
		c.Exporter = d.Exporter
	}
	if c.SlowThreshold <= 0 {
		c.SlowThreshold = d.SlowThreshold
	}
	if c.ServiceName == "" {
		c.ServiceName = d.ServiceName
	}
	if c.MaxSpansPerTrace <= 0 {
		c.MaxSpansPerTrace = d.MaxSpansPerTrace
	}
	if c.MaxTraces <= 0 {
		c.MaxTraces = d.MaxTraces
	}
	if c.MaxAge <= 0 {
		c.MaxAge = d.MaxAge
	}
	if c.ExportQueue <= 0 {
		c.ExportQueue = d.ExportQueue
	}
	switch c.Exporter {
	case ExporterOff, ExporterStdout, ExporterOTLPHTTP, ExporterOTLPGRPC:
	default:
		return c, fmt.Errorf("tracing.exporter: want off, stdout, otlp-http or otlp-grpc, got %q", c.Exporter)
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return c, fmt.Errorf("tracing.sample_ratio: want 0..1, got %g", c.SampleRatio)
	}
	return c, nil
}

// propagator reads and writes W3C traceparent/tracestate and baggage.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// NewTracerProvider builds the tracer provider cfg describes and returns
// it with the function that flushes and stops it. With the exporter off it
// returns a provider whose spans cost nothing (no allocation, the context
// is returned unchanged). It also installs the W3C TraceContext + Baggage
// propagator as OpenTelemetry's global one, for any library that uses it.
// The sampler's counters register on reg (nil: not registered); export
// failures are counted there and logged, at most once a minute, to logger.
func NewTracerProvider(ctx context.Context, cfg Tracing, reg prometheus.Registerer, logger *slog.Logger) (trace.TracerProvider, func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagator)
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	if cfg.Exporter == ExporterOff {
		return Off(), func(context.Context) error { return nil }, nil
	}
	exp, err := newExporter(ctx, cfg, os.Stdout)
	if err != nil {
		return nil, nil, err
	}
	tp, err := newProvider(ctx, cfg, exp, reg, logger)
	if err != nil {
		return nil, nil, err
	}
	return tp, tp.Shutdown, nil
}

func newExporter(ctx context.Context, cfg Tracing, stdout io.Writer) (sdktrace.SpanExporter, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	url := strings.Contains(cfg.Endpoint, "://")
	switch cfg.Exporter {
	case ExporterStdout:
		exp, err = stdouttrace.New(stdouttrace.WithWriter(stdout))
	case ExporterOTLPHTTP:
		var opts []otlptracehttp.Option
		switch {
		case url:
			// A URL is used as is; one without a path means the collector's
			// standard trace path, like OTEL_EXPORTER_OTLP_ENDPOINT.
			u := cfg.Endpoint
			if rest := u[strings.Index(u, "://")+3:]; !strings.Contains(strings.TrimSuffix(rest, "/"), "/") {
				u = strings.TrimSuffix(u, "/") + "/v1/traces"
			}
			opts = append(opts, otlptracehttp.WithEndpointURL(u))
		case cfg.Endpoint != "":
			opts = append(opts, otlptracehttp.WithEndpoint(cfg.Endpoint), otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	case ExporterOTLPGRPC:
		var opts []otlptracegrpc.Option
		switch {
		case url:
			opts = append(opts, otlptracegrpc.WithEndpointURL(cfg.Endpoint))
		case cfg.Endpoint != "":
			opts = append(opts, otlptracegrpc.WithEndpoint(cfg.Endpoint), otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: %s exporter: %w", cfg.Exporter, err)
	}
	return exp, nil
}

// newProvider wires the head sampler, the tail sampler and exp.
func newProvider(ctx context.Context, cfg Tracing, exp sdktrace.SpanExporter, reg prometheus.Registerer, logger *slog.Logger) (*sdktrace.TracerProvider, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", cfg.ServiceName)),
		resource.WithTelemetrySDK(), resource.WithHost(), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("tracing: resource: %w", err)
	}
	m := newTraceMetrics()
	tail := newTailSampler(cfg, newExportQueue(exp, cfg.ExportQueue, m, logger), m)
	if reg != nil {
		if err := m.register(reg, tail.inFlight); err != nil {
			return nil, fmt.Errorf("tracing: metrics: %w", err)
		}
	}
	return sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSampler(newHeadSampler(cfg.SampleRatio)),
		sdktrace.WithSpanProcessor(tail)), nil
}

// Off returns the provider used when tracing is off: Start hands back the
// caller's context and a shared no-op span, so an instrumented hot path
// allocates nothing. (The OpenTelemetry noop tracer allocates a context
// per span.)
func Off() trace.TracerProvider { return offProvider{} }

type offProvider struct{ noop.TracerProvider }

func (offProvider) Tracer(string, ...trace.TracerOption) trace.Tracer { return offTracer{} }

type offTracer struct{ noop.Tracer }

// offSpan is boxed once, so returning it costs nothing.
var offSpan trace.Span = noop.Span{}

func (offTracer) Start(ctx context.Context, _ string, _ ...trace.SpanStartOption) (context.Context, trace.Span) {
	return ctx, offSpan
}

// Tracer is tp's tracer for the instrumentation scope name (the package
// path); a nil tp gives the off tracer.
func Tracer(tp trace.TracerProvider, name string) trace.Tracer {
	if tp == nil {
		return offTracer{}
	}
	return tp.Tracer(name)
}

// tracingOn reports whether tp records anything.
func tracingOn(tp trace.TracerProvider) bool {
	switch tp.(type) {
	case nil, offProvider, noop.TracerProvider:
		return false
	}
	return true
}

// SetError marks span failed with err; a nil err does nothing. Failed
// spans make their whole trace kept.
func SetError(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.SetStatus(codes.Error, err.Error())
	}
}

// HTTPMiddleware returns the tracing middleware of the API: it continues
// the caller's trace from a W3C traceparent (or starts one), runs next
// under a server span, answers with the span's own traceparent in the
// response headers, and records the route and status code; a 5xx status
// fails the span, so its trace is always kept.
//
// The span is named after the ServeMux pattern that served the request
// ("GET /v1/recommendations/{user}"), never the raw path, which carries
// user ids. The pattern is known only once the mux has routed, so the
// span starts as "GET" and is renamed when next returns: next must pass
// the request it is given to the mux unchanged (no WithContext copy in
// between), or the span keeps the method-only name. Only the request id
// (from WithRequestID, when an outer middleware set it) is recorded
// besides: no path, query, headers or body.
//
// With tracing off (tp nil or Off()) it returns next itself: no cost.
func HTTPMiddleware(tp trace.TracerProvider) func(http.Handler) http.Handler {
	if !tracingOn(tp) {
		return func(next http.Handler) http.Handler { return next }
	}
	tracer := tp.Tracer("github.com/ripple-rec/ripple/internal/observe/http")
	traceparent := propagation.TraceContext{}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
			// Before next writes the header: the caller learns the trace id
			// even of a response that fails.
			traceparent.Inject(ctx, propagation.HeaderCarrier(w.Header()))
			sw := &statusRecorder{ResponseWriter: w}
			routed := r.WithContext(ctx)
			defer func() {
				code := sw.code
				if code == 0 {
					code = http.StatusOK
				}
				if v := recover(); v != nil {
					// Nothing inside recovered it: net/http aborts the
					// connection, which the caller sees as a failure.
					span.SetStatus(codes.Error, fmt.Sprint("panic: ", v))
					span.End()
					panic(v)
				}
				attrs := []attribute.KeyValue{attribute.String("http.request.method", r.Method),
					attribute.Int("http.response.status_code", code)}
				if route := routeOf(routed.Pattern); route != "" {
					span.SetName(r.Method + " " + route)
					attrs = append(attrs, attribute.String("http.route", route))
				}
				if id := RequestID(ctx); id != "" {
					attrs = append(attrs, attribute.String("ripple.request_id", id))
				}
				span.SetAttributes(attrs...)
				if code >= 500 {
					span.SetStatus(codes.Error, strconv.Itoa(code)+" "+http.StatusText(code))
				}
				span.End()
			}()
			next.ServeHTTP(sw, routed)
		})
	}
}

// routeOf is the path of a ServeMux pattern ("GET /v1/x/{id}" or
// "/v1/x/{id}" → "/v1/x/{id}"); "" for none or the catch-all "/".
func routeOf(pattern string) string {
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		pattern = strings.TrimLeft(pattern[i+1:], " \t")
	}
	if pattern == "/" {
		return ""
	}
	return pattern
}

// statusRecorder remembers the final status code.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (Flush,
// deadlines) through the recorder.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
