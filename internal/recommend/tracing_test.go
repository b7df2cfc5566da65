package recommend_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ripple-rec/ripple/internal/recommend"
)

// TestStageSpans: every entry point records its stages as children of one
// span under the caller's, with counts and levels but no user id.
func TestStageSpans(t *testing.T) {
	w := newWorld()
	w.item("i1", false, "books")
	w.item("i2", false, "books")
	w.item("i3", false, "music")
	w.seq("u-secret", "i1", "i2")
	w.seq("other", "i1", "i2", "i3")
	w.e.RefreshTrending()
	cases := []struct {
		name   string
		call   func(ctx context.Context, p *recommend.Pipeline) recommend.Response
		root   string
		stages []string
	}{
		{"recommend", func(ctx context.Context, p *recommend.Pipeline) recommend.Response {
			return p.Recommend(ctx, recommend.Request{User: "u-secret", K: 2})
		}, "recommend", []string{"recommend.candidates", "recommend.filter", "recommend.score", "recommend.diversify"}},
		{"similar", func(ctx context.Context, p *recommend.Pipeline) recommend.Response {
			return p.Similar(ctx, "i1", 2, false)
		}, "recommend.similar", []string{"recommend.candidates", "recommend.filter", "recommend.score", "recommend.diversify"}},
		{"rank", func(ctx context.Context, p *recommend.Pipeline) recommend.Response {
			return p.Rank(ctx, "u-secret", []string{"i3", "i1"}, false)
		}, "recommend.rank", []string{"recommend.candidates", "recommend.score"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sr := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
			p := recommend.New(w.e, recommend.DefaultConfig())
			p.Tracer = tp.Tracer("test")
			ctx, req := tp.Tracer("test").Start(context.Background(), "request")
			resp := tc.call(ctx, p)
			req.End()
			require.NotEmpty(t, resp.Items)

			spans := map[string]sdktrace.ReadOnlySpan{}
			for _, s := range sr.Ended() {
				spans[s.Name()] = s
				for _, kv := range s.Attributes() {
					assert.NotContains(t, kv.Value.Emit(), "u-secret", "%s: %s", s.Name(), kv.Key)
				}
			}
			root := spans[tc.root]
			require.NotNil(t, root, tc.root)
			assert.Equal(t, req.SpanContext().SpanID(), root.Parent().SpanID())
			attrs := map[string]any{}
			for _, kv := range root.Attributes() {
				attrs[string(kv.Key)] = kv.Value.AsInterface()
			}
			assert.Equal(t, int64(len(resp.Items)), attrs["ripple.items"])
			assert.Equal(t, int64(resp.Candidates), attrs["ripple.candidates"])
			assert.Equal(t, resp.Degradation, attrs["ripple.degradation"])
			for _, name := range tc.stages {
				s := spans[name]
				require.NotNil(t, s, name)
				assert.Equal(t, root.SpanContext().SpanID(), s.Parent().SpanID(), "%s is a stage of %s", name, tc.root)
			}
			assert.Len(t, sr.Ended(), len(tc.stages)+2)
		})
	}
}

// TestNoTracerNoSpans: a pipeline without a Tracer records nothing.
func TestNoTracerNoSpans(t *testing.T) {
	w := newWorld()
	w.seq("u", "a", "b")
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	ctx, req := tp.Tracer("test").Start(context.Background(), "request")
	recommend.New(w.e, recommend.DefaultConfig()).Recommend(ctx, recommend.Request{User: "u", K: 3})
	req.End()
	assert.Len(t, sr.Ended(), 1)
}
