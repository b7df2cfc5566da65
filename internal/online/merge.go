package online

import (
	"math"
	"sort"
	"strconv"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/store"
)

// Partitioned workers each apply some partitions of the log, one engine per
// partition. A user lives in one partition, so a user record is whole; but
// every partition adds to item and global aggregates. Those are written as
// one part per partition (store.Entity.Part), each stamped with its
// partition's offset and engine clock, and summed here when read:
//   - window counts and sums add up; rates are recomputed from the sums;
//   - trending weights decay to the newest clock, then add up (trending
//     log-scores add as log2(Σ 2^s));
//   - recency is the newest last-event time over the parts;
//   - co-visitation lists add weights per neighbour and are cut again.
//
// Windows are not summed as each part computed them (at its own clock: a
// part last written long ago would still count events that have left the
// window since) but from the parts' raw buckets, evaluated at the newest
// clock as one engine evaluates its windows (features.WindowAt).

const (
	// fieldClk is the engine clock (event time, ms) a part's values were
	// computed at.
	fieldClk = "_clk"
	// fieldWin is a part's window buckets, by feature name.
	fieldWin = "_win"
)

// partFields names field for every part 0..n-1.
func partFields(n int, names ...string) []string {
	out := make([]string, 0, n*len(names))
	for p := range n {
		for _, f := range names {
			out = append(out, store.PartField(f, strconv.Itoa(p)))
		}
	}
	return out
}

// mergeInfos merges the _info parts of one item.
func mergeInfos(docs []itemDoc) itemDoc {
	var out itemDoc
	var trends []float64
	for _, d := range docs {
		out.At = max(out.At, d.At)
		if len(out.Categories) == 0 {
			out.Categories = d.Categories
		}
		out.Hidden = out.Hidden || d.Hidden
		if d.Trend != nil {
			trends = append(trends, *d.Trend)
		}
	}
	if len(trends) > 0 {
		t := logSum2(trends)
		out.Trend = &t
	}
	return out
}

// logSum2 is log2(Σ 2^x), computed without overflow.
func logSum2(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = max(m, x)
	}
	if math.IsInf(m, 0) {
		return m
	}
	var s float64
	for _, x := range xs {
		s += math.Exp2(x - m)
	}
	return m + math.Log2(s)
}

// mergeNeighbors adds weights per neighbour over the parts and keeps the
// n strongest (n 0: as many as the longest part).
func mergeNeighbors(parts [][]features.Neighbor, n int) []features.Neighbor {
	sum := map[string]float64{}
	longest := 0
	for _, l := range parts {
		longest = max(longest, len(l))
		for _, nb := range l {
			sum[nb.Item] += nb.Weight
		}
	}
	if n == 0 {
		n = longest
	}
	return strongest(sum, n, func(id string, w float64) features.Neighbor { return features.Neighbor{Item: id, Weight: w} })
}

// mergeScored merges trending lists (log-scores) and keeps as many as the
// longest part.
func mergeScored(parts [][]features.Scored) []features.Scored {
	scores := map[string][]float64{}
	longest := 0
	for _, l := range parts {
		longest = max(longest, len(l))
		for _, s := range l {
			scores[s.ID] = append(scores[s.ID], s.Score)
		}
	}
	sum := make(map[string]float64, len(scores))
	for id, xs := range scores {
		sum[id] = logSum2(xs)
	}
	return strongest(sum, longest, func(id string, s float64) features.Scored { return features.Scored{ID: id, Score: s} })
}

// strongest is the n entries of m with the highest values (ties by id) as Ts.
func strongest[T any](m map[string]float64, n int, mk func(id string, v float64) T) []T {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if m[ids[i]] != m[ids[j]] {
			return m[ids[i]] > m[ids[j]]
		}
		return ids[i] < ids[j]
	})
	out := make([]T, 0, min(n, len(ids)))
	for _, id := range ids[:min(n, len(ids))] {
		out = append(out, mk(id, m[id]))
	}
	return out
}

// valuesPart is one part's feature values of an item or the global record.
type valuesPart struct {
	vals features.Values
	clk  int64
	nbrs []features.Neighbor // the part's longer co-visitation list, if read
	win  map[string][]features.Bucket
}

// maxListedNeighbors is how many co-visited neighbours a merged value
// lists (the engine lists 20).
const maxListedNeighbors = 20

// mergeValues merges the parts of one entity's values by each feature's
// kind (cfg: the feature specs; scope: item or global).
func mergeValues(cfg *features.Config, scope string, parts []valuesPart) features.Values {
	out := features.Values{Features: map[string]features.Value{}}
	var clk int64
	for _, p := range parts {
		out.ComputedAt = max(out.ComputedAt, p.vals.ComputedAt)
		clk = max(clk, p.clk)
	}
	sums := map[string]float64{}
	for i := range cfg.Features {
		s := &cfg.Features[i]
		if s.Scope != scope || s.Kind == features.KindRate {
			continue
		}
		var (
			merged   features.Value
			some     bool
			num      float64
			last     = int64(math.MinInt64)
			nbrParts [][]features.Neighbor
		)
		for _, p := range parts {
			v, ok := p.vals.Features[s.Name]
			if !ok {
				continue
			}
			merged.ComputedAt = max(merged.ComputedAt, v.ComputedAt)
			if v.Default {
				if !some {
					merged.Value, merged.Default = v.Value, true
				}
				continue
			}
			some = true
			f, _ := v.Value.(float64)
			switch s.Kind {
			case features.KindWindowCount, features.KindWindowSum:
				if bs, ok := p.win[s.Name]; ok {
					f = features.WindowAt(s, bs, clk)
				}
				num += f
			case features.KindTrending:
				num += f * math.Exp2(-float64(clk-p.clk)/float64(time.Duration(s.HalfLife).Milliseconds()))
			case features.KindRecency:
				last = max(last, p.clk-int64(math.Round(f*1000)))
			case features.KindCovisitation:
				if p.nbrs != nil {
					nbrParts = append(nbrParts, p.nbrs)
				} else {
					nbrParts = append(nbrParts, neighborsOf(v.Value))
				}
			default:
				merged.Value = v.Value
			}
		}
		if some {
			merged.Default = false
			switch s.Kind {
			case features.KindWindowCount, features.KindWindowSum, features.KindTrending:
				merged.Value = num
			case features.KindRecency:
				merged.Value = float64(clk-last) / 1000
			case features.KindCovisitation:
				merged.Value = mergeNeighbors(nbrParts, maxListedNeighbors)
			}
		}
		if f, ok := merged.Value.(float64); ok && (s.Kind == features.KindWindowCount || s.Kind == features.KindWindowSum) {
			sums[s.Name] = f
		}
		if some || merged.Value != nil || merged.Default {
			out.Features[s.Name] = merged
		}
	}
	for i := range cfg.Features {
		s := &cfg.Features[i]
		if s.Scope != scope || s.Kind != features.KindRate {
			continue
		}
		if out.ComputedAt == 0 {
			continue // no part: the reader fills the default
		}
		out.Features[s.Name] = features.Value{ComputedAt: out.ComputedAt,
			Value: (sums[s.Numerator] + s.PriorAlpha) / math.Max(sums[s.Denominator]+s.PriorAlpha+s.PriorBeta, 1e-12)}
	}
	return out
}

// neighborsOf reads a co-visitation value decoded from JSON.
func neighborsOf(v any) []features.Neighbor {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out []features.Neighbor
	_ = json.Unmarshal(b, &out)
	return out
}
