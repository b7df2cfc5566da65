package eval

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/train"
)

// ranker is a model under evaluation.
type ranker interface {
	// Rank returns up to n items for c, best first with their scores,
	// leaving out c.History.
	Rank(ctx context.Context, c *Case, n int) ([]features.Scored, error)
}

// Options shape a run; the zero value is the standard protocol on the test
// split with the shipped configuration.
type Options struct {
	Split Split // default SplitTest
	// Protocol is ProtocolLOO, ProtocolStratified or ProtocolSession;
	// empty: DefaultProtocol of the dataset.
	Protocol string
	// LimitUsers evaluates only the first N eligible users (0: all). The
	// training input stays the whole split, so a limited run estimates the
	// full one rather than measuring a smaller dataset.
	LimitUsers int
	Workers    int               // 0: runtime.GOMAXPROCS
	Features   *features.Config  // nil: features.DefaultConfig()
	Recommend  *recommend.Config // nil: recommend.DefaultConfig()
	Train      *train.Config     // nil: train.DefaultConfig()
	// NoTrain evaluates the streaming pipeline alone, without trained
	// models; Variants then vary its recommend settings.
	NoTrain bool
	// NoCategories withholds the dataset's item categories from Ripple, to
	// measure what they are worth; they still measure ILD.
	NoCategories bool
	// Variants are further configurations evaluated in the same run, on
	// the same split and replay (ripple eval --compare): each trains its own
	// models with its train config and serves through its recommend config.
	Variants []Variant
	// MF shapes the matrix-factorisation baseline (nil: DefaultMFParams);
	// it runs when evaluated users × items is at most MF.MaxScores.
	MF *MFParams
	// Progress, when set, is told how far each stage ("replay", then one
	// per model) has got. Calls never overlap and done never decreases
	// within a stage.
	Progress func(stage string, done, total int)
}

// Variant is one configuration under comparison.
type Variant struct {
	Name      string
	Recommend *recommend.Config // nil: the run's
	Train     *train.Config     // nil: the run's
}

// Model names as they appear in reports.
const (
	ModelServing = "ripple " + recommend.Model
	ModelTrained = "ripple trained"
	ModelPopRec  = "PopRec (leak-free)"
	ModelSR      = "SR (sequential rules)"
	ModelSPop    = "S-POP"
)

// DefaultProtocol is the protocol d's source prescribes: the session
// protocol for a dataset split into training and test sessions,
// leave-one-out otherwise.
func DefaultProtocol(d *Dataset) string {
	if d.Test != nil {
		return ProtocolSession
	}
	return ProtocolLOO
}

// Run evaluates the serving pipeline and PopRec on d under leave-one-out,
// full ranking: it splits d, applies d's item categories to a fresh feature
// engine as item records, as a server is sent its catalogue, replays the
// training input of all users in event-time order after them, then ranks
// every evaluated user's target with every model through the same metric
// code.
func Run(ctx context.Context, d *Dataset, opt Options) (*Report, error) {
	if opt.Split == "" {
		opt.Split = SplitTest
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	fcfg, rcfg := opt.Features, recommend.DefaultConfig()
	if fcfg == nil {
		fcfg = features.DefaultConfig()
	}
	if opt.Recommend != nil {
		rcfg = *opt.Recommend
	}
	progress := func(string, int, int) {}
	if opt.Progress != nil {
		progress = opt.Progress
	}

	start := time.Now()
	var h *Holdout
	var err error
	if opt.Protocol == "" {
		opt.Protocol = DefaultProtocol(d)
	}
	if d.Test != nil && opt.Protocol != ProtocolSession {
		return nil, fmt.Errorf("%s is split into training and test sessions by its source: evaluate it with protocol %s", d.Name, ProtocolSession)
	}
	switch opt.Protocol {
	case ProtocolLOO:
		h, err = d.Split(opt.Split)
	case ProtocolStratified:
		if opt.Split != SplitTest {
			return nil, fmt.Errorf("protocol %s has no validation split: the tuner holds out each user's last training event itself", ProtocolStratified)
		}
		h, err = d.SplitStratified(0.75, 42)
	case ProtocolSession:
		if opt.Split != SplitTest {
			return nil, fmt.Errorf("protocol %s has no validation split: the tuner holds out each training session's last event itself; "+
				"for session-rec's tuning split pass its train_tr file", ProtocolSession)
		}
		h, err = d.SplitSessions()
	default:
		err = fmt.Errorf("unknown protocol %q (accepted: %s)", opt.Protocol, strings.Join(Protocols, ", "))
	}
	if err != nil {
		return nil, err
	}
	cats, fed := d.Categories.items(), d.Categories.items()
	if opt.NoCategories {
		fed = nil
	}
	engine := features.NewEngine(fcfg, nil)
	if err := replay(ctx, engine, fed, h.Train, func(done, total int) { progress("replay", done, total) }); err != nil {
		return nil, err
	}
	engine.RefreshTrending()
	replayTime := time.Since(start)
	sess := &sessions{base: engine, cfg: fcfg, items: make(map[string]event.Item, len(fed))}
	for _, it := range fed {
		sess.items[it.ID] = it
	}
	pipeline := func(rc recommend.Config) Serving {
		return Serving{Pipeline: recommend.NewBound(sess.bind, rc), sessions: sess}
	}

	cases := h.Cases
	if opt.LimitUsers > 0 && opt.LimitUsers < len(cases) {
		cases = cases[:opt.LimitUsers]
	}
	r := &Report{
		Dataset: d.Name, Source: d.Source, Format: d.Format,
		Protocol: opt.Protocol, Split: opt.Split, Depth: Depth, Workers: opt.Workers,
		Created: time.Now().UTC().Truncate(time.Second),
		Counts: Counts{
			Users: len(d.Users), Items: d.Items, Events: d.Events, TrainEvents: len(h.Train),
			Evaluated: len(cases), SkippedShort: h.Skipped, NotEvaluated: len(h.Cases) - len(cases),
			TestSessions: h.Sessions, RemovedUnknown: h.RemovedUnknown,
		},
		Notes: d.Notes,
	}
	for i := range cases {
		if cases[i].TargetInHistory() {
			r.Counts.TargetsInHistory++
		}
	}
	if c := d.Categories; c != nil {
		r.Categories = &CategoryInfo{Source: c.Source, Items: len(c.Items), Distinct: c.Distinct(), Truncated: c.Truncated, Fed: !opt.NoCategories}
	}
	if opt.Split == SplitTest {
		r.Published = PublishedResults(d.Name, opt.Protocol)
	}

	type entry struct {
		name string
		r    ranker
	}
	models := []entry{{ModelServing, pipeline(rcfg)}}
	trained := func(label string, rc recommend.Config, tc *train.Config) error {
		if tc == nil {
			c := train.DefaultConfig()
			if opt.Train != nil {
				c = *opt.Train
			}
			tc = &c
		}
		if opt.Protocol == ProtocolStratified {
			// The items to find are random, not the newest: tune on a
			// random held-out event of each user, as the protocol holds
			// out random ones.
			c := *tc
			c.Validation = train.ValidateRandom
			tc = &c
		}
		progress("train "+label, 0, 1)
		res, err := train.Train(ctx, h.Train, *tc, &train.Stream{Features: fcfg, Recommend: rc,
			Items: func() []event.Item { return fed }})
		if err != nil {
			return fmt.Errorf("train %s: %w", label, err)
		}
		progress("train "+label, 1, 1)
		res.Set.Name = "blend@eval"
		name := ModelTrained + " (" + res.Serving + ")"
		if label != "" {
			name = ModelTrained + " [" + label + "] (" + res.Serving + ")"
		}
		if r.Training == nil {
			r.Training = trainingInfo(res)
		} else {
			r.VariantTraining = append(r.VariantTraining, VariantTraining{Name: label, Training: *trainingInfo(res)})
		}
		s := pipeline(rc)
		s.Pipeline.Models = func() *model.Set { return res.Set }
		models = append(models, entry{name, s})
		return nil
	}
	if !opt.NoTrain {
		if err := trained("", rcfg, nil); err != nil {
			return nil, err
		}
	}
	for _, v := range opt.Variants {
		rc := rcfg
		if v.Recommend != nil {
			rc = *v.Recommend
		}
		if opt.NoTrain {
			// The streaming pipeline alone, served with the variant's
			// recommend settings (what serves before the first training,
			// and on nodes without models).
			models = append(models, entry{ModelServing + " [" + v.Name + "]", pipeline(rc)})
			continue
		}
		if err := trained(v.Name, rc, v.Train); err != nil {
			return nil, err
		}
	}
	mfp := DefaultMFParams()
	if opt.MF != nil {
		mfp = *opt.MF
	}
	if opt.Protocol == ProtocolSession {
		// MF has no factors for a session it never trained on; session-rec
		// compares with these instead.
		models = append(models, entry{ModelSR, NewSessionRules(h.Train)}, entry{ModelSPop, NewSessionPop(h.Train)})
	} else if len(cases)*d.Items <= mfp.MaxScores {
		models = append(models, entry{ModelMF, NewMF(h.Train, mfp)})
	}
	models = append(models, entry{ModelPopRec, NewPopRec(h.Train)})
	catalogue := NewCatalogue(d.Items, cats, h.Train)
	evalStart := time.Now()
	for _, m := range models {
		t := time.Now()
		outs, err := evaluate(ctx, m.r, cases, opt.Workers, func(done, total int) { progress(m.name, done, total) })
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		r.Models = append(r.Models, result(m.name, outs, catalogue, time.Since(t)))
	}
	r.Timings = Timings{
		Read:   d.ReadTime.Seconds(),
		Replay: replayTime.Seconds(),
		Load:   (d.ReadTime + replayTime).Seconds(),
		Eval:   time.Since(evalStart).Seconds(),
	}
	return r, nil
}

// replay applies items, then train in order, to engine, as the server's
// log replay would.
func replay(ctx context.Context, engine *features.Engine, items []event.Item, train []event.Interaction, progress func(done, total int)) error {
	const step = 1 << 13
	recs := make([]event.Record, 0, max(step, len(items)))
	offs := make([]uint64, cap(recs)) // offset 0: not from a log, always applied
	for i := range items {
		recs = append(recs, event.Record{Kind: event.KindItem, Item: items[i]})
	}
	engine.ApplyBatch(offs[:len(recs)], recs)
	for from := 0; from < len(train); from += step {
		recs = recs[:0]
		for i := from; i < min(from+step, len(train)); i++ {
			recs = append(recs, event.Record{Kind: event.KindInteraction, Interaction: train[i]})
		}
		engine.ApplyBatch(offs[:len(recs)], recs)
		if err := ctx.Err(); err != nil {
			return err
		}
		progress(from+len(recs), len(train))
	}
	return nil
}

// evaluate ranks every case with r on workers goroutines. Outcomes land in
// case order, so the aggregate does not depend on scheduling.
func evaluate(ctx context.Context, r ranker, cases []Case, workers int, progress func(done, total int)) ([]outcome, error) {
	outs := make([]outcome, len(cases))
	var next, done atomic.Int64
	var mu sync.Mutex // serialises progress calls
	step := int64(max(1, len(cases)/500))
	g, ctx := errgroup.WithContext(ctx)
	for range max(1, workers) {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(cases) {
					return nil
				}
				o, err := evaluateCase(ctx, r, &cases[i])
				if err != nil {
					return err
				}
				outs[i] = o
				if n := done.Add(1); n%step == 0 || n == int64(len(cases)) {
					mu.Lock()
					progress(int(done.Load()), len(cases))
					mu.Unlock()
				}
			}
		})
	}
	return outs, g.Wait()
}

func evaluateCase(ctx context.Context, r ranker, c *Case) (outcome, error) {
	list, err := r.Rank(ctx, c, Depth)
	if err != nil {
		return outcome{}, fmt.Errorf("user %s: %w", c.User, err)
	}
	var o outcome
	if len(c.Targets) > 0 {
		targets := make(map[string]bool, len(c.Targets))
		for _, t := range c.Targets {
			targets[t] = true
		}
		o.ranks, o.n = TargetRanks(list, targets), len(c.Targets)
		if len(o.ranks) > 0 {
			o.rank = o.ranks[0]
		}
	} else {
		o.rank, o.ties = TargetRank(list, c.Target)
		o.n = 1
		if o.rank > 0 {
			o.ranks = []int{o.rank}
		}
	}
	o.cold = len(c.History) <= ColdEvents
	o.top = make([]string, 0, CoverageK)
	for i, s := range list {
		if i < CoverageK {
			o.top = append(o.top, s.ID)
		}
		if !c.IncludeSeen && slices.Contains(c.History, s.ID) {
			o.leaked++
		}
	}
	return o, nil
}

func result(name string, outs []outcome, catalogue *Catalogue, took time.Duration) ModelResult {
	m := ModelResult{Model: name, Metrics: score(outs, catalogue), EvalSeconds: took.Seconds()}
	var cold []outcome
	for _, o := range outs {
		if o.cold {
			cold = append(cold, o)
		}
	}
	if len(cold) > 0 {
		c := score(cold, catalogue)
		c.Curve = nil
		m.Cold = &c
	}
	for _, o := range outs {
		if o.rank > 0 && o.ties > 0 {
			m.TiedTargets++
		}
		m.HistoryReturned += o.leaked
	}
	return m
}
