package train

import (
	"context"
	"math"
	"slices"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/recommend"
)

// tuner scores blends on validation cases through the same Set.Score the
// server uses, under the evaluation protocol: full ranking, history
// excluded, ties counted against the target, and the pipeline's category
// diversification when the catalogue has categories.
type tuner struct {
	fit   *Corpus
	cases []validation
	comps []model.Component
	hist  [][]string // per case, the user's history newest first
	// stream holds, per case, the streaming sources' candidates (corpus
	// index) and scores at validation time; nil when not tuned.
	stream [][]streamScore
	// cfg is how the server configures its streaming sources: where the
	// category settings start from.
	cfg recommend.Config
	// primary is each item's first category (a small integer; -1: none),
	// nil when no item has one: what diversification groups by.
	primary []int32
	// tuneCategories: the category weight and diversity are chosen too.
	tuneCategories bool
	// engine is the feature state readStream built (the server's at
	// validation time); nil when not read.
	engine *features.Engine
}

// streamScore is one streaming candidate: other is co-visitation and
// popularity as configured, category the category-trending score at
// weight 1.
type streamScore struct {
	i               int32
	other, category float64
}

// streamDepth is how many candidates the streaming sources are asked for
// per validation user.
const streamDepth = 200

// readStream replays the catalogue (s.Items), then evs less the held-out
// events, into a feature engine and reads each case's streaming candidates
// through the serving pipeline. Item metadata is catalogue data, so it is
// applied first, as a server that was sent its catalogue holds it.
func (t *tuner) readStream(ctx context.Context, evs []event.Interaction, all []validation, s *Stream) error {
	// Every event holdOut left out of the fit corpus, sampled for tuning or
	// not: the state must be the one the fit corpus describes.
	held := make(map[int32]bool, len(all))
	for _, c := range all {
		held[c.origin] = true
	}
	eng := features.NewEngine(s.Features, nil)
	const step = 8192
	var items []event.Item
	if s.Items != nil {
		items = s.Items()
	}
	recs := make([]event.Record, 0, max(step, len(items)))
	offs := make([]uint64, cap(recs))
	flush := func() {
		eng.ApplyBatch(offs[:len(recs)], recs)
		recs = recs[:0]
	}
	for i := range items {
		recs = append(recs, event.Record{Kind: event.KindItem, Item: items[i]})
	}
	flush()
	t.setCategories(items)
	for i := range evs {
		if held[int32(i)] {
			continue
		}
		recs = append(recs, event.Record{Kind: event.KindInteraction, Interaction: evs[i]})
		if len(recs) == step {
			flush()
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	flush()
	eng.RefreshTrending()
	t.engine = eng
	t.cfg = s.Recommend
	unit := s.Recommend
	unit.WeightCategory = 1 // read the category source per unit of weight: the tuner weighs it
	p := recommend.New(eng, unit)
	t.stream = make([][]streamScore, len(t.cases))
	for k, c := range t.cases {
		list := p.StreamScores(ctx, t.fit.Users[c.user], streamDepth)
		row := make([]streamScore, 0, len(list))
		for _, x := range list {
			if i, ok := t.fit.Index(x.ID); ok && (x.Other > 0 || x.Category > 0) {
				row = append(row, streamScore{i, x.Other, x.Category})
			}
		}
		t.stream[k] = row
		if k%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// setCategories records each corpus item's first category, as the
// pipeline's diversification reads it.
func (t *tuner) setCategories(items []event.Item) {
	ids := map[string]int32{}
	var primary []int32
	for _, it := range items {
		i, ok := t.fit.Index(it.ID)
		if !ok || len(it.Categories) == 0 {
			continue
		}
		if primary == nil {
			primary = make([]int32, len(t.fit.Items))
			for j := range primary {
				primary[j] = -1
			}
		}
		c, ok := ids[it.Categories[0]]
		if !ok {
			c = int32(len(ids))
			ids[it.Categories[0]] = c
		}
		primary[i] = c
	}
	t.primary = primary
}

func newTuner(fit *Corpus, cases []validation, comps []model.Component) *tuner {
	t := &tuner{fit: fit, cases: cases, comps: comps, hist: make([][]string, len(cases)), cfg: recommend.DefaultConfig()}
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
	// The category signal's grids hold 0 (off) and the defaults.
	categoryGrid  = []float64{0, 0.05, 0.1, 0.2, 0.5, 1}
	diversityGrid = []float64{0, 0.05, 0.1, 0.2, 0.3}
)

// blend is one configuration the tuner scores: what the pipeline would
// serve with.
type blend struct {
	comps     []model.Component
	stream    float64 // the streaming sources' weight
	category  float64 // the category-trending source's weight within them
	diversity float64
}

// categories reports whether the category settings are the tuner's to
// choose: asked for, and the catalogue has categories for them to act on.
func (t *tuner) categories() bool { return t.tuneCategories && t.primary != nil }

// tune picks each component's best decay alone, then blend weights by
// coordinate ascent from the best single source (a component, or the
// streaming sources when read), so the blend's validation score is never
// below the best single source's. When the category settings are its to
// choose, all of that runs with the category signal off (exactly what a
// catalogue without categories gives), and the ascent then goes on over the
// diversity and the category weight too: categories are kept only as far
// as they improve on validation. It returns the blend, the scores, and
// what serves.
func (t *tuner) tune(ctx context.Context) (blend, []SourceResult, string) {
	base := blend{comps: slices.Clone(t.comps), category: t.cfg.WeightCategory, diversity: t.cfg.Diversity}
	if t.categories() {
		base.category, base.diversity = 0, 0
	}
	comps := base.comps
	var results []SourceResult
	best, bestScore := -1, -1.0 // best is len(comps) for the stream
	for i := range comps {
		var r SourceResult
		for _, d := range decayGrid {
			one := base
			one.comps = []model.Component{comps[i]}
			one.comps[0].Decay, one.comps[0].Weight = d, 1
			ndcg, hr := t.score(one)
			if ndcg > r.NDCG10 || r.Source == "" {
				r = SourceResult{Source: comps[i].Name, Decay: d, NDCG10: ndcg, HR10: hr}
			}
			if ctx.Err() != nil {
				return base, results, ""
			}
		}
		comps[i].Decay = r.Decay
		results = append(results, r)
		if r.NDCG10 > bestScore {
			best, bestScore = i, r.NDCG10
		}
	}
	if t.stream != nil {
		alone := base
		alone.comps, alone.stream = nil, 1
		ndcg, hr := t.score(alone)
		results = append(results, SourceResult{Source: "stream", NDCG10: ndcg, HR10: hr})
		if ndcg > bestScore {
			best, bestScore = len(comps), ndcg
		}
	}
	for i := range comps {
		comps[i].Weight = 0
	}
	if best < 0 {
		return base, results, ""
	}
	a := ascent{t: t, best: best, cur: base, score: bestScore, hr: results[best].HR10}
	if best == len(comps) {
		a.cur.stream = 1
	} else {
		comps[best].Weight = 1
	}
	a.run(ctx, false)
	if t.categories() {
		a.run(ctx, true)
	}
	cur := a.cur
	results = append(results, SourceResult{Source: "blend", NDCG10: a.score, HR10: a.hr})
	var serving string
	switch n := countWeighted(cur.comps); {
	case n == 0:
		serving = "stream"
	case n == 1 && cur.stream == 0:
		serving = comps[best].Name
	default:
		serving = "blend"
	}
	return cur, results, serving
}

// ascent is the tuner's coordinate ascent: it moves to a neighbouring blend
// only when that scores better on validation.
type ascent struct {
	t         *tuner
	best      int // the single source it started from (len(comps): the stream)
	cur       blend
	score, hr float64
}

func (a *ascent) try(b blend) { a.tryAll([]blend{b}) }

// tryAll is try for each of bs in order; they share their components, so
// the components' scores are read once.
func (a *ascent) tryAll(bs []blend) {
	if len(bs) == 0 {
		return
	}
	ndcg, hr := a.t.scoreAll(bs)
	for i := range bs {
		if ndcg[i] > a.score+1e-6 {
			a.cur, a.score, a.hr = bs[i], ndcg[i], hr[i]
		}
	}
}

// categorised reports whether the category signal plays any part in b.
func (t *tuner) categorised(b blend) bool {
	return t.primary != nil && (b.diversity > 0 || (b.category > 0 && b.stream > 0))
}

// run makes up to two passes over the components' weights and decays and
// the streaming sources' weight; with categories, over the diversity, and
// over the category weight jointly with the streaming sources' weight (the
// category source can only help through the stream).
func (a *ascent) run(ctx context.Context, categories bool) {
	t := a.t
	n := len(a.cur.comps)
	for pass := 0; pass < 2 && ctx.Err() == nil; pass++ {
		before := a.score
		if categories {
			var bs []blend
			for _, d := range diversityGrid {
				if d != a.cur.diversity {
					b := a.cur
					b.diversity = d
					bs = append(bs, b)
				}
			}
			a.tryAll(bs)
		}
		for i := range n {
			if i == a.best || (categories && !t.categorised(a.cur)) {
				continue // without categories in play, the first run's ascent stands
			}
			for _, w := range weightGrid {
				if w != a.cur.comps[i].Weight {
					b := a.cur
					b.comps = slices.Clone(a.cur.comps)
					b.comps[i].Weight = w
					a.try(b)
				}
			}
			if a.cur.comps[i].Weight > 0 {
				for _, d := range decayGrid {
					b := a.cur
					b.comps = slices.Clone(a.cur.comps)
					b.comps[i].Decay = d
					a.try(b)
				}
			}
		}
		streams := []float64{a.cur.stream} // the stream's weight is the scale when it is the best single source
		if t.stream != nil && a.best != n {
			streams = weightGrid
		}
		cats := []float64{a.cur.category}
		if categories {
			cats = categoryGrid
		}
		if t.stream != nil {
			var bs []blend
			for _, c := range cats {
				for _, w := range streams {
					if (w != a.cur.stream || c != a.cur.category) && (w > 0 || a.cur.stream > 0) {
						b := a.cur
						b.stream, b.category = w, c
						bs = append(bs, b)
					}
				}
			}
			a.tryAll(bs)
		}
		if a.score == before {
			break
		}
	}
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

// validationK is the list length the tuner scores (NDCG@10, HR@10).
const validationK = 10

// score is NDCG@10 and HR@10 of a blend over the cases: the components
// plus stream × the streaming sources' scores, diversified as the pipeline
// does when the catalogue has categories.
func (t *tuner) score(b blend) (ndcg, hr float64) {
	n, h := t.scoreAll([]blend{b})
	return n[0], h[0]
}

// scoreAll is score for each of bs, which share bs[0]'s components: each
// case's component scores are read once, and each blend's streaming scores
// are added to them and taken off again.
func (t *tuner) scoreAll(bs []blend) (ndcg, hr []float64) {
	ndcg, hr = make([]float64, len(bs)), make([]float64, len(bs))
	s := model.NewSet("", t.fit.Items, bs[0].comps)
	seen := map[int32]struct{}{}
	var saved []float64
	for k, c := range t.cases {
		clear(seen)
		for _, it := range t.fit.Seqs[c.user] {
			seen[it] = struct{}{}
		}
		if _, hist := seen[c.target]; hist {
			continue // a miss for every blend
		}
		sc := s.Score(t.hist[k])
		touched := len(sc.Touched)
		for v, b := range bs {
			add := b.stream > 0 && t.stream != nil
			if add {
				saved = saved[:0]
				for _, x := range t.stream[k] {
					saved = append(saved, sc.W[x.i])
					sc.Add(x.i, b.stream*(x.other+b.category*x.category))
				}
			}
			var rank int
			if t.primary != nil && b.diversity > 0 && b.diversity < 1 {
				rank = t.diversifiedRank(sc, c.target, seen, b.diversity)
			} else {
				rank = rankOf(sc, c.target, seen)
			}
			if rank > 0 && rank <= validationK {
				hr[v]++
				ndcg[v] += 1 / math.Log2(float64(rank)+1)
			}
			if add {
				for n, x := range t.stream[k] {
					sc.W[x.i] = saved[n]
				}
				sc.Touched = sc.Touched[:touched]
			}
		}
		sc.Release()
	}
	n := float64(max(1, len(t.cases)))
	for v := range bs {
		ndcg[v] /= n
		hr[v] /= n
	}
	return ndcg, hr
}

// rankOf is the target's rank among items outside seen, ties against it:
// one pass over the touched items, no sort.
func rankOf(sc *model.Scores, target int32, seen map[int32]struct{}) int {
	return rankWithin(sc, target, seen, validationK)
}

// rankWithin is rankOf counting up to limit: a rank above it is reported
// as limit+1.
func rankWithin(sc *model.Scores, target int32, seen map[int32]struct{}, limit int) int {
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
			if rank > limit {
				return rank
			}
		}
	}
	return rank
}

// diversifiedRank is the target's position (0: not in the first
// validationK) once the pipeline's diversification with strength d has
// reordered the DiversifyWindow best items outside seen, ties against the
// target.
func (t *tuner) diversifiedRank(sc *model.Scores, target int32, seen map[int32]struct{}, d float64) int {
	window := recommend.DiversifyWindow(validationK)
	if r := rankWithin(sc, target, seen, window); r == 0 || r > window {
		return 0 // outside the window the pipeline reorders
	}
	// Every item scoring at least the target's is in the head: fewer than
	// window of them, by the rank. Ties count against the target: it goes
	// after the items that score the same.
	head := sc.Top(window, func(j int32) bool { _, ok := seen[j]; return ok })
	p := slices.Index(head, target)
	for ; p+1 < len(head) && sc.W[head[p+1]] == sc.W[target]; p++ {
		head[p], head[p+1] = head[p+1], head[p]
	}
	primary := make([]int32, len(head))
	for i, j := range head {
		primary[i] = t.primary[j]
	}
	rank, n := 0, 0
	recommend.Diversify(len(head), validationK, d, primary,
		func(i int) float64 { return sc.W[head[i]] },
		func(i, j int) bool { return head[j] == target || (head[i] != target && i < j) },
		func(i int, _ float64) bool {
			n++
			if head[i] == target {
				rank = n
				return false
			}
			return true
		})
	return rank
}
