package ingest_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
)

// TestSpans: a request's events show up in its trace as the durable append
// and the wait for apply; the applier's batches are traces of their own.
func TestSpans(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	lg, err := eventlog.OpenEmbedded(filepath.Join(t.TempDir(), "log"), eventlog.EmbeddedOptions{})
	require.NoError(t, err)
	defer lg.Close()
	svc := ingest.New(lg, features.NewEngine(features.DefaultConfig(), nil), nil, nil, nil, ingest.Options{Tracing: tp})
	require.NoError(t, svc.Recover(context.Background()))
	svc.Start()
	defer svc.Close()

	ctx, req := tp.Tracer("test").Start(context.Background(), "POST /v1/events")
	_, err = svc.Events(ctx, []event.Interaction{ev("a", "u-secret", "i1"), ev("b", "u-secret", "i2")})
	require.NoError(t, err)
	req.End()
	require.NoError(t, svc.Close())

	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range sr.Ended() {
		byName[s.Name()] = append(byName[s.Name()], s)
		for _, kv := range s.Attributes() {
			assert.NotContains(t, kv.Value.Emit(), "u-secret")
		}
	}
	reqID := req.SpanContext()
	for _, name := range []string{"eventlog.append", "ingest.wait_applied"} {
		require.Len(t, byName[name], 1, name)
		s := byName[name][0]
		assert.Equal(t, reqID.TraceID(), s.SpanContext().TraceID(), "%s is part of the request's trace", name)
		assert.Equal(t, reqID.SpanID(), s.Parent().SpanID())
	}
	assert.Contains(t, byName["eventlog.append"][0].Attributes(), attrInt("ripple.records", 2))
	require.NotEmpty(t, byName["ingest.apply"])
	records := int64(0)
	for _, s := range byName["ingest.apply"] {
		assert.False(t, s.Parent().IsValid(), "an applied batch is a root")
		assert.NotEqual(t, reqID.TraceID(), s.SpanContext().TraceID())
		for _, kv := range s.Attributes() {
			if kv.Key == "ripple.records" {
				records += kv.Value.AsInt64()
			}
		}
	}
	assert.Equal(t, int64(2), records, "the batches applied both records")
}

// TestNoTracingNoSpans: without Options.Tracing nothing is recorded, even
// under a traced request.
func TestNoTracingNoSpans(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	n := openNode(t, t.TempDir(), 0)
	defer n.close()
	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	_, err := n.svc.Events(ctx, []event.Interaction{ev("a", "u", "i1")})
	require.NoError(t, err)
	req.End()
	assert.Len(t, sr.Ended(), 1, "only the test's own span")
	assert.Equal(t, trace.SpanFromContext(ctx), req)
}

func attrInt(k string, v int64) attribute.KeyValue { return attribute.Int64(k, v) }
