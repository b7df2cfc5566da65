package cache

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// newBenchCache is configured as in production (jitter, XFetch, stale window, metrics), with
// keys preloaded so that every Get is an L1 hit.
func newBenchCache(b *testing.B, keys []string) *Tiered[int] {
	b.Helper()
	c, err := New(Options[int]{
		Name:     "bench",
		Capacity: 100_000,
		Load: func(_ context.Context, keys []string) ([]int, []bool, error) {
			vals := make([]int, len(keys))
			found := make([]bool, len(keys))
			for i := range keys {
				vals[i], found[i] = i, true
			}
			return vals, found, nil
		},
		TTL:      constTTL(time.Hour),
		Jitter:   0.1,
		Beta:     1,
		StaleFor: time.Minute,
		Metrics:  NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	out := make([]Entry[int], len(keys))
	if err := c.GetBatch(context.Background(), keys, out); err != nil {
		b.Fatal(err)
	}
	return c
}

func benchKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("user:%d:clicks_1h", i)
	}
	return keys
}

func BenchmarkGetBatchHit(b *testing.B) {
	keys := benchKeys(100)
	c := newBenchCache(b, keys)
	out := make([]Entry[int], len(keys))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := c.GetBatch(ctx, keys, out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(keys)), "ns/key")
}

func BenchmarkGetHit(b *testing.B) {
	keys := benchKeys(1)
	c := newBenchCache(b, keys)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx, keys[0]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetHitParallel spreads hits over 10k keys from GOMAXPROCS goroutines.
func BenchmarkGetHitParallel(b *testing.B) {
	keys := benchKeys(10_000)
	c := newBenchCache(b, keys)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := 0
		for pb.Next() {
			if _, err := c.Get(ctx, keys[i%len(keys)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkHitLatency reports percentiles of the L1 hit path, per call, measured one call at a
// time on every goroutine of RunParallel (so under contention). The target is p99 <= 50µs for
// a single key.
func BenchmarkHitLatency(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("keys=%d", batch), func(b *testing.B) {
			keys := benchKeys(10_000)
			c := newBenchCache(b, keys)
			var (
				mu  sync.Mutex
				all []time.Duration
			)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				out := make([]Entry[int], batch)
				lat := make([]time.Duration, 0, 1024)
				i := 0
				for pb.Next() {
					lo := (i * batch) % (len(keys) - batch)
					start := time.Now()
					if err := c.GetBatch(ctx, keys[lo:lo+batch], out); err != nil {
						b.Error(err)
						return
					}
					lat = append(lat, time.Since(start))
					i++
				}
				mu.Lock()
				all = append(all, lat...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(all)
			for _, p := range []struct {
				q    float64
				unit string
			}{{0.5, "p50-ns"}, {0.99, "p99-ns"}, {0.999, "p999-ns"}} {
				b.ReportMetric(float64(all[int(p.q*float64(len(all)-1))].Nanoseconds()), p.unit)
			}
		})
	}
}

// BenchmarkGetMiss measures the miss path without a store: a load of a key never seen (L1 is
// kept small so it stays cheap), so the cost of singleflight, the load goroutine and its deadline.
func BenchmarkGetMiss(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("keys=%d", batch), func(b *testing.B) {
			keys := benchKeys(1 << 20)
			c := newBenchCache(b, nil)
			out := make([]Entry[int], batch)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				lo := (i * batch) % (len(keys) - batch)
				if err := c.GetBatch(ctx, keys[lo:lo+batch], out); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
