package features

import (
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Scored is an id with a score.
type Scored struct {
	ID    string  `json:"id"`
	Score float64 `json:"score"`
	// Ref is the item handle when ID is an item (see Neighbor.Ref).
	Ref uint32 `json:"-"`
}

// UserView is a copy of what recommendations need from a user's state.
type UserView struct {
	Exists     bool
	ComputedAt int64    // wall ms of the last apply
	Recent     []ItemAt // newest first
	Session    []string // current session's items, oldest first
	Categories []Scored // category affinity at the engine clock, strongest first
	Events     int      // interactions remembered (size of the seen set)
	// NoPersonalization: the user withheld consent; serve them as anonymous.
	NoPersonalization bool
}

// User copies the user's state; maxRecent bounds Recent.
func (e *Engine) User(id string, maxRecent int) UserView {
	noPers := !e.Consent(id).Personalization
	u := e.users.Get(id)
	if u == nil {
		return UserView{NoPersonalization: noPers}
	}
	now := e.Clock()
	u.mu.Lock()
	defer u.mu.Unlock()
	v := UserView{Exists: true, ComputedAt: u.updated, Events: u.items.len(), NoPersonalization: noPers}
	n := min(maxRecent, len(u.last.items))
	v.Recent = make([]ItemAt, 0, n)
	rows, types := e.itemIdx.load(), e.types.load()
	for i := 0; i < n; i++ {
		v.Recent = append(v.Recent, itemAt(u.last.newest(i), rows, types))
	}
	v.Session = sessionItems(&u.session, rows)
	if s := e.c.userCat; s != nil && u.cats.len() > 0 {
		v.Categories = scored(&u.cats, e.catName(), now, halfLife(s))
	}
	return v
}

// itemAt translates a last_n entry.
func itemAt(x lastItem, rows []*itemRow, types []*typeInfo) ItemAt {
	return ItemAt{Item: rows[x.item].id, TS: x.ts, Type: types[x.typ].name}
}

// sessionItems copies the session's item ids, oldest first.
func sessionItems(s *session, rows []*itemRow) []string {
	out := make([]string, len(s.Items))
	for i, x := range s.Items {
		out[i] = rows[x].id
	}
	return out
}

// scored lists an affinity map at now, strongest first; name translates
// its indices.
func scored(m *idxMap[decayed], name func(uint32) string, now int64, hl float64) []Scored {
	l := make([]Scored, 0, m.len())
	for k, d := range m.all() {
		l = append(l, Scored{ID: name(k), Score: d.at(now, hl)})
	}
	sortScored(l)
	return l
}

func (e *Engine) itemName() func(uint32) string {
	rows := e.itemIdx.load()
	return func(i uint32) string { return rows[i].id }
}

func (e *Engine) catName() func(uint32) string {
	cats := e.cats.load()
	return func(i uint32) string { return cats[i] }
}

// Seen sets out[i] when the user has interacted with items[i].
func (e *Engine) Seen(user string, items []string, out []bool) {
	u := e.users.Get(user)
	if u == nil {
		return
	}
	u.mu.Lock()
	if n := u.items.len(); n < len(items) {
		// Fewer items seen than asked about (ranking asks about every
		// candidate): one lookup per candidate in a small set of ids.
		rows := e.itemIdx.load()
		seen := make(map[string]struct{}, n)
		for k := range u.items.all() {
			seen[rows[k].id] = struct{}{}
		}
		u.mu.Unlock()
		for i, id := range items {
			_, out[i] = seen[id]
		}
		return
	}
	u.mu.Unlock()
	// Translate ids outside the user's lock; unknown items are never seen.
	var buf [64]*itemRow
	rows := buf[:0]
	for _, id := range items {
		rows = append(rows, e.items.Get(id))
	}
	u.mu.Lock()
	for i, it := range rows {
		if it == nil {
			out[i] = false
			continue
		}
		_, out[i] = u.items.get(it.idx)
	}
	u.mu.Unlock()
}

// Neighbors returns up to n co-visited items of item, strongest first.
func (e *Engine) Neighbors(item string, n int) []Neighbor {
	it := e.items.Get(item)
	if it == nil {
		return nil
	}
	it.mu.Lock()
	defer it.mu.Unlock()
	all := it.covis.sortedView(e.itemIdx.load())
	if len(all) > n {
		all = all[:n]
	}
	return append([]Neighbor(nil), all...)
}

// ItemInfo is what ranking and filters need about one item.
type ItemInfo struct {
	Exists     bool
	Categories []string
	Hidden     bool
	// Trend is the trending log-score: comparable across items at any time.
	Trend float64
}

// Items fills out[i] for items[i].
func (e *Engine) Items(items []string, out []ItemInfo) {
	var hl float64
	if e.c.trending != nil {
		hl = halfLife(e.c.trending)
	}
	for i, id := range items {
		it := e.items.Get(id)
		if it == nil {
			out[i] = ItemInfo{Trend: math.Inf(-1)}
			continue
		}
		out[i] = it.info(hl)
	}
}

// info reads what ranking needs from the row; hl is the trending half-life
// (0: no trending feature).
func (it *itemRow) info(hl float64) ItemInfo {
	it.mu.Lock()
	defer it.mu.Unlock()
	info := ItemInfo{Exists: true, Trend: math.Inf(-1)}
	if it.meta != nil {
		info.Categories, info.Hidden = it.meta.categories, it.meta.hidden
	}
	if hl > 0 {
		info.Trend = it.trend.logScore(hl)
	}
	return info
}

// ItemRef returns the handle of a known item.
func (e *Engine) ItemRef(id string) (uint32, bool) {
	it := e.items.Get(id)
	if it == nil {
		return 0, false
	}
	return it.idx, true
}

// ItemsByRef is Items for handles from Neighbors, Trending or ItemRef: no
// string hashing, no shard lock, which is most of a candidate's read cost.
func (e *Engine) ItemsByRef(refs []uint32, out []ItemInfo) {
	var hl float64
	if e.c.trending != nil {
		hl = halfLife(e.c.trending)
	}
	rows := e.itemIdx.load()
	for i, ref := range refs {
		it := rows[ref]
		out[i] = it.info(hl)
	}
}

// SeenByRef is Seen for item handles.
func (e *Engine) SeenByRef(user string, refs []uint32, out []bool) {
	u := e.users.Get(user)
	if u == nil {
		return
	}
	u.mu.Lock()
	for i, ref := range refs {
		_, out[i] = u.items.get(ref)
	}
	u.mu.Unlock()
}

// ItemCount is the number of items known (from events or metadata).
func (e *Engine) ItemCount() int { return e.items.Len() }

// UserCount is the number of users with state.
func (e *Engine) UserCount() int { return e.users.Len() }

// trendIndex caches the items sorted by trending score, globally and per
// category. Rebuilding scans every item, so it happens at most once per
// refresh interval and never blocks readers: they use the previous index.
type trendIndex struct {
	cur     atomic.Pointer[trendSnapshot]
	stale   atomic.Bool
	rebuild sync.Mutex
}

type trendSnapshot struct {
	built  time.Time
	global []Scored
	byCat  map[string][]Scored
	// Cold items have catalogue metadata but no trending signal yet (no
	// events): newest first (Score is the wall ms of their last metadata
	// update), all and per category, for the exploration slot.
	coldGlobal []Scored
	coldByCat  map[string][]Scored
}

func (t *trendIndex) invalidate() { t.stale.Store(true) }

// TrendRefresh is how old the trending index may get before a read rebuilds it.
var TrendRefresh = time.Second

const perCategoryTrending = 500

// Trending returns the top n items by trending score, optionally within one
// category. Hidden items are left out.
func (e *Engine) Trending(category string, n int) []Scored {
	snap := e.trendSnapshot()
	return pick(snap.global, snap.byCat, category, n)
}

// pick is the first n of category's list (all's for "").
func pick(all []Scored, byCat map[string][]Scored, category string, n int) []Scored {
	list := all
	if category != "" {
		list = byCat[category]
	}
	if len(list) > n {
		list = list[:n]
	}
	return list
}

func (e *Engine) trendSnapshot() *trendSnapshot {
	snap := e.trend.cur.Load()
	fresh := snap != nil && !e.trend.stale.Load() && time.Since(snap.built) < TrendRefresh
	if fresh {
		return snap
	}
	if snap == nil {
		e.trend.rebuild.Lock()
	} else if !e.trend.rebuild.TryLock() {
		return snap // someone is rebuilding; the old index is good enough
	}
	defer e.trend.rebuild.Unlock()
	if s := e.trend.cur.Load(); s != nil && s != snap {
		return s
	}
	e.trend.stale.Store(false)
	s := e.buildTrending()
	e.trend.cur.Store(s)
	return s
}

// RefreshTrending rebuilds the trending index now.
func (e *Engine) RefreshTrending() {
	e.trend.invalidate()
	e.trendSnapshot()
}

func (e *Engine) buildTrending() *trendSnapshot {
	var hl float64
	if e.c.trending != nil {
		hl = halfLife(e.c.trending)
	}
	s := &trendSnapshot{built: time.Now(), byCat: map[string][]Scored{}, coldByCat: map[string][]Scored{}}
	e.items.Range(func(id string, it *itemRow) bool {
		it.mu.Lock()
		score := math.Inf(-1)
		if hl > 0 {
			score = it.trend.logScore(hl)
		}
		var cats []string
		hidden, meta, updated := false, it.meta != nil, it.updated
		if meta {
			cats, hidden = it.meta.categories, it.meta.hidden
		}
		it.mu.Unlock()
		if hidden {
			return true
		}
		if math.IsInf(score, -1) {
			if meta {
				sc := Scored{ID: id, Score: float64(updated), Ref: it.idx}
				s.coldGlobal = append(s.coldGlobal, sc)
				for _, c := range cats {
					s.coldByCat[c] = append(s.coldByCat[c], sc)
				}
			}
			return true
		}
		sc := Scored{ID: id, Score: score, Ref: it.idx}
		s.global = append(s.global, sc)
		for _, c := range cats {
			s.byCat[c] = append(s.byCat[c], sc)
		}
		return true
	})
	sortScored(s.global)
	for _, m := range []map[string][]Scored{s.byCat, s.coldByCat} {
		for c, l := range m {
			sortScored(l)
			if len(l) > perCategoryTrending {
				m[c] = l[:perCategoryTrending:perCategoryTrending]
			}
		}
	}
	sortScored(s.coldGlobal)
	if len(s.coldGlobal) > perCategoryTrending {
		s.coldGlobal = s.coldGlobal[:perCategoryTrending:perCategoryTrending]
	}
	return s
}

// ColdItems returns up to n items of category ("" for any) that have
// catalogue metadata but no events yet, newest first: the new items the
// exploration slot can show before anything else would.
func (e *Engine) ColdItems(category string, n int) []Scored {
	snap := e.trendSnapshot()
	return pick(snap.coldGlobal, snap.coldByCat, category, n)
}

func sortScored(l []Scored) {
	sort.Slice(l, func(i, j int) bool {
		if l[i].Score != l[j].Score {
			return l[i].Score > l[j].Score
		}
		return l[i].ID < l[j].ID
	})
}

// Value is one feature value as served.
type Value struct {
	Value      any   `json:"value"`
	ComputedAt int64 `json:"-"`
	Default    bool  `json:"default,omitempty"`
}

// Values are an entity's features with their computed_at stamp.
type Values struct {
	ComputedAt int64            `json:"-"`
	Features   map[string]Value `json:"features"`
}

// Entity kinds readable through Values.
const (
	EntityUser   = "user"
	EntityItem   = "item"
	EntityGlobal = "global"
)

// Values reads every feature of one entity at the engine clock. Unknown
// entities get every feature's typed default and ok=false.
func (e *Engine) Values(entity, id string) (v Values, ok bool) {
	return e.ValuesAt(entity, id, e.Clock())
}

// ValuesAt is Values evaluated at clock now (event time, ms) rather than
// at whatever the clock is when the read happens: a writer that stamps the
// values with a clock it read first (partition parts, merged by decaying
// each to the newest stamp) reads them at that same clock.
func (e *Engine) ValuesAt(entity, id string, now int64) (v Values, ok bool) {
	var l []NamedValue
	l, v.ComputedAt, ok = e.AppendValuesAt(make([]NamedValue, 0, e.valueCount(entity)), entity, id, now)
	v.Features = make(map[string]Value, len(l))
	for _, x := range l {
		v.Features[x.Name] = x.Value
	}
	return v, ok
}

// NamedValue is one feature value and the feature's name.
type NamedValue struct {
	Name string
	Value
}

// AppendValuesAt is ValuesAt appending the values, in spec order, to dst
// (which a caller can reuse) instead of making a map: what a writer that
// only encodes them needs. It returns the entity's computed_at.
func (e *Engine) AppendValuesAt(dst []NamedValue, entity, id string, now int64) (_ []NamedValue, computedAt int64, ok bool) {
	wall := e.now().UnixMilli()
	put := func(s *Spec, val any, computed int64, isDefault bool) {
		if s.TTL > 0 && computed > 0 && wall-computed > time.Duration(s.TTL).Milliseconds() {
			val, isDefault = defaultOf(s), true
		}
		dst = append(dst, NamedValue{Name: s.Name, Value: Value{Value: val, ComputedAt: computed, Default: isDefault}})
	}
	switch entity {
	case EntityUser:
		u := e.users.Get(id)
		if u != nil {
			u.mu.Lock()
			defer u.mu.Unlock()
			computedAt = u.updated
		}
		e.userValues(u, now, put)
		return dst, computedAt, u != nil
	case EntityItem:
		it := e.items.Get(id)
		if it != nil {
			it.mu.Lock()
			defer it.mu.Unlock()
			computedAt = it.updated
		}
		e.itemValues(it, now, put)
		return dst, computedAt, it != nil
	case EntityGlobal:
		e.global.mu.Lock()
		defer e.global.mu.Unlock()
		computedAt = e.global.updated
		sums := windowValues(&e.global.windows, e.c.globalWin, now)
		for i, w := range e.c.globalWin {
			put(w.spec, sums[i], e.global.updated, false)
		}
		e.rateValues(ScopeGlobal, sums, e.c.globalWin, e.global.updated, put)
		return dst, computedAt, true
	}
	return dst, 0, false
}

// valueCount is how many values an entity has.
func (e *Engine) valueCount(entity string) int {
	switch entity {
	case EntityUser:
		return e.c.nUser
	case EntityItem:
		return e.c.nItem
	case EntityGlobal:
		return e.c.nGlobal
	}
	return 0
}

// Bucket is one non-empty bucketof a window feature: what the events
// with ts/width == Idx added (width = window/buckets).
type Bucket struct {
	Idx int64   `json:"i"`
	V   float64 `json:"v"`
}

// WindowBuckets is the raw buckets of the window features of an item
// (entity item) or of the global record, by feature name; nil for an item
// the engine does not know. A bucket's contents do not depend on which
// engine applied an event, so engines that each apply part of the log
// (its partitions) add up to one engine's windows by summing their
// buckets and evaluating them at the newest clock (WindowAt). Their
// window values could not be summed: each is evaluated at its own clock.
func (e *Engine) WindowBuckets(entity, id string) map[string][]Bucket {
	var out map[string][]Bucket
	if !e.RangeWindowBuckets(entity, id, func(name string, bs []Bucket) {
		if out == nil {
			out = map[string][]Bucket{}
		}
		out[name] = bs
	}) {
		return nil
	}
	if out == nil {
		out = map[string][]Bucket{}
	}
	return out
}

// RangeWindowBuckets is WindowBuckets without the map: fn gets each
// window feature's name and buckets, in name order; false for an item the
// engine does not know (fn is not called).
func (e *Engine) RangeWindowBuckets(entity, id string, fn func(name string, bs []Bucket)) bool {
	var (
		w     *windows
		ws    []winSpec
		order []int
	)
	switch entity {
	case EntityItem:
		it := e.items.Get(id)
		if it == nil {
			return false
		}
		it.mu.Lock()
		defer it.mu.Unlock()
		w, ws, order = &it.windows, e.c.itemWin, e.c.itemWinByName
	case EntityGlobal:
		e.global.mu.Lock()
		defer e.global.mu.Unlock()
		w, ws, order = &e.global.windows, e.c.globalWin, e.c.globalWinByName
	default:
		return false
	}
	all := make([]Bucket, 0, len(w.b))
	for _, i := range order {
		lo, hi := w.ring(i, len(ws))
		start := len(all)
		for _, x := range w.b[lo:hi] {
			all = append(all, Bucket{Idx: x.idx, V: x.v})
		}
		fn(ws[i].spec.Name, all[start:len(all):len(all)])
	}
	return true
}

// WindowAt is the value of window feature s over buckets at engine clock
// now (event time, ms): what Values reports for an entity with them.
func WindowAt(s *Spec, buckets []Bucket, now int64) float64 {
	n, width := windowShape(s)
	now /= width
	sum := 0.0
	for _, b := range buckets {
		if inWindow(b.Idx, n, now) {
			sum += b.V
		}
	}
	return sum
}

func windowValues(w *windows, ws []winSpec, now int64) []float64 {
	out := make([]float64, len(ws))
	for i := range ws {
		out[i] = w.sum(ws, i, now/ws[i].width)
	}
	return out
}

func (e *Engine) rateValues(scope string, sums []float64, ws []winSpec, computed int64, put func(*Spec, any, int64, bool)) {
	for i := range e.cfg.Features {
		s := &e.cfg.Features[i]
		if s.Kind != KindRate || s.Scope != scope {
			continue
		}
		var num, den float64
		for j, w := range ws {
			if w.spec.Name == s.Numerator {
				num = sums[j]
			}
			if w.spec.Name == s.Denominator {
				den = sums[j]
			}
		}
		if sums == nil {
			put(s, s.PriorAlpha/math.Max(s.PriorAlpha+s.PriorBeta, 1e-12), 0, true)
			continue
		}
		put(s, (num+s.PriorAlpha)/math.Max(den+s.PriorAlpha+s.PriorBeta, 1e-12), computed, false)
	}
}

func recencyValue(s *Spec, last, now int64) (any, bool) {
	if last == 0 {
		return s.Default, true
	}
	return float64(now-last) / 1000, false
}

const maxListed = 20

func (e *Engine) userValues(u *userRow, now int64, put func(*Spec, any, int64, bool)) {
	if u == nil {
		for i := range e.cfg.Features {
			s := &e.cfg.Features[i]
			if s.Scope == ScopeUser || s.Scope == ScopeUserItem || s.Scope == ScopeUserCategory {
				put(s, defaultOf(s), 0, true)
			}
		}
		return
	}
	sums := windowValues(&u.windows, e.c.userWin, now)
	for i, w := range e.c.userWin {
		put(w.spec, sums[i], u.updated, false)
	}
	e.rateValues(ScopeUser, sums, e.c.userWin, u.updated, put)
	for i, r := range e.c.userRec {
		val, def := recencyValue(r.spec, u.recency[i], now)
		put(r.spec, val, u.updated, def)
	}
	rows := e.itemIdx.load()
	if s := e.c.session; s != nil {
		put(s, map[string]any{"id": u.session.ID, "count": u.session.Count, "items": sessionItems(&u.session, rows),
			"duration_s": float64(u.session.Last-u.session.Start) / 1000}, u.updated, u.session.Count == 0)
	}
	if s := e.c.lastN; s != nil {
		types := e.types.load()
		list := u.last.list()
		l := make([]ItemAt, len(list))
		for i, x := range list {
			l[i] = itemAt(x, rows, types)
		}
		put(s, l, u.updated, len(l) == 0)
	}
	listed := func(s *Spec, l []Scored) {
		if len(l) > maxListed {
			l = l[:maxListed]
		}
		put(s, l, u.updated, len(l) == 0)
	}
	if s := e.c.userItem; s != nil {
		listed(s, scored(&u.items, e.itemName(), now, halfLife(s)))
	}
	if s := e.c.userCat; s != nil {
		listed(s, scored(&u.cats, e.catName(), now, halfLife(s)))
	}
}

func (e *Engine) itemValues(it *itemRow, now int64, put func(*Spec, any, int64, bool)) {
	if it == nil {
		for i := range e.cfg.Features {
			if s := &e.cfg.Features[i]; s.Scope == ScopeItem {
				put(s, defaultOf(s), 0, true)
			}
		}
		return
	}
	sums := windowValues(&it.windows, e.c.itemWin, now)
	for i, w := range e.c.itemWin {
		put(w.spec, sums[i], it.updated, false)
	}
	e.rateValues(ScopeItem, sums, e.c.itemWin, it.updated, put)
	for i, r := range e.c.itemRec {
		val, def := recencyValue(r.spec, it.recency[i], now)
		put(r.spec, val, it.updated, def)
	}
	if s := e.c.trending; s != nil {
		put(s, it.trend.at(now, halfLife(s)), it.updated, it.trend.T == 0)
	}
	if s := e.c.covis; s != nil {
		all := it.covis.sortedView(e.itemIdx.load())
		if len(all) > maxListed {
			all = all[:maxListed]
		}
		put(s, append([]Neighbor(nil), all...), it.updated, len(all) == 0)
	}
}

// defaultOf is a feature's typed default: lists are empty, numbers are the
// configured default.
func defaultOf(s *Spec) any {
	switch s.Kind {
	case KindLastN:
		return []ItemAt{}
	case KindAffinity:
		return []Scored{}
	case KindCovisitation:
		return []Neighbor{}
	case KindSession:
		return map[string]any{"id": "", "count": 0, "items": []string{}, "duration_s": 0.0}
	case KindRate:
		return s.PriorAlpha / math.Max(s.PriorAlpha+s.PriorBeta, 1e-12)
	}
	return s.Default
}
