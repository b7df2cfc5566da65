package features

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/ripple-rec/ripple/internal/event"
)

// Change tracking tells a publisher which entities an apply touched, so a
// shared online store is updated with just those (see internal/online).
// The user side and the item side of ApplyBatch run on different
// goroutines, so each keeps its own set; TakeChanges runs between applies
// on the applying goroutine, when neither side is running.

type changeSet struct {
	on bool
	// user side: users, erasures and item metadata
	users  map[string]struct{}
	erased map[string]struct{}
	meta   []uint32
	// item side: rows whose windows, trend or co-visitation changed
	items  []uint32
	marked []uint64 // bitset over item indices: items holds each once
	// touched: an apply happened (global windows may have moved)
	touched bool
}

func (c *changeSet) user(id string) {
	if c.on {
		c.users[id] = struct{}{}
	}
}

func (c *changeSet) erase(id string) {
	if c.on {
		delete(c.users, id)
		c.erased[id] = struct{}{}
	}
}

func (c *changeSet) item(idx uint32) {
	if !c.on {
		return
	}
	w := int(idx >> 6)
	if w >= len(c.marked) {
		c.marked = append(c.marked, make([]uint64, w+1-len(c.marked)+len(c.marked)/2)...)
	}
	if bit := uint64(1) << (idx & 63); c.marked[w]&bit == 0 {
		c.marked[w] |= bit
		c.items = append(c.items, idx)
	}
}

// Changes lists what applies touched since the last TakeChanges.
type Changes struct {
	Users  []string // users whose state changed
	Erased []string // users erased: remove them from the store
	Items  []string // items whose state or metadata changed
	// Global is true when anything changed: global windows and trending.
	Global bool
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return !c.Global && len(c.Users) == 0 && len(c.Erased) == 0 && len(c.Items) == 0
}

// TrackChanges turns change tracking on. Call it before the first apply
// whose changes matter (a publisher that starts later resyncs everything).
func (e *Engine) TrackChanges() {
	e.changes.on = true
	e.changes.users = map[string]struct{}{}
	e.changes.erased = map[string]struct{}{}
}

// TakeChanges returns and clears the changes since the last call. Like
// Apply, it must not run concurrently with Apply or ApplyBatch.
func (e *Engine) TakeChanges() Changes {
	c := &e.changes
	var out Changes
	if !c.on {
		return out
	}
	for _, idx := range c.meta {
		c.item(idx)
	}
	c.meta = c.meta[:0]
	rows := e.itemIdx.load()
	out.Items = make([]string, len(c.items))
	for i, idx := range c.items {
		out.Items[i] = rows[idx].id
		c.marked[idx>>6] = 0
	}
	c.items = c.items[:0]
	out.Users = make([]string, 0, len(c.users))
	for id := range c.users {
		out.Users = append(out.Users, id)
	}
	for id := range c.erased {
		out.Erased = append(out.Erased, id)
	}
	clear(c.users)
	clear(c.erased)
	out.Global = c.touched || len(out.Items) > 0
	c.touched = false
	return out
}

// SeenItems lists up to n items the user interacted with, most recent
// first: what a remote store keeps for the "seen" filter.
func (e *Engine) SeenItems(user string, n int) []string {
	u := e.users.Get(user)
	if u == nil {
		return nil
	}
	type seen struct {
		item uint32
		ts   int64
	}
	u.mu.Lock()
	all := make([]seen, 0, u.items.len())
	for k, d := range u.items.all() {
		all = append(all, seen{k, d.T})
	}
	u.mu.Unlock()
	slices.SortFunc(all, func(a, b seen) int {
		if a.ts != b.ts {
			return cmp.Compare(b.ts, a.ts)
		}
		return cmp.Compare(a.item, b.item)
	})
	rows := e.itemIdx.load()
	out := make([]string, 0, min(n, len(all)))
	for _, s := range all[:min(n, len(all))] {
		out = append(out, rows[s.item].id)
	}
	return out
}

// TrendingCategories lists the categories the trending index covers.
func (e *Engine) TrendingCategories() []string {
	snap := e.trendSnapshot()
	out := make([]string, 0, len(snap.byCat))
	for c := range snap.byCat {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}

// RangeUsers calls fn with every user id until it returns false.
func (e *Engine) RangeUsers(fn func(id string) bool) {
	e.users.Range(func(id string, _ *userRow) bool { return fn(id) })
}

// RangeItems calls fn with every item id until it returns false.
func (e *Engine) RangeItems(fn func(id string) bool) {
	e.items.Range(func(id string, _ *itemRow) bool { return fn(id) })
}

// Catalogue returns the metadata of every item that has any, as item
// records sorted by id: replayed into a fresh engine before the
// interactions, they give it the same catalogue (training reads the
// streaming sources that way).
func (e *Engine) Catalogue() []event.Item {
	var out []event.Item
	e.items.Range(func(id string, it *itemRow) bool {
		it.mu.Lock()
		if m := it.meta; m != nil {
			out = append(out, event.Item{ID: id, Categories: slices.Clone(m.categories),
				Attributes: maps.Clone(m.attributes), Hidden: m.hidden})
		}
		it.mu.Unlock()
		return true
	})
	slices.SortFunc(out, func(a, b event.Item) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// RangeConsentUsers calls fn with every user whose consent differs from
// full consent (they may have no other state) until it returns false.
func (e *Engine) RangeConsentUsers(fn func(id string) bool) {
	e.consent.Range(func(id, _ any) bool { return fn(id.(string)) })
}
