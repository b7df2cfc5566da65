package eval

import (
	"math"

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

// AtK are the scores at one cutoff.
type AtK struct {
	K    int     `json:"k"`
	Hits int     `json:"hits"`
	HR   float64 `json:"hr"`
	NDCG float64 `json:"ndcg"`
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

// outcome is one model's result for one case.
type outcome struct {
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
	sums := make([]float64, len(Cutoffs))
	covered := map[string]struct{}{}
	for _, o := range outs {
		for i, k := range Cutoffs {
			if o.rank > 0 && o.rank <= k {
				m.At[i].Hits++
				sums[i] += Gain(o.rank)
			}
		}
		for _, id := range o.top {
			covered[id] = struct{}{}
		}
	}
	for i, k := range Cutoffs {
		m.At[i].K = k
		if len(outs) > 0 {
			m.At[i].HR = float64(m.At[i].Hits) / float64(len(outs))
			m.At[i].NDCG = sums[i] / float64(len(outs))
		}
	}
	if catalogue > 0 {
		m.Coverage = float64(len(covered)) / float64(catalogue)
	}
	// Curve: hits and gains by rank, accumulated over k.
	byRank := make([]float64, Depth+1)
	hitsAt := make([]int, Depth+1)
	for _, o := range outs {
		if o.rank > 0 && o.rank <= Depth {
			byRank[o.rank] += Gain(o.rank)
			hitsAt[o.rank]++
		}
	}
	hits, gain := 0, 0.0
	for k := 1; k <= Depth && len(outs) > 0; k++ {
		hits += hitsAt[k]
		gain += byRank[k]
		m.Curve = append(m.Curve, AtK{K: k, Hits: hits, HR: float64(hits) / float64(len(outs)), NDCG: gain / float64(len(outs))})
	}
	return m
}
