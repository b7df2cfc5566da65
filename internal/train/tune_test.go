package train

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/recommend"
)

// categorised gives every item of evs one of n categories.
func categorised(evs []event.Interaction, n int) []event.Item {
	seen := map[string]bool{}
	var items []event.Item
	for _, e := range evs {
		if !seen[e.Item] {
			seen[e.Item] = true
			items = append(items, event.Item{ID: e.Item, Categories: []string{fmt.Sprint("c", len(items)%n)}})
		}
	}
	return items
}

// The training stream is given the catalogue: the category source then
// finds candidates for the validation users, as it does on the server.
func TestStreamSeesItemCategories(t *testing.T) {
	evs := randomLog(100, 40, 6, 11)
	full := NewCorpus(evs)
	fit, cases := holdOut(full, ValidateLast)
	read := func(items []event.Item) *tuner {
		tu := newTuner(fit, cases, nil)
		s := &Stream{Features: features.DefaultConfig(), Recommend: recommend.DefaultConfig()}
		if items != nil {
			s.Items = func() []event.Item { return items }
		}
		require.NoError(t, tu.readStream(context.Background(), evs, cases, s))
		return tu
	}
	category := func(tu *tuner) (n int) {
		for _, row := range tu.stream {
			for _, x := range row {
				if x.category > 0 {
					n++
				}
			}
		}
		return n
	}
	items := categorised(evs, 4)
	with := read(items)
	assert.Positive(t, category(with), "the category source read the catalogue")
	require.NotNil(t, with.primary)
	primary := func(k int) int32 { i, _ := fit.Index(items[k].ID); return with.primary[i] }
	assert.Equal(t, primary(0), primary(4), "diversification groups by the first category")
	assert.NotEqual(t, primary(0), primary(1))
	without := read(nil)
	assert.Zero(t, category(without))
	assert.Nil(t, without.primary)
}

// chain builds a tuner over one hand-made component: every validation user
// had "a" last, the component scores x0 > x1 > … > x9 > y after it, and
// each user's held-out item is target. x0..x9 share a category; y has its
// own.
func chain(t *testing.T, users int, target string) *tuner {
	t.Helper()
	var evs []event.Interaction
	for u := range users {
		user := fmt.Sprint("u", u)
		for i, it := range []string{fmt.Sprint("f", u), "a", target} {
			evs = append(evs, event.Interaction{User: user, Item: it, TS: int64(i)})
		}
	}
	for i := range 10 { // every item is in the corpus
		evs = append(evs, event.Interaction{User: "z", Item: fmt.Sprint("x", i), TS: int64(i)})
	}
	evs = append(evs, event.Interaction{User: "z", Item: "y", TS: 10})
	full := NewCorpus(evs)
	fit, cases := holdOut(full, ValidateLast)
	var valid []validation
	for _, c := range cases {
		if full.Users[c.user] != "z" {
			valid = append(valid, c)
		}
	}
	n := len(full.Items)
	offsets := make([]uint32, n+1)
	var nbrs []int32
	var ws []float32
	a, _ := full.Index("a")
	for i := range n {
		if int32(i) == a {
			for k := range 10 {
				j, _ := full.Index(fmt.Sprint("x", k))
				nbrs, ws = append(nbrs, j), append(ws, 1-0.01*float32(k))
			}
			y, _ := full.Index("y")
			nbrs, ws = append(nbrs, y), append(ws, 0.9)
		}
		offsets[i+1] = uint32(len(nbrs))
	}
	tab, err := model.NewItemItem(full.Items, offsets, nbrs, ws)
	require.NoError(t, err)
	tu := newTuner(fit, valid, []model.Component{{Name: "transition", Table: tab, History: 10, Decay: 1, Weight: 1}})
	tu.tuneCategories = true
	var items []event.Item
	for k := range 10 {
		items = append(items, event.Item{ID: fmt.Sprint("x", k), Categories: []string{"xs"}})
	}
	tu.setCategories(append(items, event.Item{ID: "y", Categories: []string{"ys"}}))
	return tu
}

func TestTunerChoosesDiversity(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target string
		want   func(t *testing.T, d float64)
		before float64 // the best single source's NDCG@10
	}{
		// y ranks 11th by score: only diversification lifts it into the list.
		{"diversity helps", "y", func(t *testing.T, d float64) { assert.Positive(t, d) }, 0},
		// x9 ranks 10th: diversification lets y push it out.
		{"diversity hurts", "x9", func(t *testing.T, d float64) { assert.Zero(t, d) }, 1 / math.Log2(11)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tu := chain(t, 20, tc.target)
			b, results, _ := tu.tune(context.Background())
			tc.want(t, b.diversity)
			require.Len(t, results, 2)
			assert.InDelta(t, tc.before, results[0].NDCG10, 1e-9)
			assert.GreaterOrEqual(t, results[1].NDCG10, results[0].NDCG10, "never below the best single source")
			if tc.name == "diversity helps" {
				assert.Positive(t, results[1].NDCG10)
			}

			tu.tuneCategories = false // the configured diversity (0.1) stands
			b, _, _ = tu.tune(context.Background())
			assert.Equal(t, recommend.DefaultConfig().Diversity, b.diversity)
		})
	}
}

// With the catalogue's categories, the blend scores at least what it
// scores without them on validation, and the category settings it chose
// are stored with the set; without categories none are.
func TestTrainWithCategoriesNeverWorseOnValidation(t *testing.T) {
	evs := randomLog(300, 60, 8, 7)
	stream := &Stream{Features: features.DefaultConfig(), Recommend: recommend.DefaultConfig()}
	without, err := Train(context.Background(), evs, DefaultConfig(), stream)
	require.NoError(t, err)
	assert.Nil(t, without.Set.Tuned)
	items := categorised(evs, 5)
	withStream := *stream
	withStream.Items = func() []event.Item { return items }
	with, err := Train(context.Background(), evs, DefaultConfig(), &withStream)
	require.NoError(t, err)
	require.NotNil(t, with.Set.Tuned)
	last := func(r *Result) SourceResult { return r.Validation[len(r.Validation)-1] }
	assert.GreaterOrEqual(t, last(with).NDCG10, last(without).NDCG10)
	for _, v := range with.Validation {
		assert.GreaterOrEqual(t, last(with).NDCG10, v.NDCG10, v.Source)
	}
}
