package online

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"

	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/redistest"
	"github.com/ripple-rec/ripple/internal/store/redis"
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

// BenchmarkWorkerPublish is a worker's apply-and-publish path in one
// process, for profiling and for comparing encodings (cmd/ripple's
// BenchmarkWorkerThroughput runs it as real processes behind kfake):
// 200,000 interactions of 20k users on 5k items, split by user over 6
// partition engines, each with a publisher writing parts to a real Redis.
// Each partition applies 1,000-record batches and its publisher flushes,
// on this goroutine, after every 16th and the last: the records written
// per event are the same on every run (about 0.5, near what a worker
// draining a backlog writes), unlike a live publisher's, which coalesces
// more the further it falls behind. Reported: events per
// CPU-second of this process (applying, materializing, encoding and the
// Redis client; Redis itself excluded) and records written per event.
//
//	go test -run XXX -bench BenchmarkWorkerPublish -benchtime 3x -count 3 ./internal/online
func BenchmarkWorkerPublish(b *testing.B) {
	const parts, total, batch, flushEvery = 6, 200_000, 1000, 16
	srv := redistest.Start(b)
	recs := make([][]event.Record, parts)
	types := []string{"view", "view", "click", "cart", "purchase"}
	base := time.Now().Add(-time.Hour).UnixMilli()
	for i := range total {
		u := i % 20_000
		recs[u%parts] = append(recs[u%parts], event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{
			User: "u" + strconv.Itoa(u), Item: "i" + strconv.Itoa((i*7919)%5_000), Type: types[i%len(types)], TS: base + int64(i)/50}})
	}
	ctx := context.Background()
	var events, cpu, written float64
	for n := range b.N {
		b.StopTimer()
		st, err := redis.Open(ctx, redis.Options{Addrs: []string{srv.Addr()}})
		require.NoError(b, err)
		engs := make([]*features.Engine, parts)
		pubs := make([]*Publisher, parts)
		for p := range parts {
			engs[p] = features.NewEngine(features.DefaultConfig(), nil)
			pubs[p] = NewPublisher(engs[p], st, nil, PublisherOptions{Source: fmt.Sprint("bench-", b.N, "-", n, "-", p),
				Part: strconv.Itoa(p), AnnounceOnly: true})
		}
		cpu0 := processCPU(b)
		b.StartTimer()
		for lo := 0; lo < total/parts+batch; lo += batch {
			for p := range parts {
				if lo >= len(recs[p]) {
					continue
				}
				chunk := recs[p][lo:min(len(recs[p]), lo+batch)]
				offs := make([]uint64, len(chunk))
				for i := range offs {
					offs[i] = uint64(lo + i + 1)
				}
				engs[p].ApplyBatch(offs, chunk)
				pubs[p].AfterApply(engs[p].Applied())
				if (lo/batch+1)%flushEvery == 0 || lo+batch >= len(recs[p]) {
					require.True(b, pubs[p].flush(ctx, false))
				}
			}
		}
		b.StopTimer()
		events += total
		cpu += processCPU(b) - cpu0
		for _, p := range pubs {
			written += testutil.ToFloat64(p.m.entities)
		}
		st.Close()
	}
	b.ReportMetric(events/cpu, "events/cpu-s")
	b.ReportMetric(written/events, "records/event")
}

// processCPU is the user+system CPU time this process used so far.
func processCPU(tb testing.TB) float64 {
	var ru syscall.Rusage
	require.NoError(tb, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
