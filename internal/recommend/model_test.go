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
