package features

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
)

// replayLog is a synthetic event log in its binary encoding: what a restart
// replays. Item popularity is Zipf-distributed (a few items get most events),
// users are spread evenly, event times move forward over a week with ~1% of
// events arriving up to two hours late.
type replayLog struct {
	buf  []byte
	ends []int // record i is buf[ends[i-1]:ends[i]]
	n    int   // interactions
}

const (
	benchUsers        = 50_000
	benchItems        = 20_000
	benchCategories   = 200
	benchInteractions = 1_000_000
)

var (
	benchLogOnce sync.Once
	benchLog     *replayLog
)

func syntheticLog() *replayLog {
	benchLogOnce.Do(func() {
		rng := rand.New(rand.NewPCG(42, 42))
		zipf := rand.NewZipf(rng, 1.1, 1, benchItems-1)
		l := &replayLog{n: benchInteractions}
		add := func(r *event.Record) {
			l.buf = event.AppendBinary(l.buf, r)
			l.ends = append(l.ends, len(l.buf))
		}
		for i := 0; i < benchItems; i++ {
			cats := []string{fmt.Sprint("c", rng.IntN(benchCategories))}
			if rng.IntN(3) == 0 {
				cats = append(cats, fmt.Sprint("c", rng.IntN(benchCategories)))
			}
			add(&event.Record{Kind: event.KindItem, Item: event.Item{ID: fmt.Sprint("item-", i), Categories: cats, TS: t0}})
		}
		users := make([]string, benchUsers)
		for i := range users {
			users[i] = fmt.Sprint("user-", i)
		}
		items := make([]string, benchItems)
		for i := range items {
			items[i] = fmt.Sprint("item-", i)
		}
		ts := t0
		step := 7 * day / benchInteractions
		var r event.Record
		r.Kind = event.KindInteraction
		for i := 0; i < benchInteractions; i++ {
			ts += rng.Int64N(2*step + 1)
			e := &r.Interaction
			*e = event.Interaction{User: users[rng.IntN(benchUsers)], Item: items[zipf.Uint64()], TS: ts, ID: fmt.Sprint("e", i)}
			if rng.IntN(100) == 0 {
				e.TS -= rng.Int64N(2 * hour)
			}
			switch p := rng.IntN(100); {
			case p < 80:
				e.Type = "view"
			case p < 92:
				e.Type = "click"
			case p < 96:
				e.Type = "cart"
			case p < 99:
				e.Type = "purchase"
			default:
				e.Type, e.Value = "rating", float64(1+rng.IntN(5))
			}
			add(&r)
		}
		benchLog = l
	})
	return benchLog
}

// replay decodes every record and, unless decodeOnly, applies it to a fresh
// engine with the default feature set.
func replay(b *testing.B, decodeOnly bool) {
	l := syntheticLog()
	cfg := DefaultConfig()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for it := 0; it < b.N; it++ {
		var e *Engine
		if !decodeOnly {
			e = NewEngine(cfg, nil)
		}
		var r event.Record
		prev := 0
		for i, end := range l.ends {
			if err := event.DecodeBinary(l.buf[prev:end], &r); err != nil {
				b.Fatal(err)
			}
			prev = end
			if !decodeOnly {
				e.Apply(uint64(i+1), &r)
			}
		}
	}
	sec := time.Since(start).Seconds()
	b.ReportMetric(float64(len(l.ends)*b.N)/sec, "events/s")
}

// BenchmarkApply replays 1,000,000 interactions (plus 20,000 item records)
// through event.DecodeBinary and Engine.Apply:
//
//	go test ./internal/features -run '^$' -bench 'Apply' -benchtime 3x
func BenchmarkApply(b *testing.B) { replay(b, false) }

// BenchmarkApplyDecodeOnly is the same loop without Apply: the baseline that
// shows how much of a replay is the feature engine.
func BenchmarkApplyDecodeOnly(b *testing.B) { replay(b, true) }

// BenchmarkApplyBatch is BenchmarkApply through ApplyBatch in batches of
// 16,384 (what recovery reads at a time): user and item sides on two cores.
func BenchmarkApplyBatch(b *testing.B) {
	l := syntheticLog()
	cfg := DefaultConfig()
	const batch = 16384
	recs := make([]event.Record, 0, batch)
	offs := make([]uint64, 0, batch)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for it := 0; it < b.N; it++ {
		e := NewEngine(cfg, nil)
		prev := 0
		for i, end := range l.ends {
			recs = append(recs, event.Record{})
			if err := event.DecodeBinary(l.buf[prev:end], &recs[len(recs)-1]); err != nil {
				b.Fatal(err)
			}
			offs = append(offs, uint64(i+1))
			prev = end
			if len(recs) == batch || i == len(l.ends)-1 {
				e.ApplyBatch(offs, recs)
				recs, offs = recs[:0], offs[:0]
			}
		}
	}
	sec := time.Since(start).Seconds()
	b.ReportMetric(float64(len(l.ends)*b.N)/sec, "events/s")
}
