package recommend

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/observe"
)

// Features is what the pipeline reads; features.Engine implements it and a
// remote store can too.
//
// Items are addressed by handle (Neighbor.Ref, Scored.Ref, ItemRef) on the
// hot path: a candidate then costs no string hashing after it is found.
type Features interface {
	User(id string, maxRecent int) features.UserView
	Neighbors(item string, n int) []features.Neighbor
	Trending(category string, n int) []features.Scored
	ItemRef(id string) (uint32, bool)
	ItemsByRef(refs []uint32, out []features.ItemInfo)
	SeenByRef(user string, refs []uint32, out []bool)
}

// Config weighs and sizes the candidate sources.
type Config struct {
	RecentItems      int     `yaml:"recent_items"`       // anchors for co-visitation
	RecencyDecay     float64 `yaml:"recency_decay"`      // anchor j weighs decay^j
	NeighborsPerItem int     `yaml:"neighbors_per_item"` // neighbours read per anchor
	TopCategories    int     `yaml:"top_categories"`
	PerCategory      int     `yaml:"per_category"`
	Popular          int     `yaml:"popular"` // popularity candidates
	WeightCovis      float64 `yaml:"weight_covisitation"`
	WeightCategory   float64 `yaml:"weight_category"`
	WeightPopular    float64 `yaml:"weight_popular"`
	// WeightRepeat makes the user's own recent items candidates in
	// requests that keep seen items (include_seen): within a session people
	// go back to what they just looked at. The j-th newest gains
	// WeightRepeat·RecencyDecay^j times the best other candidate's score,
	// so it weighs the same whatever serves (the streaming sources, or a
	// trained blend on its own scale). Seen items are filtered otherwise,
	// so it has no effect then.
	WeightRepeat float64 `yaml:"weight_repeat"`
	Diversity    float64 `yaml:"diversity"` // 0..1: score × (1-d)^(items already shown from the category)
	MaxK         int     `yaml:"max_k"`
	// ExploreRate is the share of requests (0..1) that get one exploration
	// slot, unless the request says explore=true|false. The slot, at
	// ExplorePosition (1-based, at most k), goes to the item Thompson
	// sampling picks among the next ExplorePool candidates below the list:
	// Beta(1+engagements, 1+impressions−engagements) from the feedback
	// loop, so items never shown are tried and items shown without effect
	// fade.
	ExploreRate     float64 `yaml:"explore_rate"`
	ExplorePosition int     `yaml:"explore_position"`
	ExplorePool     int     `yaml:"explore_pool"`
}

// DefaultConfig is what the server and `ripple eval` use unless configured.
func DefaultConfig() Config {
	return Config{
		RecentItems: 10, RecencyDecay: 0.6, NeighborsPerItem: 50,
		TopCategories: 3, PerCategory: 50, Popular: 50,
		WeightCovis: 1, WeightCategory: 0.05, WeightPopular: 0.02, WeightRepeat: 1,
		Diversity: 0.1, MaxK: 500,
		ExploreRate: 0, ExplorePosition: 3, ExplorePool: 50,
	}
}

// Model names what produced the ranking; it appears in every response.
const Model = "stream-covis-v1"

// Degradation levels, reported in every response.
const (
	Healthy  = "healthy"
	Stale    = "stale"
	Degraded = "degraded"
)

// Request asks for recommendations.
type Request struct {
	User        string
	K           int
	IncludeSeen bool
	Explain     bool
	Exclude     []string
	// Explore forces the exploration slot on or off; nil follows
	// Config.ExploreRate.
	Explore *bool
}

// Reason explains one contribution to an item's score.
type Reason struct {
	Source string  `json:"source"`
	Via    string  `json:"via,omitempty"`
	Score  float64 `json:"score"`
}

// Item is one recommended item.
type Item struct {
	Item     string         `json:"item"`
	Score    float64        `json:"score"`
	Explore  bool           `json:"explore,omitempty"` // placed by the exploration slot, not by its score
	Reasons  []Reason       `json:"reasons,omitempty"`
	Features map[string]any `json:"features,omitempty"`
	// Vector is what the pipeline knew about the item when it ranked it
	// (model.RankFeatures): the feedback loop logs it with the list, and
	// the ranker learns from those logs.
	Vector [model.NumRankFeatures]float64 `json:"-"`
}

// Response is the pipeline's answer.
type Response struct {
	Items       []Item
	Model       string
	Degradation string
	Candidates  int
	ColdStart   bool
	anonymous   bool // the user withheld personalisation consent
}

// Explorer reports items' impressions and engagements so far.
type Explorer interface {
	ItemStats(items []string, impressions, engagements []float64)
}

// Anonymous reports that the user withheld personalisation consent and was
// served as an anonymous user.
func (r Response) Anonymous() bool { return r.anonymous }

// Pipeline produces recommendations. It is safe for concurrent use.
type Pipeline struct {
	bind func(ctx context.Context) Features
	cfg  Config
	// Health reports the freshness of the feature state (Healthy or Stale);
	// nil means always Healthy.
	Health func() string
	// Tracer records a request's stages as spans (candidates, filter,
	// score, diversify) under one "recommend" span; nil records nothing.
	// Spans carry counts and levels, never the user id.
	Tracer trace.Tracer
	// Explorer gives the exploration slot each candidate's engagement
	// history; nil samples every candidate from Beta(1, 1).
	Explorer Explorer
	// Models returns the trained model set serving now (nil: none, the
	// streaming sources alone rank). It is read once per request, so a
	// swap never mixes two versions in one answer.
	Models func() *model.Set
}

func (p *Pipeline) tracer() trace.Tracer {
	if p.Tracer == nil {
		return observe.Tracer(nil, "")
	}
	return p.Tracer
}

// endStage ends a stage span with the count it produced.
func endStage(s trace.Span, key string, n int) {
	if s.IsRecording() {
		s.SetAttributes(attribute.Int(key, n))
	}
	s.End()
}

// endRequest ends the span of a whole request with what it served.
func endRequest(s trace.Span, k int, resp *Response) {
	if s.IsRecording() {
		s.SetAttributes(attribute.Int("ripple.k", k), attribute.Int("ripple.candidates", resp.Candidates),
			attribute.Int("ripple.items", len(resp.Items)), attribute.String("ripple.degradation", resp.Degradation),
			attribute.Bool("ripple.cold_start", resp.ColdStart))
	}
	s.End()
}

// New returns a pipeline over f.
func New(f Features, cfg Config) *Pipeline {
	return &Pipeline{bind: func(context.Context) Features { return f }, cfg: cfg}
}

// NewBound returns a pipeline whose requests each read through their own
// Features from bind: a remote store's view under the request's deadline.
// When that view has a Degradation() string method, its level (the worst
// freshness of what it served) is folded into the response.
func NewBound(bind func(ctx context.Context) Features, cfg Config) *Pipeline {
	return &Pipeline{bind: bind, cfg: cfg}
}

// leveled is a bound view that knows how fresh what it served was.
type leveled interface{ Degradation() string }

// worse returns the more degraded of two levels.
func worse(a, b string) string {
	rank := func(l string) int {
		switch l {
		case Stale:
			return 1
		case Degraded:
			return 2
		}
		return 0
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// fold merges what the view reports into the response.
func fold(f Features, resp *Response) {
	if l, ok := f.(leveled); ok {
		resp.Degradation = worse(resp.Degradation, l.Degradation())
	}
}

// Config returns the pipeline's configuration.
func (p *Pipeline) Config() Config { return p.cfg }

type candidate struct {
	id       string
	ref      uint32
	known    bool // ref is valid: the engine knows the item
	covis    float64
	repeat   float64 // the user's own recent item, when seen items are kept
	model    float64 // trained blend score
	category float64
	popular  float64
	score    float64
	vec      [model.NumRankFeatures]float64 // filled for the head the list is picked from
	info     features.ItemInfo
	reasons  []Reason
}

// candidates collects per-item signals. Candidates live in fixed-size
// chunks so pointers stay valid while the set grows, and the whole set is
// recycled through a pool: a request allocates almost nothing for them.
type candidates struct {
	byRef   refTable
	list    []*candidate
	chunks  [][]candidate
	explain bool
	// cats are the user's top categories this request used.
	cats []string
	// The trained model's scores for this request, when one serves.
	set    *model.Set
	scores *model.Scores
}

const chunkSize = 512

var candidatePool = sync.Pool{New: func() any {
	return &candidates{byRef: newRefTable(chunkSize), chunks: [][]candidate{make([]candidate, 0, chunkSize)}}
}}

func newCandidates(explain bool) *candidates {
	c := candidatePool.Get().(*candidates)
	c.explain = explain
	return c
}

// release returns c to the pool. Nothing handed out may point into it: items
// are copied into the response, and reason slices are never reused.
func (c *candidates) release() {
	if c.scores != nil {
		c.scores.Release()
		c.set, c.scores = nil, nil
	}
	c.byRef.reset()
	for i := range c.chunks {
		clear(c.chunks[i])
		c.chunks[i] = c.chunks[i][:0]
	}
	c.chunks = c.chunks[:1]
	clear(c.list)
	c.list = c.list[:0]
	c.cats = c.cats[:0]
	candidatePool.Put(c)
}

func (c *candidates) get(id string, ref uint32) *candidate {
	if x := c.byRef.get(ref); x != nil {
		return x
	}
	last := &c.chunks[len(c.chunks)-1]
	if len(*last) == cap(*last) {
		c.chunks = append(c.chunks, make([]candidate, 0, chunkSize))
		last = &c.chunks[len(c.chunks)-1]
	}
	*last = append(*last, candidate{id: id, ref: ref, known: true})
	x := &(*last)[len(*last)-1]
	c.byRef.put(ref, x)
	c.list = append(c.list, x)
	return x
}

// modelCandidates scores hist (newest first) through set and adds its n
// best items as candidates. The scores stay with c until release, so
// candidates found later can be given theirs (modelScore).
func (c *candidates) modelCandidates(f Features, set *model.Set, hist []string, n int) *model.Scores {
	c.set, c.scores = set, set.Score(hist)
	for _, i := range c.scores.Top(n, nil) {
		id := set.Items[i]
		ref, ok := f.ItemRef(id)
		if !ok {
			continue // the model knows an item this state does not (erased, or not yet here)
		}
		x := c.get(id, ref)
		x.model = c.scores.W[i]
		c.reason(x, "model", set.Name, x.model)
	}
	return c.scores
}

// modelScore gives x its model score if it has none yet.
func (c *candidates) modelScore(x *candidate) {
	if c.scores == nil || x.model != 0 {
		return
	}
	if i, ok := c.set.Index(x.id); ok && c.scores.W[i] > 0 {
		x.model = c.scores.W[i]
		c.reason(x, "model", c.set.Name, x.model)
	}
}

func (c *candidates) reason(x *candidate, source, via string, score float64) {
	if !c.explain {
		return
	}
	for i := range x.reasons {
		if x.reasons[i].Source == source && x.reasons[i].Via == via {
			x.reasons[i].Score += score
			return
		}
	}
	x.reasons = append(x.reasons, Reason{source, via, score})
}

// Recommend runs the pipeline. When ctx ends midway it answers with what it
// has plus popularity backfill and reports Degraded, rather than failing.
func (p *Pipeline) Recommend(ctx context.Context, req Request) Response {
	k := min(max(req.K, 1), p.cfg.MaxK)
	tr := p.tracer()
	// Feature reads (cache loads) nest under the request's span.
	ctx, span := tr.Start(ctx, "recommend")
	f := p.bind(ctx)
	_, s := tr.Start(ctx, "recommend.candidates")
	set, cfg, ranker := p.models()
	resp, c := p.gather(ctx, f, set, &cfg, req.User, k, req.Explain, req.IncludeSeen)
	resp.Model = ranked(resp.Model, ranker)
	endStage(s, "ripple.candidates", resp.Candidates)
	defer c.release()
	if resp.anonymous {
		req.IncludeSeen = true // the user's history is not used at all
	}
	_, s = tr.Start(ctx, "recommend.filter")
	list := p.filter(f, req, c.list)
	endStage(s, "ripple.kept", len(list))
	_, s = tr.Start(ctx, "recommend.score")
	list, trend := p.score(list, set, ranker, k)
	endStage(s, "ripple.scored", len(list))
	_, s = tr.Start(ctx, "recommend.diversify")
	resp.Items = diversify(list, k, cfg.Diversity, req.Explain)
	endStage(s, "ripple.items", len(resp.Items))
	if p.exploring(req) {
		resp.Items = p.explore(req, resp.Items, list, p.coldCandidates(f, c), k, trend)
	}
	fold(f, &resp)
	endRequest(span, k, &resp)
	return resp
}

// exploring decides whether this request gets an exploration slot.
func (p *Pipeline) exploring(req Request) bool {
	if req.Explore != nil {
		return *req.Explore
	}
	return p.cfg.ExploreRate > 0 && rand.Float64() < p.cfg.ExploreRate
}

// coldItems is implemented by feature state that knows items with metadata
// but no events yet (the engine; not yet the Redis view).
type coldItems interface {
	ColdItems(category string, n int) []features.Scored
}

// coldPerRequest bounds the new items offered to one exploration slot.
const coldPerRequest = 10

// coldCandidates are new items (metadata, no events) from the user's top
// categories, or from the whole catalogue for a user without any: the
// exploration slot is how they get their first impressions.
func (p *Pipeline) coldCandidates(f Features, c *candidates) []*candidate {
	src, ok := f.(coldItems)
	if !ok {
		return nil
	}
	var out []*candidate
	add := func(list []features.Scored) {
		for _, it := range list {
			if len(out) == coldPerRequest {
				return
			}
			if c.byRef.get(it.Ref) == nil {
				out = append(out, &candidate{id: it.ID, ref: it.Ref, known: true})
			}
		}
	}
	for _, cat := range c.cats {
		add(src.ColdItems(cat, coldPerRequest))
	}
	if len(c.cats) == 0 {
		add(src.ColdItems("", coldPerRequest))
	}
	// Metadata changes already invalidate the engine's cold lists; the
	// check here keeps any other Features implementation (whose lists may
	// lag) from offering a hidden item, for ≤ coldPerRequest lookups.
	refs := make([]uint32, len(out))
	for i, x := range out {
		refs[i] = x.ref
	}
	infos := make([]features.ItemInfo, len(out))
	f.ItemsByRef(refs, infos)
	kept := out[:0]
	for i, x := range out {
		if !infos[i].Hidden {
			x.info = infos[i]
			kept = append(kept, x)
		}
	}
	return kept
}

// explore puts, at ExplorePosition, the candidate Thompson sampling picks
// among the ExplorePool best scored candidates not already in items (list's
// head is sorted by diversify) and the new items offered (cold).
func (p *Pipeline) explore(req Request, items []Item, list, cold []*candidate, k int, trend [2]float64) []Item {
	explain := req.Explain
	in := make(map[string]bool, len(items)+len(req.Exclude))
	for _, it := range items {
		in[it.Item] = true
	}
	for _, id := range req.Exclude {
		in[id] = true
	}
	pool := make([]*candidate, 0, p.cfg.ExplorePool+len(cold))
	for _, x := range list {
		if len(pool) == p.cfg.ExplorePool {
			break
		}
		if !in[x.id] {
			pool = append(pool, x)
		}
	}
	for _, x := range cold {
		if !in[x.id] {
			pool = append(pool, x)
		}
	}
	if len(pool) == 0 {
		return items
	}
	ids := make([]string, len(pool))
	for i, x := range pool {
		ids[i] = x.id
	}
	imp, eng := make([]float64, len(pool)), make([]float64, len(pool))
	if p.Explorer != nil {
		p.Explorer.ItemStats(ids, imp, eng)
	}
	best, bestDraw := 0, -1.0
	for i := range pool {
		if d := betaSample(1+eng[i], 1+max(imp[i]-eng[i], 0)); d > bestDraw {
			best, bestDraw = i, d
		}
	}
	x := pool[best]
	if x.vec[5] == 0 { // below the head, or a new item: its vector was not filled (ctr is never 0 once it is)
		p.vectors([]*candidate{x}, trend[0], trend[1])
	}
	it := toItem(x, x.score, explain)
	it.Explore = true
	if explain {
		it.Reasons = append(it.Reasons, Reason{Source: "explore", Score: bestDraw})
	}
	pos := min(max(p.cfg.ExplorePosition, 1), k, len(items)+1) - 1
	if len(items) == k {
		items = items[:k-1] // the slot replaces the list's last item
	}
	items = append(items, Item{})
	copy(items[pos+1:], items[pos:])
	items[pos] = it
	return items
}

// models is what serves this request: the set, nil when none is promoted
// or when the promoted one weighs no trained component (the tuner found
// the streaming sources alone best), so responses name the streaming
// model; the configuration, with the streaming settings the promoted set
// was tuned with, if any; and the promoted set's ranker, if it has one
// (with or without components).
func (p *Pipeline) models() (*model.Set, Config, *ranking) {
	cfg := p.cfg
	if p.Models == nil {
		return nil, cfg, nil
	}
	s := p.Models()
	if s == nil {
		return nil, cfg, nil
	}
	if t := s.Tuned; t != nil {
		cfg.WeightCategory, cfg.Diversity = t.CategoryWeight, t.Diversity
	}
	var r *ranking
	if s.Ranker != nil {
		r = &ranking{Ranker: s.Ranker, version: s.Name[max(strings.IndexByte(s.Name, '@'), 0):]}
	}
	if len(s.Components) == 0 {
		return nil, cfg, r
	}
	return s, cfg, r
}

// ranking is the promoted set's ranker and the version it came with.
type ranking struct {
	*model.Ranker
	version string // "@7"
}

// ranked names what serves when r reorders: the family, then the ranker
// (or the one feature it fell back to), then the set's version:
// blend@7 → blend+ranker@7, stream-covis-v1 → stream-covis-v1+ranker@7,
// blend+covisitation@7 after a fallback. Responses and the feedback
// loop's rates so tell reordered lists apart.
func ranked(name string, r *ranking) string {
	if r == nil {
		return name
	}
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	src := r.Source
	if src == "pairwise" {
		src = "ranker"
	}
	return name + "+" + src + r.version
}

// StreamScore is one streaming candidate's score by source, as configured.
type StreamScore struct {
	ID       string
	Category float64 // category trending
	Other    float64 // co-visitation and popularity
}

// StreamScores returns every candidate the streaming sources find for user
// with its scores (no trained model, no tie-break), seen and hidden items
// left out: what training blends its models with, read at the state the
// pipeline's Features hold.
func (p *Pipeline) StreamScores(ctx context.Context, user string, k int) []StreamScore {
	f := p.bind(ctx)
	resp, c := p.gather(ctx, f, nil, &p.cfg, user, k, false, false)
	defer c.release()
	list := p.filter(f, Request{User: user, K: k, IncludeSeen: resp.anonymous}, c.list)
	out := make([]StreamScore, len(list))
	for i, x := range list {
		out[i] = StreamScore{ID: x.id, Category: x.category, Other: x.covis + x.popular}
	}
	return out
}

// gather collects candidates from every source for user.
func (p *Pipeline) gather(ctx context.Context, f Features, set *model.Set, cfg *Config, user string, k int, explain, includeSeen bool) (Response, *candidates) {
	resp := Response{Model: Model, Degradation: Healthy}
	if set != nil {
		resp.Model = set.Name
	}
	if p.Health != nil {
		resp.Degradation = p.Health()
	}
	c := newCandidates(explain)
	recent := cfg.RecentItems
	if set != nil {
		recent = max(recent, set.History())
	}
	u := f.User(user, recent)
	if u.NoPersonalization {
		// No consent to personalise: served exactly as an anonymous user.
		u, resp.anonymous = features.UserView{}, true
	}
	resp.ColdStart = !u.Exists || len(u.Recent) == 0

	var scores *model.Scores
	if set != nil && len(u.Recent) > 0 {
		hist := make([]string, len(u.Recent))
		for i, r := range u.Recent {
			hist[i] = r.Item
		}
		scores = c.modelCandidates(f, set, hist, max(200, 4*k+20)+len(hist))
	}

	// Co-visitation of recent items: the strongest "what comes next" signal.
	w := 1.0
	for n, anchor := range u.Recent {
		if n == cfg.RecentItems {
			break
		}
		if ctx.Err() != nil {
			resp.Degradation = Degraded
			break
		}
		ns := f.Neighbors(anchor.Item, cfg.NeighborsPerItem)
		total := 0.0
		for _, n := range ns {
			total += n.Weight
		}
		if total > 0 {
			for _, n := range ns {
				v := cfg.WeightCovis * w * n.Weight / total
				x := c.get(n.Item, n.Ref)
				x.covis += v
				c.reason(x, "covisitation", anchor.Item, v)
			}
		}
		w *= cfg.RecencyDecay
	}
	if includeSeen && cfg.WeightRepeat > 0 {
		w = 1.0
		for n, r := range u.Recent {
			if n == cfg.RecentItems {
				break
			}
			if ref, ok := f.ItemRef(r.Item); ok {
				v := cfg.WeightRepeat * w
				x := c.get(r.Item, ref)
				x.repeat += v
				c.reason(x, "repeat", "", v)
			}
			w *= cfg.RecencyDecay
		}
	}

	// Category affinity × trending within the category.
	if ctx.Err() == nil {
		cats := u.Categories
		if len(cats) > cfg.TopCategories {
			cats = cats[:cfg.TopCategories]
		}
		sum := 0.0
		for _, cat := range cats {
			sum += cat.Score
			c.cats = append(c.cats, cat.ID)
		}
		for _, cat := range cats {
			if sum <= 0 {
				break
			}
			share := cat.Score / sum
			for rank, it := range f.Trending(cat.ID, cfg.PerCategory) {
				v := cfg.WeightCategory * share / (1 + float64(rank)/10)
				x := c.get(it.ID, it.Ref)
				x.category += v
				c.reason(x, "category_trending", cat.ID, v)
			}
		}
	} else {
		resp.Degradation = Degraded
	}

	// Popularity: cold start and backfill; a small tie-breaker otherwise.
	for rank, it := range f.Trending("", max(cfg.Popular, 2*k)) {
		v := cfg.WeightPopular / (1 + float64(rank)/20)
		x := c.get(it.ID, it.Ref)
		x.popular += v
		c.reason(x, "popular", "", v)
	}
	if scores != nil {
		// Streaming candidates the model's head left out still carry its score.
		for _, x := range c.list {
			c.modelScore(x)
		}
	}
	resp.Candidates = len(c.list)
	return resp, c
}

// filter drops seen (unless asked), hidden and excluded items, and fills
// item info for scoring.
func (p *Pipeline) filter(f Features, req Request, list []*candidate) []*candidate {
	refs := make([]uint32, len(list))
	for i, x := range list {
		refs[i] = x.ref
	}
	infos := make([]features.ItemInfo, len(list))
	f.ItemsByRef(refs, infos)
	seen := make([]bool, len(list))
	if !req.IncludeSeen && req.User != "" {
		f.SeenByRef(req.User, refs, seen)
	}
	var excluded map[string]bool
	if len(req.Exclude) > 0 {
		excluded = make(map[string]bool, len(req.Exclude))
		for _, e := range req.Exclude {
			excluded[e] = true
		}
	}
	out := list[:0]
	for i, x := range list {
		if seen[i] || infos[i].Hidden || excluded[x.id] {
			continue
		}
		x.info = infos[i]
		out = append(out, x)
	}
	return out
}

// tieBreak is the largest bonus the trending order adds to a score: far
// below any real signal difference, but enough that equal-signal items get
// distinct scores. Reported scores must order exactly as the list does, or
// consumers that count ties (like the evaluation protocol) see false ties.
const tieBreak = 1e-9

// score scores every candidate by the blend and fills the feature vectors
// of the best DiversifyWindow(k), which it moves to the front; with a
// ranker serving, those are rescored by it and the list is cut to them:
// the ranker was learnt on lists the blend chose, and orders only such.
// It also returns the candidates' trending range (lowest, span), which the
// vectors are relative to.
func (p *Pipeline) score(list []*candidate, set *model.Set, r *ranking, k int) ([]*candidate, [2]float64) {
	lo, span := p.blendScore(list, set)
	head := min(len(list), DiversifyWindow(k))
	selectTop(list, head)
	if p.rerank(list[:head], r, lo, span) {
		return list[:head], [2]float64{lo, span}
	}
	return list, [2]float64{lo, span}
}

// rerank fills list's feature vectors and, with a ranker, rescores list by
// it, reporting whether it did.
func (p *Pipeline) rerank(list []*candidate, r *ranking, lo, span float64) bool {
	p.vectors(list, lo, span)
	if r == nil {
		return false
	}
	for _, x := range list {
		if !x.known {
			x.score = 0 // no signal at all: after every known item, as without a ranker
			continue
		}
		// A logistic squash keeps scores positive (diversity multiplies
		// them) and ordered as the ranker orders.
		x.score = 1 / (1 + math.Exp(-r.Score(&x.vec)))
	}
	return true
}

// blendScore scores every candidate by the blend: the trained model's
// score plus the streaming sources' at the tuned weight, plus a trending
// tie-break. It returns the candidates' trending range (lowest, span).
func (p *Pipeline) blendScore(list []*candidate, set *model.Set) (lo, span float64) {
	stream := 1.0
	if set != nil {
		// The tuned scale of the streaming sources against the model's.
		stream = set.StreamWeight
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range list {
		if t := x.info.Trend; !math.IsInf(t, -1) {
			lo, hi = min(lo, t), max(hi, t)
		}
	}
	span = hi - lo
	for _, x := range list {
		// Linear in the trending log-score: the same order as ranking by
		// trend, in O(n) rather than a sort.
		tb := 0.0
		if t := x.info.Trend; !math.IsInf(t, -1) {
			tb = tieBreak
			if span > 0 {
				tb = tieBreak * (0.5 + 0.5*(t-lo)/span)
			}
		}
		x.score = x.model + stream*(x.covis+x.category+x.popular) + tb
	}
	repeatBoost(list)
	return lo, span
}

// repeatBoost adds to each of the user's own recent items (repeat > 0) its
// repeat share of the best score among the other candidates.
func repeatBoost(list []*candidate) {
	best, any := 0.0, false
	for _, x := range list {
		if x.repeat > 0 {
			any = true
		} else {
			best = max(best, x.score)
		}
	}
	if !any {
		return
	}
	if best == 0 {
		best = 1 // nothing else scores: the repeats order by themselves
	}
	for _, x := range list {
		if x.repeat > 0 {
			x.score += x.repeat * best
		}
	}
}

// The feedback loop's engagement rate of an item is smoothed to
// (engagements + ctrPriorEngaged) / (impressions + ctrPriorShown): an item
// never shown sits at 5%, and no rate is ever 0.
const ctrPriorEngaged, ctrPriorShown = 1.0, 20.0

// vectors fills each candidate's feature vector (model.RankFeatures).
func (p *Pipeline) vectors(list []*candidate, lo, span float64) {
	var imp, eng []float64
	if p.Explorer != nil && len(list) > 0 {
		ids := make([]string, len(list))
		for i, x := range list {
			ids[i] = x.id
		}
		imp, eng = make([]float64, len(list)), make([]float64, len(list))
		p.Explorer.ItemStats(ids, imp, eng)
	}
	for i, x := range list {
		trend := 0.0
		if t := x.info.Trend; !math.IsInf(t, -1) {
			trend = 1
			if span > 0 {
				trend = (t - lo) / span
			}
		}
		ctr := ctrPriorEngaged / ctrPriorShown
		if imp != nil {
			ctr = (eng[i] + ctrPriorEngaged) / (imp[i] + ctrPriorShown)
		}
		x.vec = [model.NumRankFeatures]float64{x.model, x.covis, x.category, x.popular, trend, ctr}
	}
}

// diversify picks greedily: each pick multiplies the remaining items of the
// same category by (1-d). Scores reported are the adjusted ones, so they
// never increase down the list.
func diversify(list []*candidate, k int, d float64, explain bool) []Item {
	// Only the head can be reordered by diversity: select it in O(n), then
	// sort just the head.
	head := min(len(list), DiversifyWindow(k))
	selectTop(list, head)
	list = list[:head]
	sort.Slice(list, func(i, j int) bool { return better(list[i], list[j]) })
	out := make([]Item, 0, min(k, len(list)))
	// Primary categories as small integers, so the O(k·window) selection
	// does no map lookups.
	var primary []int32
	if d > 0 && d < 1 {
		primary = make([]int32, len(list))
		catIndex := map[string]int32{}
		for i, x := range list {
			primary[i] = -1
			if len(x.info.Categories) > 0 {
				c := x.info.Categories[0]
				idx, ok := catIndex[c]
				if !ok {
					idx = int32(len(catIndex))
					catIndex[c] = idx
				}
				primary[i] = idx
			}
		}
	}
	Diversify(len(list), k, d, primary,
		func(i int) float64 { return list[i].score },
		func(i, j int) bool { return list[i].id < list[j].id },
		func(i int, adjusted float64) bool {
			out = append(out, toItem(list[i], adjusted, explain))
			return true
		})
	return out
}

// DiversifyWindow is how many of the best items diversification reorders
// for a list of k.
func DiversifyWindow(k int) int { return 4*k + 20 }

// Diversify picks up to k of n items sorted best first, greedily: each
// pick multiplies the remaining items of its primary category (primary[i];
// -1 or a nil primary: none) by (1-d), and the best adjusted score goes
// next, ahead(i, j) deciding equal ones. pick gets each item picked, in
// order, with its adjusted score, and stops the selection by returning
// false. With d outside (0, 1) the order is score's.
func Diversify(n, k int, d float64, primary []int32, score func(i int) float64, ahead func(i, j int) bool, pick func(i int, adjusted float64) bool) {
	if d <= 0 || d >= 1 || primary == nil {
		for i := range min(n, k) {
			if !pick(i, score(i)) {
				return
			}
		}
		return
	}
	cats := int32(0)
	for _, c := range primary[:n] {
		cats = max(cats, c+1)
	}
	shown := make([]int, cats)
	// penalty[m] = (1-d)^m: a table, not math.Pow per comparison.
	penalty := make([]float64, k+1)
	penalty[0] = 1
	for i := 1; i <= k; i++ {
		penalty[i] = penalty[i-1] * (1 - d)
	}
	adjusted := func(i int) float64 {
		if primary[i] < 0 {
			return score(i)
		}
		return score(i) * penalty[shown[primary[i]]]
	}
	picked := make([]bool, n)
	for m := 0; m < k && m < n; m++ {
		best, bestScore := -1, math.Inf(-1)
		for i := range n {
			if picked[i] {
				continue
			}
			if a := adjusted(i); a > bestScore || (a == bestScore && best >= 0 && ahead(i, best)) {
				best, bestScore = i, a
			}
		}
		if best < 0 {
			return // only non-comparable (NaN) scores left: never index with -1
		}
		picked[best] = true
		if primary[best] >= 0 {
			shown[primary[best]]++
		}
		if !pick(best, bestScore) {
			return
		}
	}
}

// selectTop moves the n best candidates to the front of list (in no
// particular order): quickselect with a middle pivot.
func selectTop(list []*candidate, n int) {
	lo, hi := 0, len(list)-1
	for lo < hi && n > 0 && n < len(list) {
		pivot := list[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for better(list[i], pivot) {
				i++
			}
			for better(pivot, list[j]) {
				j--
			}
			if i <= j {
				list[i], list[j] = list[j], list[i]
				i++
				j--
			}
		}
		switch {
		case n-1 <= j:
			hi = j
		case n-1 >= i:
			lo = i
		default:
			return
		}
	}
}

func better(a, b *candidate) bool {
	if a.score != b.score {
		return a.score > b.score
	}
	if a.info.Trend != b.info.Trend {
		return a.info.Trend > b.info.Trend
	}
	return a.id < b.id
}

func toItem(x *candidate, score float64, explain bool) Item {
	it := Item{Item: x.id, Score: score, Vector: x.vec}
	if explain {
		it.Reasons = x.reasons
		it.Features = map[string]any{
			"covisitation":      x.covis,
			"repeat":            x.repeat,
			"model":             x.model,
			"category_trending": x.category,
			"popularity":        x.popular,
			"trend":             x.vec[4],
			"ctr":               x.vec[5],
			"categories":        x.info.Categories,
		}
	}
	return it
}

// Validate reports the first setting the pipeline cannot serve with: sizes
// must not be negative (max_k at least 1), weights and decays must be
// finite, not negative and not so large that scores overflow, and the
// recency decay and diversity are fractions.
func (c Config) Validate() error {
	for _, n := range []struct {
		name string
		v    int
	}{{"recent_items", c.RecentItems}, {"neighbors_per_item", c.NeighborsPerItem}, {"top_categories", c.TopCategories},
		{"per_category", c.PerCategory}, {"popular", c.Popular}} {
		if n.v < 0 || n.v > 100_000 {
			return fmt.Errorf("recommend.%s must be 0..100000, got %d", n.name, n.v)
		}
	}
	if math.IsNaN(c.ExploreRate) || c.ExploreRate < 0 || c.ExploreRate > 1 {
		return fmt.Errorf("recommend.explore_rate must be in [0, 1], got %v", c.ExploreRate)
	}
	if c.ExplorePosition < 1 || c.ExplorePool < 1 || c.ExplorePool > 10_000 {
		return fmt.Errorf("recommend.explore_position must be at least 1 and explore_pool 1..10000")
	}
	if c.MaxK < 1 || c.MaxK > 100_000 {
		return fmt.Errorf("recommend.max_k must be 1..100000, got %d", c.MaxK)
	}
	for _, w := range []struct {
		name   string
		v, max float64
	}{{"recency_decay", c.RecencyDecay, 1}, {"diversity", c.Diversity, 1}, {"weight_covisitation", c.WeightCovis, 1e6},
		{"weight_category", c.WeightCategory, 1e6}, {"weight_popular", c.WeightPopular, 1e6}, {"weight_repeat", c.WeightRepeat, 1e6}} {
		if math.IsNaN(w.v) || w.v < 0 || w.v > w.max {
			return fmt.Errorf("recommend.%s must be a number in [0, %g], got %v", w.name, w.max, w.v)
		}
	}
	return nil
}
