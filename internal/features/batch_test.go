package features

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
)

func snapshotBytes(t *testing.T, e *Engine) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if err := e.Snapshot(func(k, v []byte) error {
		out[string(k)] = bytes.Clone(v)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestApplyBatchEqualsApply: the two-goroutine batch path builds exactly the
// state record-by-record Apply builds, byte for byte, with item records,
// erasures, late events and co-visitation pruning in the mix.
func TestApplyBatchEqualsApply(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	types := []string{"view", "click", "cart", "purchase", "rating"}
	var recs []event.Record
	for i := 0; i < 30_000; i++ {
		switch r := rng.IntN(100); {
		case r < 2:
			recs = append(recs, event.Record{Kind: event.KindItem, Item: event.Item{ID: fmt.Sprint("i", rng.IntN(300)),
				Categories: []string{fmt.Sprint("c", rng.IntN(7))}, Hidden: rng.IntN(10) == 0}})
		case r < 3:
			recs = append(recs, event.Record{Kind: event.KindErase, User: event.User{ID: fmt.Sprint("u", rng.IntN(400))}})
		default:
			ts := base + int64(i)*1000 - rng.Int64N(3*3600*1000) // some beyond the 1h lateness
			recs = append(recs, event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{
				User: fmt.Sprint("u", rng.IntN(400)), Item: fmt.Sprint("i", int(rng.ExpFloat64()*30)%300),
				Type: types[rng.IntN(len(types))], TS: ts, Value: float64(1 + rng.IntN(5)), Session: fmt.Sprint("s", i/50)}})
		}
	}
	offs := make([]uint64, len(recs))
	for i := range offs {
		offs[i] = uint64(i + 1)
	}
	clock := func() time.Time { return time.UnixMilli(base) }
	seq := NewEngine(DefaultConfig(), clock)
	for i := range recs {
		seq.Apply(offs[i], &recs[i])
	}
	bat := NewEngine(DefaultConfig(), clock)
	for from := 0; from < len(recs); {
		n := min(len(recs)-from, []int{1, 100, 300, 4096}[rng.IntN(4)])
		bat.ApplyBatch(offs[from:from+n], recs[from:from+n])
		from += n
	}
	// Replaying an applied batch again changes nothing (exactly-once).
	bat.ApplyBatch(offs[:5000], recs[:5000])

	if seq.Applied() != bat.Applied() || seq.Late() != bat.Late() || seq.Clock() != bat.Clock() {
		t.Fatalf("applied/late/clock: sequential %d/%d/%d, batch %d/%d/%d", seq.Applied(), seq.Late(), seq.Clock(),
			bat.Applied(), bat.Late(), bat.Clock())
	}
	if seq.Late() == 0 {
		t.Fatal("the log should contain late events")
	}
	a, b := snapshotBytes(t, seq), snapshotBytes(t, bat)
	if len(a) != len(b) {
		t.Fatalf("%d entries sequentially, %d batched", len(a), len(b))
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			t.Fatalf("entry %q differs", k)
		}
	}
}
