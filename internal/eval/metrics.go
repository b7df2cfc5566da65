package eval

import (
	"math"
	"slices"

	"github.com/ripple-rec/ripple/internal/features"
)

// Cutoffs are the K of HR@K and NDCG@K, as the published tables report them.
var Cutoffs = []int{5, 10, 20}

// CoverageK is the list length catalogue coverage is measured on.
const CoverageK = 10

// Depth is how many items each model is asked for per user: the largest
// cutoff plus a margin. The margin is what makes tie handling exact: scores
// come best first, so if items tied with the target ran on past the end of
// the list, every listed item would score at least the target's and its
// counted rank would already be Depth, beyond every cutoff. A target
// counted within a cutoff therefore has no hidden tie.
const Depth = 50

// TargetRank is the 1-based rank of target in list, ties counted against
// it: every other item scoring at least as high ranks above it, wherever
// the list placed it. ties is how many other items score exactly the same.
// A target not in the list has rank 0: a miss beyond every cutoff.
func TargetRank(list []features.Scored, target string) (rank, ties int) {
	i := -1
	for j, s := range list {
		if s.ID == target {
			i = j
			break
		}
	}
	if i < 0 {
		return 0, 0
	}
	t := list[i].Score
	rank = 1
	for _, s := range list {
		if s.ID == target {
			continue
		}
		if s.Score >= t {
			rank++
		}
		if s.Score == t {
			ties++
		}
	}
	return rank, ties
}

// TargetRanks is TargetRank for several relevant items: each target's rank
// counts every non-target item scoring at least as high (ties against it)
// and the targets listed before it. Targets not in the list are left out;
// the result is ascending.
func TargetRanks(list []features.Scored, targets map[string]bool) []int {
	var ranks []int
	found := 0
	for _, s := range list {
		if !targets[s.ID] {
			continue
		}
		r := 1 + found
		for _, o := range list {
			if !targets[o.ID] && o.Score >= s.Score {
				r++
			}
		}
		ranks = append(ranks, r)
		found++
	}
	slices.Sort(ranks)
	return ranks
}

// Gain is NDCG's discount for a single relevant item at rank: the ideal DCG
// is 1, so NDCG@K is 1/log2(rank+1) when rank ≤ K and 0 otherwise.
func Gain(rank int) float64 { return 1 / math.Log2(float64(rank)+1) }

// Metrics are one model's scores over the evaluated users.
type Metrics struct {
	Users int   `json:"users"`
	At    []AtK `json:"at"`
	// Coverage is the share of the catalogue that appears in at least one
	// user's top CoverageK.
	Coverage float64 `json:"coverage@10"`
	// Curve is HR@k and NDCG@k for every k from 1 to Depth: the report's
	// plots.
	Curve []AtK `json:"curve,omitempty"`
}

// AtK are the scores at one cutoff. With several relevant items per user
// (the stratified protocol) HR is the share of users with at least one in
// the top K and NDCG divides by the ideal DCG of min(relevant, K) items;
// with one, both reduce to the leave-one-out definitions.
type AtK struct {
	K         int     `json:"k"`
	Hits      int     `json:"hits"`
	HR        float64 `json:"hr"`
	NDCG      float64 `json:"ndcg"`
	Precision float64 `json:"precision"`
	Recall    float64 `json:"recall"`
}

// HR is the hit rate at cutoff k (0 for a cutoff not computed).
func (m *Metrics) HR(k int) float64 { return m.at(k).HR }

// NDCG is the normalised discounted cumulative gain at cutoff k.
func (m *Metrics) NDCG(k int) float64 { return m.at(k).NDCG }

func (m *Metrics) at(k int) AtK {
	for _, a := range m.At {
		if a.K == k {
			return a
		}
	}
	return AtK{K: k}
}

// at scores outs at cutoff k.
func at(outs []outcome, k int) AtK {
	a := AtK{K: k}
	if len(outs) == 0 {
		return a
	}
	var ndcg, prec, rec float64
	for _, o := range outs {
		ranks, n := o.ranks, o.n
		if n == 0 { // one target, known by rank alone
			n, ranks = 1, nil
			if o.rank > 0 {
				ranks = []int{o.rank}
			}
		}
		dcg, in := 0.0, 0
		for _, r := range ranks {
			if r <= k {
				dcg += Gain(r)
				in++
			}
		}
		if in == 0 {
			continue
		}
		a.Hits++
		ideal := 0.0
		for i := 1; i <= min(n, k); i++ {
			ideal += Gain(i)
		}
		ndcg += dcg / ideal
		prec += float64(in) / float64(k)
		rec += float64(in) / float64(n)
	}
	n := float64(len(outs))
	a.HR, a.NDCG, a.Precision, a.Recall = float64(a.Hits)/n, ndcg/n, prec/n, rec/n
	return a
}

// outcome is one model's result for one case.
type outcome struct {
	ranks  []int    // TargetRanks, ascending; with one target, TargetRank
	n      int      // relevant items
	rank   int      // TargetRank; 0: not returned
	ties   int      // other items scoring exactly the target's score
	top    []string // the first CoverageK items
	leaked int      // history items the model returned: always 0 for a correct model
	cold   bool     // the user had at most ColdEvents input events
}

// ColdEvents is the most input events a cold-start user has: the segment
// reported apart, since a model that only serves warm users well fails new
// ones.
const ColdEvents = 2

// score aggregates outcomes, in case order so sums are reproducible.
func score(outs []outcome, catalogue int) Metrics {
	m := Metrics{Users: len(outs), At: make([]AtK, len(Cutoffs))}
	covered := map[string]struct{}{}
	for i, k := range Cutoffs {
		m.At[i] = at(outs, k)
	}
	for _, o := range outs {
		for _, id := range o.top {
			covered[id] = struct{}{}
		}
	}
	if catalogue > 0 {
		m.Coverage = float64(len(covered)) / float64(catalogue)
	}
	// Curve: every k up to Depth.
	for k := 1; k <= Depth && len(outs) > 0; k++ {
		m.Curve = append(m.Curve, at(outs, k))
	}
	return m
}
