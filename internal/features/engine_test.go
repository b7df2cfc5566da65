package features

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
)

// windowYAML has 10-minute windows of 1-minute buckets at every scope.
const windowYAML = `
lateness: 1h
features:
  - {name: uw, kind: window_count, scope: user, window: 10m, buckets: 10}
  - {name: usum, kind: window_sum, scope: user, window: 10m, buckets: 10}
  - {name: iw, kind: window_count, scope: item, window: 10m, buckets: 10}
  - {name: gw, kind: window_count, scope: global, window: 10m, buckets: 10}
  - {name: uclicks, kind: window_count, scope: user, events: [click], window: 10m, buckets: 10}
  - {name: last, kind: last_n, scope: user, n: 5}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}
`

func TestWindowEdges(t *testing.T) {
	type step struct {
		apply *event.Record // nil: just read
		clock int64         // event time of a bystander event that moves the engine clock
		uw    float64       // user u's window count after the step
		iw    float64       // item a's
	}
	tests := []struct {
		name  string
		yaml  string
		steps []step
	}{
		{name: "event exactly at a bucket boundary lives one window", yaml: windowYAML, steps: []step{
			{apply: interaction("u", "a", "view", t0-1), uw: 1, iw: 1}, // last ms of the previous bucket
			{apply: interaction("u", "a", "view", t0), uw: 2, iw: 2},
			{clock: t0 + 9*minute - 1, uw: 2, iw: 2},
			{clock: t0 + 9*minute, uw: 1, iw: 1}, // the t0-1 bucket leaves the window
			{clock: t0 + 10*minute - 1, uw: 1, iw: 1},
			{clock: t0 + 10*minute, uw: 0, iw: 0}, // exactly one window after t0
			{clock: t0 + 2*hour, uw: 0, iw: 0},
			{apply: interaction("u", "a", "view", t0+2*hour), uw: 1, iw: 1}, // state restarts cleanly
		}},
		{name: "late event within the window is applied", yaml: windowYAML, steps: []step{
			{apply: interaction("u", "a", "view", t0+5*minute), uw: 1, iw: 1},
			{apply: interaction("u", "a", "view", t0+1*minute), uw: 2, iw: 2},
			{apply: interaction("u", "a", "view", t0-4*minute), uw: 3, iw: 3},
			{clock: t0 + 6*minute, uw: 2, iw: 2},
		}},
		{name: "event older than the window is dropped", yaml: strings.Replace(windowYAML, "lateness: 1h", "lateness: 5h", 1), steps: []step{
			{apply: interaction("u", "a", "view", t0+30*minute), uw: 1, iw: 1},
			{apply: interaction("u", "a", "view", t0+20*minute), uw: 1, iw: 1}, // bucket latest-10: just expired
			{apply: interaction("u", "a", "view", t0+20*minute+1*minute), uw: 2, iw: 2},
			{apply: interaction("u", "a", "view", t0-3*hour), uw: 2, iw: 2},
		}},
		{name: "filters by type", yaml: windowYAML, steps: []step{
			{apply: interaction("u", "a", "click", t0), uw: 1, iw: 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newTestEngine(t, tc.yaml)
			for i, s := range tc.steps {
				if s.apply != nil {
					e.Apply(0, s.apply)
				} else {
					e.Apply(0, interaction("bystander", "other", "view", s.clock))
				}
				if got := number(t, e, EntityUser, "u", "uw"); got != s.uw {
					t.Fatalf("step %d (clock %+dms from t0): user window = %v, want %v", i, e.Clock()-t0, got, s.uw)
				}
				if got := number(t, e, EntityItem, "a", "iw"); got != s.iw {
					t.Fatalf("step %d (clock %+dms from t0): item window = %v, want %v", i, e.Clock()-t0, got, s.iw)
				}
			}
		})
	}
}

func TestWindowSumAndFilter(t *testing.T) {
	e, _ := newTestEngine(t, windowYAML)
	applyAll(e,
		withValue(interaction("u", "a", "rating", t0), 4),
		withValue(interaction("u", "b", "click", t0+minute), 0.5),
		withValue(interaction("u", "c", "view", t0+2*minute), -1),
		withValue(interaction("v", "c", "click", t0+2*minute), 100),
	)
	for name, want := range map[string]float64{"uw": 3, "usum": 3.5, "uclicks": 1} {
		if got := number(t, e, EntityUser, "u", name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := number(t, e, EntityGlobal, "", "gw"); got != 4 {
		t.Errorf("global = %v, want 4", got)
	}
	if got := number(t, e, EntityItem, "c", "iw"); got != 2 {
		t.Errorf("item c = %v, want 2", got)
	}
}

// Reading before any interaction (engine clock 0) must not panic.
func TestValuesBeforeAnyInteraction(t *testing.T) {
	e, _ := newTestEngine(t, windowYAML)
	if v, ok := e.Values(EntityGlobal, ""); !ok || v.Features["gw"].Value != 0.0 {
		t.Fatalf("global on a fresh engine: %+v, %v", v, ok)
	}
	e.Apply(0, itemRecord("a", false, "shoes"))
	if got := number(t, e, EntityItem, "a", "iw"); got != 0 {
		t.Fatalf("item known only from metadata: iw = %v", got)
	}
}

// The same events in any order give identical window sums at every scope,
// and decayed values within 1e-12 relative.
func TestOrderIndependence(t *testing.T) {
	const yaml = `
lateness: 1000h
features:
  - {name: u1h, kind: window_count, scope: user, window: 1h, buckets: 60}
  - {name: usum, kind: window_sum, scope: user, window: 2h, buckets: 8}
  - {name: i1h, kind: window_count, scope: item, window: 1h, buckets: 12}
  - {name: iv, kind: window_count, scope: item, events: [view], window: 3h, buckets: 3}
  - {name: ic, kind: window_count, scope: item, events: [click], window: 3h, buckets: 3}
  - {name: ctr, kind: rate, scope: item, numerator: ic, denominator: iv, prior_alpha: 1, prior_beta: 10}
  - {name: g, kind: window_sum, scope: global, window: 30m, buckets: 30}
  - {name: urec, kind: recency, scope: user}
  - {name: irec, kind: recency, scope: item, events: [click]}
  - {name: last, kind: last_n, scope: user, n: 5}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h, weights: {click: 3}}
  - {name: cat, kind: affinity, scope: user_category, half_life: 2h}
  - {name: trend, kind: trending, scope: item, half_life: 30m, weights: {view: 1, click: 2}}
`
	rng := rand.New(rand.NewPCG(7, 8))
	var items []*event.Record
	for i := 0; i < 30; i++ {
		items = append(items, itemRecord(fmt.Sprint("i", i), false, fmt.Sprint("c", i%4), fmt.Sprint("c", i%3)))
	}
	var events []*event.Record
	for i := 0; i < 3000; i++ {
		typ := []string{"view", "view", "click", "rating"}[rng.IntN(4)]
		r := interaction(fmt.Sprint("u", rng.IntN(10)), fmt.Sprint("i", rng.IntN(30)), typ, t0+rng.Int64N(3*hour))
		events = append(events, withValue(r, float64(rng.IntN(20))/4))
	}
	build := func(order func([]*event.Record)) *Engine {
		e, _ := newTestEngine(t, yaml)
		applyAll(e, items...) // metadata first: category affinity depends on it
		evs := append([]*event.Record(nil), events...)
		order(evs)
		applyAll(e, evs...)
		return e
	}
	engines := map[string]*Engine{
		"sorted": build(func(evs []*event.Record) {
			sort.SliceStable(evs, func(i, j int) bool { return evs[i].Interaction.TS < evs[j].Interaction.TS })
		}),
		"reversed": build(func(evs []*event.Record) {
			sort.SliceStable(evs, func(i, j int) bool { return evs[i].Interaction.TS > evs[j].Interaction.TS })
		}),
		"shuffled":     build(func(evs []*event.Record) { rng.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] }) }),
		"as generated": build(func([]*event.Record) {}),
	}
	ref := engines["sorted"]
	exact := map[string]bool{"u1h": true, "usum": true, "i1h": true, "iv": true, "ic": true, "ctr": true, "g": true, "urec": true, "irec": true}
	compare := func(t *testing.T, other *Engine, entity, id string) {
		a, _ := ref.Values(entity, id)
		b, _ := other.Values(entity, id)
		for name, fa := range a.Features {
			fb := b.Features[name]
			switch {
			case exact[name]:
				if fa.Value != fb.Value {
					t.Errorf("%s %s %s: %v vs %v", entity, id, name, fa.Value, fb.Value)
				}
			case name == "trend":
				if !relClose(fa.Value.(float64), fb.Value.(float64), 1e-12) {
					t.Errorf("%s %s trend: %v vs %v", entity, id, fa.Value, fb.Value)
				}
			case name == "aff" || name == "cat":
				sa, sb := scoreMap(fa.Value.([]Scored)), scoreMap(fb.Value.([]Scored))
				if len(sa) != len(sb) {
					t.Errorf("%s %s %s: %d vs %d entries", entity, id, name, len(sa), len(sb))
				}
				for k, x := range sa {
					if !relClose(x, sb[k], 1e-12) {
						t.Errorf("%s %s %s[%s]: %v vs %v", entity, id, name, k, x, sb[k])
					}
				}
			}
		}
	}
	for name, e := range engines {
		t.Run(name, func(t *testing.T) {
			if e.Clock() != ref.Clock() || e.Late() != 0 {
				t.Fatalf("clock %d vs %d, late %d", e.Clock(), ref.Clock(), e.Late())
			}
			for u := 0; u < 10; u++ {
				compare(t, e, EntityUser, fmt.Sprint("u", u))
			}
			for i := 0; i < 30; i++ {
				compare(t, e, EntityItem, fmt.Sprint("i", i))
			}
			compare(t, e, EntityGlobal, "")
		})
	}
	// The windows are not trivially empty.
	if v := number(t, ref, EntityUser, "u1", "usum"); v == 0 {
		t.Fatal("test data leaves the windows empty")
	}
}

func scoreMap(l []Scored) map[string]float64 {
	m := map[string]float64{}
	for _, s := range l {
		m[s.ID] = s.Score
	}
	return m
}

const sessionYAML = `
features:
  - {name: sess, kind: session, scope: user, gap: 30m, n: 3}
  - {name: last, kind: last_n, scope: user, n: 3}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}
`

func TestSession(t *testing.T) {
	type step struct {
		rec       *event.Record
		wantID    string
		wantCount int
		wantItems []string
		wantDur   float64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "gap splits sessions", steps: []step{
			{rec: interaction("u", "a", "view", t0), wantCount: 1, wantItems: []string{"a"}},
			{rec: interaction("u", "b", "view", t0+10*minute), wantCount: 2, wantItems: []string{"a", "b"}, wantDur: 600},
			{rec: interaction("u", "c", "view", t0+40*minute), wantCount: 3, wantItems: []string{"a", "b", "c"}, wantDur: 2400}, // gap exactly 30m: same session
			{rec: interaction("u", "d", "view", t0+70*minute+1), wantCount: 1, wantItems: []string{"d"}},                        // 30m+1ms: new session
		}},
		{name: "items capped at n, oldest dropped", steps: []step{
			{rec: interaction("u", "a", "view", t0), wantCount: 1, wantItems: []string{"a"}},
			{rec: interaction("u", "b", "view", t0), wantCount: 2, wantItems: []string{"a", "b"}},
			{rec: interaction("u", "c", "view", t0), wantCount: 3, wantItems: []string{"a", "b", "c"}},
			{rec: interaction("u", "d", "view", t0), wantCount: 4, wantItems: []string{"b", "c", "d"}},
			{rec: interaction("u", "e", "view", t0), wantCount: 5, wantItems: []string{"c", "d", "e"}},
		}},
		{name: "late event inside the session", steps: []step{
			{rec: interaction("u", "a", "view", t0+10*minute), wantCount: 1, wantItems: []string{"a"}},
			{rec: interaction("u", "b", "view", t0), wantCount: 2, wantItems: []string{"a", "b"}},
			{rec: interaction("u", "c", "view", t0+35*minute), wantCount: 3, wantItems: []string{"a", "b", "c"}, wantDur: 1500},
		}},
		{name: "explicit session ids win over the gap", steps: []step{
			{rec: withSession(interaction("u", "a", "view", t0), "s1"), wantID: "s1", wantCount: 1, wantItems: []string{"a"}},
			{rec: withSession(interaction("u", "b", "view", t0+5*hour), "s1"), wantID: "s1", wantCount: 2, wantItems: []string{"a", "b"}, wantDur: 18000},
			{rec: withSession(interaction("u", "c", "view", t0+5*hour+1), "s2"), wantID: "s2", wantCount: 1, wantItems: []string{"c"}},
			{rec: interaction("u", "d", "view", t0+5*hour+2), wantID: "s2", wantCount: 2, wantItems: []string{"c", "d"}, wantDur: 0.001},
			{rec: interaction("u", "e", "view", t0+7*hour), wantID: "", wantCount: 1, wantItems: []string{"e"}},
			{rec: withSession(interaction("u", "f", "view", t0+7*hour), "s3"), wantID: "s3", wantCount: 1, wantItems: []string{"f"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newTestEngine(t, sessionYAML)
			for i, s := range tc.steps {
				e.Apply(0, s.rec)
				f := feature(t, e, EntityUser, "u", "sess")
				m := f.Value.(map[string]any)
				if m["id"] != s.wantID || m["count"] != s.wantCount || !reflect.DeepEqual(m["items"], s.wantItems) || m["duration_s"] != s.wantDur || f.Default {
					t.Fatalf("step %d: session %v (default %v), want id %q count %d items %v duration %v",
						i, m, f.Default, s.wantID, s.wantCount, s.wantItems, s.wantDur)
				}
				if got := e.User("u", 10).Session; !reflect.DeepEqual(got, s.wantItems) {
					t.Fatalf("step %d: User().Session = %v, want %v", i, got, s.wantItems)
				}
			}
		})
	}
}

// A session value handed out must not change when the user's next session
// starts (the engine reuses the items slice).
func TestSessionValueIsACopy(t *testing.T) {
	e, _ := newTestEngine(t, sessionYAML)
	e.Apply(0, interaction("u", "a", "view", t0))
	v := feature(t, e, EntityUser, "u", "sess").Value.(map[string]any)
	view := e.User("u", 5)
	e.Apply(0, interaction("u", "z", "view", t0+2*hour))
	if items := v["items"].([]string); items[0] != "a" {
		t.Fatalf("served session items changed to %v", items)
	}
	if view.Session[0] != "a" {
		t.Fatalf("UserView.Session changed to %v", view.Session)
	}
}

func TestLastNOrderingAndCapacity(t *testing.T) {
	e, _ := newTestEngine(t, sessionYAML)
	// Arrival order, not event time, orders last_n: a late event is "newest".
	applyAll(e,
		interaction("u", "a", "view", t0+10),
		interaction("u", "b", "click", t0+20),
		interaction("u", "c", "view", t0+5),
		interaction("u", "d", "purchase", t0+30),
	)
	got := feature(t, e, EntityUser, "u", "last").Value.([]ItemAt)
	want := []ItemAt{{"b", t0 + 20, "click"}, {"c", t0 + 5, "view"}, {"d", t0 + 30, "purchase"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("last_n = %+v, want oldest→newest %+v", got, want)
	}
	recent := e.User("u", 2).Recent
	if !reflect.DeepEqual(recent, []ItemAt{want[2], want[1]}) {
		t.Fatalf("User().Recent = %+v, want newest first, bounded to 2", recent)
	}
	if r := e.User("u", 100).Recent; len(r) != 3 {
		t.Fatalf("Recent holds %d items, capacity 3", len(r))
	}
	// Seen remembers every item, not only the last n.
	seen := make([]bool, 4)
	e.Seen("u", []string{"a", "b", "x", "d"}, seen)
	if !reflect.DeepEqual(seen, []bool{true, true, false, true}) {
		t.Fatalf("Seen = %v", seen)
	}
	if n := e.User("u", 0).Events; n != 4 {
		t.Fatalf("UserView.Events = %d, want 4 distinct items", n)
	}
}

func TestLateness(t *testing.T) {
	const yaml = `
lateness: 1h
features:
  - {name: uw, kind: window_count, scope: user, window: 24h, buckets: 24}
  - {name: iw, kind: window_count, scope: item, window: 24h, buckets: 24}
  - {name: gw, kind: window_count, scope: global, window: 24h, buckets: 24}
  - {name: last, kind: last_n, scope: user, n: 10}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}
`
	e, _ := newTestEngine(t, yaml)
	applyAll(e,
		interaction("u", "a", "view", t0+10*hour),
		interaction("u", "b", "view", t0+9*hour),   // exactly lateness behind: counts
		interaction("u", "c", "view", t0+9*hour-1), // 1ms more: late
	)
	if e.Late() != 1 {
		t.Fatalf("Late = %d, want 1", e.Late())
	}
	for _, c := range []struct{ entity, id, name string }{{EntityUser, "u", "uw"}, {EntityItem, "b", "iw"}, {EntityGlobal, "", "gw"}} {
		want := 2.0
		if c.entity == EntityItem {
			want = 1
		}
		if got := number(t, e, c.entity, c.id, c.name); got != want {
			t.Errorf("%s %s = %v, want %v", c.entity, c.name, got, want)
		}
	}
	if got := number(t, e, EntityItem, "c", "iw"); got != 0 {
		t.Errorf("late event counted in its item's window: %v", got)
	}
	last := feature(t, e, EntityUser, "u", "last").Value.([]ItemAt)
	if len(last) != 3 || last[2].Item != "c" {
		t.Errorf("late event missing from last_n: %+v", last)
	}
	seen := make([]bool, 1)
	e.Seen("u", []string{"c"}, seen)
	if !seen[0] {
		t.Error("late event missing from the seen set")
	}

	// Lateness is per user: another user's first, older event is not late.
	e.Apply(0, interaction("v", "d", "view", t0+hour))
	if e.Late() != 1 || number(t, e, EntityUser, "v", "uw") != 1 {
		t.Fatalf("late = %d, v window = %v", e.Late(), number(t, e, EntityUser, "v", "uw"))
	}
}

func TestTTL(t *testing.T) {
	const yaml = `
features:
  - {name: uw, kind: window_count, scope: user, window: 24h, buckets: 24, ttl: 1h, default: 7}
  - {name: nottl, kind: window_count, scope: user, window: 24h, buckets: 24, default: 7}
  - {name: last, kind: last_n, scope: user, n: 5, ttl: 30m}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h, ttl: 30m}
  - {name: iv, kind: window_count, scope: item, window: 24h, buckets: 24}
  - {name: rate, kind: rate, scope: item, numerator: iv, denominator: iv, prior_alpha: 1, prior_beta: 3, ttl: 2h}
`
	e, clk := newTestEngine(t, yaml)
	w0 := t0 + 2*day
	clk.set(w0)
	e.Apply(0, interaction("u", "a", "view", t0))

	check := func(wall int64, name, entity, id string, want any, wantDefault bool) {
		t.Helper()
		clk.set(wall)
		f := feature(t, e, entity, id, name)
		if !reflect.DeepEqual(f.Value, want) || f.Default != wantDefault {
			t.Fatalf("wall %+dms: %s = %#v (default %v), want %#v (default %v)", wall-w0, name, f.Value, f.Default, want, wantDefault)
		}
		if f.ComputedAt != w0 {
			t.Fatalf("%s computed_at = %d, want the wall clock of the apply %d", name, f.ComputedAt, w0)
		}
	}
	check(w0, "uw", EntityUser, "u", 1.0, false)
	check(w0+hour, "uw", EntityUser, "u", 1.0, false)
	check(w0+hour+1, "uw", EntityUser, "u", 7.0, true)
	check(w0+100*day, "nottl", EntityUser, "u", 1.0, false)
	// Expired list features fall back to their typed default, not a number.
	check(w0+30*minute, "last", EntityUser, "u", []ItemAt{{"a", t0, "view"}}, false)
	check(w0+30*minute+1, "last", EntityUser, "u", []ItemAt{}, true)
	check(w0+30*minute+1, "aff", EntityUser, "u", []Scored{}, true)
	check(w0+2*hour, "rate", EntityItem, "a", 2.0/5, false)
	check(w0+2*hour+1, "rate", EntityItem, "a", 1.0/4, true) // the prior mean

	if v, _ := e.Values(EntityUser, "u"); v.ComputedAt != w0 {
		t.Fatalf("Values.ComputedAt = %d, want %d", v.ComputedAt, w0)
	}
	// A new event refreshes computed_at.
	clk.set(w0 + 5*hour)
	e.Apply(0, interaction("u", "b", "view", t0+minute))
	clk.set(w0 + 5*hour + 10*minute)
	if f := feature(t, e, EntityUser, "u", "uw"); f.Value != 2.0 || f.Default || f.ComputedAt != w0+5*hour {
		t.Fatalf("after refresh: %+v", f)
	}
}

func TestRateWithPrior(t *testing.T) {
	const yaml = `
features:
  - {name: views, kind: window_count, scope: item, events: [view], window: 24h, buckets: 24}
  - {name: clicks, kind: window_count, scope: item, events: [click], window: 24h, buckets: 24}
  - {name: ctr, kind: rate, scope: item, numerator: clicks, denominator: views, prior_alpha: 1, prior_beta: 20}
  - {name: raw, kind: rate, scope: item, numerator: clicks, denominator: views}
  - {name: gv, kind: window_count, scope: global, events: [view], window: 1h, buckets: 6}
  - {name: gc, kind: window_count, scope: global, events: [click], window: 1h, buckets: 6}
  - {name: gctr, kind: rate, scope: global, numerator: gc, denominator: gv, prior_alpha: 2, prior_beta: 2}
  - {name: last, kind: last_n, scope: user, n: 5}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}
`
	e, _ := newTestEngine(t, yaml)
	for i := 0; i < 10; i++ {
		e.Apply(0, interaction(fmt.Sprint("u", i), "x", "view", t0+int64(i)))
	}
	for i := 0; i < 3; i++ {
		e.Apply(0, interaction(fmt.Sprint("u", i), "x", "click", t0+int64(i)))
	}
	e.Apply(0, itemRecord("y", false))
	tests := []struct {
		entity, id, name string
		want             float64
		wantDefault      bool
	}{
		{EntityItem, "x", "ctr", 4.0 / 31, false},
		{EntityItem, "x", "raw", 3.0 / 10, false},
		{EntityItem, "y", "ctr", 1.0 / 21, false}, // known item, no views: the prior
		{EntityItem, "y", "raw", 0, false},        // no prior, no views: 0, not NaN
		{EntityItem, "unknown", "ctr", 1.0 / 21, true},
		{EntityGlobal, "", "gctr", (3.0 + 2) / (10 + 4), false},
	}
	for _, tc := range tests {
		f := feature(t, e, tc.entity, tc.id, tc.name)
		if !relClose(f.Value.(float64), tc.want, 1e-15) || f.Default != tc.wantDefault {
			t.Errorf("%s %s %s = %v (default %v), want %v (default %v)", tc.entity, tc.id, tc.name, f.Value, f.Default, tc.want, tc.wantDefault)
		}
	}
}

const covisYAML = `
features:
  - {name: last, kind: last_n, scope: user, n: 10}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}
  - {name: cv, kind: covisitation, scope: item, distance: 2, gap: 1h, n: 2, weights: {view: 1, purchase: 4}}
`

func TestCovisitation(t *testing.T) {
	nb := func(pairs ...any) []Neighbor {
		var out []Neighbor
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, Neighbor{Item: pairs[i].(string), Weight: pairs[i+1].(float64)})
		}
		return out
	}
	tests := []struct {
		name string
		recs []*event.Record
		want map[string][]Neighbor
	}{
		{
			name: "distance decay 1/d, backward edges at half weight",
			recs: []*event.Record{interaction("u", "a", "view", t0), interaction("u", "b", "view", t0+minute), interaction("u", "c", "view", t0+2*minute)},
			want: map[string][]Neighbor{
				"a": nb("b", 1.0, "c", 0.5),  // a→b at d=1, a→c at d=2
				"b": nb("c", 1.0, "a", 0.5),  // b→c forward, b←a backward
				"c": nb("b", 0.5, "a", 0.25), // backward only
			},
		},
		{
			name: "distance limit",
			recs: []*event.Record{interaction("u", "a", "view", t0), interaction("u", "b", "view", t0+1), interaction("u", "c", "view", t0+2), interaction("u", "d", "view", t0+3)},
			want: map[string][]Neighbor{"a": nb("b", 1.0, "c", 0.5)}, // never d: distance 3
		},
		{
			name: "type weight of the later event",
			recs: []*event.Record{interaction("u", "a", "view", t0), interaction("u", "b", "purchase", t0+1)},
			want: map[string][]Neighbor{"a": nb("b", 4.0), "b": nb("a", 2.0)},
		},
		{
			name: "gap limit",
			recs: []*event.Record{interaction("u", "a", "view", t0), interaction("u", "b", "view", t0+hour), interaction("u", "c", "view", t0+2*hour+1)},
			want: map[string][]Neighbor{"a": nb("b", 1.0), "b": nb("a", 0.5), "c": nil}, // c is 1h+1ms after b
		},
		{
			name: "self pairs skipped",
			recs: []*event.Record{interaction("u", "x", "view", t0), interaction("u", "a", "view", t0+1), interaction("u", "a", "view", t0+2)},
			// The second a pairs with x at distance 2 (the repeated a still takes a slot).
			want: map[string][]Neighbor{"a": nb("x", 0.75), "x": nb("a", 1.5)},
		},
		{
			name: "users do not pair with each other",
			recs: []*event.Record{interaction("u", "a", "view", t0), interaction("v", "b", "view", t0+1)},
			want: map[string][]Neighbor{"a": nil, "b": nil},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newTestEngine(t, covisYAML)
			applyAll(e, tc.recs...)
			for item, want := range tc.want {
				got := noRefs(e.Neighbors(item, 10))
				if len(got) == 0 && len(want) == 0 {
					continue
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("Neighbors(%s) = %v, want %v", item, got, want)
				}
				if f := feature(t, e, EntityItem, item, "cv"); !reflect.DeepEqual(noRefs(f.Value.([]Neighbor)), got) {
					t.Errorf("feature cv of %s = %v, Neighbors says %v", item, f.Value, got)
				}
			}
		})
	}
}

func TestCovisitationPruning(t *testing.T) {
	e, _ := newTestEngine(t, covisYAML) // n: 2, so pruning happens at 4 neighbours
	user := 0
	pair := func(next string, times int) {
		for i := 0; i < times; i++ {
			u := fmt.Sprint("u", user)
			user++
			applyAll(e, interaction(u, "hub", "view", t0), interaction(u, next, "view", t0+1))
		}
	}
	pair("x1", 4)
	pair("x2", 3)
	pair("x3", 2)
	if got := noRefs(e.Neighbors("hub", 10)); len(got) != 3 {
		t.Fatalf("pruned before 2×n: %v", got)
	}
	pair("x4", 1) // 4th neighbour: prune back to the strongest 2
	want := []Neighbor{{Item: "x1", Weight: 4}, {Item: "x2", Weight: 3}}
	if got := noRefs(e.Neighbors("hub", 10)); !reflect.DeepEqual(got, want) {
		t.Fatalf("after pruning: %v, want %v", got, want)
	}
	pair("x5", 1)
	want = append(want, Neighbor{Item: "x5", Weight: 1})
	if got := noRefs(e.Neighbors("hub", 10)); !reflect.DeepEqual(got, want) {
		t.Fatalf("after pruning and one more: %v, want %v", got, want)
	}
	if got := noRefs(e.Neighbors("hub", 1)); !reflect.DeepEqual(got, want[:1]) {
		t.Fatalf("Neighbors(hub, 1) = %v", got)
	}
	if got := noRefs(e.Neighbors("nope", 5)); got != nil {
		t.Fatalf("unknown item has neighbours %v", got)
	}
	// The returned slice is the caller's.
	got := noRefs(e.Neighbors("hub", 10))
	got[0].Item = "mutated"
	if noRefs(e.Neighbors("hub", 10))[0].Item != "x1" {
		t.Fatal("Neighbors returns engine state")
	}
}

const trendYAML = `
features:
  - {name: last, kind: last_n, scope: user, n: 10}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}
  - {name: cat, kind: affinity, scope: user_category, half_life: 1h}
  - {name: trend, kind: trending, scope: item, half_life: 1h, weights: {view: 1, purchase: 10}}
`

func TestTrending(t *testing.T) {
	e, _ := newTestEngine(t, trendYAML)
	applyAll(e, itemRecord("a", false, "c1"), itemRecord("b", false, "c1", "c2"), itemRecord("c", false, "c2"), itemRecord("d", false))
	views := map[string]int{"a": 3, "b": 2, "c": 1}
	for item, n := range views {
		for i := 0; i < n; i++ {
			e.Apply(0, interaction(fmt.Sprint("u", i), item, "view", t0))
		}
	}
	ids := func(l []Scored) []string {
		var s []string
		for _, x := range l {
			s = append(s, x.ID)
		}
		return s
	}
	e.RefreshTrending()
	tests := []struct {
		category string
		n        int
		want     []string
	}{
		{"", 10, []string{"a", "b", "c"}}, // d has no interactions
		{"", 2, []string{"a", "b"}},
		{"c1", 10, []string{"a", "b"}},
		{"c2", 10, []string{"b", "c"}},
		{"c2", 1, []string{"b"}},
		{"nope", 10, nil},
	}
	for _, tc := range tests {
		if got := ids(e.Trending(tc.category, tc.n)); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Trending(%q, %d) = %v, want %v", tc.category, tc.n, got, tc.want)
		}
	}

	// An item record invalidates the index at once: hiding a drops it now,
	// not after TrendRefresh.
	old := TrendRefresh
	TrendRefresh = time.Hour
	defer func() { TrendRefresh = old }()
	e.Apply(0, itemRecord("a", true, "c1"))
	if got := ids(e.Trending("", 10)); !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Fatalf("after hiding a: %v", got)
	}
	if got := ids(e.Trending("c1", 10)); !reflect.DeepEqual(got, []string{"b"}) {
		t.Fatalf("after hiding a, c1: %v", got)
	}
	// Moving c into c1 shows up at once too.
	e.Apply(0, itemRecord("c", false, "c1"))
	if got := ids(e.Trending("c1", 10)); !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Fatalf("after recategorising c: %v", got)
	}
	// Interactions alone wait for the refresh interval...
	for i := 0; i < 5; i++ {
		e.Apply(0, interaction("w", "c", "purchase", t0))
	}
	if got := ids(e.Trending("", 10)); !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Fatalf("index rebuilt before TrendRefresh: %v", got)
	}
	// ...or an explicit refresh.
	e.RefreshTrending()
	if got := ids(e.Trending("", 10)); !reflect.DeepEqual(got, []string{"c", "b"}) {
		t.Fatalf("after refresh: %v", got)
	}

	info := make([]ItemInfo, 3)
	e.Items([]string{"a", "c", "zz"}, info)
	if !info[0].Exists || !info[0].Hidden || !reflect.DeepEqual(info[0].Categories, []string{"c1"}) {
		t.Errorf("Items(a) = %+v", info[0])
	}
	if !(info[1].Trend > info[0].Trend) {
		t.Errorf("trend of c %v not above a %v", info[1].Trend, info[0].Trend)
	}
	if info[2].Exists || !math.IsInf(info[2].Trend, -1) {
		t.Errorf("Items(unknown) = %+v", info[2])
	}
}

func TestCategoryAffinity(t *testing.T) {
	e, _ := newTestEngine(t, trendYAML)
	applyAll(e, itemRecord("a", false, "c1", "c2"), itemRecord("b", false, "c2"))
	applyAll(e,
		interaction("u", "a", "view", t0),
		interaction("u", "b", "view", t0),
		interaction("u", "z", "view", t0), // no metadata: no categories
	)
	cats := e.User("u", 0).Categories
	want := []Scored{{ID: "c2", Score: 1.5}, {ID: "c1", Score: 0.5}} // an item's weight is split across its categories
	if !reflect.DeepEqual(cats, want) {
		t.Fatalf("categories = %v, want %v", cats, want)
	}
	if f := feature(t, e, EntityUser, "u", "cat"); !reflect.DeepEqual(f.Value, want) {
		t.Fatalf("cat feature = %v", f.Value)
	}
	aff := feature(t, e, EntityUser, "u", "aff").Value.([]Scored)
	if !reflect.DeepEqual(aff, []Scored{{ID: "a", Score: 1}, {ID: "b", Score: 1}, {ID: "z", Score: 1}}) {
		t.Fatalf("aff = %v", aff)
	}
}

func TestAffinityWeights(t *testing.T) {
	e, _ := newTestEngine(t, `
features:
  - {name: last, kind: last_n, scope: user, n: 10}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h, weights: {view: 1, purchase: 8, rating: 5}}
`)
	applyAll(e,
		interaction("u", "v", "view", t0),
		interaction("u", "p", "purchase", t0),
		withValue(interaction("u", "r4", "rating", t0), 4), // 5 × 4/5
		withValue(interaction("u", "r0", "rating", t0), 0), // no value: unscaled
		interaction("u", "c", "click", t0),                 // unlisted type: 1
		interaction("u", "old", "view", t0-hour),           // one half-life ago
	)
	got := scoreMap(feature(t, e, EntityUser, "u", "aff").Value.([]Scored))
	want := map[string]float64{"v": 1, "p": 8, "r4": 4, "r0": 5, "c": 1, "old": 0.5}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("affinity = %v, want %v", got, want)
	}
}

func TestAffinityListBounded(t *testing.T) {
	e, _ := newTestEngine(t, sessionYAML)
	for i := 0; i < maxListed+10; i++ {
		e.Apply(0, interaction("u", fmt.Sprintf("i%03d", i), "view", t0+int64(i)))
	}
	l := feature(t, e, EntityUser, "u", "aff").Value.([]Scored)
	if len(l) != maxListed || l[0].ID != fmt.Sprintf("i%03d", maxListed+9) {
		t.Fatalf("affinity list has %d entries starting %v", len(l), l[0])
	}
}

func TestValuesUnknownEntities(t *testing.T) {
	e, _ := newTestEngine(t, `
features:
  - {name: uw, kind: window_count, scope: user, window: 1h, default: 3}
  - {name: usum, kind: window_sum, scope: user, window: 1h}
  - {name: urate, kind: rate, scope: user, numerator: uw, denominator: usum, prior_alpha: 1, prior_beta: 1}
  - {name: sess, kind: session, scope: user}
  - {name: last, kind: last_n, scope: user, n: 5}
  - {name: rec, kind: recency, scope: user, default: -1}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}
  - {name: cat, kind: affinity, scope: user_category, half_life: 1h}
  - {name: iw, kind: window_count, scope: item, window: 1h}
  - {name: irec, kind: recency, scope: item, default: -2}
  - {name: trend, kind: trending, scope: item, half_life: 1h, default: 0.5}
  - {name: cv, kind: covisitation, scope: item}
  - {name: gw, kind: window_count, scope: global, window: 1h}
`)
	e.Apply(0, interaction("known", "known", "view", t0))
	tests := []struct {
		entity string
		want   map[string]any
	}{
		{EntityUser, map[string]any{
			"uw": 3.0, "usum": 0.0, "urate": 0.5, "rec": -1.0,
			"sess": map[string]any{"id": "", "count": 0, "items": []string{}, "duration_s": 0.0},
			"last": []ItemAt{}, "aff": []Scored{}, "cat": []Scored{},
		}},
		{EntityItem, map[string]any{"iw": 0.0, "irec": -2.0, "trend": 0.5, "cv": []Neighbor{}}},
	}
	for _, tc := range tests {
		v, ok := e.Values(tc.entity, "nobody")
		if ok {
			t.Errorf("%s: ok for an unknown entity", tc.entity)
		}
		if len(v.Features) != len(tc.want) || v.ComputedAt != 0 {
			t.Errorf("%s: features %v (computed_at %d), want %v", tc.entity, keys(v.Features), v.ComputedAt, keys(tc.want))
		}
		for name, want := range tc.want {
			f := v.Features[name]
			if !reflect.DeepEqual(f.Value, want) || !f.Default {
				t.Errorf("%s %s = %#v (default %v), want typed default %#v", tc.entity, name, f.Value, f.Default, want)
			}
		}
		// Lists encode as [] not null: clients iterate them.
		if js := mustJSON(t, v); strings.Contains(js, "null") {
			t.Errorf("%s defaults encode a null: %s", tc.entity, js)
		}
	}
	if _, ok := e.Values(EntityGlobal, ""); !ok {
		t.Error("global is always known")
	}
	if v, ok := e.Values("planet", "x"); ok || len(v.Features) != 0 {
		t.Errorf("unknown entity kind: %+v, %v", v, ok)
	}
	if v, ok := e.Values(EntityUser, "known"); !ok || v.Features["last"].Default || v.Features["rec"].Value != 0.0 {
		t.Errorf("known user: %+v", v)
	}
	if u := e.User("nobody", 5); u.Exists || u.Recent != nil {
		t.Errorf("User(unknown) = %+v", u)
	}
	seen := []bool{false}
	e.Seen("nobody", []string{"known"}, seen)
	if seen[0] {
		t.Error("unknown user has seen an item")
	}
}

func TestRecency(t *testing.T) {
	e, _ := newTestEngine(t, `
features:
  - {name: last, kind: last_n, scope: user, n: 5}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}
  - {name: since_purchase, kind: recency, scope: user, events: [purchase], default: -1}
  - {name: since_any, kind: recency, scope: item}
`)
	applyAll(e,
		interaction("u", "a", "purchase", t0),
		interaction("u", "b", "view", t0+10*minute),
		interaction("u", "a", "purchase", t0-hour), // older: does not move recency back
	)
	if got := number(t, e, EntityUser, "u", "since_purchase"); got != 600 {
		t.Errorf("since_purchase = %v s, want 600", got)
	}
	if got := number(t, e, EntityItem, "a", "since_any"); got != 600 {
		t.Errorf("item a since_any = %v, want 600", got)
	}
	e.Apply(0, interaction("v", "c", "view", t0))
	if f := feature(t, e, EntityUser, "v", "since_purchase"); f.Value != -1.0 || !f.Default {
		t.Errorf("no purchase yet: %+v", f)
	}
}

func TestApplyExactlyOnce(t *testing.T) {
	e, _ := newTestEngine(t, windowYAML)
	recs := []*event.Record{
		interaction("u", "a", "view", t0),
		interaction("u", "b", "view", t0+1),
		interaction("u", "c", "view", t0+2),
	}
	for i, r := range recs {
		e.Apply(uint64(i+1), r)
	}
	// A replay after a crash re-delivers offsets the state already has.
	for i, r := range recs {
		e.Apply(uint64(i+1), r)
	}
	e.Apply(2, recs[0])
	if e.Applied() != 3 || number(t, e, EntityUser, "u", "uw") != 3 {
		t.Fatalf("applied %d, window %v; want 3, 3", e.Applied(), number(t, e, EntityUser, "u", "uw"))
	}
	// Offset 0 means "not from the log": always applied, Applied unchanged.
	e.Apply(0, recs[0])
	if e.Applied() != 3 || number(t, e, EntityUser, "u", "uw") != 4 {
		t.Fatalf("offset 0: applied %d, window %v", e.Applied(), number(t, e, EntityUser, "u", "uw"))
	}
	e.SetApplied(10)
	e.Apply(10, recs[0])
	e.Apply(11, recs[0])
	if e.Applied() != 11 || number(t, e, EntityUser, "u", "uw") != 5 {
		t.Fatalf("after SetApplied: applied %d, window %v", e.Applied(), number(t, e, EntityUser, "u", "uw"))
	}
	// Gaps are allowed: offsets need only increase.
	e.Apply(20, recs[1])
	if e.Applied() != 20 {
		t.Fatalf("applied %d", e.Applied())
	}
}

func TestErase(t *testing.T) {
	e, _ := newTestEngine(t, windowYAML)
	applyAll(e,
		interaction("u", "a", "view", t0),
		interaction("u", "b", "view", t0+1),
		interaction("v", "a", "view", t0+2),
	)
	e.Apply(0, eraseRecord("u"))
	if v, ok := e.Values(EntityUser, "u"); ok || !v.Features["uw"].Default {
		t.Fatalf("erased user still served: %+v", v)
	}
	if e.User("u", 10).Exists || e.UserCount() != 1 {
		t.Fatalf("erased user exists; %d users", e.UserCount())
	}
	seen := make([]bool, 2)
	e.Seen("u", []string{"a", "b"}, seen)
	if seen[0] || seen[1] {
		t.Fatal("erased user's seen set survives")
	}
	if number(t, e, EntityUser, "v", "uw") != 1 {
		t.Fatal("erasing u touched v")
	}
	// Erasing an unknown user is a no-op; a new event starts from nothing.
	e.Apply(0, eraseRecord("nobody"))
	e.Apply(0, interaction("u", "c", "view", t0+3))
	if last := feature(t, e, EntityUser, "u", "last").Value.([]ItemAt); len(last) != 1 || last[0].Item != "c" {
		t.Fatalf("re-created user: %+v", last)
	}
	// User records carry no features.
	e.Apply(0, &event.Record{Kind: event.KindUser, User: event.User{ID: "w"}})
	if e.UserCount() != 2 {
		t.Fatalf("user record created state: %d users", e.UserCount())
	}
}

func TestEngineCounts(t *testing.T) {
	e, _ := newTestEngine(t, covisYAML)
	applyAll(e, itemRecord("meta-only", false), interaction("u", "a", "view", t0), interaction("v", "b", "view", t0))
	if e.ItemCount() != 3 || e.UserCount() != 2 {
		t.Fatalf("items %d users %d", e.ItemCount(), e.UserCount())
	}
	if e.Config() == nil || len(e.Config().Features) != 3 {
		t.Fatal("Config")
	}
	if e.Clock() != t0 {
		t.Fatalf("clock %d", e.Clock())
	}
}

// Reads run concurrently with Apply; run with -race.
func TestConcurrentReads(t *testing.T) {
	e, _ := newTestEngine(t, DefaultYAMLForTest())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 3000; i++ {
			u, it := fmt.Sprint("u", i%17), fmt.Sprint("i", i%23)
			if i%100 == 0 {
				e.Apply(uint64(i+1), itemRecord(it, i%200 == 0, "c"))
				continue
			}
			e.Apply(uint64(i+1), interaction(u, it, "view", t0+int64(i)*second))
		}
	}()
	out := make([]bool, 3)
	info := make([]ItemInfo, 3)
	for {
		select {
		case <-done:
			return
		default:
		}
		e.Values(EntityUser, "u1")
		e.Values(EntityItem, "i1")
		e.Values(EntityGlobal, "")
		e.Seen("u2", []string{"i1", "i2", "i3"}, out)
		e.Items([]string{"i1", "i2", "i3"}, info)
		noRefs(e.Neighbors("i1", 5))
		e.Trending("c", 5)
		e.User("u3", 5)
	}
}

// DefaultYAMLForTest is the shipped feature file.
func DefaultYAMLForTest() string { return string(defaultYAML) }

// noRefs drops the engine-local handles, which tests do not pin.
func noRefs(ns []Neighbor) []Neighbor {
	for i := range ns {
		ns[i].Ref = 0
	}
	return ns
}

// noScoredRefs is noRefs for trending lists (a copy: Trending shares its slice).
func noScoredRefs(l []Scored) []Scored {
	out := append([]Scored(nil), l...)
	for i := range out {
		out[i].Ref = 0
	}
	return out
}
