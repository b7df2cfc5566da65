package eval

import (
	"math"
	"slices"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
)

// Cutoffs are the K of HR@K and NDCG@K, as the published tables report them.
var Cutoffs = []int{5, 10, 20}

// CoverageK is the list length catalogue coverage, ILD and novelty are
// measured on.
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
	// ILD is the intra-list diversity of the top CoverageK, averaged over
	// the users whose list has a pair of items with categories
	// (Catalogue.ILD); nil when none has.
	ILD *float64 `json:"ild@10,omitempty"`
	// Novelty is the mean self-information of the top CoverageK in bits,
	// averaged over the users with a non-empty list (Catalogue.Novelty).
	Novelty float64 `json:"novelty@10"`
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
	// MRR is the mean reciprocal rank of the first relevant item, 0 when
	// it ranks below K (session-rec's and SR-GNN's MRR@K).
	MRR float64 `json:"mrr"`
}

// HR is the hit rate at cutoff k (0 for a cutoff not computed).
func (m *Metrics) HR(k int) float64 { return m.at(k).HR }

// NDCG is the normalised discounted cumulative gain at cutoff k.
func (m *Metrics) NDCG(k int) float64 { return m.at(k).NDCG }

// MRR is the mean reciprocal rank at cutoff k.
func (m *Metrics) MRR(k int) float64 { return m.at(k).MRR }

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
	var ndcg, prec, rec, mrr float64
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
		mrr += 1 / float64(ranks[0]) // ranks ascend: the first is within k
		prec += float64(in) / float64(k)
		rec += float64(in) / float64(n)
	}
	n := float64(len(outs))
	a.HR, a.NDCG, a.Precision, a.Recall, a.MRR = float64(a.Hits)/n, ndcg/n, prec/n, rec/n, mrr/n
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

// Catalogue is what the list metrics measure a top CoverageK against: the
// catalogue's size, the items' categories and their popularity in the
// training input. It is the same for every model of a run.
type Catalogue struct {
	Items      int                 // the catalogue coverage divides by
	categories map[string][]string // item → its categories, sorted
	counts     map[string]int      // item → training interactions
	total      int                 // training interactions
}

// NewCatalogue measures against items catalogue items, the categories of
// meta and the popularity of train.
func NewCatalogue(items int, meta []event.Item, train []event.Interaction) *Catalogue {
	c := &Catalogue{Items: items, counts: map[string]int{}, total: len(train)}
	for i := range train {
		c.counts[train[i].Item]++
	}
	if len(meta) > 0 {
		c.categories = make(map[string][]string, len(meta))
		for _, it := range meta {
			if len(it.Categories) > 0 {
				cats := slices.Clone(it.Categories)
				slices.Sort(cats)
				c.categories[it.ID] = slices.Compact(cats)
			}
		}
	}
	return c
}

// ILD is the intra-list diversity of list: the mean, over pairs of items
// that both have categories, of 1 − the Jaccard similarity of their
// category sets. Items without categories are left out of the pairs; ok is
// false when no pair is left (a list of one item, say).
func (c *Catalogue) ILD(list []string) (ild float64, ok bool) {
	sum, pairs := 0.0, 0
	for i, a := range list {
		ca := c.categories[a]
		if len(ca) == 0 {
			continue
		}
		for _, b := range list[i+1:] {
			if cb := c.categories[b]; len(cb) > 0 {
				sum += 1 - jaccard(ca, cb)
				pairs++
			}
		}
	}
	if pairs == 0 {
		return 0, false
	}
	return sum / float64(pairs), true
}

// jaccard is |a ∩ b| / |a ∪ b| of two sorted, distinct, non-empty sets.
func jaccard(a, b []string) float64 {
	common := 0
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] == b[j]:
			common++
			i++
			j++
		case a[i] < b[j]:
			i++
		default:
			j++
		}
	}
	return float64(common) / float64(len(a)+len(b)-common)
}

// Novelty is the mean self-information of list's items: −log2 of each
// item's share of the training interactions, an item never trained on
// counting as one interaction. ok is false for an empty list.
func (c *Catalogue) Novelty(list []string) (novelty float64, ok bool) {
	if len(list) == 0 {
		return 0, false
	}
	total := float64(max(c.total, 1))
	sum := 0.0
	for _, id := range list {
		sum -= math.Log2(float64(max(c.counts[id], 1)) / total)
	}
	return sum / float64(len(list)), true
}

// score aggregates outcomes, in case order so sums are reproducible.
func score(outs []outcome, cat *Catalogue) Metrics {
	m := Metrics{Users: len(outs), At: make([]AtK, len(Cutoffs))}
	covered := map[string]struct{}{}
	for i, k := range Cutoffs {
		m.At[i] = at(outs, k)
	}
	var ild, novelty mean
	for _, o := range outs {
		for _, id := range o.top {
			covered[id] = struct{}{}
		}
		ild.add(cat.ILD(o.top))
		novelty.add(cat.Novelty(o.top))
	}
	if cat.Items > 0 {
		m.Coverage = float64(len(covered)) / float64(cat.Items)
	}
	if ild.n > 0 {
		v := ild.value()
		m.ILD = &v
	}
	m.Novelty = novelty.value()
	// Curve: every k up to Depth.
	for k := 1; k <= Depth && len(outs) > 0; k++ {
		m.Curve = append(m.Curve, at(outs, k))
	}
	return m
}

// mean averages the values it is given with ok set.
type mean struct {
	sum float64
	n   int
}

func (m *mean) add(v float64, ok bool) {
	if ok {
		m.sum += v
		m.n++
	}
}

func (m *mean) value() float64 {
	if m.n == 0 {
		return 0
	}
	return m.sum / float64(m.n)
}
