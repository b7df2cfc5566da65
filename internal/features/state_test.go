package features

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"
)

func TestRingWindowEdges(t *testing.T) {
	type op struct {
		add    bool
		bucket int64
		v      float64
		now    int64   // for reads
		want   float64 // for reads
	}
	add := func(b int64, v float64) op { return op{add: true, bucket: b, v: v} }
	read := func(now int64, want float64) op { return op{now: now, want: want} }
	tests := []struct {
		name string
		n    int
		ops  []op
	}{
		{name: "empty", n: 4, ops: []op{read(0, 0), read(100, 0)}},
		{name: "bucket stays for exactly n buckets", n: 4, ops: []op{
			add(10, 1), read(10, 1), read(13, 1), read(14, 0), read(1000, 0),
		}},
		{name: "reads before the newest bucket", n: 4, ops: []op{
			add(10, 1), add(12, 2), read(10, 1), read(11, 1), read(12, 3), read(13, 3), read(14, 2), read(15, 2), read(16, 0),
		}},
		{name: "late bucket within the window", n: 4, ops: []op{
			add(10, 1), add(7, 5), read(10, 6), read(11, 1), add(9, 1), read(12, 2),
		}},
		{name: "bucket older than the window dropped", n: 4, ops: []op{
			add(10, 1), add(6, 5), read(10, 1), add(3, 1), read(10, 1), add(7, 2), read(10, 3),
		}},
		{name: "advancing clears skipped slots", n: 4, ops: []op{
			add(10, 1), add(11, 1), add(12, 1), add(13, 1), read(13, 4),
			add(15, 10), read(15, 12), // 12, 13 survive; 14 is empty; 10, 11 gone
			add(14, 100), read(15, 112), read(17, 110),
		}},
		{name: "jump past the whole window", n: 4, ops: []op{
			add(10, 1), add(11, 1), add(100, 3), read(100, 3), add(98, 1), read(100, 4), add(96, 50), read(100, 4),
		}},
		{name: "one bucket", n: 1, ops: []op{
			add(5, 1), add(5, 1), read(5, 2), add(4, 9), read(5, 2), add(6, 1), read(6, 1), read(7, 0),
		}},
		{name: "negative values cancel", n: 3, ops: []op{
			add(10, 2), add(10, -2), read(10, 0), add(11, 1), read(11, 1), add(8, 7), read(11, 1),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newTestRing(tc.n)
			for i, o := range tc.ops {
				if o.add {
					r.add(o.bucket, o.v)
					continue
				}
				if got := r.sum(o.now); got != o.want {
					t.Fatalf("op %d: sum(%d) = %v, want %v (ring %+v)", i, o.now, got, o.want, r)
				}
			}
		})
	}
}

// Reading an untouched ring at any time (including before any event, when
// the engine clock is 0) must return 0, not index out of range.
// testRing is the middle of three rings sharing one windows array; every
// add goes to all three, so the ring under test has neighbours on both
// sides that grow, slide and shrink around it.
type testRing struct {
	w  windows
	ws []winSpec
}

func newTestRing(n int) *testRing {
	ws := []winSpec{{n: 1}, {n: int64(n)}, {n: 3}}
	return &testRing{newWindows(len(ws)), ws}
}

func (r *testRing) add(b int64, v float64) {
	for i := range r.ws {
		r.w.add(r.ws, i, b, v)
	}
}

func (r *testRing) sum(now int64) float64 { return r.w.sum(r.ws, 1, now) }

func TestRingReadUntouched(t *testing.T) {
	for _, n := range []int{1, 4, 60} {
		for _, now := range []int64{0, 1, 3, 59, 60, 1 << 40} {
			r := newTestRing(n)
			if got := r.sum(now); got != 0 {
				t.Fatalf("n=%d: sum(%d) = %v", n, now, got)
			}
		}
	}
}

// Same events in any order give the same ring: sums for every read time and
// the same state (which makes snapshots byte-identical).
func TestRingOrderIndependence(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(12)
		type add struct {
			b int64
			v float64
		}
		adds := make([]add, 1+rng.IntN(60))
		for i := range adds {
			// Exact binary fractions: float addition is exact, so any
			// difference is the ring's, not rounding's.
			adds[i] = add{b: 1000 + rng.Int64N(40), v: float64(rng.IntN(16)) / 4}
		}
		var ref *testRing
		for perm := 0; perm < 6; perm++ {
			r := newTestRing(n)
			for _, a := range adds {
				r.add(a.b, a.v)
			}
			if perm == 0 {
				ref = r
			} else {
				for now := int64(1000); now < 1060; now++ {
					if got, want := r.sum(now), ref.sum(now); got != want {
						t.Fatalf("trial %d perm %d: sum(%d) = %v, first order gave %v", trial, perm, now, got, want)
					}
				}
				if !reflect.DeepEqual(r, ref) {
					t.Fatalf("trial %d perm %d: ring state differs:\n%+v\n%+v", trial, perm, r, ref)
				}
			}
			rng.Shuffle(len(adds), func(i, j int) { adds[i], adds[j] = adds[j], adds[i] })
		}
	}
}

func TestDecayed(t *testing.T) {
	const hl = 1000.0
	var d decayed
	d.add(8, 5000, hl)
	if got := d.at(5000, hl); got != 8 {
		t.Fatalf("at(ts) = %v", got)
	}
	if got := d.at(6000, hl); got != 4 {
		t.Fatalf("one half-life later = %v, want 4", got)
	}
	if got := d.at(4000, hl); got != 8 {
		t.Fatalf("reading before the newest event = %v, want the undecayed 8", got)
	}
	d.add(2, 6000, hl) // 8 decays to 4, plus 2
	if got := d.at(6000, hl); got != 6 {
		t.Fatalf("after second add = %v, want 6", got)
	}
	d.add(4, 5000, hl) // late: 4 decayed by one half-life
	if got := d.at(6000, hl); got != 8 {
		t.Fatalf("after late add = %v, want 8", got)
	}
	if d.T != 6000 {
		t.Fatalf("late add moved T to %d", d.T)
	}
}

// Decayed sums are order-free up to rounding: within 1e-12 relative.
func TestDecayedOrderIndependence(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const hl = float64(hour)
	for trial := 0; trial < 200; trial++ {
		type add struct {
			v  float64
			ts int64
		}
		adds := make([]add, 1+rng.IntN(200))
		for i := range adds {
			adds[i] = add{v: rng.Float64() * 10, ts: t0 + rng.Int64N(10*hour)}
		}
		now := t0 + 11*hour
		var want float64
		for perm := 0; perm < 5; perm++ {
			var d decayed
			for _, a := range adds {
				d.add(a.v, a.ts, hl)
			}
			got := d.at(now, hl)
			if perm == 0 {
				want = got
				// And it matches the closed form Σ v·2^(-(now-ts)/hl).
				var exact float64
				for _, a := range adds {
					exact += a.v * math.Exp2(-float64(now-a.ts)/hl)
				}
				if !relClose(got, exact, 1e-12) {
					t.Fatalf("trial %d: %v, closed form %v", trial, got, exact)
				}
			} else if !relClose(got, want, 1e-12) {
				t.Fatalf("trial %d perm %d: %v vs %v (rel %g)", trial, perm, got, want, math.Abs(got-want)/want)
			}
			rng.Shuffle(len(adds), func(i, j int) { adds[i], adds[j] = adds[j], adds[i] })
		}
	}
}

// logScore orders like at(now) for any now, without underflow for old data.
func TestDecayedLogScore(t *testing.T) {
	const hl = float64(hour)
	a := decayed{W: 10, T: t0}
	b := decayed{W: 6, T: t0 + hour} // 10 decays to 5 by then: a < b
	if !(a.logScore(hl) < b.logScore(hl)) {
		t.Fatal("logScore order wrong")
	}
	if !(a.at(t0+5*hour, hl) < b.at(t0+5*hour, hl)) {
		t.Fatal("at order wrong")
	}
	if !math.IsInf(decayed{}.logScore(hl), -1) {
		t.Fatal("empty weight must rank last")
	}
	old := decayed{W: 1, T: 0} // 1970: at(now) underflows, logScore does not
	if old.at(t0, 1000) != 0 || math.IsInf(old.logScore(1000), 0) {
		t.Fatalf("old data: at=%v logScore=%v", old.at(t0, 1000), old.logScore(1000))
	}
}

func TestLastN(t *testing.T) {
	items := func(l []lastItem) []uint32 {
		var s []uint32
		for _, it := range l {
			s = append(s, it.item)
		}
		return s
	}
	for _, n := range []int{1, 3, 5} {
		for pushes := 0; pushes <= 12; pushes++ {
			var l lastN
			var all []uint32
			for i := 0; i < pushes; i++ {
				all = append(all, uint32(i))
				l.push(lastItem{item: uint32(i), ts: int64(i)}, n)
			}
			want := all[max(0, len(all)-n):]
			if got := items(l.list()); !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("n=%d pushes=%d: list = %v, want %v", n, pushes, got, want)
			}
			var recent []uint32
			for i := range l.items {
				recent = append(recent, l.newest(i).item)
			}
			for i, j := 0, len(want)-1; i < len(recent); i, j = i+1, j-1 {
				if recent[i] != want[j] {
					t.Fatalf("n=%d pushes=%d: newest = %v, want reverse of %v", n, pushes, recent, want)
				}
			}
			if len(recent) != len(want) || len(l.items) > n {
				t.Fatalf("n=%d pushes=%d: %d recent, %d stored", n, pushes, len(recent), len(l.items))
			}
		}
	}
}

// testItems interns ids as the engine does, for state that keys items by
// index.
type testItems struct {
	names table[*itemRow]
	p     pruner
	rows  []*itemRow
}

func (ti *testItems) add(c *covis, id string, w float64, capN int) {
	i, ok := ti.names.idx[id]
	if !ok {
		i = ti.names.add(id, &itemRow{id: id, idx: uint32(len(ti.names.vals))})
		ti.rows = ti.names.vals
	}
	ti.p.items = &ti.names
	c.add(i, w, capN, &ti.p)
}

func (ti *testItems) weights(c *covis) map[string]float64 {
	m := map[string]float64{}
	for k, w := range c.w.all() {
		m[ti.rows[k].id] = w
	}
	return m
}

func TestCovisPrune(t *testing.T) {
	var ids testItems
	var c covis
	const capN = 3
	// Weights 6, 5, 4, 3, 2: the 6th distinct entry triggers pruning to 3.
	for i, w := range []float64{6, 5, 4, 3, 2} {
		ids.add(&c, fmt.Sprint("n", i), w, capN)
	}
	if c.w.len() != 5 {
		t.Fatalf("pruned early: %d entries", c.w.len())
	}
	ids.add(&c, "n5", 1, capN)
	want := []Neighbor{{Item: "n0", Weight: 6}, {Item: "n1", Weight: 5}, {Item: "n2", Weight: 4}}
	if !reflect.DeepEqual(noRefs(c.sortedView(ids.rows)), want) || c.w.len() != capN {
		t.Fatalf("after prune: %v (%d entries), want %v", noRefs(c.sortedView(ids.rows)), c.w.len(), want)
	}
	// Increments commute; a pruned neighbour may come back.
	ids.add(&c, "n5", 10, capN)
	ids.add(&c, "n2", 0.5, capN)
	want = []Neighbor{{Item: "n5", Weight: 10}, {Item: "n0", Weight: 6}, {Item: "n1", Weight: 5}, {Item: "n2", Weight: 4.5}}
	if got := noRefs(c.sortedView(ids.rows)); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Pruning keeps ties by smaller id, as the sorted view orders them. Ids
	// are interned out of order: ties go by id, never by index.
	var tp covis
	for _, id := range []string{"d", "x", "b", "c", "a", "y"} {
		w := 1.0
		if id == "x" {
			w = 5
		}
		if id == "y" {
			w = 0.5
		}
		ids.add(&tp, id, w, 3)
	}
	if got, want := noRefs(tp.sortedView(ids.rows)), []Neighbor{{Item: "x", Weight: 5}, {Item: "a", Weight: 1}, {Item: "b", Weight: 1}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("pruning ties: %v, want %v", got, want)
	}
	// Ties break by id.
	var tie covis
	ids.add(&tie, "b", 1, 10)
	ids.add(&tie, "a", 1, 10)
	ids.add(&tie, "c", 1, 10)
	if got := tie.sortedView(ids.rows); got[0].Item != "a" || got[1].Item != "b" || got[2].Item != "c" {
		t.Fatalf("ties not by id: %v", got)
	}
}

// Pruning must keep exactly the entries a full sort would: the first cap of
// sortedView's order. Weights come from a small set so ties are common.
func TestCovisPruneMatchesSortedCut(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 300; trial++ {
		capN := 1 + rng.IntN(6)
		var c covis
		var ids testItems
		ref := map[string]float64{}
		for i := 0; i < 200; i++ {
			id := fmt.Sprint("n", rng.IntN(40))
			w := []float64{0.25, 0.5, 1, 2}[rng.IntN(4)]
			ids.add(&c, id, w, capN)
			ref[id] += w
			if len(ref) >= 2*capN {
				var all []Neighbor
				for k, v := range ref {
					all = append(all, Neighbor{Item: k, Weight: v})
				}
				sort.Slice(all, func(i, j int) bool {
					if all[i].Weight != all[j].Weight {
						return all[i].Weight > all[j].Weight
					}
					return all[i].Item < all[j].Item
				})
				ref = map[string]float64{}
				for _, n := range all[:capN] {
					ref[n.Item] = n.Weight
				}
			}
			if got := ids.weights(&c); !reflect.DeepEqual(got, ref) {
				t.Fatalf("trial %d step %d (cap %d): %v, want %v", trial, i, capN, got, ref)
			}
		}
	}
}

func TestKthLargest(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := 0; trial < 2000; trial++ {
		n := 1 + rng.IntN(60)
		ws := make([]float64, n)
		for i := range ws {
			ws[i] = float64(rng.IntN(1 + trial%10))
		}
		sorted := slices.Sorted(slices.Values(ws))
		k := 1 + rng.IntN(n)
		if got, want := kthLargest(ws, k), sorted[n-k]; got != want {
			t.Fatalf("%v: k=%d got %v, want %v", sorted, k, got, want)
		}
	}
}

func TestIdxMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var m idxMap[float64]
	ref := map[uint32]float64{}
	for i := 0; i < 20000; i++ {
		k := uint32(rng.IntN(500)) * 4099 // keys sharing low bits
		*m.at(k) += 1
		ref[k]++
		if i%3000 == 2999 {
			m.keep(func(k uint32, _ float64) bool { return k%3 != 0 }, nil)
			for k := range ref {
				if k%3 == 0 {
					delete(ref, k)
				}
			}
		}
		if _, ok := m.get(k + 1); ok {
			t.Fatalf("get of a missing key")
		}
		if v, ok := m.get(k); ok != (ref[k] != 0) || v != ref[k] {
			t.Fatalf("get(%d) = %v, %v; want %v", k, v, ok, ref[k])
		}
	}
	got := map[uint32]float64{}
	for k, v := range m.all() {
		got[k] = v
	}
	if !reflect.DeepEqual(got, ref) || m.len() != len(ref) {
		t.Fatalf("idxMap differs from a map: %d vs %d entries", m.len(), len(ref))
	}
}
