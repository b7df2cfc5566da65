package features

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ripple-rec/ripple/internal/event"
)

type entry struct{ key, val []byte }

// snapshot collects an engine's snapshot sorted by key, the order the
// snapshot store (Pebble) hands entries back in.
func snapshot(t testing.TB, e *Engine) []entry {
	t.Helper()
	var out []entry
	seen := map[string]bool{}
	err := e.Snapshot(func(k, v []byte) error {
		if seen[string(k)] {
			t.Fatalf("duplicate snapshot key %q", k)
		}
		seen[string(k)] = true
		out = append(out, entry{append([]byte(nil), k...), append([]byte(nil), v...)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].key, out[j].key) < 0 })
	return out
}

// restore loads entries in order, stopping at the first error as the
// snapshot store does.
func restore(e *Engine, entries []entry) error {
	for _, en := range entries {
		if err := e.Restore(en.key, en.val); err != nil {
			return err
		}
	}
	return nil
}

// workload is a deterministic mix of everything the engine folds: item
// metadata, late and out-of-order events, explicit sessions, ratings,
// repeated items, erasures.
func workload(seed uint64, n int) []*event.Record {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var recs []*event.Record
	for i := 0; i < 40; i++ {
		cats := []string{fmt.Sprint("cat", i%5)}
		if i%3 == 0 {
			cats = append(cats, "sale")
		}
		recs = append(recs, itemRecord(fmt.Sprint("i", i), i%17 == 0, cats...))
	}
	types := []string{"view", "view", "view", "click", "cart", "purchase", "rating"}
	ts := t0
	for i := 0; i < n; i++ {
		ts += rng.Int64N(3 * minute)
		evTS := ts
		if rng.IntN(10) == 0 {
			evTS -= rng.Int64N(3 * hour) // some late, some beyond lateness
		}
		r := interaction(fmt.Sprint("u", rng.IntN(25)), fmt.Sprint("i", rng.IntN(50)), types[rng.IntN(len(types))], evTS)
		r.Interaction.Value = float64(rng.IntN(11)) / 2
		if rng.IntN(4) == 0 {
			r.Interaction.Session = fmt.Sprint("s", rng.IntN(3))
		}
		recs = append(recs, r)
		if i%400 == 399 {
			recs = append(recs, eraseRecord(fmt.Sprint("u", rng.IntN(25))))
		}
		if i%250 == 0 {
			recs = append(recs, itemRecord(fmt.Sprint("i", rng.IntN(50)), rng.IntN(2) == 0, "cat9"))
		}
	}
	return recs
}

func applyLogged(e *Engine, recs []*event.Record, from uint64) uint64 {
	for _, r := range recs {
		from++
		e.Apply(from, r)
	}
	return from
}

// engineState renders everything readable from an engine, for comparison.
func engineState(t testing.TB, e *Engine) map[string]string {
	t.Helper()
	s := map[string]string{
		"clock":   fmt.Sprint(e.Clock()),
		"applied": fmt.Sprint(e.Applied()),
		"counts":  fmt.Sprint(e.UserCount(), e.ItemCount()),
	}
	for u := 0; u < 30; u++ {
		id := fmt.Sprint("u", u)
		v, ok := e.Values(EntityUser, id)
		s["values user "+id] = fmt.Sprint(ok, v.ComputedAt, mustJSON(t, v))
		s["view "+id] = fmt.Sprintf("%+v", e.User(id, 100))
		seen := make([]bool, 50)
		items := make([]string, 50)
		for i := range items {
			items[i] = fmt.Sprint("i", i)
		}
		e.Seen(id, items, seen)
		s["seen "+id] = fmt.Sprint(seen)
	}
	for i := 0; i < 55; i++ {
		id := fmt.Sprint("i", i)
		v, ok := e.Values(EntityItem, id)
		s["values item "+id] = fmt.Sprint(ok, v.ComputedAt, mustJSON(t, v))
		s["neighbors "+id] = fmt.Sprint(noRefs(e.Neighbors(id, 1000)))
		info := make([]ItemInfo, 1)
		e.Items([]string{id}, info)
		s["info "+id] = fmt.Sprintf("%+v", info[0])
	}
	g, _ := e.Values(EntityGlobal, "")
	s["global"] = fmt.Sprint(g.ComputedAt, mustJSON(t, g))
	e.RefreshTrending()
	for _, c := range []string{"", "cat0", "cat1", "sale", "cat9"} {
		s["trending "+c] = fmt.Sprint(noScoredRefs(e.Trending(c, 100)))
	}
	return s
}

func diffState(t *testing.T, what string, a, b map[string]string) {
	t.Helper()
	n := 0
	for k, va := range a {
		if vb := b[k]; va != vb {
			if n++; n <= 5 {
				t.Errorf("%s: %s differs:\n  %s\n  %s", what, k, va, vb)
			}
		}
	}
	if len(a) != len(b) {
		t.Errorf("%s: %d vs %d keys", what, len(a), len(b))
	}
	if n > 5 {
		t.Errorf("%s: %d differences in all", what, n)
	}
}

func TestSnapshotRestore(t *testing.T) {
	recs := workload(1, 3000)
	orig, clk := newTestEngine(t, DefaultYAMLForTest())
	off := applyLogged(orig, recs[:2500], 0)
	if orig.Late() == 0 {
		t.Fatal("workload has no late events")
	}
	snap := snapshot(t, orig)

	restored := NewEngine(DefaultConfig(), clk.now)
	if err := restore(restored, snap); err != nil {
		t.Fatalf("restore: %v", err)
	}
	diffState(t, "after restore", engineState(t, orig), engineState(t, restored))

	again := snapshot(t, restored)
	if !reflect.DeepEqual(snap, again) {
		t.Fatalf("snapshot of the restored engine differs (%d vs %d entries)", len(snap), len(again))
	}

	// The restored state keeps working: the same tail gives the same state.
	clk.set(clk.ms.Load() + hour)
	applyLogged(orig, recs[2500:], off)
	applyLogged(restored, recs[2500:], off)
	diffState(t, "after the tail", engineState(t, orig), engineState(t, restored))
	if !reflect.DeepEqual(snapshot(t, orig), snapshot(t, restored)) {
		t.Fatal("snapshots differ after applying the same tail")
	}
	// Restoring set Applied: re-delivering the tail changes nothing.
	before := snapshot(t, restored)
	applyLogged(restored, recs[2500:], off)
	if !reflect.DeepEqual(before, snapshot(t, restored)) {
		t.Fatal("re-applying offsets at or below Applied changed the state")
	}
}

func TestSnapshotEmptyEngine(t *testing.T) {
	e, clk := newTestEngine(t, DefaultYAMLForTest())
	snap := snapshot(t, e)
	if len(snap) != 2 {
		t.Fatalf("empty engine snapshot has %d entries, want meta and global", len(snap))
	}
	r := NewEngine(DefaultConfig(), clk.now)
	if err := restore(r, snap); err != nil {
		t.Fatal(err)
	}
	diffState(t, "empty", engineState(t, e), engineState(t, r))
}

func TestSnapshotPutError(t *testing.T) {
	e, _ := newTestEngine(t, DefaultYAMLForTest())
	applyLogged(e, workload(2, 100), 0)
	boom := errors.New("disk full")
	for failAt := 0; failAt < 5; failAt++ {
		n := 0
		err := e.Snapshot(func(k, v []byte) error {
			if n == failAt {
				return boom
			}
			n++
			return nil
		})
		if !errors.Is(err, boom) {
			t.Fatalf("put failing at entry %d: err = %v", failAt, err)
		}
	}
}

// The meta entry must sort first: the snapshot store restores in key order,
// and a changed spec has to be detected before any state is loaded.
func TestSnapshotMetaSortsFirst(t *testing.T) {
	e, _ := newTestEngine(t, DefaultYAMLForTest())
	applyLogged(e, workload(3, 200), 0)
	snap := snapshot(t, e)
	d := snap[0]
	if len(d.key) != 1 || d.key[0] != snapMeta {
		t.Fatalf("first key in order is %q, want the meta entry", snap[0].key)
	}
	// Entity ids that would sort before it cannot exist: every user and item
	// key carries a one-byte prefix greater than the meta key.
	for _, en := range snap[1:] {
		if bytes.Compare(en.key, snap[0].key) <= 0 {
			t.Fatalf("key %q sorts before meta", en.key)
		}
	}
}

func TestRestoreSpecChanged(t *testing.T) {
	e, _ := newTestEngine(t, DefaultYAMLForTest())
	applyLogged(e, workload(4, 500), 0)
	snap := snapshot(t, e)
	base := DefaultYAMLForTest()
	tests := []struct {
		name, old, new string
	}{
		{"last_n length", "kind: last_n, scope: user, n: 50", "kind: last_n, scope: user, n: 40"},
		{"item window buckets", "name: item_views_1h, kind: window_count, scope: item, events: [view], window: 1h, buckets: 60", "name: item_views_1h, kind: window_count, scope: item, events: [view], window: 1h, buckets: 30"},
		{"global window added", "  - {name: global_events_1h,", "  - {name: global_events_24h, kind: window_count, scope: global, window: 24h}\n  - {name: global_events_1h,"},
		{"feature renamed", "name: user_events_1h,", "name: user_events_60m,"},
		{"window length", "name: user_events_24h, kind: window_count, scope: user, window: 24h", "name: user_events_24h, kind: window_count, scope: user, window: 12h"},
		{"event filter", "events: [purchase], window: 7d", "events: [purchase, cart], window: 7d"},
		{"half life", "half_life: 30d", "half_life: 20d"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("default.yaml no longer contains %q", tc.old)
			}
			changed, _ := newTestEngine(t, strings.Replace(base, tc.old, tc.new, 1))
			err := restore(changed, snap)
			if !errors.Is(err, ErrSpecChanged) {
				t.Fatalf("restore = %v, want ErrSpecChanged", err)
			}
			if changed.UserCount() != 0 || changed.ItemCount() != 0 || changed.Clock() != 0 || changed.Applied() != 0 {
				t.Fatalf("state was loaded before the spec check: %d users, %d items, clock %d, applied %d",
					changed.UserCount(), changed.ItemCount(), changed.Clock(), changed.Applied())
			}
		})
	}
	// Weights and gaps change semantics, not layout: the snapshot still loads.
	same, _ := newTestEngine(t, strings.Replace(base, "gap: 30m", "gap: 45m", 1))
	if err := restore(same, snap); err != nil {
		t.Fatalf("restore with a changed gap: %v", err)
	}
}

func TestRestoreCorrupt(t *testing.T) {
	e, clk := newTestEngine(t, DefaultYAMLForTest())
	applyLogged(e, workload(5, 400), 0)
	snap := snapshot(t, e)
	meta := snap[0]

	cfg := DefaultConfig()
	fresh := func() *Engine {
		r := NewEngine(cfg, clk.now)
		if err := r.Restore(meta.key, meta.val); err != nil {
			t.Fatal(err)
		}
		return r
	}
	badMeta := append([]byte(nil), meta.val...)
	badMeta[0] = snapVersion + 1
	tests := []struct {
		name     string
		key, val []byte
	}{
		{"empty key", nil, []byte{1}},
		{"unknown key", []byte("zebra"), []byte{1}},
		{"meta of another version", meta.key, badMeta},
		{"empty meta", meta.key, nil},
		{"empty user", []byte("uX"), nil},
		{"empty item", []byte("iX"), nil},
		{"empty global", []byte{snapGlobal}, nil},
		{"user with huge count", []byte("uX"), []byte{0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := fresh().Restore(tc.key, tc.val); err == nil {
				t.Fatal("corrupt entry accepted")
			}
		})
	}

	// Every strict prefix of every entry is corrupt.
	for _, en := range snap {
		r := fresh()
		for n := 0; n < len(en.val); n++ {
			var err error
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("entry %q cut to %d/%d bytes panics: %v", en.key, n, len(en.val), p)
					}
				}()
				err = r.Restore(en.key, en.val[:n])
			}()
			if err == nil {
				t.Fatalf("entry %q cut to %d/%d bytes accepted", en.key, n, len(en.val))
			}
		}
	}

	// Random byte flips may decode or not, but neither Restore nor reading
	// what it produced may panic.
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := 0; trial < 3000; trial++ {
		en := snap[rng.IntN(len(snap))]
		val := append([]byte(nil), en.val...)
		for k := 0; k <= rng.IntN(3); k++ {
			val[rng.IntN(len(val))] ^= byte(1 + rng.IntN(255))
		}
		restoreAndRead(t, fresh(), en.key, val)
	}
}

func restoreAndRead(t testing.TB, r *Engine, key, val []byte) {
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("key %q val %x: panic: %v", key, val, p)
		}
	}()
	_ = r.Restore(key, val)
	id := ""
	if len(key) > 1 {
		id = string(key[1:])
	}
	r.Values(EntityUser, id)
	r.Values(EntityItem, id)
	r.Values(EntityGlobal, "")
	r.User(id, 10)
	noRefs(r.Neighbors(id, 10))
	r.Items([]string{id}, make([]ItemInfo, 1))
	r.RefreshTrending()
	r.Trending("", 10)
}

func FuzzRestore(f *testing.F) {
	e, clk := newTestEngine(f, DefaultYAMLForTest())
	applyLogged(e, workload(6, 60), 0)
	snap := snapshot(f, e)
	for _, en := range snap[1:] {
		f.Add(en.key, en.val)
	}
	meta := snap[0]
	cfg := DefaultConfig()
	f.Fuzz(func(t *testing.T, key, val []byte) {
		r := NewEngine(cfg, clk.now)
		if err := r.Restore(meta.key, meta.val); err != nil {
			t.Fatal(err)
		}
		restoreAndRead(t, r, key, val)
	})
}
