package recommend_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/recommend"
)

// oneRow is a trained table where "a" leads to the given items, strongest
// first.
func oneRow(t *testing.T, name string, to ...string) *model.Set {
	t.Helper()
	items := append([]string{"a"}, to...)
	nbrs := make([]int32, len(to))
	ws := make([]float32, len(to))
	for i := range to {
		nbrs[i], ws[i] = int32(i+1), float32(len(to)-i)
	}
	offsets := make([]uint32, len(items)+1)
	for i := 1; i < len(offsets); i++ {
		offsets[i] = uint32(len(to))
	}
	tab, err := model.NewItemItem(items, offsets, nbrs, ws)
	require.NoError(t, err)
	return model.NewSet(name, items, []model.Component{{Name: "transition", Table: tab, History: 10, Decay: 1, Weight: 1}})
}

// TestTrainedModelRanksAndSwaps: the trained set ranks ahead of the
// streaming signals, names itself in the response, skips items the state
// does not know and seen items, and a swap takes effect on the next request.
func TestTrainedModelRanksAndSwaps(t *testing.T) {
	w := newWorld()
	w.seq("other", "a", "s1", "a", "s1") // streaming co-visitation a→s1
	w.seq("other2", "m1", "m2", "m3")    // the model's items exist in the state
	w.seq("u", "m1", "a")
	var cur atomic.Pointer[model.Set]
	p := recommend.New(w.e, recommend.DefaultConfig())
	p.Models = cur.Load

	resp := p.Recommend(context.Background(), recommend.Request{User: "u", K: 3})
	assert.Equal(t, recommend.Model, resp.Model, "no set: the streaming model")
	assert.Equal(t, "s1", resp.Items[0].Item)
	assert.NotContains(t, ids(resp.Items), "m1")

	cur.Store(oneRow(t, "blend@1", "m2", "ghost", "m1"))
	resp = p.Recommend(context.Background(), recommend.Request{User: "u", K: 3, Explain: true})
	assert.Equal(t, "blend@1", resp.Model)
	assert.Equal(t, []string{"m2", "s1", "m3"}, ids(resp.Items), "ghost is unknown to the state; m1 is seen")
	assert.Equal(t, "model", resp.Items[0].Reasons[0].Source)

	cur.Store(oneRow(t, "blend@2", "m3"))
	resp = p.Recommend(context.Background(), recommend.Request{User: "u", K: 2})
	assert.Equal(t, "blend@2", resp.Model)
	assert.Equal(t, "m3", resp.Items[0].Item)

	// Rank gives caller-chosen items their model score too.
	r := p.Rank(context.Background(), "u", []string{"s1", "m3"}, false)
	assert.Equal(t, "m3", r.Items[0].Item)
	// Similar reads the item's own row.
	s := p.Similar(context.Background(), "a", 2, false)
	assert.Equal(t, "blend@2", s.Model)
	assert.Equal(t, "m3", s.Items[0].Item)
}

// TestTunedCategorySettingsServeWithTheSet: while a promoted set serves,
// even one that weighs no component, the pipeline uses the category weight
// and diversity it was tuned with; without one, the configuration's.
func TestTunedCategorySettingsServeWithTheSet(t *testing.T) {
	w := shoesWorld("shoes") // the user's history gives them a category
	cfg := recommend.DefaultConfig()
	cfg.Diversity = 0.9
	var cur atomic.Pointer[model.Set]
	p := recommend.New(w.e, cfg)
	p.Models = cur.Load
	off := noDiversity()
	off.WeightCategory = 0
	plain := ids(recommend.New(w.e, off).Recommend(context.Background(), recommend.Request{User: "me", K: 4}).Items)
	diverse := ids(p.Recommend(context.Background(), recommend.Request{User: "me", K: 4}).Items)
	require.NotEqual(t, plain, diverse, "the configured diversity reorders")
	categoryScore := func(resp recommend.Response) float64 {
		sum := 0.0
		for _, it := range resp.Items {
			sum += it.Features["category_trending"].(float64)
		}
		return sum
	}
	configured := categoryScore(p.Recommend(context.Background(), recommend.Request{User: "me", K: 4, Explain: true}))
	require.Positive(t, configured, "the user's category feeds the category source")

	stream := model.NewSet("blend@1", nil, nil)
	stream.StreamWeight = 1
	stream.Tuned = &model.StreamTuning{CategoryWeight: 0, Diversity: 0}
	cur.Store(stream)
	resp := p.Recommend(context.Background(), recommend.Request{User: "me", K: 4, Explain: true})
	assert.Equal(t, recommend.Model, resp.Model, "a set without components: the streaming model serves")
	assert.Equal(t, plain, ids(resp.Items), "with the tuned diversity 0")
	assert.Zero(t, categoryScore(resp), "with the tuned category weight 0")

	blend := oneRow(t, "blend@2", "m")
	blend.StreamWeight = 1
	blend.Tuned = &model.StreamTuning{CategoryWeight: 2 * cfg.WeightCategory, Diversity: 0}
	cur.Store(blend)
	resp = p.Recommend(context.Background(), recommend.Request{User: "me", K: 4, Explain: true})
	assert.Equal(t, "blend@2", resp.Model)
	assert.InDelta(t, 2*configured, categoryScore(resp), 1e-9, "the tuned category weight scales the source")

	untuned := oneRow(t, "blend@3", "m") // not tuned: the configuration serves
	untuned.StreamWeight = 1
	cur.Store(untuned)
	assert.Equal(t, diverse, ids(p.Recommend(context.Background(), recommend.Request{User: "me", K: 4}).Items))
}

// TestLearnedRankerReordersAndSaysSo: a promoted set's ranker reorders the
// blend's best candidates by the served feature vectors (here: the
// feedback loop's engagement rate), the response names it, every item
// carries the vector it was ranked with, and Rank keeps unknown items last.
func TestLearnedRankerReordersAndSaysSo(t *testing.T) {
	w := newWorld()
	w.seq("other", "m1", "m2", "m3")
	w.seq("u", "a")
	var cur atomic.Pointer[model.Set]
	p := recommend.New(w.e, noDiversity())
	p.Models = cur.Load
	// m3 was engaged with often when shown, m2 never.
	p.Explorer = engagement{"m2": {100, 0}, "m3": {100, 40}}

	set := oneRow(t, "blend@4", "m2", "m3")
	cur.Store(set)
	resp := p.Recommend(context.Background(), recommend.Request{User: "u", K: 2, Explain: true})
	assert.Equal(t, "blend@4", resp.Model)
	require.Equal(t, []string{"m2", "m3"}, ids(resp.Items), "the blend's order")
	assert.Greater(t, resp.Items[0].Vector[0], resp.Items[1].Vector[0], "the model score is feature 0")
	assert.InDelta(t, 1.0/120, resp.Items[0].Vector[5], 1e-12, "ctr smoothed: (0+1)/(100+20)")
	assert.InDelta(t, 41.0/120, resp.Items[1].Vector[5], 1e-12)
	assert.Equal(t, resp.Items[1].Vector[5], resp.Items[1].Features["ctr"])

	ctr := &model.Ranker{Features: model.RankFeatures, Mean: make([]float64, model.NumRankFeatures),
		Scale: []float64{1, 1, 1, 1, 1, 1}, Weights: []float64{0.1, 0, 0, 0, 0, 5}, Source: "pairwise"}
	ranked := oneRow(t, "blend@5", "m2", "m3")
	ranked.Ranker = ctr
	cur.Store(ranked)
	resp = p.Recommend(context.Background(), recommend.Request{User: "u", K: 2})
	assert.Equal(t, "blend+ranker@5", resp.Model)
	assert.Equal(t, []string{"m3", "m1"}, ids(resp.Items),
		"the ranker puts the engaging item first, and m2 (shown 100 times, never engaged) below m1 (never shown: the prior)")
	assert.Greater(t, resp.Items[0].Score, resp.Items[1].Score)
	assert.Positive(t, resp.Items[1].Score, "scores stay positive for diversity to scale")

	r := p.Rank(context.Background(), "u", []string{"ghost", "m2", "m3"}, false)
	assert.Equal(t, "blend+ranker@5", r.Model)
	assert.Equal(t, []string{"m3", "m2", "ghost"}, ids(r.Items), "unknown items stay last")

	// A fallback to one feature says which; a set that weighs no component
	// still brings its ranker to the streaming model.
	stream := model.NewSet("blend@6", nil, nil)
	stream.StreamWeight = 1
	stream.Ranker = &model.Ranker{Features: model.RankFeatures, Mean: make([]float64, model.NumRankFeatures),
		Scale: []float64{1, 1, 1, 1, 1, 1}, Weights: []float64{0, 0, 0, 0, 0, 1}, Source: "ctr"}
	cur.Store(stream)
	resp = p.Recommend(context.Background(), recommend.Request{User: "u", K: 2})
	assert.Equal(t, recommend.Model+"+ctr@6", resp.Model)
	assert.Equal(t, "m3", resp.Items[0].Item)
	// Similar has no user: no ranker.
	assert.Equal(t, recommend.Model, p.Similar(context.Background(), "m1", 2, false).Model)
}

// engagement is the feedback loop's impressions and engagements per item.
type engagement map[string][2]float64

func (s engagement) ItemStats(items []string, imp, eng []float64) {
	for i, it := range items {
		imp[i], eng[i] = s[it][0], s[it][1]
	}
}
