package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/recommend"
)

// Config shapes training. The defaults are the same for every dataset; what
// depends on the data (each component's history decay and blend weight) is
// chosen by Train on validation items.
type Config struct {
	Transition TransitionParams `yaml:"transition" json:"transition"`
	KNN        KNNParams        `yaml:"knn" json:"knn"`
	EASE       EASEParams       `yaml:"ease" json:"ease"`
	// History is how many of a user's newest items are read through the
	// models (at most the engine's last_n).
	History int `yaml:"history" json:"history"`
	// TuneUsers caps the validation users the tuner scores (a deterministic
	// spread over all of them); 0 uses every one.
	TuneUsers int `yaml:"tune_users" json:"tune_users"`
	// Validation is which event of each user the tuner holds out: last
	// (default: what comes next) or random (when the items to find are not
	// the newest, as in a random split).
	Validation string `yaml:"validation" json:"validation"`
	// TuneCategories lets the tuner choose, with the blend, the category
	// signal's settings (recommend.weight_category and diversity) the
	// server uses while the blend serves; false keeps the recommend
	// section's. Only when the catalogue has categories.
	TuneCategories bool `yaml:"tune_categories" json:"tune_categories"`
	// Ranker trains the learned ranker from the lists the server logged
	// (Job.Examples), after the blend.
	Ranker RankerConfig `yaml:"ranker" json:"ranker"`
}

// DefaultConfig is what `ripple train`, the server and `ripple eval` use.
func DefaultConfig() Config {
	return Config{
		Transition: TransitionParams{Window: 8, Decay: 0.7, Backward: 0.3, PopPenalty: 0, TopN: 200},
		KNN:        KNNParams{MaxHistory: 100, Shrink: 0, TopN: 200},
		EASE:       EASEParams{Lambda: 200, MaxItems: 4000, TopN: 200},
		History:    50,
		TuneUsers:  8000,
		Validation: ValidateLast,
		// More information must never make the server worse: whether and
		// how much categories help is measured on each catalogue.
		TuneCategories: true,
		Ranker:         DefaultRankerConfig(),
	}
}

// Validate reports the first setting Train cannot work with.
func (c Config) Validate() error {
	switch {
	case c.Transition.Window < 1 || c.Transition.Window > 100:
		return fmt.Errorf("train.transition.window must be 1..100, got %d", c.Transition.Window)
	case bad01(c.Transition.Decay) || bad01(c.Transition.Backward):
		return fmt.Errorf("train.transition.decay and backward must be in [0, 1]")
	case math.IsNaN(c.Transition.PopPenalty) || c.Transition.PopPenalty < 0 || c.Transition.PopPenalty > 2:
		return fmt.Errorf("train.transition.pop_penalty must be in [0, 2], got %v", c.Transition.PopPenalty)
	case c.KNN.MaxHistory < 1 || math.IsNaN(c.KNN.Shrink) || c.KNN.Shrink < 0:
		return fmt.Errorf("train.knn.max_history must be at least 1 and shrink not negative")
	case math.IsNaN(c.EASE.Lambda) || c.EASE.Lambda <= 0 || c.EASE.MaxItems < 0 || c.EASE.MaxItems > 20000:
		return fmt.Errorf("train.ease.lambda must be positive and max_items 0..20000")
	case c.Transition.TopN < 1 || c.KNN.TopN < 1 || c.EASE.TopN < 1 || max(c.Transition.TopN, c.KNN.TopN, c.EASE.TopN) > 5000:
		return fmt.Errorf("train: top_n must be 1..5000")
	case c.History < 1 || c.History > 1000 || c.TuneUsers < 0:
		return fmt.Errorf("train.history must be 1..1000 and tune_users not negative")
	case c.Ranker.MinLists < 1 || bad01(c.Ranker.Validation) || c.Ranker.Validation == 0 || c.Ranker.Validation == 1 ||
		math.IsNaN(c.Ranker.L2) || c.Ranker.L2 < 0 || c.Ranker.Iterations < 1 || c.Ranker.Iterations > 100_000 ||
		c.Ranker.ReplayDepth < 1 || c.Ranker.ReplayDepth > 1000:
		return fmt.Errorf("train.ranker: min_lists and iterations (at most 100000) must be at least 1, replay_depth 1..1000, validation in (0, 1), l2 not negative")
	case c.Validation != ValidateLast && c.Validation != ValidateRandom:
		return fmt.Errorf("train.validation must be %s or %s, got %q", ValidateLast, ValidateRandom, c.Validation)
	}
	return nil
}

func bad01(v float64) bool { return math.IsNaN(v) || v < 0 || v > 1 }

// SourceResult is one candidate source's (or the blend's) validation score.
type SourceResult struct {
	Source string  `json:"source"`
	Decay  float64 `json:"decay,omitempty"`
	NDCG10 float64 `json:"ndcg@10"`
	HR10   float64 `json:"hr@10"`
}

// Result is a trained set and how it was chosen.
type Result struct {
	Set *model.Set
	// Validation scores each single source at its best decay, then the
	// blend, on the validation items (each user's last training event).
	Validation []SourceResult
	// Serving names what serves: "blend", or the single source the blend
	// failed to beat on validation.
	Serving         string
	Scheme          string // the validation scheme: which event per user was held out
	ValidationUsers int
	Events, Items   int
	Took            time.Duration
	Skipped         []string // components not trained, with why
	// Ranker is what learning a ranker from replayed validation lists
	// found (nil: not tried, train.ranker.replay off or no stream).
	Ranker *RankerReport
}

// ErrNoData means there is nothing to train on.
var ErrNoData = errors.New("train: no interactions to train on")

// Stream is how the server computes its streaming sources; with it, Train
// weighs them against the models on the validation items, reading them
// exactly as the server would have at the time: from a feature engine that
// was given the server's catalogue and replayed every event but the
// held-out ones, through the serving pipeline.
type Stream struct {
	Features  *features.Config
	Recommend recommend.Config
	// Items returns the item metadata the server holds (nil: none), read
	// once per run: categories feed the category source and
	// diversification.
	Items func() []event.Item
}

// Train builds the components on evs (interactions in log order), tunes
// their decays and blend weights (and, with stream, the streaming sources'
// weight) on each user's last event, then refits them on everything. The
// result's Set is ready to serve.
func Train(ctx context.Context, evs []event.Interaction, cfg Config, stream *Stream) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	if len(evs) == 0 {
		return nil, ErrNoData
	}
	full := NewCorpus(evs)
	fit, cases := holdOut(full, cfg.Validation)
	allCases := cases
	res := &Result{Events: full.Events, Items: len(full.Items), Scheme: cfg.Validation}

	comps, skipped, err := fitComponents(ctx, fit, cfg)
	if err != nil {
		return nil, err
	}
	res.Skipped = skipped
	tuned := blend{comps: comps}
	var tuning *model.StreamTuning
	var ranker *model.Ranker
	if len(cases) > 0 {
		cases = spread(cases, cfg.TuneUsers)
		res.ValidationUsers = len(cases)
		t := newTuner(fit, cases, comps)
		t.tuneCategories = cfg.TuneCategories
		if stream != nil {
			if err := t.readStream(ctx, evs, allCases, stream); err != nil {
				return nil, err
			}
		}
		tuned, res.Validation, res.Serving = t.tune(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if t.categories() {
			tuning = &model.StreamTuning{CategoryWeight: tuned.category, Diversity: tuned.diversity}
		}
		if cfg.Ranker.Replay && t.engine != nil {
			exs := t.replay(ctx, evs, tuned, tuning, cfg.Ranker.ReplayDepth)
			r, rep := trainRanker(exs, cfg.Ranker, false)
			res.Ranker, ranker = &rep, r
		}
	} else {
		res.Serving = "blend"
	}
	final, _, err := fitComponents(ctx, full, cfg)
	if err != nil {
		return nil, err
	}
	for i := range final {
		final[i].Decay, final[i].Weight = tuned.comps[i].Decay, tuned.comps[i].Weight
	}
	kept := final[:0]
	for _, c := range final {
		if c.Weight > 0 {
			kept = append(kept, c)
		}
	}
	res.Set = model.NewSet("", full.Items, kept)
	res.Set.StreamWeight, res.Set.Tuned, res.Set.Ranker = tuned.stream, tuning, ranker
	res.Took = time.Since(start)
	return res, nil
}

// fitComponents trains every component the catalogue allows.
func fitComponents(ctx context.Context, c *Corpus, cfg Config) ([]model.Component, []string, error) {
	var comps []model.Component
	var skipped []string
	for _, f := range []struct {
		name string
		fit  func() (*model.ItemItem, error)
	}{
		{"transition", func() (*model.ItemItem, error) { return Transition(c, cfg.Transition) }},
		{"knn", func() (*model.ItemItem, error) { return KNN(c, cfg.KNN) }},
		{"ease", func() (*model.ItemItem, error) { return EASE(c, cfg.EASE) }},
	} {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		t, err := f.fit()
		if errors.Is(err, ErrTooLarge) {
			skipped = append(skipped, err.Error())
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("train %s: %w", f.name, err)
		}
		comps = append(comps, model.Component{Name: f.name, Table: t, History: cfg.History, Decay: 1, Weight: 1})
	}
	return comps, skipped, nil
}

// validation is one user's held-out last event.
type validation struct {
	user   int32
	target int32
	origin int32 // the held-out event's index in the input
}

// minHoldOut is the fewest events a user needs for the last one to be held
// out: at least two stay as input, as in evaluation.
const minHoldOut = 3

// Validation schemes: which event of each user the tuner holds out.
const (
	// ValidateLast holds out each user's last event: "what comes next", the
	// leave-one-out protocol and what a live system serves.
	ValidateLast = "last"
	// ValidateRandom holds out one event per user at random (seeded): for
	// data whose evaluation holds out random items rather than the newest.
	ValidateRandom = "random"
)

// holdOut returns the corpus without one event of each eligible user (users
// with at least 3 events, as in evaluation), chosen by scheme, and those
// events.
func holdOut(full *Corpus, scheme string) (*Corpus, []validation) {
	fit := &Corpus{Items: full.Items, index: full.index, Users: full.Users, MaxTS: full.MaxTS,
		Seqs: make([][]int32, len(full.Seqs)), Times: make([][]int64, len(full.Seqs)), Count: make([]int32, len(full.Items))}
	r := rand.New(rand.NewPCG(42, 5))
	var cases []validation
	for u, seq := range full.Seqs {
		n := len(seq)
		fseq, fts := seq, full.Times[u]
		if n >= minHoldOut {
			p := n - 1
			if scheme == ValidateRandom {
				p = r.IntN(n)
			}
			cases = append(cases, validation{int32(u), seq[p], full.Origin[u][p]})
			fseq = append(slices.Clone(seq[:p]), seq[p+1:]...)
			fts = append(slices.Clone(full.Times[u][:p]), full.Times[u][p+1:]...)
		}
		fit.Seqs[u], fit.Times[u] = fseq, fts
		for _, it := range fseq {
			fit.Count[it]++
		}
		fit.Events += len(fseq)
	}
	fit.ByItem = make([][]Occurrence, len(fit.Items))
	for u, seq := range fit.Seqs {
		for p, it := range seq {
			fit.ByItem[it] = append(fit.ByItem[it], Occurrence{int32(u), int32(p)})
		}
	}
	return fit, cases
}

// spread keeps at most n cases, evenly spaced: deterministic, and not
// biased to the users who came first.
func spread(cases []validation, n int) []validation {
	if n <= 0 || len(cases) <= n {
		return cases
	}
	out := make([]validation, n)
	for i := range out {
		out[i] = cases[i*len(cases)/n]
	}
	return out
}

// Summary is what the registry's manifest records about the run.
func (r *Result) Summary() map[string]any {
	return map[string]any{"serving": r.Serving, "events": r.Events, "items": r.Items,
		"validation_users": r.ValidationUsers, "validation": r.Validation, "skipped": r.Skipped, "train_s": r.Took.Seconds()}
}
