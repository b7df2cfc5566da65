package model

import (
	"fmt"
	"math"
	"slices"
)

// RankFeatures name, in order, the values a served item's feature vector
// holds: what the pipeline knew about the item when it ranked it. The
// feedback loop logs these vectors with each served list, and the ranker
// is learned from them, so the features it learns from are exactly the
// ones it is later applied to (point-in-time correct by construction).
var RankFeatures = []string{
	"model",             // the trained blend's score (0 when none served)
	"covisitation",      // co-visitation with the user's recent items
	"category_trending", // the user's category affinity × trending in it
	"popularity",        // global trending rank score
	"trend",             // the item's trending log-score, relative to the list's range (0..1)
	"ctr",               // the item's engagement rate in the feedback loop, smoothed
}

// NumRankFeatures is len(RankFeatures).
const NumRankFeatures = 6

// Ranker is a learned linear ranker over RankFeatures: the score of a
// feature vector x is Σ Weights[i]·(x[i]−Mean[i])/Scale[i]. It reorders
// the best Head candidates the blend found; it was trained on served lists,
// so it never ranks items the blend would not have offered.
type Ranker struct {
	Features []string  `json:"features"` // RankFeatures when trained
	Mean     []float64 `json:"mean"`
	Scale    []float64 `json:"scale"`
	Weights  []float64 `json:"weights"`
	// Source names what the weights are: "pairwise" (learned), or the one
	// feature it fell back to because the learned weights did not beat it
	// on validation.
	Source string `json:"source"`
}

// Valid reports whether r can serve: features as this build computes them,
// finite numbers and positive scales.
func (r *Ranker) Valid() error {
	if r == nil {
		return nil
	}
	if !slices.Equal(r.Features, RankFeatures) {
		return fmt.Errorf("ranker features %v, this build computes %v", r.Features, RankFeatures)
	}
	if len(r.Mean) != NumRankFeatures || len(r.Scale) != NumRankFeatures || len(r.Weights) != NumRankFeatures {
		return fmt.Errorf("ranker needs %d means, scales and weights", NumRankFeatures)
	}
	for i := range NumRankFeatures {
		for _, v := range []float64{r.Mean[i], r.Scale[i], r.Weights[i]} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("ranker %s: not a finite number", r.Features[i])
			}
		}
		if r.Scale[i] <= 0 {
			return fmt.Errorf("ranker %s: scale %v not positive", r.Features[i], r.Scale[i])
		}
	}
	return nil
}

// Score is x's ranking score.
func (r *Ranker) Score(x *[NumRankFeatures]float64) float64 {
	s := 0.0
	for i, w := range r.Weights {
		if w != 0 {
			s += w * (x[i] - r.Mean[i]) / r.Scale[i]
		}
	}
	return s
}
