package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/feedback"
	"github.com/ripple-rec/ripple/internal/model"
)

// simulate serves n lists of k items ordered by the covisitation feature
// plus noise and clicks them under a position-based model: position p is
// looked at with probability 1/p, and a looked-at item is clicked with
// probability sigmoid(relevance), relevance given by truth over the
// features. Only engaged lists are returned, as the tracker logs them.
func simulate(seed uint64, n, k int, truth [model.NumRankFeatures]float64) []feedback.Example {
	r := rand.New(rand.NewPCG(seed, 1))
	var out []feedback.Example
	for l := range n {
		items := make([]feedback.Shown, k)
		for i := range items {
			for f := range items[i].X {
				items[i].X[f] = r.Float64()
			}
		}
		// Served by covisitation, with noise: what the blend would do.
		slices.SortFunc(items, func(a, b feedback.Shown) int {
			return cmpFloat(b.X[1]+0.3*r.Float64(), a.X[1]+0.3*r.Float64())
		})
		engaged := false
		for p := range items {
			if r.Float64() > 1/float64(p+1) {
				continue
			}
			rel := -2.0
			for f, w := range truth {
				rel += w * items[p].X[f]
			}
			if r.Float64() < 1/(1+math.Exp(-rel)) {
				items[p].Label = 1
				engaged = true
			}
		}
		if engaged {
			out = append(out, feedback.Example{At: int64(l), Model: "blend@1", Items: items})
		}
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func scoreOf(rep RankerReport, name string) float64 {
	for _, s := range rep.Scores {
		if s.Ranking == name {
			return s.DCG10
		}
	}
	return math.NaN()
}

func TestRankerLearnsWhatServedOrderMisses(t *testing.T) {
	// Engagement follows the ctr feature and popularity, which the served
	// order (covisitation) ignores.
	truth := [model.NumRankFeatures]float64{0, 0, 0, 1.5, 0, 3}
	exs := simulate(1, 6000, 10, truth)
	r, rep := TrainRanker(exs, DefaultRankerConfig())
	require.NotNil(t, r, rep.Reason)
	assert.Equal(t, "pairwise", rep.Chosen, rep.Reason)
	require.NoError(t, r.Valid())
	assert.Greater(t, scoreOf(rep, "pairwise"), scoreOf(rep, "served")+0.05)
	assert.Greater(t, scoreOf(rep, "pairwise"), scoreOf(rep, "ctr"))
	// The learnt weights put ctr first, popularity second, and nothing
	// much on the rest.
	w := r.Weights
	assert.Greater(t, w[5], w[3])
	assert.Greater(t, w[3], math.Abs(w[1]))
	for _, f := range []int{0, 2, 4} {
		assert.Less(t, math.Abs(w[f]), w[3]/2, "feature %s", model.RankFeatures[f])
	}
	// Position bias: clicks fall with the position more steeply than
	// relevance does, and the propensity estimate sees it.
	require.GreaterOrEqual(t, len(rep.Propensity), 10)
	assert.Equal(t, 1.0, rep.Propensity[0])
	assert.Less(t, rep.Propensity[9], 0.4)
	assert.True(t, slices.IsSortedFunc(rep.Propensity, func(a, b float64) int { return cmpFloat(b, a) }))
}

func TestRankerNeverServesWorseThanTheServedOrderOrOneFeature(t *testing.T) {
	for _, c := range []struct {
		name  string
		truth [model.NumRankFeatures]float64
	}{
		{"served order is right", [model.NumRankFeatures]float64{0, 4, 0, 0, 0, 0}},
		{"one feature is everything", [model.NumRankFeatures]float64{0, 0, 0, 0, 6, 0}},
		{"noise", [model.NumRankFeatures]float64{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			exs := simulate(7, 3000, 8, c.truth)
			r, rep := TrainRanker(exs, DefaultRankerConfig())
			served := scoreOf(rep, "served")
			switch rep.Chosen {
			case "":
				assert.Nil(t, r)
				best := rep.Scores[0]
				for _, s := range rep.Scores {
					if s.DCG10 > best.DCG10 {
						best = s
					}
				}
				assert.False(t, best.BeatsServed, "the best, %s, clearly beats the served order that was kept", best.Ranking)
			default:
				require.NotNil(t, r)
				assert.Equal(t, rep.Chosen, r.Source)
				chosen := scoreOf(rep, rep.Chosen)
				assert.Greater(t, chosen, served)
				for _, s := range rep.Scores {
					if s.Ranking == rep.Chosen {
						assert.True(t, s.BeatsServed)
					}
					assert.LessOrEqual(t, s.DCG10, chosen, "%s beats the chosen %s", s.Ranking, rep.Chosen)
				}
				if rep.Chosen != "pairwise" {
					assert.Contains(t, rep.Reason, "falls back to "+rep.Chosen)
					f := slices.Index(model.RankFeatures, rep.Chosen)
					x := [model.NumRankFeatures]float64{}
					x[f] = 0.7
					assert.InDelta(t, 0.7, r.Score(&x), 1e-12, "the fallback ranks by the feature alone")
				}
			}
			assert.Positive(t, served)
		})
	}
}

func TestRankerNeedsEnoughLists(t *testing.T) {
	exs := simulate(3, 100, 10, [model.NumRankFeatures]float64{0, 0, 0, 0, 0, 3})
	cfg := DefaultRankerConfig()
	require.Less(t, len(exs), cfg.MinLists)
	r, rep := TrainRanker(exs, cfg)
	assert.Nil(t, r)
	assert.Empty(t, rep.Chosen)
	assert.Equal(t, len(exs), rep.Lists)
	assert.Contains(t, rep.Reason, "too few")
}

func TestRankerConfigValidated(t *testing.T) {
	for _, bad := range []RankerConfig{
		{MinLists: 0, Validation: 0.2, Iterations: 10},
		{MinLists: 10, Validation: 0, Iterations: 10},
		{MinLists: 10, Validation: 1, Iterations: 10},
		{MinLists: 10, Validation: 0.2, Iterations: 0},
		{MinLists: 10, Validation: 0.2, Iterations: 10, L2: math.NaN()},
	} {
		cfg := DefaultConfig()
		cfg.Ranker = bad
		assert.Error(t, cfg.Validate(), "%+v", bad)
	}
	assert.NoError(t, DefaultConfig().Validate())
}

// BenchmarkTrainRanker is a training run over 50,000 served lists of 10.
func BenchmarkTrainRanker(b *testing.B) {
	exs := simulate(5, 90_000, 10, [model.NumRankFeatures]float64{0, 1, 0, 1.5, 0, 3})
	exs = exs[:min(len(exs), 50_000)]
	var pairs int
	for b.Loop() {
		_, rep := TrainRanker(exs, DefaultRankerConfig())
		pairs = rep.Pairs
	}
	b.ReportMetric(float64(len(exs)), "lists")
	b.ReportMetric(float64(pairs), "pairs")
}

// TestRankerIgnoresNoise: when engagement does not depend on any feature,
// no ordering clearly beats the served one, so nothing changes.
func TestRankerIgnoresNoise(t *testing.T) {
	for seed := range uint64(5) {
		exs := simulate(100+seed, 3000, 8, [model.NumRankFeatures]float64{})
		r, rep := TrainRanker(exs, DefaultRankerConfig())
		assert.Nil(t, r, "seed %d: %s chosen: %+v", seed, rep.Chosen, rep.Scores)
	}
}
