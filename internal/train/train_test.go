package train

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/mat"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/model"
)

func seqs(users ...string) []event.Interaction {
	var evs []event.Interaction
	for u, s := range users {
		for i, it := range s {
			evs = append(evs, event.Interaction{User: fmt.Sprint("u", u), Item: string(it), TS: int64(i)})
		}
	}
	return evs
}

func weight(t *testing.T, m *model.ItemItem, from, to string) float64 {
	t.Helper()
	i, ok := m.Index(from)
	require.True(t, ok)
	nbrs, ws := m.Row(i)
	for k, j := range nbrs {
		if m.Items[j] == to {
			return float64(ws[k])
		}
	}
	return 0
}

func TestCorpusOrdersByTimeStably(t *testing.T) {
	c := NewCorpus([]event.Interaction{
		{User: "u", Item: "b", TS: 2}, {User: "u", Item: "a", TS: 1}, {User: "u", Item: "c", TS: 2},
	})
	got := ""
	for _, i := range c.Seqs[0] {
		got += c.Items[i]
	}
	assert.Equal(t, "abc", got)
}

func TestTransitionHandComputed(t *testing.T) {
	// u0: a b c. Window 2, decay 0.5, backward 0.5, no popularity penalty.
	// a: →b 1, →c 0.5 → normalised 2/3, 1/3.
	// b: →c 1, ←a 0.5 → 2/3, 1/3.
	c := NewCorpus(seqs("abc"))
	m, err := Transition(c, TransitionParams{Window: 2, Decay: 0.5, Backward: 0.5, TopN: 10})
	require.NoError(t, err)
	assert.InDelta(t, 2.0/3, weight(t, m, "a", "b"), 1e-6)
	assert.InDelta(t, 1.0/3, weight(t, m, "a", "c"), 1e-6)
	assert.InDelta(t, 2.0/3, weight(t, m, "b", "c"), 1e-6)
	assert.InDelta(t, 1.0/3, weight(t, m, "b", "a"), 1e-6)
	assert.Zero(t, weight(t, m, "a", "a"), "no self loops")
}

func TestKNNCosine(t *testing.T) {
	// a and b always together; c with a once.
	c := NewCorpus(seqs("ab", "ab", "ac"))
	m, err := KNN(c, KNNParams{MaxHistory: 10, TopN: 10})
	require.NoError(t, err)
	assert.InDelta(t, 1, weight(t, m, "b", "a")/weight(t, m, "a", "b"), 1e-6, "cosine is symmetric")
	assert.Greater(t, weight(t, m, "a", "b"), weight(t, m, "a", "c"))
}

func TestEASEMatchesDirectInverse(t *testing.T) {
	evs := seqs("abc", "abd", "bcd", "acd", "ab")
	c := NewCorpus(evs)
	lambda := 0.5
	m, err := EASE(c, EASEParams{Lambda: lambda, MaxItems: 10, TopN: 10})
	require.NoError(t, err)
	n := len(c.Items)
	x := mat.NewDense(len(c.Seqs), n, nil)
	for u, s := range c.Seqs {
		for _, i := range s {
			x.Set(u, int(i), 1)
		}
	}
	var g mat.Dense
	g.Mul(x.T(), x)
	for i := range n {
		g.Set(i, i, g.At(i, i)+lambda)
	}
	var p mat.Dense
	require.NoError(t, p.Inverse(&g))
	for i := range n {
		for j := range n {
			want := -p.At(i, j) / p.At(j, j)
			if i == j || want <= 0 {
				continue
			}
			assert.InDelta(t, want, weight(t, m, c.Items[i], c.Items[j]), 1e-5, "%s→%s", c.Items[i], c.Items[j])
		}
	}
	_, err = EASE(c, EASEParams{Lambda: 1, MaxItems: 2, TopN: 10})
	assert.ErrorIs(t, err, ErrTooLarge)
}

// randomLog has users who walk a chain of items with noise: a sequential
// signal the trainers can learn.
func randomLog(users, items, length int, seed uint64) []event.Interaction {
	r := rand.New(rand.NewPCG(seed, 1))
	var evs []event.Interaction
	for u := range users {
		it := r.IntN(items)
		for i := range length {
			evs = append(evs, event.Interaction{User: fmt.Sprint("u", u), Item: fmt.Sprint("i", it), TS: int64(i)})
			if r.Float64() < 0.7 {
				it = (it + 1) % items
			} else {
				it = r.IntN(items)
			}
		}
	}
	return evs
}

func TestTrainBlendNeverBelowBestSingle(t *testing.T) {
	res, err := Train(context.Background(), randomLog(300, 60, 8, 7), DefaultConfig(), nil)
	require.NoError(t, err)
	require.NotEmpty(t, res.Validation)
	blend := res.Validation[len(res.Validation)-1]
	require.Equal(t, "blend", blend.Source)
	for _, v := range res.Validation[:len(res.Validation)-1] {
		assert.GreaterOrEqual(t, blend.NDCG10, v.NDCG10, v.Source)
	}
	assert.Greater(t, blend.NDCG10, 0.2, "a chain this regular is learnable")
	assert.NotEmpty(t, res.Set.Components)
	for _, c := range res.Set.Components {
		assert.Positive(t, c.Weight)
	}
	assert.Equal(t, 300, res.ValidationUsers)
}

func TestTrainDeterministic(t *testing.T) {
	evs := randomLog(200, 40, 6, 3)
	a, err := Train(context.Background(), evs, DefaultConfig(), nil)
	require.NoError(t, err)
	b, err := Train(context.Background(), evs, DefaultConfig(), nil)
	require.NoError(t, err)
	assert.Equal(t, a.Validation, b.Validation)
	for i := range a.Set.Components {
		assert.Equal(t, a.Set.Components[i].Table.Weights, b.Set.Components[i].Table.Weights)
	}
}

func TestTrainErrors(t *testing.T) {
	_, err := Train(context.Background(), nil, DefaultConfig(), nil)
	assert.ErrorIs(t, err, ErrNoData)
	bad := DefaultConfig()
	bad.Transition.Window = 0
	_, err = Train(context.Background(), seqs("abc"), bad, nil)
	assert.Error(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Train(ctx, randomLog(50, 20, 5, 1), DefaultConfig(), nil)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestRandomValidationHoldsOutOnePerUser(t *testing.T) {
	c := NewCorpus(randomLog(50, 20, 6, 9))
	fit, cases := holdOut(c, ValidateRandom)
	require.Len(t, cases, 50)
	last := 0
	for _, v := range cases {
		require.Len(t, fit.Seqs[v.user], 5)
		assert.Equal(t, c.Items[v.target], c.Items[c.Seqs[v.user][slicesIndex(c.Origin[v.user], v.origin)]])
		if slicesIndex(c.Origin[v.user], v.origin) == 5 {
			last++
		}
	}
	assert.Less(t, last, 25, "not always the last event")
	bad := DefaultConfig()
	bad.Validation = "sometimes"
	assert.Error(t, bad.Validate())
}

func slicesIndex(s []int32, v int32) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
