package train

import (
	"context"
	"math"
	"slices"

	"github.com/ripple-rec/ripple/internal/model"
)

// tuner scores blends on validation cases through the same Set.Score the
// server uses, under the evaluation protocol: full ranking, history
// excluded, ties counted against the target.
type tuner struct {
	fit   *Corpus
	cases []validation
	comps []model.Component
	hist  [][]string // per case, the user's history newest first
}

func newTuner(fit *Corpus, cases []validation, comps []model.Component) *tuner {
	t := &tuner{fit: fit, cases: cases, comps: comps, hist: make([][]string, len(cases))}
	for k, c := range cases {
		seq := fit.Seqs[c.user]
		h := make([]string, 0, len(seq))
		for i := len(seq) - 1; i >= 0; i-- {
			h = append(h, fit.Items[seq[i]])
		}
		t.hist[k] = h
	}
	return t
}

var (
	decayGrid  = []float64{0.3, 0.5, 0.7, 0.85, 0.95, 1}
	weightGrid = []float64{0, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100}
)

// tune picks each component's best decay alone, then blend weights by
// coordinate ascent from the best single component, so the blend's
// validation score is never below the best single source's. It returns the
// components with Decay and Weight set, the scores, and what serves.
func (t *tuner) tune(ctx context.Context) ([]model.Component, []SourceResult, string) {
	comps := slices.Clone(t.comps)
	var results []SourceResult
	best, bestScore := -1, -1.0
	for i := range comps {
		var r SourceResult
		for _, d := range decayGrid {
			one := []model.Component{comps[i]}
			one[0].Decay, one[0].Weight = d, 1
			ndcg, hr := t.score(one)
			if ndcg > r.NDCG10 || r.Source == "" {
				r = SourceResult{Source: comps[i].Name, Decay: d, NDCG10: ndcg, HR10: hr}
			}
			if ctx.Err() != nil {
				return comps, results, ""
			}
		}
		comps[i].Decay = r.Decay
		results = append(results, r)
		if r.NDCG10 > bestScore {
			best, bestScore = i, r.NDCG10
		}
	}
	for i := range comps {
		comps[i].Weight = 0
	}
	if best < 0 {
		return comps, results, ""
	}
	comps[best].Weight = 1
	cur := bestScore
	curHR := results[best].HR10
	for pass := 0; pass < 2; pass++ {
		improved := false
		for i := range comps {
			if i == best {
				continue
			}
			for _, w := range weightGrid {
				if w == comps[i].Weight {
					continue
				}
				try := slices.Clone(comps)
				try[i].Weight = w
				if ndcg, hr := t.score(try); ndcg > cur+1e-6 {
					comps, cur, curHR, improved = try, ndcg, hr, true
				}
				if ctx.Err() != nil {
					return comps, results, ""
				}
			}
			if comps[i].Weight == 0 {
				continue
			}
			for _, d := range decayGrid {
				try := slices.Clone(comps)
				try[i].Decay = d
				if ndcg, hr := t.score(try); ndcg > cur+1e-6 {
					comps, cur, curHR, improved = try, ndcg, hr, true
				}
			}
		}
		if !improved {
			break
		}
	}
	results = append(results, SourceResult{Source: "blend", NDCG10: cur, HR10: curHR})
	serving := "blend"
	if cur < bestScore {
		// Cannot happen with ascent from the best single source; kept as
		// the guard the serving contract promises.
		for i := range comps {
			comps[i].Weight = 0
		}
		comps[best].Weight = 1
		serving = comps[best].Name
	} else if n := countWeighted(comps); n == 1 {
		serving = comps[best].Name
	}
	return comps, results, serving
}

func countWeighted(comps []model.Component) int {
	n := 0
	for _, c := range comps {
		if c.Weight > 0 {
			n++
		}
	}
	return n
}

// score is NDCG@10 and HR@10 of a blend over the cases.
func (t *tuner) score(comps []model.Component) (ndcg, hr float64) {
	s := model.NewSet("", t.fit.Items, comps)
	seen := map[int32]struct{}{}
	for k, c := range t.cases {
		clear(seen)
		for _, it := range t.fit.Seqs[c.user] {
			seen[it] = struct{}{}
		}
		sc := s.Score(t.hist[k])
		if _, hist := seen[c.target]; !hist {
			if rank := rankOf(sc, c.target, seen); rank > 0 && rank <= 10 {
				hr++
				ndcg += 1 / math.Log2(float64(rank)+1)
			}
		}
		sc.Release()
	}
	n := float64(max(1, len(t.cases)))
	return ndcg / n, hr / n
}

// rankOf is the target's rank among items outside seen, ties against it:
// one pass over the touched items, no sort.
func rankOf(sc *model.Scores, target int32, seen map[int32]struct{}) int {
	tw := sc.W[target]
	if tw <= 0 {
		return 0
	}
	rank := 1
	for _, j := range sc.Touched {
		if j == target {
			continue
		}
		if _, ok := seen[j]; ok {
			continue
		}
		if sc.W[j] >= tw {
			rank++
			if rank > 10 {
				return rank
			}
		}
	}
	return rank
}
