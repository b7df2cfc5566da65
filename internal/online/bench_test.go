package online

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/redistest"
)

// BenchmarkRecommend compares one recommendation through the Redis tiers
// with the same request on the engine in process, in the same run:
//
//	engine       the embedded store (baseline)
//	redis-l1     through the tiers, everything in L1 (the steady state)
//	redis-cold   L1 dropped before every request: every read goes to Redis
//	redis-down   Redis stopped, breaker open: L1 misses fall back
//
// p99 per request is reported beside ns/op.
func BenchmarkRecommend(b *testing.B) {
	srv := redistest.Start(b)
	w := newBenchNode(b, srv)
	cfg := recommend.DefaultConfig()
	users := make([]string, 0, 300)
	for i := range 300 {
		users = append(users, fmt.Sprintf("u%d", i))
	}
	local := recommend.New(w.eng, cfg)
	remote := recommend.NewBound(func(ctx context.Context) recommend.Features { return w.r.Bind(ctx) }, cfg)
	run := func(b *testing.B, p *recommend.Pipeline, before func()) {
		ctx := context.Background()
		lat := make([]time.Duration, 0, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if before != nil {
				b.StopTimer()
				before()
				b.StartTimer()
			}
			start := time.Now()
			resp := p.Recommend(ctx, recommend.Request{User: users[i%len(users)], K: 10})
			lat = append(lat, time.Since(start))
			if len(resp.Items) == 0 {
				b.Fatal("no items")
			}
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.Run("engine", func(b *testing.B) { run(b, local, nil) })
	b.Run("redis-l1", func(b *testing.B) {
		for _, u := range users { // warm
			remote.Recommend(context.Background(), recommend.Request{User: u, K: 10})
		}
		run(b, remote, nil)
	})
	b.Run("redis-cold", func(b *testing.B) { run(b, remote, w.r.dropL1) })
	b.Run("redis-down", func(b *testing.B) {
		srv.Stop()
		defer srv.Restart()
		w.r.dropL1()
		run(b, remote, nil)
	})
}

// dropL1 empties every tier of this node (benchmarks: force store reads).
func (r *Reader) dropL1() {
	for _, c := range []interface{ Purge() }{r.users, r.infos, r.nbrs, r.trend, r.values} {
		c.Purge()
	}
}

func newBenchNode(b *testing.B, srv *redistest.Server) *node {
	n := newNode(b, []string{srv.Addr()}, "bench", fastReader())
	n.apply(smallDemo().Records())
	n.waitPublished(b)
	return n
}

// BenchmarkApplyWithPublisher is the applier's cost of publishing to Redis:
// the same records applied in 1,000-record batches with no publisher
// (baseline) and with one (users materialized on the applier goroutine,
// items and writes on the publisher's). Reported as records/s.
func BenchmarkApplyWithPublisher(b *testing.B) {
	srv := redistest.Start(b)
	recs := smallDemo().Records()
	apply := func(b *testing.B, publish bool) {
		var total int
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			var n *node
			if publish {
				n = newNode(b, []string{srv.Addr()}, fmt.Sprint("bench-", b.N, "-", total), fastReader())
			} else {
				n = &node{eng: features.NewEngine(features.DefaultConfig(), nil)}
			}
			b.StartTimer()
			for lo := 0; lo < len(recs); lo += 1000 {
				chunk := recs[lo:min(len(recs), lo+1000)]
				offs := make([]uint64, len(chunk))
				for i := range offs {
					n.off++
					offs[i] = n.off
				}
				n.eng.ApplyBatch(offs, chunk)
				if publish {
					n.pub.AfterApply(n.eng.Applied())
				}
			}
			total += len(recs)
		}
		b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("engine", func(b *testing.B) { apply(b, false) })
	b.Run("publisher", func(b *testing.B) { apply(b, true) })
}
