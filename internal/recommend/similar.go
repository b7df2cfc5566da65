package recommend

import (
	"context"
	"sort"

	"github.com/ripple-rec/ripple/internal/features"
)

// Similar returns items co-visited with item, backfilled with trending items
// of its categories. The item itself and hidden items are left out.
func (p *Pipeline) Similar(ctx context.Context, item string, k int, explain bool) Response {
	k = min(max(k, 1), p.cfg.MaxK)
	set, cfg, _ := p.models() // no ranker: it learnt a user's lists, this list has no user
	resp := Response{Model: Model, Degradation: Healthy}
	if set != nil {
		resp.Model = set.Name
	}
	if p.Health != nil {
		resp.Degradation = p.Health()
	}
	tr := p.tracer()
	ctx, span := tr.Start(ctx, "recommend.similar")
	f := p.bind(ctx)
	c := newCandidates(explain)
	defer c.release()
	_, s := tr.Start(ctx, "recommend.candidates")
	if set != nil {
		c.modelCandidates(f, set, []string{item}, max(cfg.NeighborsPerItem, 4*k+20))
	}
	ns := f.Neighbors(item, max(cfg.NeighborsPerItem, 2*k))
	total := 0.0
	for _, n := range ns {
		total += n.Weight
	}
	for _, n := range ns {
		x := c.get(n.Item, n.Ref)
		x.covis = cfg.WeightCovis * n.Weight / total
		c.reason(x, "covisitation", item, x.covis)
	}
	if ctx.Err() != nil {
		resp.Degradation = Degraded
	}
	info := make([]features.ItemInfo, 1)
	if ref, ok := f.ItemRef(item); ok {
		f.ItemsByRef([]uint32{ref}, info)
	}
	for _, cat := range info[0].Categories {
		for rank, it := range f.Trending(cat, cfg.PerCategory) {
			v := cfg.WeightCategory / (1 + float64(rank)/10)
			x := c.get(it.ID, it.Ref)
			x.category += v
			c.reason(x, "category_trending", cat, v)
		}
	}
	for _, x := range c.list {
		c.modelScore(x)
	}
	resp.Candidates = len(c.list)
	endStage(s, "ripple.candidates", resp.Candidates)
	_, s = tr.Start(ctx, "recommend.filter")
	list := p.filter(f, Request{IncludeSeen: true, Exclude: []string{item}}, c.list)
	endStage(s, "ripple.kept", len(list))
	_, s = tr.Start(ctx, "recommend.score")
	p.blendScore(list, set)
	endStage(s, "ripple.scored", len(list))
	_, s = tr.Start(ctx, "recommend.diversify")
	resp.Items = diversify(list, k, cfg.Diversity, explain)
	endStage(s, "ripple.items", len(resp.Items))
	fold(f, &resp)
	endRequest(span, k, &resp)
	return resp
}

// Rank scores the given items for user with the same signals as Recommend
// and returns them best first. Items are never dropped, even seen or hidden
// ones: the caller chose them. Items without any signal get only the
// trending tie-break (below 1e-9), so they follow the others in trending
// order; unknown items score 0 and keep the caller's order at the end.
func (p *Pipeline) Rank(ctx context.Context, user string, items []string, explain bool) Response {
	tr := p.tracer()
	ctx, span := tr.Start(ctx, "recommend.rank")
	f := p.bind(ctx)
	_, s := tr.Start(ctx, "recommend.candidates")
	set, cfg, ranker := p.models()
	// No repeat source: the caller chose the items, and their order is
	// Recommend's signals, not which of them the user just looked at.
	resp, c := p.gather(ctx, f, set, &cfg, user, len(items), explain, false)
	resp.Model = ranked(resp.Model, ranker)
	endStage(s, "ripple.candidates", resp.Candidates)
	defer c.release()
	_, s = tr.Start(ctx, "recommend.score")
	list := make([]*candidate, 0, len(items))
	var refs []uint32
	var known []*candidate
	dedup := map[string]bool{}
	for _, id := range items {
		if dedup[id] {
			continue
		}
		dedup[id] = true
		ref, ok := f.ItemRef(id)
		x := c.byRef.get(ref)
		switch {
		case !ok:
			x = &candidate{id: id} // unknown: no signal, no info
		case x == nil:
			x = &candidate{id: id, ref: ref, known: true}
			c.modelScore(x)
		}
		list = append(list, x)
		if x.known {
			refs = append(refs, x.ref)
			known = append(known, x)
		}
	}
	infos := make([]features.ItemInfo, len(refs))
	f.ItemsByRef(refs, infos)
	for i, x := range known {
		x.info = infos[i]
	}
	lo, width := p.blendScore(list, set)
	p.rerank(list, ranker, lo, width)
	sort.SliceStable(list, func(i, j int) bool { return list[i].score > list[j].score })
	endStage(s, "ripple.scored", len(list))
	resp.Items = make([]Item, len(list))
	for i, x := range list {
		resp.Items[i] = toItem(x, x.score, explain)
	}
	fold(f, &resp)
	endRequest(span, len(items), &resp)
	return resp
}
