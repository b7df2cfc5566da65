package demo

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
)

// Options size the dataset.
type Options struct {
	Items      int
	Categories int
	Users      int
	Seed       uint64
	// End is the time of the newest event; events spread over Span before it.
	End  time.Time
	Span time.Duration
}

// DefaultOptions is what `ripple serve --demo` loads.
func DefaultOptions(now time.Time) Options {
	return Options{Items: 2000, Categories: 20, Users: 1000, Seed: 42, End: now.Truncate(time.Minute), Span: 72 * time.Hour}
}

var categoryNames = []string{"books", "music", "movies", "games", "toys", "garden", "kitchen", "sports", "outdoors", "beauty",
	"health", "baby", "pets", "office", "tools", "auto", "fashion", "shoes", "jewelry", "electronics"}

// Dataset is the generated catalogue and events (events sorted by time).
type Dataset struct {
	Items  []event.Item
	Events []event.Interaction
}

// Generate builds the dataset; the same options give the same dataset.
func Generate(o Options) Dataset {
	rng := rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))
	cats := make([]string, o.Categories)
	for i := range cats {
		if i < len(categoryNames) {
			cats[i] = categoryNames[i]
		} else {
			cats[i] = fmt.Sprintf("category-%d", i)
		}
	}
	var ds Dataset
	byCat := make([][]int, o.Categories)
	for i := 0; i < o.Items; i++ {
		c := rng.IntN(o.Categories)
		it := event.Item{ID: fmt.Sprintf("i%d", i), Categories: []string{cats[c]},
			Attributes: map[string]string{"price": fmt.Sprintf("%.2f", 5+rng.Float64()*95)}}
		if rng.IntN(4) == 0 {
			c2 := rng.IntN(o.Categories)
			if c2 != c {
				it.Categories = append(it.Categories, cats[c2])
			}
		}
		it.TS = o.End.Add(-o.Span).UnixMilli()
		ds.Items = append(ds.Items, it)
		byCat[c] = append(byCat[c], i)
	}
	// Popularity is Zipf over item index: low ids are the hits.
	zipf := func(pool []int) int {
		// Inverse-CDF sampling of rank with exponent ~1 over the pool.
		u := rng.Float64()
		r := int(math.Pow(float64(len(pool)+1), u)) - 1
		return pool[min(r, len(pool)-1)]
	}
	// Each item has a few related items in its own category: the hidden
	// structure sessions follow.
	related := make([][]int, o.Items)
	for _, pool := range byCat {
		for _, i := range pool {
			for j := 0; j < 4 && len(pool) > 1; j++ {
				k := zipf(pool)
				if k != i {
					related[i] = append(related[i], k)
				}
			}
		}
	}
	types := []struct {
		name string
		p    float64
	}{{"view", 0.62}, {"click", 0.25}, {"cart", 0.09}, {"purchase", 0.04}}
	pickType := func() string {
		u := rng.Float64()
		for _, t := range types {
			if u < t.p {
				return t.name
			}
			u -= t.p
		}
		return "view"
	}
	all := make([]int, o.Items)
	for i := range all {
		all[i] = i
	}
	start := o.End.Add(-o.Span).UnixMilli()
	span := o.Span.Milliseconds()
	for u := 0; u < o.Users; u++ {
		user := fmt.Sprintf("u%d", u)
		taste := []int{rng.IntN(o.Categories), rng.IntN(o.Categories)}
		// Activity is power-law too: a few heavy users, many light ones.
		sessions := 1 + int(math.Pow(rng.Float64(), 3)*12)
		for s := 0; s < sessions; s++ {
			ts := start + rng.Int64N(span-int64(time.Hour/time.Millisecond))
			sessionID := fmt.Sprintf("%s-s%d", user, s)
			cur := -1
			n := 3 + rng.IntN(12)
			for e := 0; e < n; e++ {
				if cur >= 0 && len(related[cur]) > 0 && rng.Float64() < 0.65 {
					cur = related[cur][rng.IntN(len(related[cur]))]
				} else {
					pool := byCat[taste[rng.IntN(len(taste))]]
					if len(pool) == 0 || rng.IntN(5) == 0 {
						cur = zipf(all)
					} else {
						cur = zipf(pool)
					}
				}
				ts += 5000 + rng.Int64N(120000)
				ev := event.Interaction{ID: fmt.Sprintf("%s-%d-%d", user, s, e), Type: pickType(), User: user,
					Item: fmt.Sprintf("i%d", cur), TS: min(ts, o.End.UnixMilli()), Session: sessionID}
				if ev.Type == "purchase" {
					ev.Value = 1
				}
				ds.Events = append(ds.Events, ev)
			}
		}
	}
	sort.SliceStable(ds.Events, func(i, j int) bool { return ds.Events[i].TS < ds.Events[j].TS })
	return ds
}

// Records is the dataset in log order: the catalogue, then the events.
func (ds Dataset) Records() []event.Record {
	out := make([]event.Record, 0, len(ds.Items)+len(ds.Events))
	for _, it := range ds.Items {
		out = append(out, event.Record{Kind: event.KindItem, Item: it})
	}
	for _, ev := range ds.Events {
		out = append(out, event.Record{Kind: event.KindInteraction, Interaction: ev})
	}
	return out
}
