package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/redistest"
	"github.com/ripple-rec/ripple/internal/store/redis"
)

// Scale-out benchmarks (issue 4), real processes on loopback: kfake in the
// benchmark's process, a private redis-server, ripple worker and api nodes
// as child processes. Run them one at a time on a quiet machine:
//
//	go test -run XXX -bench BenchmarkWorkerThroughput -benchtime 1x -count 3 ./cmd/ripple
//	go test -run XXX -bench BenchmarkFreshness -benchtime 1x -count 3 ./cmd/ripple

// benchEvents is n interaction records (20k users, 5k items), keyed by user
// as the api nodes key them.
func benchEvents(n int) []ingest.Keyed {
	types := []string{"view", "view", "click", "cart", "purchase"}
	base := time.Now().Add(-time.Hour).UnixMilli()
	out := make([]ingest.Keyed, n)
	var rec event.Record
	rec.Kind = event.KindInteraction
	for i := range out {
		rec.Interaction = event.Interaction{User: "u" + strconv.Itoa(i%20_000), Item: "i" + strconv.Itoa((i*7919)%5_000),
			Type: types[i%len(types)], TS: base + int64(i)/50}
		out[i] = ingest.Keyed{Key: []byte(rec.Interaction.User), Value: event.AppendBinary(nil, &rec)}
	}
	return out
}

// BenchmarkWorkerThroughput is how fast worker processes drain a backlog
// from a 6-partition kfake topic into the Redis store: the live path
// (fetch, decode, apply, publish every changed user, item part and global
// part), not recovery. The workers join, own their partitions and are
// SIGSTOPped; 200,000 events are produced; the workers are SIGCONTinued
// and the clock runs until the store's offset of every partition reaches
// the partition's end. Baseline in the same run: one engine applying the
// same records in the benchmark's process, no broker and no store
// (engine-events/s); the ratio is what the broker and the store cost.
func BenchmarkWorkerThroughput(b *testing.B) {
	const total = 200_000
	recs := benchEvents(total)
	for _, workers := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for range b.N {
				r := workerThroughput(b, recs, workers)
				b.ReportMetric(r.rate, "events/s")
				b.ReportMetric(r.rate/float64(workers), "events/s/worker")
				b.ReportMetric(r.perWorkerCPU, "events/worker-cpu-s")
				b.ReportMetric(r.perRedisCPU, "events/redis-cpu-s")
			}
			b.ReportMetric(engineRate(b, recs), "engine-events/s")
		})
	}
}

// throughput is one drain: events/s, and events per second of CPU time
// (user+system, from /proc) of the workers and of redis-server: what a
// worker would do with a core of its own, here where kfake and Redis
// share the machine's two cores with it, and what one Redis core takes.
type throughput struct {
	rate, perWorkerCPU, perRedisCPU float64
}

// workerThroughput measures one drain through workers fresh processes.
func workerThroughput(b *testing.B, recs []ingest.Keyed, workers int) throughput {
	b.StopTimer()
	defer b.StartTimer()
	const topic, parts = "ripple-events", 6
	rds := redistest.Start(b)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, topic))
	require.NoError(b, err)
	defer c.Close()
	cfg := writeRolesConfig(b, rds.Addr(), fmt.Sprintf(`log: kafka
kafka:
  brokers: [%s]
  topic: %s
  partitions: %d
worker:
  session_timeout: 60s
`, c.ListenAddrs()[0], topic, parts))
	ws := make([]*serveProc, workers)
	for i := range ws {
		ws[i] = startServe(b, "--config", cfg, "--role", "worker", "--data-dir", b.TempDir())
	}
	waitOwned(b, ws, parts, "the workers never owned all the partitions")
	for _, w := range ws {
		require.NoError(b, w.cmd.Process.Signal(syscall.SIGSTOP))
	}
	ctx := context.Background()
	lg, err := ingest.OpenKafka(ctx, ingest.KafkaOptions{Brokers: c.ListenAddrs(), Topic: topic})
	require.NoError(b, err)
	defer lg.Close()
	ends := map[int]uint64{}
	for lo := 0; lo < len(recs); lo += 5000 {
		at, err := lg.Append(ctx, recs[lo:min(len(recs), lo+5000)])
		require.NoError(b, err)
		for p, off := range at {
			ends[p] = max(ends[p], off)
		}
	}
	st, err := redis.Open(ctx, redis.Options{Addrs: []string{rds.Addr()}})
	require.NoError(b, err)
	defer st.Close()
	redisPid := []int{rds.Pid()}
	cpu0, redis0 := cpuSeconds(b, pids(ws)), cpuSeconds(b, redisPid)
	start := time.Now()
	for _, w := range ws {
		require.NoError(b, w.cmd.Process.Signal(syscall.SIGCONT))
	}
	for p, end := range ends {
		src := "kafka:" + topic + ":" + strconv.Itoa(p)
		for {
			off, err := st.Offset(ctx, src)
			require.NoError(b, err)
			if off >= end {
				break
			}
			require.Less(b, time.Since(start), 5*time.Minute, "partition %d stuck at %d of %d", p, off, end)
			time.Sleep(time.Millisecond)
		}
	}
	n := float64(len(recs))
	return throughput{rate: n / time.Since(start).Seconds(), perWorkerCPU: n / (cpuSeconds(b, pids(ws)) - cpu0),
		perRedisCPU: n / (cpuSeconds(b, redisPid) - redis0)}
}

func pids(ps []*serveProc) []int {
	out := make([]int, len(ps))
	for i, p := range ps {
		out[i] = p.cmd.Process.Pid
	}
	return out
}

// cpuSeconds is the user+system CPU time the processes used so far.
func cpuSeconds(tb testing.TB, pids []int) float64 {
	var ticks float64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		require.NoError(tb, err)
		// Fields after the parenthesised command: utime and stime are the
		// 12th and 13th.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
		for _, s := range f[11:13] {
			v, err := strconv.ParseFloat(s, 64)
			require.NoError(tb, err)
			ticks += v
		}
	}
	return ticks / 100 // USER_HZ
}

// engineRate applies recs to one engine in this process: the baseline.
func engineRate(b *testing.B, recs []ingest.Keyed) float64 {
	b.StopTimer()
	defer b.StartTimer()
	eng := features.NewEngine(features.DefaultConfig(), nil)
	start := time.Now()
	var rec event.Record
	for i, k := range recs {
		require.NoError(b, event.DecodeBinary(k.Value, &rec))
		eng.Apply(uint64(i+1), &rec)
	}
	return float64(len(recs)) / time.Since(start).Seconds()
}

// BenchmarkFreshness is end-to-end freshness across nodes: a view posted
// to api node A (the clock starts when A answers 202, the broker having
// acknowledged it) until a recommendation from api node B reflects it (the
// viewed item, the top trending one, has left the user's list through the
// seen filter). Two workers share six kfake partitions; B reads Redis
// through its cache tiers, told of changes by the invalidation bus. Each
// sample is a new user; a background load of about 1,000 events/s goes
// through both api nodes. Baseline in the same run: one role: all node
// (embedded log and store), the same measure with A = B.
func BenchmarkFreshness(b *testing.B) {
	const samples = 300
	for range b.N {
		b.StopTimer()
		rds := redistest.Start(b)
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "ripple-events"))
		require.NoError(b, err)
		cfg := writeConfig(b, rds.Addr(), fmt.Sprintf(`log: kafka
kafka:
  brokers: [%s]
  partitions: 6
`, c.ListenAddrs()[0]))
		ws := []*serveProc{
			startServe(b, "--config", cfg, "--role", "worker", "--data-dir", b.TempDir()),
			startServe(b, "--config", cfg, "--role", "worker", "--data-dir", b.TempDir()),
		}
		waitOwned(b, ws, 6, "two workers never split six partitions")
		a := startServe(b, "--config", cfg, "--role", "api", "--data-dir", b.TempDir())
		bn := startServe(b, "--config", cfg, "--role", "api", "--data-dir", b.TempDir())
		lat := freshness(b, a.url, bn.url, samples)
		single := startServe(b, "--data-dir", b.TempDir())
		base := freshness(b, single.url, single.url, samples)
		c.Close()
		for _, r := range []struct {
			unit string
			lat  []time.Duration
		}{{"", lat}, {"single-", base}} {
			b.ReportMetric(quantile(r.lat, 0.5).Seconds()*1000, r.unit+"p50-ms")
			b.ReportMetric(quantile(r.lat, 0.99).Seconds()*1000, r.unit+"p99-ms")
			b.ReportMetric(quantile(r.lat, 1).Seconds()*1000, r.unit+"max-ms")
		}
		b.StartTimer()
	}
}

// freshness seeds a catalogue through a, then measures samples fresh
// users' views of the top trending item, from a's 202 to the item leaving
// the user's recommendations read from b, under a background load.
func freshness(tb testing.TB, a, bn string, samples int) []time.Duration {
	tb.Helper()
	now := time.Now()
	var seed []event.Interaction
	for i := range 5000 {
		// item i0 is the most viewed: every user without history gets it first.
		item := "i" + strconv.Itoa(i%50)
		if i%5 == 0 {
			item = "i0"
		}
		seed = append(seed, event.Interaction{ID: "s" + strconv.Itoa(i), Type: "view", User: "seed" + strconv.Itoa(i%500),
			Item: item, TS: now.Add(-time.Duration(5000-i) * 100 * time.Millisecond).UnixMilli()})
	}
	for lo := 0; lo < len(seed); lo += 500 {
		postAccepted(tb, a, seed[lo:lo+500])
	}
	top := func(base, user string) []string {
		resp, err := http.Get(base + "/v1/recommendations/" + user + "?k=5")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		var body struct {
			Items []struct {
				Item string `json:"item"`
			} `json:"items"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		out := make([]string, len(body.Items))
		for i, it := range body.Items {
			out[i] = it.Item
		}
		return out
	}
	require.Eventually(tb, func() bool {
		l := top(bn, "nobody")
		return len(l) > 0 && l[0] == "i0"
	}, 30*time.Second, 20*time.Millisecond, "the seeded trending list never reached the reading node")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for k, base := range []string{a, bn} {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond) // 10 events per tick: ~500/s per node
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				batch := make([]event.Interaction, 10)
				for j := range batch {
					batch[j] = event.Interaction{ID: fmt.Sprintf("bg%d-%d-%d", k, n, j), Type: "view",
						User: "bg" + strconv.Itoa((n*10+j)%2000), Item: "i" + strconv.Itoa(1+(n+j)%49), TS: time.Now().UnixMilli()}
				}
				postAccepted(tb, base, batch)
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()

	lat := make([]time.Duration, 0, samples)
	for s := range samples {
		user := "fresh" + strconv.Itoa(s)
		postAccepted(tb, a, []event.Interaction{{ID: "f" + strconv.Itoa(s), Type: "view", User: user, Item: "i0", TS: time.Now().UnixMilli()}})
		accepted := time.Now()
		for {
			// A failed read (nil) is not a sign the view arrived.
			if l := top(bn, user); len(l) > 0 && !slices.Contains(l, "i0") {
				break
			}
			require.Less(tb, time.Since(accepted), 10*time.Second, "the view never became visible")
		}
		lat = append(lat, time.Since(accepted))
	}
	return lat
}

// quantile is the q-quantile (nearest rank) of ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// postAccepted posts evs as a client would: a 503 (overloaded, or the
// store's consent read timed out) is retried after its Retry-After; the
// retries are counted in the log.
func postAccepted(tb testing.TB, base string, evs []event.Interaction) {
	tb.Helper()
	for try := 0; ; try++ {
		code, retry := postInteractions(tb, base, evs)
		if code == http.StatusAccepted {
			return
		}
		require.Equal(tb, http.StatusServiceUnavailable, code)
		require.Less(tb, try, 20, "still 503 after 20 tries")
		tb.Logf("503 from %s; retrying after %v", base, retry)
		time.Sleep(retry)
	}
}
