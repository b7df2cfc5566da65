package recommend_test

import (
	"context"
	"fmt"
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
