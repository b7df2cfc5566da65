package online

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/store"
)

// emptyStore answers every read with "absent", or fails.
type emptyStore struct {
	store.Online
	fail  atomic.Bool
	reads atomic.Int64
}

func (s *emptyStore) Get(_ context.Context, keys, fields []string) ([][][]byte, error) {
	s.reads.Add(1)
	if s.fail.Load() {
		return nil, errors.New("store down")
	}
	out := make([][][]byte, len(keys))
	for i := range out {
		out[i] = make([][]byte, len(fields))
	}
	return out, nil
}

// TestLoadSpans: a store read of a tier is one span of the request that
// caused it, with counts but not the keys; L1 hits record nothing; a failed
// read fails its span.
func TestLoadSpans(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	st := &emptyStore{}
	ro := DefaultReaderOptions()
	ro.Tracing = tp
	r, err := NewReader(st, ro, func(string) features.Values { return features.Values{} })
	require.NoError(t, err)
	defer r.Close()

	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	v := r.Bind(ctx)
	v.User("u-secret", 10)
	v.User("u-secret", 10)           // the view's own copy
	r.Bind(ctx).User("u-secret", 10) // L1 hit (a cached miss)
	req.End()

	var loads []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == "online.load user" {
			loads = append(loads, s)
		}
	}
	require.Len(t, loads, 1, "one load, then L1")
	s := loads[0]
	assert.Equal(t, req.SpanContext().SpanID(), s.Parent().SpanID())
	attrs := map[string]any{}
	for _, kv := range s.Attributes() {
		attrs[string(kv.Key)] = kv.Value.AsInterface()
		assert.NotContains(t, kv.Value.Emit(), "u-secret")
	}
	assert.Equal(t, map[string]any{"ripple.tier": "user", "ripple.keys": int64(1), "ripple.found": int64(0)}, attrs)
	assert.Equal(t, codes.Unset, s.Status().Code)

	st.fail.Store(true)
	r.Bind(context.Background()).Trending("never-read", 5) // User prefetched the global list
	var failed []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == "online.load trending" && s.Status().Code == codes.Error {
			failed = append(failed, s)
		}
	}
	require.Len(t, failed, 1, "the failed load is marked as an error")
}

// TestPipelineOverReaderTrace: a recommendation over the tiers is one
// trace: the pipeline's stages and the loads it caused under one span.
func TestPipelineOverReaderTrace(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	ro := DefaultReaderOptions()
	ro.Tracing = tp
	r, err := NewReader(&emptyStore{}, ro, func(string) features.Values { return features.Values{} })
	require.NoError(t, err)
	defer r.Close()
	p := recommend.NewBound(func(ctx context.Context) recommend.Features { return r.Bind(ctx) }, recommend.DefaultConfig())
	p.Tracer = tp.Tracer("recommend")
	p.Recommend(context.Background(), recommend.Request{User: "u", K: 5})

	var root sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == "recommend" {
			root = s
		}
	}
	require.NotNil(t, root)
	loads := 0
	for _, s := range sr.Ended() {
		assert.Equal(t, root.SpanContext().TraceID(), s.SpanContext().TraceID(), s.Name())
		if s.Name() != "recommend" {
			assert.Equal(t, root.SpanContext().SpanID(), s.Parent().SpanID(), s.Name())
		}
		if s.SpanKind().String() == "client" {
			loads++
		}
	}
	assert.Positive(t, loads, "the user and trending loads")
}
