package recommend

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
)

func TestBetaSampleMean(t *testing.T) {
	sum := 0.0
	const n = 20000
	for range n {
		v := betaSample(3, 7)
		require.True(t, v > 0 && v < 1)
		sum += v
	}
	assert.InDelta(t, 0.3, sum/n, 0.01)
}

type stats map[string][2]float64

func (s stats) ItemStats(items []string, imp, eng []float64) {
	for i, it := range items {
		imp[i], eng[i] = s[it][0], s[it][1]
	}
}

func exploreWorld(t *testing.T) *features.Engine {
	t.Helper()
	e := features.NewEngine(features.DefaultConfig(), nil)
	ts := int64(1_700_000_000_000)
	for u := range 30 {
		for i := range 20 {
			ts += 1000
			if i%(u%5+1) == 0 {
				e.Apply(0, &event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{
					User: fmt.Sprint("u", u), Item: fmt.Sprint("i", i), Type: "view", TS: ts}})
			}
		}
	}
	e.RefreshTrending()
	return e
}

func TestExplorationSlot(t *testing.T) {
	e := exploreWorld(t)
	cfg := DefaultConfig()
	p := New(e, cfg)
	on, off := true, false
	base := p.Recommend(context.Background(), Request{User: "new-user", K: 5, Explore: &off})
	require.Len(t, base.Items, 5)
	got := p.Recommend(context.Background(), Request{User: "new-user", K: 5, Explore: &on, Explain: true})
	require.Len(t, got.Items, 5)
	in := map[string]bool{}
	for _, it := range base.Items {
		in[it.Item] = true
	}
	names := func(items []Item) []string {
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = it.Item
		}
		return out
	}
	assert.Equal(t, names(base.Items[:2]), names(got.Items[:2]), "the head is untouched")
	assert.True(t, got.Items[2].Explore)
	assert.False(t, in[got.Items[2].Item], "the slot goes to an item the list did not hold")
	assert.Equal(t, "explore", got.Items[2].Reasons[len(got.Items[2].Reasons)-1].Source)
	assert.Equal(t, names(base.Items[2:4]), names(got.Items[3:]), "the rest moves down; the last drops")
	for _, it := range got.Items {
		assert.Positive(t, it.Vector[5], "%s carries the vector it was served with, the explored one too", it.Item)
	}

	// Rate 0 and no request flag: never.
	for range 20 {
		for _, it := range p.Recommend(context.Background(), Request{User: "new-user", K: 5}).Items {
			assert.False(t, it.Explore)
		}
	}
	// Thompson sampling: an item shown often with no engagement loses to
	// one never shown.
	cfg.ExplorePool = 2
	p = New(e, cfg)
	pool := p.Recommend(context.Background(), Request{User: "new-user", K: 7, Explore: &off}).Items[5:7]
	p.Explorer = stats{pool[0].Item: {100_000, 0}}
	for range 50 {
		got := p.Recommend(context.Background(), Request{User: "new-user", K: 5, Explore: &on})
		assert.Equal(t, pool[1].Item, got.Items[2].Item)
	}
}

func TestExploreConfigValidated(t *testing.T) {
	c := DefaultConfig()
	c.ExploreRate = 2
	assert.Error(t, c.Validate())
	c = DefaultConfig()
	c.ExploreRate = math.NaN()
	assert.Error(t, c.Validate())
	c = DefaultConfig()
	c.ExplorePosition = 0
	assert.Error(t, c.Validate())
}

// TestNewItemsGetExplored: an item with catalogue metadata and no events
// reaches users of its category only through the exploration slot, and
// does.
func TestNewItemsGetExplored(t *testing.T) {
	e := features.NewEngine(features.DefaultConfig(), nil)
	ts := int64(1_700_000_000_000)
	for i, id := range []string{"b1", "b2", "b3", "fresh", "hidden-new"} {
		if id == "hidden-new" {
			e.Apply(0, &event.Record{Kind: event.KindItem, Item: event.Item{ID: id, Categories: []string{"books"}, Hidden: true}})
			continue
		}
		e.Apply(0, &event.Record{Kind: event.KindItem, Item: event.Item{ID: id, Categories: []string{"books"}}})
		if id != "fresh" {
			for u := range 3 {
				ts += 1000
				e.Apply(0, &event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{
					User: fmt.Sprint("u", u+i), Item: id, Type: "view", TS: ts}})
			}
		}
	}
	e.RefreshTrending()
	cold := e.ColdItems("books", 10)
	require.Len(t, cold, 1, "hidden items are never offered")
	assert.Equal(t, "fresh", cold[0].ID)

	cfg := DefaultConfig()
	cfg.ExplorePool = 1
	p := New(e, cfg)
	on, off := true, false
	for range 20 {
		for _, it := range p.Recommend(context.Background(), Request{User: "u1", K: 2, Explore: &off}).Items {
			assert.NotEqual(t, "fresh", it.Item, "no signal reaches a new item")
		}
	}
	shown := 0
	for range 40 {
		for _, it := range p.Recommend(context.Background(), Request{User: "u1", K: 2, Explore: &on}).Items {
			if it.Item == "fresh" {
				assert.True(t, it.Explore)
				assert.InDelta(t, 0.05, it.Vector[5], 1e-12, "a new item's vector: the prior engagement rate, no signal")
				assert.Zero(t, it.Vector[1])
				shown++
			}
		}
	}
	assert.Positive(t, shown, "the exploration slot shows the new item")

	// Once it has events it is no longer cold.
	e.Apply(0, &event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{User: "u9", Item: "fresh", Type: "view", TS: ts + 1000}})
	e.RefreshTrending()
	assert.Empty(t, e.ColdItems("books", 10))
}
