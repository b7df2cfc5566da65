package recommend_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/recommend"
)

type world struct {
	e  *features.Engine
	ts int64
}

func newWorld() *world {
	return &world{e: features.NewEngine(features.DefaultConfig(), nil), ts: time.Now().Add(-time.Hour).UnixMilli()}
}

func (w *world) seq(user string, items ...string) {
	for _, it := range items {
		w.ts += 1000
		w.e.Apply(0, &event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{User: user, Item: it, Type: "view", TS: w.ts}})
	}
}

func (w *world) item(id string, hidden bool, cats ...string) {
	w.e.Apply(0, &event.Record{Kind: event.KindItem, Item: event.Item{ID: id, Categories: cats, Hidden: hidden}})
}

func ids(items []recommend.Item) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.Item
	}
	return out
}

func noDiversity() recommend.Config {
	c := recommend.DefaultConfig()
	c.Diversity = 0
	return c
}

func TestColdStartIsPopularity(t *testing.T) {
	w := newWorld()
	for u := 0; u < 5; u++ {
		w.seq(fmt.Sprintf("a%d", u), "hit")
	}
	w.seq("b", "mid", "mid")
	w.seq("c", "rare")
	w.e.RefreshTrending()
	res := recommend.New(w.e, noDiversity()).Recommend(context.Background(), recommend.Request{User: "stranger", K: 3})
	assert.True(t, res.ColdStart)
	assert.Equal(t, []string{"hit", "mid", "rare"}, ids(res.Items))
	assert.Equal(t, recommend.Healthy, res.Degradation)
}

func TestRecentItemsDriveCovisitation(t *testing.T) {
	w := newWorld()
	for u := 0; u < 3; u++ {
		w.seq(fmt.Sprintf("o%d", u), "x", "after-x")
		w.seq(fmt.Sprintf("p%d", u), "y", "after-y")
	}
	for u := 0; u < 10; u++ { // a popular item that should not beat the signal
		w.seq(fmt.Sprintf("q%d", u), "popular")
	}
	w.seq("me", "x", "y") // y is the most recent: its neighbour leads
	w.e.RefreshTrending()
	res := recommend.New(w.e, noDiversity()).Recommend(context.Background(), recommend.Request{User: "me", K: 3, Explain: true})
	require.False(t, res.ColdStart)
	got := ids(res.Items)
	assert.Equal(t, []string{"after-y", "after-x", "popular"}, got)
	assert.NotContains(t, got, "x")
	require.NotEmpty(t, res.Items[0].Reasons)
	assert.Equal(t, "covisitation", res.Items[0].Reasons[0].Source)
	assert.Equal(t, "y", res.Items[0].Reasons[0].Via)
	for i := 1; i < len(res.Items); i++ {
		assert.GreaterOrEqual(t, res.Items[i-1].Score, res.Items[i].Score, "scores never increase down the list")
	}
}

func TestFiltersSeenHiddenExclude(t *testing.T) {
	w := newWorld()
	for u := 0; u < 3; u++ {
		w.seq(fmt.Sprintf("o%d", u), "a", "b", "c", "d")
	}
	w.item("c", true)
	w.seq("me", "a")
	w.e.RefreshTrending()
	p := recommend.New(w.e, noDiversity())
	got := ids(p.Recommend(context.Background(), recommend.Request{User: "me", K: 10, Exclude: []string{"d"}}).Items)
	assert.Equal(t, []string{"b"}, got)
	got = ids(p.Recommend(context.Background(), recommend.Request{User: "me", K: 10, IncludeSeen: true}).Items)
	assert.Contains(t, got, "a")
	assert.NotContains(t, got, "c", "hidden items stay hidden even with include_seen")
}

// shoesWorld: "me" had "anchor", whose strong neighbours s1..s3 are shoes
// and a slightly weaker one, "other", is a book; with cats, anchor is shoes
// too.
func shoesWorld(anchorCats ...string) *world {
	w := newWorld()
	for u := 0; u < 4; u++ {
		w.seq(fmt.Sprintf("o%d", u), "anchor", "s1", "s2", "s3")
	}
	w.seq("z", "anchor", "other")
	w.seq("z2", "anchor", "other")
	for _, it := range []string{"s1", "s2", "s3"} {
		w.item(it, false, "shoes")
	}
	if len(anchorCats) > 0 {
		w.item("anchor", false, anchorCats...)
	}
	w.item("other", false, "books")
	w.seq("me", "anchor")
	w.e.RefreshTrending()
	return w
}

func TestDiversityInterleavesCategories(t *testing.T) {
	w := shoesWorld()
	plain := ids(recommend.New(w.e, noDiversity()).Recommend(context.Background(), recommend.Request{User: "me", K: 4}).Items)
	cfg := recommend.DefaultConfig()
	cfg.Diversity = 0.9
	diverse := ids(recommend.New(w.e, cfg).Recommend(context.Background(), recommend.Request{User: "me", K: 4}).Items)
	require.Len(t, diverse, 4)
	assert.Equal(t, plain[0], diverse[0], "the best item stays first")
	assert.Less(t, indexOf(diverse, "other"), indexOf(plain, "other"), "diversity must pull the other category up: plain %v diverse %v", plain, diverse)
}

func indexOf(l []string, s string) int {
	for i, x := range l {
		if x == s {
			return i
		}
	}
	return len(l)
}

func TestDeadlineDegradesButAnswers(t *testing.T) {
	w := newWorld()
	for u := 0; u < 3; u++ {
		w.seq(fmt.Sprintf("o%d", u), "a", "b")
	}
	w.seq("me", "a")
	w.e.RefreshTrending()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := recommend.New(w.e, noDiversity()).Recommend(ctx, recommend.Request{User: "me", K: 5})
	assert.Equal(t, recommend.Degraded, res.Degradation)
	assert.NotEmpty(t, res.Items, "popularity fallback still answers")
}

func TestSimilarAndRank(t *testing.T) {
	w := newWorld()
	for u := 0; u < 3; u++ {
		w.seq(fmt.Sprintf("o%d", u), "a", "b")
	}
	w.seq("q", "a", "c")
	w.e.RefreshTrending()
	p := recommend.New(w.e, noDiversity())
	sim := ids(p.Similar(context.Background(), "a", 5, false).Items)
	assert.Equal(t, []string{"b", "c"}, sim)

	w.seq("me", "a")
	ranked := p.Rank(context.Background(), "me", []string{"unknown", "c", "b", "c"}, false)
	assert.Equal(t, []string{"b", "c", "unknown"}, ids(ranked.Items), "duplicates collapse, unknown items last")
}

// TestRepeatsWhenSeenItemsAreKept: with include_seen, the user's own recent
// items gain weight_repeat·recency_decay^j times the best other candidate's
// score (the newest goes first at weight 1); weight_repeat 0 leaves them to
// the other sources; without include_seen they are filtered as always.
func TestRepeatsWhenSeenItemsAreKept(t *testing.T) {
	w := newWorld()
	for u := range 3 {
		w.seq(fmt.Sprintf("o%d", u), "a", "b", "c", "d")
	}
	w.seq("me", "x", "y", "a")
	w.e.RefreshTrending()
	cfg := noDiversity()
	scores := func(cfg recommend.Config) (map[string]float64, recommend.Response) {
		res := recommend.New(w.e, cfg).Recommend(context.Background(), recommend.Request{User: "me", K: 10, IncludeSeen: true, Explain: true})
		out := map[string]float64{}
		for _, it := range res.Items {
			out[it.Item] = it.Score
		}
		require.Len(t, out, 6, "every item is a candidate")
		return out, res
	}
	with, res := scores(cfg)
	require.Equal(t, "a", res.Items[0].Item, "the newest item first")
	assert.True(t, slices.ContainsFunc(res.Items[0].Reasons, func(r recommend.Reason) bool { return r.Source == "repeat" }))
	assert.Equal(t, 1.0, res.Items[0].Features["repeat"])

	cfg.WeightRepeat = 0
	without, res := scores(cfg)
	for _, it := range res.Items {
		assert.Zero(t, it.Features["repeat"], it.Item)
	}
	best := max(without["b"], without["c"], without["d"]) // the candidates that are not the user's
	assert.InDelta(t, without["a"]+best, with["a"], 1e-9, "the newest gains the best other score")
	assert.InDelta(t, without["y"]+cfg.RecencyDecay*best, with["y"], 1e-9, "the next newest, decayed")
	assert.InDelta(t, without["x"]+cfg.RecencyDecay*cfg.RecencyDecay*best, with["x"], 1e-9)
	assert.Equal(t, without["b"], with["b"], "other candidates keep their scores")

	p := recommend.New(w.e, noDiversity())
	got := ids(p.Recommend(context.Background(), recommend.Request{User: "me", K: 10}).Items)
	assert.NotContains(t, got, "a")
	assert.NotContains(t, got, "y")
	r := p.Rank(context.Background(), "me", []string{"a", "b"}, false)
	assert.Equal(t, without["a"] > without["b"], r.Items[0].Item == "a", "Rank orders the caller's items without the repeat source")
}
