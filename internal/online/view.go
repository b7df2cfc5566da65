package online

import (
	"context"
	"math"

	"github.com/ripple-rec/ripple/internal/cache"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/resilience"
)

// View is one request's reads (it implements recommend.Features): bound
// to the request's context, with item handles local to the request, and
// the worst freshness level of everything it served.
type View struct {
	r     *Reader
	ctx   context.Context
	track resilience.Tracker
	ids   []string
	refs  map[string]uint32
	user  string
	u     *userEntry
	nbrs  map[string][]features.Neighbor // prefetched for the user's recent items
	trend map[string]cache.Entry[[]features.Scored]
}

// prefetchCategories is how many of the user's strongest categories get
// their trending lists read in the same batch as the global one (the
// pipeline reads top_categories of them, 3 by default).
const prefetchCategories = 5

// Bind starts the reads of one request.
func (r *Reader) Bind(ctx context.Context) *View {
	return &View{r: r, ctx: ctx, refs: make(map[string]uint32, 256)}
}

// Degradation is the worst level the view's reads were served at.
func (v *View) Degradation() string { return v.track.Level().String() }

func (v *View) ref(id string) uint32 {
	if r, ok := v.refs[id]; ok {
		return r
	}
	r := uint32(len(v.ids))
	v.ids = append(v.ids, id)
	v.refs[id] = r
	return r
}

func (v *View) userEntry(id string) *userEntry {
	if v.u != nil && v.user == id {
		return v.u
	}
	if v.r.local != nil {
		if e, _, ok := v.r.local(id); ok {
			v.user, v.u = id, &e
			return &e
		}
	}
	e, _ := v.r.users.Get(v.ctx, userCacheKey(id))
	v.track.Note(level(e, v.r.freshFor))
	u := &userEntry{}
	if e.Err == nil && e.Found {
		u = &e.Value
	}
	v.user, v.u = id, u
	return u
}

// User reads the user and prefetches the neighbours of their recent items
// in the same batch, so the pipeline's per-anchor reads cost no round trip.
func (v *View) User(id string, maxRecent int) features.UserView {
	u := v.userEntry(id)
	view := u.view
	if len(view.Recent) > maxRecent {
		view.Recent = view.Recent[:maxRecent]
	}
	v.prefetchTrending(view.Categories)
	if len(view.Recent) > 0 {
		keys := make([]string, len(view.Recent))
		for i, it := range view.Recent {
			keys[i] = nbrsCacheKey(it.Item)
		}
		entries := make([]cache.Entry[[]features.Neighbor], len(keys))
		_ = v.r.nbrs.GetBatch(v.ctx, keys, entries)
		v.nbrs = make(map[string][]features.Neighbor, len(keys))
		for i, e := range entries {
			v.track.Note(level(e, v.r.freshFor))
			if e.Err == nil && e.Found {
				v.nbrs[view.Recent[i].Item] = e.Value
			}
		}
	}
	return view
}

// Neighbors returns up to n co-visited items of item.
func (v *View) Neighbors(item string, n int) []features.Neighbor {
	ns, ok := v.nbrs[item]
	if !ok {
		e, _ := v.r.nbrs.Get(v.ctx, nbrsCacheKey(item))
		v.track.Note(level(e, v.r.freshFor))
		if e.Err != nil || !e.Found {
			return nil
		}
		ns = e.Value
	}
	out := make([]features.Neighbor, min(n, len(ns)))
	for i := range out {
		out[i] = features.Neighbor{Item: ns[i].Item, Weight: ns[i].Weight, Ref: v.ref(ns[i].Item)}
	}
	return out
}

// prefetchTrending reads the global trending list and those of the user's
// strongest categories in one batch: one round trip on a cold tier instead
// of one per list.
func (v *View) prefetchTrending(cats []features.Scored) {
	keys := []string{trendCacheKey("")}
	for _, c := range cats[:min(len(cats), prefetchCategories)] {
		keys = append(keys, trendCacheKey(c.ID))
	}
	entries := make([]cache.Entry[[]features.Scored], len(keys))
	_ = v.r.trend.GetBatch(v.ctx, keys, entries)
	v.trend = make(map[string]cache.Entry[[]features.Scored], len(keys))
	for i, k := range keys {
		v.trend[k] = entries[i]
	}
}

// Trending returns the top n of a trending list; when the store cannot
// answer, the last list this node read (Degraded), so cold start and
// backfill keep working through an outage.
func (v *View) Trending(category string, n int) []features.Scored {
	e, ok := v.trend[trendCacheKey(category)]
	if !ok {
		e, _ = v.r.trend.Get(v.ctx, trendCacheKey(category))
	}
	v.track.Note(level(e, v.r.freshFor))
	var list []features.Scored
	switch {
	case e.Err == nil && e.Found:
		list = e.Value
	case e.Err != nil:
		if last, ok := v.r.lastTrend.Load(category); ok {
			list = last.([]features.Scored)
		}
	}
	out := make([]features.Scored, min(n, len(list)))
	for i := range out {
		out[i] = features.Scored{ID: list[i].ID, Score: list[i].Score, Ref: v.ref(list[i].ID)}
	}
	return out
}

// ItemRef gives id a handle; whether the item exists is ItemsByRef's answer.
func (v *View) ItemRef(id string) (uint32, bool) { return v.ref(id), true }

// ItemsByRef reads the items' info in one batch.
func (v *View) ItemsByRef(refs []uint32, out []features.ItemInfo) {
	keys := make([]string, len(refs))
	for i, r := range refs {
		keys[i] = infoCacheKey(v.ids[r])
	}
	entries := make([]cache.Entry[features.ItemInfo], len(keys))
	_ = v.r.infos.GetBatch(v.ctx, keys, entries)
	for i, e := range entries {
		v.track.Note(level(e, v.r.freshFor))
		out[i] = features.ItemInfo{Trend: math.Inf(-1)}
		if e.Err == nil && e.Found {
			out[i] = e.Value
		}
	}
}

// SeenByRef marks the items the user interacted with.
func (v *View) SeenByRef(user string, refs []uint32, out []bool) {
	u := v.userEntry(user)
	for i, r := range refs {
		_, out[i] = u.seen[v.ids[r]]
	}
}
