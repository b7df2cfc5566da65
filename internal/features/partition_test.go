package features

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
)

// partitionedLog is recs split by user into n partitions, in log order, each
// with increasing offsets that skip numbers (as NATS stream sequences do).
type partitionedLog struct {
	offs [][]uint64
	recs [][]event.Record
}

func partitionRecords(rng *rand.Rand, recs []event.Record, n int) partitionedLog {
	pl := partitionedLog{offs: make([][]uint64, n), recs: make([][]event.Record, n)}
	next := make([]uint64, n)
	for _, r := range recs {
		h := fnv.New32a()
		h.Write([]byte(r.Subject()))
		p := int(h.Sum32() % uint32(n))
		next[p] += 1 + uint64(rng.IntN(3))
		pl.offs[p] = append(pl.offs[p], next[p])
		pl.recs[p] = append(pl.recs[p], r)
	}
	return pl
}

// applyInterleaved applies every partition from e's applied vector on, in
// random chunks from random partitions, stopping after stop chunks (-1: all).
func (pl partitionedLog) applyInterleaved(rng *rand.Rand, e *Engine, stop int) {
	for chunks := 0; chunks != stop; chunks++ {
		var open []int
		pos := make([]int, len(pl.offs))
		for p := range pl.offs {
			a := e.AppliedPartition(p)
			for pos[p] < len(pl.offs[p]) && pl.offs[p][pos[p]] <= a {
				pos[p]++
			}
			if pos[p] < len(pl.offs[p]) {
				open = append(open, p)
			}
		}
		if len(open) == 0 {
			return
		}
		p := open[rng.IntN(len(open))]
		n := min(len(pl.offs[p])-pos[p], []int{1, 7, 100, 600}[rng.IntN(4)])
		e.ApplyPartition(p, pl.offs[p][pos[p]:pos[p]+n], pl.recs[p][pos[p]:pos[p]+n])
	}
}

// TestApplyPartitionEqualsLog: three partitions of one log applied in a
// shuffled interleaving, with a snapshot and restore into a new engine half
// way and chunks applied twice, give the state applying the log in order
// gives: user-owned state byte for byte, item and global aggregates within
// 1e-9 relative (the same increments summed in another order). The log has
// no item metadata records and fewer than 200 items, the two cross-partition
// dependencies ApplyPartition documents.
func TestApplyPartitionEqualsLog(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	types := []string{"view", "click", "cart", "purchase", "rating"}
	var recs []event.Record
	for i := 0; i < 20_000; i++ {
		user := fmt.Sprint("u", rng.IntN(400))
		switch r := rng.IntN(200); {
		case r < 1:
			recs = append(recs, event.Record{Kind: event.KindErase, User: event.User{ID: user}})
		case r < 3:
			recs = append(recs, event.Record{Kind: event.KindUser, User: event.User{ID: user,
				Attributes: event.Consent{Personalization: rng.IntN(2) == 0, Storage: true}.Attributes()}})
		default:
			ts := base + int64(i)*1000 - rng.Int64N(3*3600*1000)
			recs = append(recs, event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{
				User: user, Item: fmt.Sprint("i", int(rng.ExpFloat64()*30)%150),
				Type: types[rng.IntN(len(types))], TS: ts, Value: float64(1 + rng.IntN(5)), Session: fmt.Sprint("s", i/50)}})
		}
	}
	clock := func() time.Time { return time.UnixMilli(base) }
	ref := NewEngine(DefaultConfig(), clock)
	for i := range recs {
		ref.Apply(uint64(i+1), &recs[i])
	}

	pl := partitionRecords(rng, recs, 3)
	first := NewEngine(DefaultConfig(), clock)
	pl.applyInterleaved(rng, first, 60)
	// Chunks already applied are skipped.
	first.ApplyPartition(1, pl.offs[1][:300], pl.recs[1][:300])
	snap := snapshotBytes(t, first)
	vec := first.AppliedVector()
	if len(vec) != 3 {
		t.Fatalf("vector %v after 60 chunks", vec)
	}

	second := NewEngine(DefaultConfig(), clock)
	for _, k := range sortedKeys(snap) {
		if err := second.Restore([]byte(k), snap[k]); err != nil {
			t.Fatal(err)
		}
	}
	if got := second.AppliedVector(); !maps.Equal(got, vec) {
		t.Fatalf("restored vector %v, snapshot %v", got, vec)
	}
	pl.applyInterleaved(rng, second, -1)
	for p := range pl.offs {
		if got, want := second.AppliedPartition(p), pl.offs[p][len(pl.offs[p])-1]; got != want {
			t.Fatalf("partition %d applied %d, want %d", p, got, want)
		}
	}
	if d := Diff(ref, second, 1e-9, 10); len(d) != 0 {
		t.Fatalf("partitioned state differs from the log's:\n%v", d)
	}
	if ref.Late() == 0 {
		t.Fatal("the log should contain late events")
	}
	// Diff notices a double count.
	last := len(pl.recs[2]) - 1
	for pl.recs[2][last].Kind != event.KindInteraction {
		last--
	}
	second.ApplyPartition(2, []uint64{0}, pl.recs[2][last:last+1])
	if d := Diff(ref, second, 1e-9, 10); len(d) == 0 {
		t.Fatal("Diff missed a record applied twice")
	}
}

// TestSnapshotVersion2Restores: a snapshot from before partitions restores.
func TestSnapshotVersion2Restores(t *testing.T) {
	e := NewEngine(DefaultConfig(), nil)
	e.Apply(7, &event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{User: "u", Item: "i", Type: "view", TS: 1000}})
	snap := snapshotBytes(t, e)
	meta := snap[string([]byte{snapMeta})]
	meta[0] = 2
	r := NewEngine(DefaultConfig(), nil)
	for _, k := range sortedKeys(snap) {
		if err := r.Restore([]byte(k), snap[k]); err != nil {
			t.Fatal(err)
		}
	}
	if r.Applied() != 7 || !maps.Equal(r.AppliedVector(), map[int]uint64{0: 7}) {
		t.Fatalf("applied %d, vector %v", r.Applied(), r.AppliedVector())
	}
}

func sortedKeys(m map[string][]byte) []string { return slices.Sorted(maps.Keys(m)) }

// TestWindowBucketsSumToOneEngine: engines that each apply one user's
// events (as partitions do) sum to one engine's window values when their
// buckets are evaluated at the newest clock, though the engine that saw
// the older events alone still counts, at its own clock, views that the
// newest clock has dropped.
func TestWindowBucketsSumToOneEngine(t *testing.T) {
	const cfg = `features:
  - {name: views_1h, kind: window_count, scope: item, events: [view], window: 1h, buckets: 60}
  - {name: last, kind: last_n, scope: user, n: 5}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}
  - {name: all_1h, kind: window_sum, scope: global, window: 1h, buckets: 4}
`
	whole, _ := newTestEngine(t, cfg)
	a, _ := newTestEngine(t, cfg)
	b, _ := newTestEngine(t, cfg)
	minute := time.Minute.Milliseconds()
	early := []*event.Record{withValue(interaction("a", "i", "view", t0), 1), withValue(interaction("a", "i", "view", t0+20*minute), 2)}
	late := []*event.Record{withValue(interaction("b", "i", "view", t0+40*minute), 4), withValue(interaction("b", "i", "view", t0+70*minute), 8)}
	applyAll(whole, append(early, late...)...)
	applyAll(a, early...)
	applyAll(b, late...)
	if got := number(t, a, EntityItem, "i", "views_1h"); got != 2 {
		t.Fatalf("the early engine alone counts %v views at its clock, want 2", got)
	}
	now := max(a.Clock(), b.Clock())
	for _, x := range []struct{ entity, id, name string }{{EntityItem, "i", "views_1h"}, {EntityGlobal, "", "all_1h"}} {
		i := slices.IndexFunc(whole.cfg.Features, func(s Spec) bool { return s.Name == x.name })
		s := &whole.cfg.Features[i]
		got := WindowAt(s, a.WindowBuckets(x.entity, x.id)[x.name], now) + WindowAt(s, b.WindowBuckets(x.entity, x.id)[x.name], now)
		if want := number(t, whole, x.entity, x.id, x.name); got != want {
			t.Errorf("%s: parts' buckets at the newest clock sum to %v, one engine says %v", x.name, got, want)
		}
	}
	if a.WindowBuckets(EntityItem, "unknown") != nil {
		t.Error("an unknown item has no buckets")
	}
}

// ValuesAt reads the values as they were at an earlier clock, whatever was
// applied since (to other entities): a part stamped with a clock read
// before its values carries values of that clock.
func TestValuesAtAnEarlierClock(t *testing.T) {
	const cfg = `features:
  - {name: trend, kind: trending, scope: item, half_life: 1h}
  - {name: since, kind: recency, scope: item}
  - {name: last, kind: last_n, scope: user, n: 5}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}
`
	e, _ := newTestEngine(t, cfg)
	applyAll(e, interaction("a", "i", "view", t0), interaction("a", "i", "view", t0+10*minute))
	clk := e.Clock()
	before, _ := e.Values(EntityItem, "i")
	applyAll(e, interaction("b", "j", "view", t0+70*minute)) // the clock moves on
	at, ok := e.ValuesAt(EntityItem, "i", clk)
	if !ok || !valuesEqual(before, at) {
		t.Fatalf("ValuesAt(clock %d) = %+v, want what Values said at that clock, %+v", clk, at, before)
	}
	now, _ := e.Values(EntityItem, "i")
	if valuesEqual(before, now) {
		t.Fatal("the clock moved an hour: the decayed values must differ")
	}
}

func valuesEqual(a, b Values) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}
