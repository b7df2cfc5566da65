package features

import (
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
