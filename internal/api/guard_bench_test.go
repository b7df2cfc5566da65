package api

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/auth"
	"github.com/ripple-rec/ripple/internal/observe"
)

// discardWriter is a ResponseWriter that keeps nothing but reuses its
// header map, so neither side of the comparison pays for a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

// BenchmarkGuardChain measures what shedding, authentication and rate
// limiting (in-process buckets, per key and per tenant, never empty) add to
// one request over the same handler served bare. 1,000 keys in 10 tenants
// are used in turn. "paired" runs bare and guarded alternately in the same
// loop, so the added p99 it reports is measured under the same conditions:
//
//	go test -run '^$' -bench GuardChain -benchtime 200000x -count 3 ./internal/api/
func BenchmarkGuardChain(b *testing.B) {
	body := map[string]any{"entity": "user", "id": "u1", "found": true, "degradation": "healthy",
		"features": map[string]any{"user_events_24h": map[string]any{"value": 12}}}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, body) })

	file := filepath.Join(b.TempDir(), "keys.json")
	var keys []auth.Key
	var secrets []string
	for i := 0; i < 1000; i++ {
		k, secret, err := auth.NewKey("bench"+strconv.Itoa(i), []auth.Scope{auth.ScopeRead}, "t"+strconv.Itoa(i%10), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		keys, secrets = append(keys, k), append(secrets, secret)
	}
	if err := auth.WriteFile(file, keys); err != nil {
		b.Fatal(err)
	}
	store, err := auth.NewStore(auth.StoreOptions{File: file})
	if err != nil {
		b.Fatal(err)
	}
	opts := DefaultOptions()
	opts.Keys = store
	opts.RateLimit = RateLimit{PerKeyRPS: 1e9, PerKeyBurst: 1e9, PerTenantRPS: 1e9, PerTenantBurst: 1e9, MaxBuckets: 1 << 16}
	s := New(nil, nil, nil, observe.NewMetrics(func() float64 { return 0 }, func() float64 { return -1 }), nil, opts)
	guarded := s.shed(s.authenticate(auth.ScopeRead)(s.rateLimit(handler)))

	reqs := make([]*http.Request, len(secrets))
	for i, secret := range secrets {
		reqs[i], _ = http.NewRequest(http.MethodGet, "/v1/features/user/u1", nil)
		reqs[i].Header.Set("Authorization", "Bearer "+secret)
	}
	w := &discardWriter{h: http.Header{}}
	serve := func(h http.Handler, r *http.Request) time.Duration {
		clear(w.h)
		start := time.Now()
		h.ServeHTTP(w, r)
		return time.Since(start)
	}
	check := func(h http.Handler) {
		rec := &statusWriter{ResponseWriter: &discardWriter{h: http.Header{}}}
		h.ServeHTTP(rec, reqs[0])
		if rec.code != http.StatusOK {
			b.Fatalf("status %d", rec.code)
		}
	}
	check(guarded)

	run := func(b *testing.B, h http.Handler) {
		durs := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			durs = append(durs, serve(h, reqs[i%len(reqs)]))
		}
		b.StopTimer()
		b.ReportMetric(percentile(durs, 0.50), "p50-µs")
		b.ReportMetric(percentile(durs, 0.99), "p99-µs")
	}
	b.Run("bare", func(b *testing.B) { run(b, handler) })
	b.Run("guarded", func(b *testing.B) { run(b, guarded) })
	paired := func(b *testing.B, guarded http.Handler) {
		bare := make([]time.Duration, 0, b.N)
		guard := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			r := reqs[i%len(reqs)]
			if i%2 == 0 { // alternate the order so neither side always runs warm
				bare = append(bare, serve(handler, r))
				guard = append(guard, serve(guarded, r))
			} else {
				guard = append(guard, serve(guarded, r))
				bare = append(bare, serve(handler, r))
			}
		}
		b.StopTimer()
		bp99, gp99 := percentile(bare, 0.99), percentile(guard, 0.99)
		b.ReportMetric(bp99, "bare-p99-µs")
		b.ReportMetric(gp99, "guarded-p99-µs")
		b.ReportMetric(gp99-bp99, "added-p99-µs")
		b.ReportMetric(mean(guard)-mean(bare), "added-mean-µs")
	}
	b.Run("paired", func(b *testing.B) { paired(b, guarded) })
	// Tracing on (OTLP exporter configured) but the request sampled out:
	// the cost every unsampled request pays. With the exporter off the
	// middleware is not in the chain at all.
	tp, shutdown, err := observe.NewTracerProvider(context.Background(), observe.Tracing{Exporter: "otlp-http",
		Endpoint: "http://127.0.0.1:1", SampleRatio: 0, SlowThreshold: time.Hour, ServiceName: "bench"}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer shutdown(context.Background())
	b.Run("paired-traced-sampled-out", func(b *testing.B) { paired(b, observe.HTTPMiddleware(tp)(guarded)) })
}

func percentile(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[min(len(s)-1, int(q*float64(len(s))))].Nanoseconds()) / 1e3
}

func mean(d []time.Duration) float64 {
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return float64(sum.Nanoseconds()) / float64(max(len(d), 1)) / 1e3
}
