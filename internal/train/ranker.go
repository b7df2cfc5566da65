package train

import (
	"cmp"
	"math"
	"slices"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/stat"

	"github.com/ripple-rec/ripple/internal/feedback"
	"github.com/ripple-rec/ripple/internal/model"
)

// RankerConfig sets how the learned ranker is trained from logged served
// lists (feedback.Example).
type RankerConfig struct {
	// MinLists is the fewest engaged lists it trains on; below it no ranker
	// is learnt.
	MinLists int `yaml:"min_lists"`
	// Validation is the share of the newest lists held out to decide
	// whether the ranker serves.
	Validation float64 `yaml:"validation"`
	// L2 is the weight decay.
	L2 float64 `yaml:"l2"`
	// Iterations bounds the Newton steps (it stops earlier once the loss
	// stops falling).
	Iterations int `yaml:"iterations"`
	// Replay also learns a ranker offline, without any logged list: each
	// validation user is served, through the pipeline, at the feature
	// state and with the models as they were before their held-out event
	// (point-in-time), and the held-out item is the engaged one. It serves
	// until logged lists train one that earns its place.
	Replay bool `yaml:"replay"`
	// ReplayDepth is the length of each replayed list.
	ReplayDepth int `yaml:"replay_depth"`
}

// DefaultRankerConfig: 200 lists, the newest 20% held out.
func DefaultRankerConfig() RankerConfig {
	return RankerConfig{MinLists: 200, Validation: 0.2, L2: 1e-3, Iterations: 30, Replay: true, ReplayDepth: 20}
}

// RankerReport is what training the ranker found.
type RankerReport struct {
	Lists      int `json:"lists"`
	Train      int `json:"train_lists"`
	Validation int `json:"validation_lists"`
	Pairs      int `json:"pairs"`
	// Skipped counts example lines that did not decode.
	Skipped int `json:"skipped,omitempty"`
	// OtherModel counts lists left out because another kind of model
	// served them (the streaming model's, when a blend will serve).
	OtherModel int `json:"other_model_lists,omitempty"`
	// Propensity is the estimated examination probability per position
	// (1-based index + 1), relative to position 1.
	Propensity []float64 `json:"propensity,omitempty"`
	// Scores are each ordering's counterfactual DCG@10 on the validation
	// lists: "served" (the order shown), each feature alone, "pairwise".
	Scores []RankerScore `json:"scores,omitempty"`
	// Chosen is what reorders the blend from now on: "pairwise", a single
	// feature that beat it, or "" when the served order stays.
	Chosen string `json:"chosen"`
	Reason string `json:"reason"`
}

// RankerScore is one ordering's validation score.
type RankerScore struct {
	Ranking string  `json:"ranking"`
	DCG10   float64 `json:"ips_dcg@10"`
	// BeatsServed: it beats the served order by more than three standard
	// errors of the per-list difference, the bar for serving.
	BeatsServed bool `json:"beats_served,omitempty"`
}

// maxPairs bounds the training pairs (the newest are kept).
const maxPairs = 2_000_000

// TrainRanker learns a linear ranker over the served feature vectors from
// engaged lists: pairwise logistic loss (a more engaged item should score
// above a less engaged one shown in the same list), each pair weighed by
// the inverse of the examination propensity of the engaged item's
// position, so items users did not look at do not count as rejected. The
// newest lists are held out: the ranker is returned only when its
// counterfactual DCG@10 there beats the served order and every single
// feature; otherwise the best of those is (a single feature, as a ranker
// weighing only it) or nothing (the served order stays), and the report
// says which and why.
func TrainRanker(exs []feedback.Example, cfg RankerConfig) (*model.Ranker, RankerReport) {
	return trainRanker(exs, cfg, true)
}

// trainRanker is TrainRanker; without positionBias every position counts
// as examined (replayed lists: the label is what the user did next, not a
// click on what was shown).
func trainRanker(exs []feedback.Example, cfg RankerConfig, positionBias bool) (*model.Ranker, RankerReport) {
	rep := RankerReport{Lists: len(exs)}
	if cfg.MinLists <= 0 {
		cfg = DefaultRankerConfig()
	}
	if len(exs) < cfg.MinLists {
		rep.Reason = "too few engaged lists logged to learn from"
		return nil, rep
	}
	exs = slices.Clone(exs)
	slices.SortStableFunc(exs, func(a, b feedback.Example) int { return cmp.Compare(a.At, b.At) })
	nv := max(1, int(float64(len(exs))*cfg.Validation))
	fit, valid := exs[:len(exs)-nv], exs[len(exs)-nv:]
	rep.Train, rep.Validation = len(fit), len(valid)
	var prop []float64
	if positionBias {
		prop = propensities(fit)
		rep.Propensity = prop
	}

	r := &model.Ranker{Features: slices.Clone(model.RankFeatures), Source: "pairwise"}
	r.Mean, r.Scale = standardise(fit)
	r.Weights, rep.Pairs = fitPairwise(fit, prop, r, cfg)

	orders := []func(s *feedback.Shown, pos int) float64{func(_ *feedback.Shown, pos int) float64 { return -float64(pos) }}
	names := []string{"served"}
	for f, name := range model.RankFeatures {
		orders = append(orders, func(s *feedback.Shown, _ int) float64 { return s.X[f] })
		names = append(names, name)
	}
	orders = append(orders, func(s *feedback.Shown, _ int) float64 { return r.Score(&s.X) })
	names = append(names, "pairwise")
	per := make([][]float64, len(orders))
	for i, o := range orders {
		per[i] = counterfactualDCG(valid, prop, o)
		rep.Scores = append(rep.Scores, RankerScore{Ranking: names[i], DCG10: floats.Sum(per[i]) / float64(len(valid)),
			BeatsServed: i > 0 && clearlyBetter(per[i], per[0])})
	}
	// The best ordering serves if it beats the served order by more than
	// three standard errors of the per-list difference: on a few lists, a
	// small lead is noise, and a ranker that changes what serves on noise
	// is worse than none.
	best := 0
	for i := 1; i < len(per); i++ {
		if rep.Scores[i].DCG10 > rep.Scores[best].DCG10 {
			best = i
		}
	}
	switch {
	case best == 0:
		rep.Reason = "the served order is at least as good as the learned ranker and every single feature on validation"
		return nil, rep
	case !rep.Scores[best].BeatsServed:
		rep.Reason = rep.Scores[best].Ranking + " scores best on validation, but not by more than three standard errors over the served order"
		return nil, rep
	case best == len(per)-1:
		rep.Chosen, rep.Reason = "pairwise", "the learned ranker beats every single feature, and the served order clearly, on validation"
		return r, rep
	}
	// A single feature beat the learned weights, and the served order
	// clearly: serve by it alone, and say so.
	f := best - 1
	one := &model.Ranker{Features: slices.Clone(model.RankFeatures), Mean: make([]float64, model.NumRankFeatures),
		Scale: slices.Repeat([]float64{1}, model.NumRankFeatures), Weights: make([]float64, model.NumRankFeatures),
		Source: model.RankFeatures[f]}
	one.Weights[f] = 1
	rep.Chosen = one.Source
	rep.Reason = "the learned ranker did not beat " + one.Source + " alone on validation: serving falls back to it"
	return one, rep
}

// clearlyBetter reports whether a's per-list scores beat b's on average by
// more than three standard errors of the paired differences: seven
// orderings are each compared with the served one, and a lower bar would
// switch on noise too often.
func clearlyBetter(a, b []float64) bool {
	n := float64(len(a))
	if n < 2 {
		return false
	}
	d := make([]float64, len(a))
	floats.SubTo(d, a, b)
	mean, std := stat.MeanStdDev(d, nil)
	return mean > 3*std/math.Sqrt(n)
}

// maxPosition is the deepest position estimated separately; deeper ones
// share its propensity.
const maxPosition = 50

// minShown is how many lists must reach a position for its propensity to
// be estimated; shallower evidence keeps the previous position's.
const minShown = 20

// propensities estimates each position's examination probability relative
// to position 1 by the ratio of engagement rates (the estimator the
// feedback report uses), made non-increasing and clipped at 0.05 so no
// pair weighs more than 20 times another.
func propensities(exs []feedback.Example) []float64 {
	var shown, engaged [maxPosition]float64
	for i := range exs {
		for p, s := range exs[i].Items {
			p = min(p, maxPosition-1)
			shown[p]++
			if s.Label > 0 {
				engaged[p]++
			}
		}
	}
	out := make([]float64, 0, maxPosition)
	base := 0.0
	if shown[0] > 0 {
		base = engaged[0] / shown[0]
	}
	prev := 1.0
	for p := range maxPosition {
		if shown[p] == 0 {
			break
		}
		v := prev
		if p > 0 && shown[p] >= minShown && base > 0 {
			v = min(prev, max(engaged[p]/shown[p]/base, 0.05))
		}
		out = append(out, v)
		prev = v
	}
	return out
}

func propensity(prop []float64, pos int) float64 {
	if len(prop) == 0 {
		return 1
	}
	return prop[min(pos, len(prop)-1)]
}

// standardise returns each feature's mean and standard deviation over the
// shown items (1 where a feature does not vary).
func standardise(exs []feedback.Example) (mean, scale []float64) {
	mean, scale = make([]float64, model.NumRankFeatures), make([]float64, model.NumRankFeatures)
	n := 0.0
	for i := range exs {
		for _, s := range exs[i].Items {
			n++
			for f, v := range s.X {
				mean[f] += v
			}
		}
	}
	for f := range mean {
		mean[f] /= max(n, 1)
	}
	for i := range exs {
		for _, s := range exs[i].Items {
			for f, v := range s.X {
				scale[f] += (v - mean[f]) * (v - mean[f])
			}
		}
	}
	for f := range scale {
		scale[f] = math.Sqrt(scale[f] / max(n, 1))
		if !(scale[f] > 1e-12) || math.IsInf(scale[f], 0) {
			scale[f] = 1
		}
	}
	return mean, scale
}

// pair is a standardised feature difference (more engaged minus less) and
// its weight: base (label difference over propensity) times, after the
// first fit, how much swapping the two would change the list's DCG.
type pair struct {
	d       [model.NumRankFeatures]float64
	w, base float64
	k, i, j int32 // list, more and less engaged item
}

// lambdaRounds are the refits with LambdaRank weights after the plain
// pairwise fit.
const lambdaRounds = 2

// fitPairwise minimises Σ w·log(1+exp(−v·d))/Σw + L2·|v|² over the pairs
// of every list: first with each pair weighed by its label difference over
// the propensity of the engaged position, then, lambdaRounds times, with
// that weight times |ΔDCG@10| of swapping the pair under the current
// weights (LambdaRank), so the top of the list counts most, as in the
// metric the ranker is judged by.
func fitPairwise(exs []feedback.Example, prop []float64, r *model.Ranker, cfg RankerConfig) ([]float64, int) {
	var pairs []pair
	for k := len(exs) - 1; k >= 0 && len(pairs) < maxPairs; k-- { // newest first
		items := exs[k].Items
		for i := range items {
			if items[i].Label <= 0 {
				continue
			}
			w := (items[i].Label) / propensity(prop, i)
			for j := range items {
				if items[j].Label >= items[i].Label {
					continue
				}
				p := pair{k: int32(k), i: int32(i), j: int32(j)}
				for f := range p.d {
					p.d[f] = (items[i].X[f] - items[j].X[f]) / r.Scale[f]
				}
				p.base = w * (items[i].Label - items[j].Label) / items[i].Label
				p.w = p.base
				pairs = append(pairs, p)
			}
		}
	}
	v := make([]float64, model.NumRankFeatures)
	if len(pairs) == 0 {
		return v, 0
	}
	v = newton(pairs, v, cfg)
	rank := make([][]int32, len(exs)) // per list, each item's rank under v
	for range lambdaRounds {
		for k := range exs {
			rank[k] = ranks(exs[k].Items, v, r.Scale, rank[k])
		}
		for n := range pairs {
			p := &pairs[n]
			li, lj := exs[p.k].Items[p.i].Label, exs[p.k].Items[p.j].Label
			ri, rj := rank[p.k][p.i], rank[p.k][p.j]
			p.w = p.base * (math.Exp2(li) - math.Exp2(lj)) * math.Abs(discount(ri)-discount(rj))
		}
		v = newton(pairs, v, cfg)
	}
	return v, len(pairs)
}

// discount is DCG@10's position discount at 0-based rank r.
func discount(r int32) float64 {
	if r >= 10 {
		return 0
	}
	return 1 / math.Log2(float64(r)+2)
}

// ranks fills out (reused when long enough) with each item's 0-based rank
// when ordered by v over the scaled features.
func ranks(items []feedback.Shown, v, scale []float64, out []int32) []int32 {
	order := make([]int, len(items))
	score := make([]float64, len(items))
	for i := range items {
		order[i] = i
		for f, x := range items[i].X {
			score[i] += v[f] * x / scale[f]
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(score[b], score[a]) })
	if cap(out) < len(items) {
		out = make([]int32, len(items))
	}
	out = out[:len(items)]
	for r, i := range order {
		out[i] = int32(r)
	}
	return out
}

// newton minimises the weighted pairwise logistic loss from v.
func newton(pairs []pair, v []float64, cfg RankerConfig) []float64 {
	total := 0.0
	for _, p := range pairs {
		total += p.w
	}
	if total <= 0 {
		return v
	}
	loss := func(v []float64) float64 {
		l := 0.0
		for _, p := range pairs {
			l += p.w * softplus(-dot(v, &p.d))
		}
		return l/total + cfg.L2*dot(v, (*[model.NumRankFeatures]float64)(v))
	}
	// Newton's method: the problem is convex and has NumRankFeatures
	// unknowns, so each step solves a tiny system exactly; step halving
	// keeps every step downhill.
	cur := loss(v)
	for range max(cfg.Iterations, 1) {
		var grad [model.NumRankFeatures]float64
		var hess [model.NumRankFeatures][model.NumRankFeatures]float64
		for _, p := range pairs {
			m := dot(v, &p.d)
			sig := 1 / (1 + math.Exp(m)) // σ(−m)
			g, h := p.w*sig, p.w*sig*(1-sig)
			for a, da := range p.d {
				grad[a] -= g * da
				for c := a; c < model.NumRankFeatures; c++ {
					hess[a][c] += h * da * p.d[c]
				}
			}
		}
		for a := range grad {
			grad[a] = grad[a]/total + 2*cfg.L2*v[a]
			for c := a; c < model.NumRankFeatures; c++ {
				hess[a][c] /= total
				hess[c][a] = hess[a][c]
			}
			hess[a][a] += 2*cfg.L2 + 1e-9
		}
		step, ok := solve(hess, grad)
		if !ok {
			break
		}
		next := make([]float64, len(v))
		improved := false
		for t := 1.0; t > 1e-4; t /= 2 {
			for a := range v {
				next[a] = v[a] - t*step[a]
			}
			if l := loss(next); l < cur {
				improved = cur-l > 1e-10*max(1, math.Abs(cur))
				v, cur = next, l
				break
			}
		}
		if !improved {
			break
		}
	}
	return v
}

func dot(v []float64, d *[model.NumRankFeatures]float64) float64 {
	m := 0.0
	for f, x := range d {
		m += v[f] * x
	}
	return m
}

// softplus is log(1+exp(x)) without overflow.
func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}

// solve solves a·x = b by Gaussian elimination with partial pivoting,
// reporting false for a singular a.
func solve(a [model.NumRankFeatures][model.NumRankFeatures]float64, b [model.NumRankFeatures]float64) ([]float64, bool) {
	const n = model.NumRankFeatures
	for c := range n {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		if math.Abs(a[p][c]) < 1e-15 {
			return nil, false
		}
		a[c], a[p] = a[p], a[c]
		b[c], b[p] = b[p], b[c]
		for r := c + 1; r < n; r++ {
			f := a[r][c] / a[c][c]
			for k := c; k < n; k++ {
				a[r][k] -= f * a[c][k]
			}
			b[r] -= f * b[c]
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := b[r]
		for k := r + 1; k < n; k++ {
			s -= a[r][k] * x[k]
		}
		x[r] = s / a[r][r]
	}
	return x, true
}

// counterfactualDCG is, per list, the DCG@10 of reordering each list's shown
// items by score (ties keep the served order), each engagement's gain
// divided by the propensity of the position it was engaged at: under the
// position-based model, an unbiased estimate of how the reordering would
// have done. (Normalising per list by the list's own ideal would cancel
// the propensity in a list with one engagement and favour the served
// order.)
func counterfactualDCG(exs []feedback.Example, prop []float64, score func(s *feedback.Shown, pos int) float64) []float64 {
	out := make([]float64, len(exs))
	var order []int
	for k := range exs {
		items := exs[k].Items
		order = order[:0]
		for i := range items {
			order = append(order, i)
		}
		slices.SortStableFunc(order, func(a, b int) int {
			return cmp.Compare(score(&items[b], b), score(&items[a], a))
		})
		for rank, i := range order[:min(10, len(order))] {
			if l := items[i].Label; l > 0 {
				out[k] += (math.Exp2(l) - 1) / propensity(prop, i) / math.Log2(float64(rank)+2)
			}
		}
	}
	return out
}
