package api_test

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/api"
	"github.com/ripple-rec/ripple/internal/demo"
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/recommend"
)

// benchWriter is a write path that is never called: reads do not write.
type benchWriter struct{}

func (benchWriter) Events(context.Context, []event.Interaction) (ingest.Result, error) {
	return ingest.Result{}, nil
}
func (benchWriter) Items(context.Context, []event.Item) error { return nil }
func (benchWriter) EraseUser(context.Context, string) error   { return nil }
func (benchWriter) Ready() bool                               { return true }

// benchDemoHandler is the API of `ripple serve --demo` without the log:
// the demo dataset applied to an engine, metrics on, default options.
func benchDemoHandler(b *testing.B) (http.Handler, int) {
	b.Helper()
	opts := demo.DefaultOptions(time.Now())
	ds := demo.Generate(opts)
	e := features.NewEngine(features.DefaultConfig(), nil)
	for i, r := range ds.Records() {
		e.Apply(uint64(i+1), &r)
	}
	m := observe.NewMetrics(func() float64 { return 0 }, func() float64 { return -1 })
	p := recommend.New(e, recommend.DefaultConfig())
	return api.New(benchWriter{}, api.EngineReader{Engine: e}, p, m, nil, api.DefaultOptions()).Handler(), opts.Users
}

// benchZipfPaths are recommendation paths for users drawn Zipf(1.1) over
// u0..u(users-1), the mix of `ripple loadgen` and `ripple bench`.
func benchZipfPaths(n, users int) []string {
	cdf := make([]float64, users)
	sum := 0.0
	for i := range cdf {
		sum += math.Pow(float64(i+1), -1.1)
		cdf[i] = sum
	}
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]string, n)
	for i := range out {
		out[i] = "/v1/recommendations/u" + strconv.Itoa(min(sort.SearchFloat64s(cdf, rng.Float64()*sum), users-1)) + "?k=10"
	}
	return out
}

func serveRecorded(b *testing.B, h http.Handler, path string) int {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		b.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
	}
	return w.Body.Len()
}

// BenchmarkRecommendHandler is GET /v1/recommendations through the whole
// handler stack (middleware, pipeline, JSON), without sockets.
func BenchmarkRecommendHandler(b *testing.B) {
	h, users := benchDemoHandler(b)
	paths := benchZipfPaths(4096, users)
	b.ReportAllocs()
	i, bytes := 0, 0
	for b.Loop() {
		bytes += serveRecorded(b, h, paths[i%len(paths)])
		i++
	}
	b.ReportMetric(float64(bytes)/float64(i), "body-bytes/op")
}

// BenchmarkBareHandler is the floor BenchmarkRecommendHandler compares with:
// a handler writing a fixed recommendation body of the same size.
func BenchmarkBareHandler(b *testing.B) {
	h, _ := benchDemoHandler(b)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/recommendations/u0?k=10", nil))
	body := rec.Body.Bytes()
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
	b.ReportAllocs()
	for b.Loop() {
		serveRecorded(b, bare, "/v1/recommendations/u0?k=10")
	}
	b.ReportMetric(float64(len(body)), "body-bytes/op")
}
