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
// excluded, ties counted against the target.
type tuner struct {
	fit   *Corpus
	cases []validation
	comps []model.Component
	hist  [][]string // per case, the user's history newest first
	// stream holds, per case, the streaming sources' candidates (corpus
	// index) and scores at validation time; nil when not tuned.
	stream [][]streamScore
}

type streamScore struct {
	i int32
	w float64
}

// streamDepth is how many candidates the streaming sources are asked for
// per validation user.
const streamDepth = 200

// readStream replays evs, less the held-out events, into a feature engine
// and reads each case's streaming candidates through the serving pipeline.
func (t *tuner) readStream(ctx context.Context, evs []event.Interaction, all []validation, s *Stream) error {
	// Every event holdOut left out of the fit corpus, sampled for tuning or
	// not: the state must be the one the fit corpus describes.
	held := make(map[int32]bool, len(all))
	for _, c := range all {
		held[c.origin] = true
	}
	eng := features.NewEngine(s.Features, nil)
	const step = 8192
	recs := make([]event.Record, 0, step)
	offs := make([]uint64, step)
	flush := func() {
		eng.ApplyBatch(offs[:len(recs)], recs)
		recs = recs[:0]
	}
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
	p := recommend.New(eng, s.Recommend)
	t.stream = make([][]streamScore, len(t.cases))
	for k, c := range t.cases {
		ids, scores := p.StreamScores(ctx, t.fit.Users[c.user], streamDepth)
		row := make([]streamScore, 0, len(ids))
		for n, id := range ids {
			if i, ok := t.fit.Index(id); ok && scores[n] > 0 {
				row = append(row, streamScore{i, scores[n]})
			}
		}
		t.stream[k] = row
		if k%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
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
// coordinate ascent from the best single source (a component, or the
// streaming sources when read), so the blend's validation score is never
// below the best single source's. It returns the components with Decay and
// Weight set, the streaming sources' weight, the scores, and what serves.
func (t *tuner) tune(ctx context.Context) ([]model.Component, float64, []SourceResult, string) {
	comps := slices.Clone(t.comps)
	var results []SourceResult
	best, bestScore := -1, -1.0 // best is len(comps) for the stream
	for i := range comps {
		var r SourceResult
		for _, d := range decayGrid {
			one := []model.Component{comps[i]}
			one[0].Decay, one[0].Weight = d, 1
			ndcg, hr := t.score(one, 0)
			if ndcg > r.NDCG10 || r.Source == "" {
				r = SourceResult{Source: comps[i].Name, Decay: d, NDCG10: ndcg, HR10: hr}
			}
			if ctx.Err() != nil {
				return comps, 0, results, ""
			}
		}
		comps[i].Decay = r.Decay
		results = append(results, r)
		if r.NDCG10 > bestScore {
			best, bestScore = i, r.NDCG10
		}
	}
	if t.stream != nil {
		ndcg, hr := t.score(nil, 1)
		results = append(results, SourceResult{Source: "stream", NDCG10: ndcg, HR10: hr})
		if ndcg > bestScore {
			best, bestScore = len(comps), ndcg
		}
	}
	for i := range comps {
		comps[i].Weight = 0
	}
	if best < 0 {
		return comps, 0, results, ""
	}
	stream := 0.0
	if best == len(comps) {
		stream = 1
	} else {
		comps[best].Weight = 1
	}
	cur, curHR := bestScore, results[best].HR10
	try := func(c []model.Component, s float64) {
		if ndcg, hr := t.score(c, s); ndcg > cur+1e-6 {
			comps, stream, cur, curHR = c, s, ndcg, hr
		}
	}
	for pass := 0; pass < 2 && ctx.Err() == nil; pass++ {
		before := cur
		for i := range comps {
			if i == best {
				continue
			}
			for _, w := range weightGrid {
				if w != comps[i].Weight {
					c := slices.Clone(comps)
					c[i].Weight = w
					try(c, stream)
				}
			}
			if comps[i].Weight > 0 {
				for _, d := range decayGrid {
					c := slices.Clone(comps)
					c[i].Decay = d
					try(c, stream)
				}
			}
		}
		if t.stream != nil && best != len(comps) {
			for _, w := range weightGrid {
				if w != stream {
					try(comps, w)
				}
			}
		}
		if cur == before {
			break
		}
	}
	results = append(results, SourceResult{Source: "blend", NDCG10: cur, HR10: curHR})
	var serving string
	switch n := countWeighted(comps); {
	case n == 0:
		serving = "stream"
	case n == 1 && stream == 0:
		serving = comps[best].Name
	default:
		serving = "blend"
	}
	return comps, stream, results, serving
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

// score is NDCG@10 and HR@10 of a blend over the cases: the components
// plus stream × the streaming sources' scores.
func (t *tuner) score(comps []model.Component, stream float64) (ndcg, hr float64) {
	s := model.NewSet("", t.fit.Items, comps)
	seen := map[int32]struct{}{}
	for k, c := range t.cases {
		clear(seen)
		for _, it := range t.fit.Seqs[c.user] {
			seen[it] = struct{}{}
		}
		sc := s.Score(t.hist[k])
		if stream > 0 && t.stream != nil {
			for _, x := range t.stream[k] {
				sc.Add(x.i, stream*x.w)
			}
		}
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
