package features

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ripple-rec/ripple/internal/event"
)

// specWorkload touches every aggregator: item metadata with categories,
// every default type (a rating with a value), sessions, an event beyond the
// lateness bound, a type no default weight names, and an erasure.
func specWorkload() []*event.Record {
	recs := []*event.Record{
		itemRecord("i0", false, "c0", "sale"),
		itemRecord("i1", false, "c1"),
		itemRecord("i2", true, "c0"),
	}
	types := []string{"view", "click", "cart", "purchase", "rating", "share"}
	ts := t0
	for n := 0; n < 24; n++ {
		ts += int64(n%5) * 7 * minute
		r := interaction(fmt.Sprint("u", n%3), fmt.Sprint("i", n%4), types[n%len(types)], ts)
		if r.Interaction.Type == "rating" {
			withValue(r, float64(n%6))
		}
		if n%4 == 1 {
			withSession(r, "s1")
		}
		recs = append(recs, r)
	}
	recs = append(recs, interaction("u1", "i3", "view", ts-3*day), eraseRecord("u2"), interaction("u2", "i0", "click", ts))
	return recs
}

// servedState renders what the API and the recommender read from e, failing
// on anything the API could not encode as JSON or rank by.
func servedState(t *testing.T, e *Engine) string {
	t.Helper()
	var sb strings.Builder
	put := func(what string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%s cannot be served as JSON: %v\n%#v", what, err, v)
		}
		sb.WriteString(what + " " + string(b) + "\n")
	}
	finite := func(what string, x float64) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Fatalf("%s is %v", what, x)
		}
	}
	for _, u := range []string{"u0", "u1", "u2", "nobody"} {
		v, ok := e.Values(EntityUser, u)
		put(fmt.Sprint("user ", u, " ", ok), v)
		view := e.User(u, 100)
		for _, c := range view.Categories {
			finite("category affinity of "+u, c.Score)
		}
		put("view "+u, view)
	}
	for _, it := range []string{"i0", "i1", "i2", "i3", "nothing"} {
		v, ok := e.Values(EntityItem, it)
		put(fmt.Sprint("item ", it, " ", ok), v)
		ns := e.Neighbors(it, 100)
		for _, n := range ns {
			finite("neighbour weight of "+it, n.Weight)
		}
		put("neighbors "+it, noRefs(ns))
	}
	g, _ := e.Values(EntityGlobal, "")
	put("global", g)
	e.RefreshTrending()
	for _, c := range []string{"", "c0", "sale"} {
		for _, s := range e.Trending(c, 10) {
			finite("trending score", s.Score)
		}
		put("trending "+c, e.Trending(c, 10))
	}
	return sb.String()
}

func FuzzParseConfig(f *testing.F) {
	f.Add(defaultYAML)
	for _, s := range []string{
		"features:" + required,
		"lateness: 0s\nfeatures:" + required + "  - {name: w, kind: window_sum, scope: global, window: 1ns, buckets: 1440}\n",
		"features:" + required + "  - {name: c, kind: covisitation, scope: item, gap: -1h, n: -5, weights: {share: 0}}\n",
		"features:" + required + "  - {name: t, kind: trending, scope: item, half_life: 1ns}\n  - {name: cat, kind: affinity, scope: user_category, half_life: 1.5d}\n",
		"features:" + required + "  - {name: a, kind: window_count, scope: item, window: 1h}\n  - {name: r, kind: rate, scope: item, numerator: a, denominator: a, prior_alpha: -1, prior_beta: 1}\n",
		"features:" + required + "  - {name: rec, kind: recency, scope: user, events: [purchase], default: -1, ttl: -1h}\n  - {name: s, kind: session, scope: user}\n",
		"features:\n  - {name: last, kind: last_n, scope: user, n: 1000}\n  - {name: aff, kind: affinity, scope: user_item, half_life: 106751d, weights: {rating: 1e308}}\n",
		"features:" + required + "  - {name: x, kind: window_count, scope: user, window: 1e400d}\n",
		"features:\n  - {name: last, kind: last_n, scope: user, n: 5}\n  - {name: aff, kind: affinity, scope: user_item, half_life: 1ms, weights: {view: 1e300}}\n  - {name: t, kind: trending, scope: item, half_life: 1ms}\n  - {name: c, kind: affinity, scope: user_category, half_life: 1ms}\n",
		"features:\n  - {name: last, kind: last_n, scope: user, n: 5}\n  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}\n  - {name: w, kind: window_sum, scope: item, window: 1h}\n  - {name: r, kind: rate, scope: item, numerator: w, denominator: w, prior_alpha: 1e308, prior_beta: 1e308}\n",
		"features:" + required + "  - &a {name: x, kind: window_count, scope: user, window: 1h}\n  - *a\n",
		"lateness: 1h\nfeatures: {}\n",
		"features: [",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig(b)
		if err != nil {
			return
		}
		// Defaults are filled once: an accepted config, written back, reads
		// back the same.
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("accepted config does not marshal: %v", err)
		}
		again, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("accepted config, written back, is rejected: %v\n%s", err, out)
		}
		if out2, _ := yaml.Marshal(again); string(out2) != string(out) {
			t.Fatalf("config changed on a round trip:\n%s\n---\n%s", out, out2)
		}
		// A config that validates builds an engine that folds events and
		// serves what it folded, and its snapshot restores the same state.
		clk := &wallClock{}
		clk.set(t0 + day)
		e := NewEngine(cfg, clk.now)
		applyLogged(e, specWorkload(), 0)
		want := servedState(t, e)
		r := NewEngine(again, clk.now)
		if err := restore(r, snapshot(t, e)); err != nil {
			t.Fatalf("snapshot does not restore: %v", err)
		}
		if got := servedState(t, r); got != want {
			t.Fatalf("restored engine serves a different state:\n%s\n---\n%s", got, want)
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"1h", "7d", "1.5d", "30m", "-1h", "0", "1e3d", "106751d", "1e400d", "NaNd", "+Infd", "0x10d", "1hd", "d", "", "2562047h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil || !strings.HasSuffix(s, "d") {
			return
		}
		// Days are read as a float: the duration must be that many days,
		// not a wrapped int64.
		want := d.Hours() / 24
		days, _ := strconv.ParseFloat(s[:len(s)-1], 64)
		if math.Abs(want-days) > 1e-6*math.Max(1, math.Abs(days)) {
			t.Fatalf("ParseDuration(%q) = %v, %v days; want %v days", s, d, want, days)
		}
	})
}
