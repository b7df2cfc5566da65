package redis

// Client choice by measurement: the serving path reads a batch of 100
// entities × 50 features in one pipelined round trip. These benchmarks put
// rueidis and go-redis through exactly that shape against a private
// redis-server (redistest), serially and with 16 batches in flight.
// Results and their reading: internal/redistest/CLIENTS.md.
//
//	go test -run '^$' -bench Clients -benchtime 3s ./internal/store/redis/

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/ripple-rec/ripple/internal/redistest"
)

const (
	clientsEntities    = 100
	clientsFeatures    = 50
	clientsParallelism = 8 // × GOMAXPROCS goroutines each keep one batch in flight
)

// clientsBatchRead reads the whole batch once and checks its shape.
type clientsBatchRead func(ctx context.Context) error

// BenchmarkClientsHMGET runs with Redis' default hash encoding: a 50-field
// hash of short values is a listpack, which HMGET scans once per field.
func BenchmarkClientsHMGET(b *testing.B) { clientsBench(b, "", true) }

// BenchmarkClientsHMGETHashtable forces hashes into hashtable encoding
// (hash-max-listpack-entries 0): O(1) field lookups for about three times
// the memory, reported as redis-B/entity.
func BenchmarkClientsHMGETHashtable(b *testing.B) { clientsBench(b, "0", false) }

// clientsBench populates a fresh server, with hash-max-listpack-entries set
// to maxListpack unless empty, and runs every read serially and, if
// parallel, with clientsParallelism × GOMAXPROCS batches in flight.
func clientsBench(b *testing.B, maxListpack string, parallel bool) {
	srv := redistest.Start(b)
	ctx := context.Background()
	keys, fields := clientsPopulate(b, srv.Addr(), maxListpack)

	rue, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr()}, DisableCache: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rue.Close)
	gr := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { _ = gr.Close() })

	reads := []struct {
		name, command string // command: as named in Redis' INFO commandstats
		read          clientsBatchRead
	}{
		{"rueidis", "hmget", func(ctx context.Context) error {
			cmds := make(rueidis.Commands, len(keys))
			for i, k := range keys {
				cmds[i] = rue.B().Hmget().Key(k).Field(fields...).Build()
			}
			for _, r := range rue.DoMulti(ctx, cmds...) {
				vals, err := r.AsStrSlice()
				if err != nil {
					return err
				}
				if err := clientsCheck(len(vals)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"goredis", "hmget", func(ctx context.Context) error {
			cmds := make([]*goredis.SliceCmd, len(keys))
			if _, err := gr.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for i, k := range keys {
					cmds[i] = p.HMGet(ctx, k, fields...)
				}
				return nil
			}); err != nil {
				return err
			}
			for _, c := range cmds {
				if err := clientsCheck(len(c.Val())); err != nil {
					return err
				}
			}
			return nil
		}},
		{"rueidis-hgetall", "hgetall", func(ctx context.Context) error {
			cmds := make(rueidis.Commands, len(keys))
			for i, k := range keys {
				cmds[i] = rue.B().Hgetall().Key(k).Build()
			}
			for _, r := range rue.DoMulti(ctx, cmds...) {
				m, err := r.AsStrMap()
				if err != nil {
					return err
				}
				if err := clientsCheck(len(m)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"goredis-hgetall", "hgetall", func(ctx context.Context) error {
			cmds := make([]*goredis.MapStringStringCmd, len(keys))
			if _, err := gr.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for i, k := range keys {
					cmds[i] = p.HGetAll(ctx, k)
				}
				return nil
			}); err != nil {
				return err
			}
			for _, c := range cmds {
				if err := clientsCheck(len(c.Val())); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, r := range reads {
		if err := r.read(ctx); err != nil { // fail before timing, not inside it
			b.Fatalf("%s: %v", r.name, err)
		}
		b.Run(r.name+"/serial", func(b *testing.B) {
			b.ReportAllocs()
			clientsResetServerStats(b, gr)
			lat := make([]time.Duration, 0, 1<<20)
			for b.Loop() {
				start := time.Now()
				if err := r.read(ctx); err != nil {
					b.Fatal(err)
				}
				if len(lat) < cap(lat) {
					lat = append(lat, time.Since(start))
				}
			}
			clientsReportLatency(b, lat)
			clientsReportServer(b, gr, r.command, keys[0])
		})
		if !parallel {
			continue
		}
		b.Run(r.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.SetParallelism(clientsParallelism)
			clientsResetServerStats(b, gr)
			var mu sync.Mutex
			var lat []time.Duration
			b.RunParallel(func(pb *testing.PB) {
				mine := make([]time.Duration, 0, 1<<16)
				for pb.Next() {
					start := time.Now()
					if err := r.read(ctx); err != nil {
						b.Error(err)
						return
					}
					if len(mine) < cap(mine) {
						mine = append(mine, time.Since(start))
					}
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			})
			clientsReportLatency(b, lat)
			clientsReportServer(b, gr, r.command, keys[0])
		})
	}
}

func clientsCheck(n int) error {
	if n != clientsFeatures {
		return fmt.Errorf("entity returned %d features, want %d", n, clientsFeatures)
	}
	return nil
}

// clientsPopulate writes clientsEntities hashes v1:{u:N}, each with
// clientsFeatures fields of 8–16 byte values, and returns their names.
func clientsPopulate(b *testing.B, addr, maxListpack string) (keys, fields []string) {
	b.Helper()
	for f := range clientsFeatures {
		fields = append(fields, "f"+strconv.Itoa(f))
	}
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	if maxListpack != "" {
		if err := c.ConfigSet(ctx, "hash-max-listpack-entries", maxListpack).Err(); err != nil {
			b.Fatal(err)
		}
	}
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for e := range clientsEntities {
			key := "v1:{u:" + strconv.Itoa(e) + "}"
			keys = append(keys, key)
			kv := make([]any, 0, 2*clientsFeatures)
			for f, name := range fields {
				n := 8 + (e*7+f)%9 // 8..16 bytes
				kv = append(kv, name, fmt.Sprintf("%0*d", n, e*clientsFeatures+f))
			}
			p.HSet(ctx, key, kv...)
		}
		return nil
	})
	if err != nil {
		b.Fatalf("populate: %v", err)
	}
	return keys, fields
}

// clientsReportLatency reports the batch latency percentiles the serving
// budget is written against.
func clientsReportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(at(0.50), "p50-µs/batch")
	b.ReportMetric(at(0.99), "p99-µs/batch")
}

func clientsResetServerStats(b *testing.B, c *goredis.Client) {
	if err := c.ConfigResetStat(context.Background()).Err(); err != nil {
		b.Fatal(err)
	}
}

// clientsReportServer reports the time Redis itself spent executing one
// batch (INFO commandstats, since the last reset), which separates the
// server's cost of a command from the client's, and the memory one entity
// takes in Redis.
func clientsReportServer(b *testing.B, c *goredis.Client, command, key string) {
	ctx := context.Background()
	mem, err := c.MemoryUsage(ctx, key).Result()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(mem), "redis-B/entity")
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	// cmdstat_hmget:calls=200,usec=1234,usec_per_call=6.17,...
	_, line, ok := strings.Cut(info, "cmdstat_"+command+":")
	if !ok {
		b.Fatalf("no %s in INFO commandstats", command)
	}
	for kv := range strings.SplitSeq(strings.TrimSpace(strings.SplitN(line, "\n", 2)[0]), ",") {
		if v, ok := strings.CutPrefix(kv, "usec_per_call="); ok {
			perCall, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(perCall*clientsEntities, "server-µs/batch")
			return
		}
	}
	b.Fatalf("no usec_per_call for %s in %q", command, line)
}
