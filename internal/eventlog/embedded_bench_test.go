package eventlog

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// recordsOf120 returns n distinct payloads of about the size of a JSON
// interaction event.
func recordsOf120(n int) [][]byte {
	rng := rand.New(rand.NewPCG(7, 7))
	ps := make([][]byte, n)
	for i := range ps {
		p := fmt.Appendf(nil, `{"type":"click","user":"u%d","item":"i%d","ts":1767225600,"session":"s%d","value":1}`,
			rng.IntN(1e6), rng.IntN(1e5), rng.IntN(1e6))
		for len(p) < 120 {
			p = append(p, ' ')
		}
		ps[i] = p
	}
	return ps
}

// BenchmarkAppend measures durable appends: every Append returns after the
// fsync of the group commit holding its records.
func BenchmarkAppend(b *testing.B) {
	for _, bc := range []struct{ appenders, perCall int }{
		{1, 1000},
		{8, 1000},
		{64, 10}, // many small HTTP requests at once
	} {
		b.Run(fmt.Sprintf("appenders=%d/records=%d", bc.appenders, bc.perCall), func(b *testing.B) {
			l := openTest(b, b.TempDir(), EmbeddedOptions{})
			ps := recordsOf120(bc.perCall)
			b.SetBytes(int64(bc.perCall * len(ps[0])))
			var calls atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range bc.appenders {
				wg.Go(func() {
					for calls.Add(1) <= int64(b.N) {
						if _, err := l.Append(context.Background(), ps); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			st := l.Stats()
			b.ReportMetric(float64(b.N*bc.perCall)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(st.Appends)/float64(st.Batches), "records/batch")
			b.ReportMetric(float64(st.SyncTime.Microseconds())/float64(st.Batches), "µs/commit")
		})
	}
}

// BenchmarkReadTail reads records a tailing consumer finds in memory.
func BenchmarkReadTail(b *testing.B) {
	l := openTest(b, b.TempDir(), EmbeddedOptions{})
	benchRead(b, l, DefaultTailCacheRecords)
	if st := l.Stats(); st.StoreReads != 0 {
		b.Fatalf("%d records read from Pebble", st.StoreReads)
	}
}

// BenchmarkReadPebble replays records from Pebble's sstables, as a consumer
// far behind the writer or a restart does.
func BenchmarkReadPebble(b *testing.B) {
	l := openTest(b, b.TempDir(), EmbeddedOptions{TailCacheRecords: -1})
	benchRead(b, l, 200_000)
	if st := l.Stats(); st.TailReads != 0 {
		b.Fatalf("%d records read from the tail cache", st.TailReads)
	}
}

func benchRead(b *testing.B, l *Embedded, records int) {
	ps := recordsOf120(1000)
	for range records / len(ps) {
		if _, err := l.Append(context.Background(), ps); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.db.Flush(); err != nil {
		b.Fatal(err)
	}
	const perRead = 1000
	var sum int
	b.SetBytes(int64(perRead * len(ps[0])))
	b.ResetTimer()
	from := l.Start()
	for range b.N {
		next, err := l.Read(context.Background(), from, perRead, func(_ uint64, data []byte) error {
			sum += len(data)
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		if from = next; from == l.End() {
			from = l.Start()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*perRead)/b.Elapsed().Seconds(), "records/s")
}
