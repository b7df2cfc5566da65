package features

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/store"
)

// Engine applies log records to feature state, in log order, and answers
// reads. Apply must be called by one goroutine at a time (the log's order is
// the state's order, which makes restarts exactly reproducible); reads may
// run concurrently with it.
type Engine struct {
	cfg  *Config
	c    compiled
	now  func() time.Time
	late atomic.Int64 // events beyond lateness, excluded from windows

	users  *store.Map[userRow]
	items  *store.Map[itemRow] // readers' id → row
	global globalRow

	clock   atomic.Int64  // newest event time applied (unix ms)
	applied atomic.Uint64 // log offset applied up to: partition 0, the whole embedded log

	// parts holds the applied offset of every partition but 0 of a
	// partitioned log. Entries are never removed, so a pointer once looked
	// up stays valid.
	partMu sync.Mutex
	parts  map[int]*atomic.Uint64

	trend trendIndex

	// Items, event types and categories get dense indices on first sight,
	// so state about them is keyed by uint32, not string: map lookups are
	// cheap and rows hold no pointers for the GC to scan. Indices depend on
	// the order names were first seen, so nothing observable (snapshots,
	// orderings, ties) may depend on them. Only the applying (or restoring)
	// goroutine adds entries.
	itemIdx table[*itemRow]
	types   table[*typeInfo]
	cats    table[string]
	pruner  pruner

	changes changeSet

	// consent holds the users whose consent differs from full consent;
	// nConsent counts them so the hot path skips the lookup when none do.
	consent  sync.Map // user → event.Consent
	nConsent atomic.Int64
}

// table interns names in first-seen order. The applier looks names up in
// idx and reads vals; readers translate indices through the published
// slice, which only grows. An index a reader finds in a row (under the row's
// lock, which the applier took after publishing) is always within it.
type table[V any] struct {
	idx  map[string]uint32
	vals []V
	pub  atomic.Pointer[[]V]
}

func (t *table[V]) add(name string, v V) uint32 {
	if t.idx == nil {
		t.idx = make(map[string]uint32)
	}
	i := uint32(len(t.vals))
	t.vals = append(t.vals, v)
	t.idx[name] = i
	pub := t.vals
	t.pub.Store(&pub)
	return i
}

// load is the readers' view.
func (t *table[V]) load() []V {
	if p := t.pub.Load(); p != nil {
		return *p
	}
	return nil
}

type winSpec struct {
	spec   *Spec
	n      int64 // buckets
	width  int64
	filter []string
	sum    bool
}

type recSpec struct {
	spec   *Spec
	filter []string
}

type compiled struct {
	userWin, itemWin, globalWin []winSpec
	userRec, itemRec            []recSpec
	session, lastN              *Spec
	userItem, userCat           *Spec
	trending, covis             *Spec
	lateness                    int64
	sessionGap, covisGap        int64   // ms
	hlUserItem, hlUserCat       float64 // half-lives, ms
	hlTrend                     float64
	// nUser, nItem, nGlobal: how many values Values reports for an
	// entity (its map is made that size, not grown).
	nUser, nItem, nGlobal int
	// itemWin and globalWin indices in the order of their names.
	itemWinByName, globalWinByName []int
}

// typeInfo is what applying an event of one type needs from the specs,
// worked out once per type instead of once per event.
type typeInfo struct {
	name                     string
	userWin, itemWin, global []bool // matches[i]: window i counts the type
	userRec, itemRec         []bool
	wUserItem, wUserCat      float64
	wTrend, wCovis           float64
	rating                   bool
}

type userRow struct {
	mu      sync.Mutex
	updated int64 // wall clock of the last apply: computed_at
	lastTS  int64 // newest event time: the user's lateness watermark
	windows windows
	recency []int64
	session session
	last    lastN
	items   idxMap[decayed] // by item index
	cats    idxMap[decayed] // by category index
}

type itemRow struct {
	mu      sync.Mutex
	id      string // immutable
	idx     uint32 // immutable
	updated int64
	meta    *itemMeta // replaced, never mutated; only the applier writes it
	windows windows
	recency []int64
	trend   decayed
	covis   covis
}

type itemMeta struct {
	categories []string // one shared copy of each name
	catIdx     []uint32 // the categories' indices
	attributes map[string]string
	hidden     bool
}

type globalRow struct {
	mu      sync.Mutex
	updated int64
	windows windows
}

// NewEngine builds an engine for cfg. now is the wall clock used for
// computed_at stamps (nil: time.Now).
func NewEngine(cfg *Config, now func() time.Time) *Engine {
	if now == nil {
		now = time.Now
	}
	e := &Engine{cfg: cfg, now: now, users: store.NewMap[userRow](), items: store.NewMap[itemRow]()}
	e.pruner.items = &e.itemIdx
	e.c.lateness = time.Duration(cfg.Lateness).Milliseconds()
	for i := range cfg.Features {
		s := &cfg.Features[i]
		switch s.Scope {
		case ScopeUser, ScopeUserItem, ScopeUserCategory:
			e.c.nUser++
		case ScopeItem:
			e.c.nItem++
		case ScopeGlobal:
			e.c.nGlobal++
		}
		switch s.Kind {
		case KindWindowCount, KindWindowSum:
			n, width := windowShape(s)
			w := winSpec{spec: s, n: n, width: width, filter: s.Events, sum: s.Kind == KindWindowSum}
			switch s.Scope {
			case ScopeUser:
				e.c.userWin = append(e.c.userWin, w)
			case ScopeItem:
				e.c.itemWin = append(e.c.itemWin, w)
			case ScopeGlobal:
				e.c.globalWin = append(e.c.globalWin, w)
			}
		case KindRecency:
			r := recSpec{spec: s, filter: s.Events}
			if s.Scope == ScopeUser {
				e.c.userRec = append(e.c.userRec, r)
			} else {
				e.c.itemRec = append(e.c.itemRec, r)
			}
		case KindSession:
			e.c.session = s
			e.c.sessionGap = time.Duration(s.Gap).Milliseconds()
		case KindLastN:
			e.c.lastN = s
		case KindAffinity:
			if s.Scope == ScopeUserItem {
				e.c.userItem = s
				e.c.hlUserItem = halfLife(s)
			} else {
				e.c.userCat = s
				e.c.hlUserCat = halfLife(s)
			}
		case KindTrending:
			e.c.trending = s
			e.c.hlTrend = halfLife(s)
		case KindCovisitation:
			e.c.covis = s
			e.c.covisGap = time.Duration(s.Gap).Milliseconds()
		}
	}
	e.global.windows = newWindows(len(e.c.globalWin))
	e.c.itemWinByName, e.c.globalWinByName = byName(e.c.itemWin), byName(e.c.globalWin)
	return e
}

// byName lists the indices of ws in the order of their features' names.
func byName(ws []winSpec) []int {
	order := make([]int, len(ws))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(ws[a].spec.Name, ws[b].spec.Name) })
	return order
}

// Config returns the engine's feature configuration.
func (e *Engine) Config() *Config { return e.cfg }

func (e *Engine) newUser() *userRow {
	return &userRow{windows: newWindows(len(e.c.userWin)), recency: make([]int64, len(e.c.userRec))}
}

// item returns id's row, creating it. Only the applying goroutine calls it.
func (e *Engine) item(id string) *itemRow {
	if i, ok := e.itemIdx.idx[id]; ok {
		return e.itemIdx.vals[i]
	}
	it := &itemRow{id: id, idx: uint32(len(e.itemIdx.vals)), windows: newWindows(len(e.c.itemWin)), recency: make([]int64, len(e.c.itemRec))}
	e.itemIdx.add(id, it)
	e.items.Put(id, it)
	return it
}

// typeOf returns the event type's index and compiled info, creating them.
func (e *Engine) typeOf(name string) (uint32, *typeInfo) {
	if i, ok := e.types.idx[name]; ok {
		return i, e.types.vals[i]
	}
	win := func(ws []winSpec) []bool {
		m := make([]bool, len(ws))
		for i := range ws {
			m[i] = matches(ws[i].filter, name)
		}
		return m
	}
	rec := func(rs []recSpec) []bool {
		m := make([]bool, len(rs))
		for i := range rs {
			m[i] = matches(rs[i].filter, name)
		}
		return m
	}
	w := func(s *Spec) float64 {
		if s == nil {
			return 0
		}
		if w, ok := s.Weights[name]; ok {
			return w
		}
		return 1
	}
	ti := &typeInfo{
		name:    name,
		userWin: win(e.c.userWin), itemWin: win(e.c.itemWin), global: win(e.c.globalWin),
		userRec: rec(e.c.userRec), itemRec: rec(e.c.itemRec),
		wUserItem: w(e.c.userItem), wUserCat: w(e.c.userCat), wTrend: w(e.c.trending), wCovis: w(e.c.covis),
		rating: name == "rating",
	}
	return e.types.add(name, ti), ti
}

// category returns the category's index, creating it.
func (e *Engine) category(name string) uint32 {
	if i, ok := e.cats.idx[name]; ok {
		return i
	}
	return e.cats.add(name, name)
}

// matches reports whether a feature with this event filter counts typ; an
// empty filter counts every type.
func matches(filter []string, typ string) bool {
	return len(filter) == 0 || slices.Contains(filter, typ)
}

// weight is the event's weight given its type's weight w: ratings scale it
// by their value.
func (t *typeInfo) weight(w float64, ev *event.Interaction) float64 {
	if t.rating && ev.Value > 0 {
		w *= ev.Value / 5
	}
	return w
}

func applyWindows(w *windows, ws []winSpec, match []bool, ev *event.Interaction) {
	for i := range ws {
		if !match[i] {
			continue
		}
		v := 1.0
		if ws[i].sum {
			v = ev.Value
		}
		w.add(ws, i, ev.TS/ws[i].width, v)
	}
}

// Applied is the log offset whose effects the state includes: of the
// embedded log, or of partition 0 of a partitioned one.
func (e *Engine) Applied() uint64 { return e.applied.Load() }

// SetApplied records the offset after restoring a snapshot.
func (e *Engine) SetApplied(off uint64) { e.applied.Store(off) }

// partition returns partition p's applied offset (0 is the embedded log's).
func (e *Engine) partition(p int) *atomic.Uint64 {
	if p == 0 {
		return &e.applied
	}
	e.partMu.Lock()
	defer e.partMu.Unlock()
	a, ok := e.parts[p]
	if !ok {
		if e.parts == nil {
			e.parts = make(map[int]*atomic.Uint64)
		}
		a = new(atomic.Uint64)
		e.parts[p] = a
	}
	return a
}

// AppliedPartition is the offset of partition p whose effects the state
// includes (0: none).
func (e *Engine) AppliedPartition(p int) uint64 { return e.partition(p).Load() }

// SetAppliedPartition records partition p's offset (a skipped undecodable
// record, a restored snapshot).
func (e *Engine) SetAppliedPartition(p int, off uint64) { e.partition(p).Store(off) }

// AppliedVector is every partition's applied offset; partition 0 (the
// embedded log) is included when it is not zero or no other partition is
// known.
func (e *Engine) AppliedVector() map[int]uint64 {
	e.partMu.Lock()
	defer e.partMu.Unlock()
	v := make(map[int]uint64, len(e.parts)+1)
	for p, a := range e.parts {
		v[p] = a.Load()
	}
	if a := e.applied.Load(); a != 0 || len(v) == 0 {
		v[0] = a
	}
	return v
}

// Clock is the newest event time applied, the engine's notion of "now" for
// windows and decays (event time, not arrival time).
func (e *Engine) Clock() int64 { return e.clock.Load() }

// Late counts events that arrived beyond the lateness bound.
func (e *Engine) Late() int64 { return e.late.Load() }

// Apply folds one log record at offset into the state. Offsets at or below
// Applied are ignored, which makes replay after a crash exactly-once.
func (e *Engine) Apply(off uint64, rec *event.Record) { e.apply(&e.applied, off, rec) }

// apply is Apply against one partition's applied offset.
func (e *Engine) apply(applied *atomic.Uint64, off uint64, rec *event.Record) {
	if off != 0 && off <= applied.Load() {
		return
	}
	wall := e.now().UnixMilli()
	switch rec.Kind {
	case event.KindInteraction:
		e.applyInteraction(&rec.Interaction, wall)
	case event.KindItem:
		e.applyItem(&rec.Item, wall)
	case event.KindErase:
		e.users.Delete(rec.User.ID)
		e.setConsent(rec.User.ID, event.FullConsent)
		e.changes.erase(rec.User.ID)
	case event.KindUser:
		e.applyUser(&rec.User)
	}
	e.changes.touched = e.changes.on
	if off != 0 {
		applied.Store(off)
	}
}

// itemWork is the item side of one interaction: what the user side worked
// out (type, item, lateness, the previous items to pair with) and hands on.
type itemWork struct {
	// skip: the user withheld personalisation consent, so the event feeds
	// no item or global aggregate.
	skip  bool
	ev    *event.Interaction
	ti    *typeInfo
	item  uint32
	late  bool
	wall  int64
	nprev int
	prev  [8]uint32 // newest first
}

func (e *Engine) applyInteraction(ev *event.Interaction, wall int64) {
	var w itemWork
	e.applyUserSide(ev, wall, &w)
	e.applyItemSide(&w, e.itemIdx.vals)
}

// applyUserSide updates everything the user owns and fills w. It also
// interns the item (creating its row), so it must run in log order on the
// applying goroutine.
func (e *Engine) applyUserSide(ev *event.Interaction, wall int64, w *itemWork) {
	if ev.TS > e.clock.Load() {
		e.clock.Store(ev.TS)
	}
	typ, ti := e.typeOf(ev.Type)
	it := e.item(ev.Item)
	item := it.idx
	*w = itemWork{ev: ev, ti: ti, item: item, wall: wall}
	var cats []uint32
	if it.meta != nil {
		cats = it.meta.catIdx // only the applier writes meta: no lock to read it
	}

	w.skip = !e.Consent(ev.User).Personalization
	u := e.users.GetOrCreate(ev.User, e.newUser)
	u.mu.Lock()
	w.late = ev.TS < u.lastTS-e.c.lateness
	if ev.TS > u.lastTS {
		u.lastTS = ev.TS
	}
	u.updated = wall
	e.changes.user(ev.User)
	if w.late {
		e.late.Add(1)
	} else {
		applyWindows(&u.windows, e.c.userWin, ti.userWin, ev)
	}
	for i, m := range ti.userRec {
		if m && ev.TS > u.recency[i] {
			u.recency[i] = ev.TS
		}
	}
	if s := e.c.session; s != nil {
		u.session.add(ev.Session, item, ev.TS, e.c.sessionGap, s.N)
	}
	if cv := e.c.covis; cv != nil && !w.skip {
		// Previous items paired with this one for co-visitation.
		for i := 0; i < len(u.last.items) && w.nprev < cv.Distance && w.nprev < len(w.prev); i++ {
			p := u.last.newest(i)
			if ev.TS-p.ts > e.c.covisGap {
				break
			}
			w.prev[w.nprev] = p.item
			w.nprev++
		}
	}
	if !w.skip {
		// Without personalisation consent the item stays out of last_n
		// too: last_n feeds co-visitation pairs once consent returns.
		u.last.push(lastItem{ts: ev.TS, item: item, typ: typ}, e.c.lastN.N)
	}
	if e.c.userItem != nil {
		u.items.at(item).add(ti.weight(ti.wUserItem, ev), ev.TS, e.c.hlUserItem)
	}
	if e.c.userCat != nil && len(cats) > 0 {
		wc := ti.weight(ti.wUserCat, ev) / float64(len(cats))
		for _, c := range cats {
			u.cats.at(c).add(wc, ev.TS, e.c.hlUserCat)
		}
	}
	u.mu.Unlock()
}

// applyItemSide updates the item rows (windows, recency, trending, both
// co-visitation edges) and the global row. Items see their updates in log
// order whichever goroutine runs this, so results equal the sequential ones.
func (e *Engine) applyItemSide(w *itemWork, rows []*itemRow) {
	if w.skip {
		return
	}
	ev, ti, item, wall := w.ev, w.ti, w.item, w.wall
	prev := w.prev[:w.nprev]
	var wCovis float64
	if e.c.covis != nil {
		wCovis = ti.weight(ti.wCovis, ev)
	}
	it := rows[item]
	e.changes.item(item)
	it.mu.Lock()
	it.updated = wall
	if !w.late {
		applyWindows(&it.windows, e.c.itemWin, ti.itemWin, ev)
	}
	for i, m := range ti.itemRec {
		if m && ev.TS > it.recency[i] {
			it.recency[i] = ev.TS
		}
	}
	if e.c.trending != nil {
		it.trend.add(ti.weight(ti.wTrend, ev), ev.TS, e.c.hlTrend)
	}
	// The backward edge (item → previous item) is weaker but helps sparse
	// catalogues. Every row still sees its own increments in log order, so
	// doing them before the forward edges changes nothing.
	for d, p := range prev {
		if p != item {
			it.covis.add(p, wCovis/float64(d+1)*backwardWeight, e.c.covis.N, &e.pruner)
		}
	}
	it.mu.Unlock()

	// Forward (previous item then this one) is the signal for "what comes next".
	for d, p := range prev {
		if p == item {
			continue
		}
		pr := rows[p]
		e.changes.item(p)
		pr.mu.Lock()
		pr.covis.add(item, wCovis/float64(d+1), e.c.covis.N, &e.pruner)
		pr.updated = wall
		pr.mu.Unlock()
	}

	if len(e.c.globalWin) > 0 && !w.late {
		e.global.mu.Lock()
		applyWindows(&e.global.windows, e.c.globalWin, ti.global, ev)
		e.global.updated = wall
		e.global.mu.Unlock()
	}
}

// pipelineMin is the smallest batch worth a second goroutine.
const pipelineMin = 256

// ApplyBatch applies recs[i] at offs[i] (increasing), like calling Apply for
// each, but on two cores: this goroutine does the user side of every record
// in log order while a second one follows with the item side, also in log
// order. Each row is still updated in log order by one goroutine, so the
// state is exactly what Apply would build. Like Apply, it must not run
// concurrently with itself or Apply.
func (e *Engine) ApplyBatch(offs []uint64, recs []event.Record) { e.applyBatch(&e.applied, offs, recs) }

// ApplyPartition is ApplyBatch for records of partition p of a partitioned
// log, whose offsets count per partition: records at or below the
// partition's applied offset are skipped, and it advances only that offset.
// Partitions may be interleaved in any order: user state is owned by the
// partition of its user and every item and global aggregate is a
// commutative increment (invariant 3), so each partition's records applied
// once, in their order, give the same state up to the order of float sums.
// Two things remain order-dependent across partitions: an item's metadata
// (categories feed user category affinity) is whatever was applied before
// the interaction, and co-visitation pruning keeps the strongest neighbours
// seen when a list overflows. Like ApplyBatch, calls must not overlap.
func (e *Engine) ApplyPartition(p int, offs []uint64, recs []event.Record) {
	e.applyBatch(e.partition(p), offs, recs)
}

func (e *Engine) applyBatch(appliedOff *atomic.Uint64, offs []uint64, recs []event.Record) {
	if len(recs) < pipelineMin {
		for i := range recs {
			e.apply(appliedOff, offs[i], &recs[i])
		}
		return
	}
	wall := e.now().UnixMilli()
	work := make(chan []itemWork, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for chunk := range work {
			rows := e.itemIdx.load() // published before the chunk was sent
			for i := range chunk {
				e.applyItemSide(&chunk[i], rows)
			}
		}
	}()
	const chunkLen = 128
	chunk := make([]itemWork, 0, chunkLen)
	var last uint64
	applied := appliedOff.Load()
	for i := range recs {
		off := offs[i]
		if off != 0 && off <= applied {
			continue
		}
		switch r := &recs[i]; r.Kind {
		case event.KindInteraction:
			chunk = chunk[:len(chunk)+1]
			e.applyUserSide(&r.Interaction, wall, &chunk[len(chunk)-1])
			if len(chunk) == chunkLen {
				work <- chunk
				chunk = make([]itemWork, 0, chunkLen)
			}
		case event.KindItem:
			e.applyItem(&r.Item, wall) // meta only: the item side never reads it
		case event.KindErase:
			e.users.Delete(r.User.ID)
			e.setConsent(r.User.ID, event.FullConsent)
			e.changes.erase(r.User.ID)
		case event.KindUser:
			e.applyUser(&r.User)
		}
		e.changes.touched = e.changes.on
		if off != 0 {
			last = off
		}
	}
	if len(chunk) > 0 {
		work <- chunk
	}
	close(work)
	<-done
	if last != 0 {
		appliedOff.Store(last)
	}
}

// categories interns cats: the shared copy of each name, and its index.
func (e *Engine) categories(cats []string) ([]string, []uint32) {
	if len(cats) == 0 {
		return nil, nil
	}
	names := make([]string, len(cats))
	idx := make([]uint32, len(cats))
	for i, c := range cats {
		idx[i] = e.category(c)
		names[i] = e.cats.vals[idx[i]]
	}
	return names, idx
}

// backwardWeight scales the item→previous-item edge of co-visitation.
const backwardWeight = 0.5

func halfLife(s *Spec) float64 { return float64(time.Duration(s.HalfLife).Milliseconds()) }

func (e *Engine) applyItem(m *event.Item, wall int64) {
	it := e.item(m.ID)
	names, idx := e.categories(m.Categories)
	it.mu.Lock()
	it.meta = &itemMeta{categories: names, catIdx: idx, attributes: m.Attributes, hidden: m.Hidden}
	it.updated = wall
	it.mu.Unlock()
	if e.changes.on {
		e.changes.meta = append(e.changes.meta, it.idx)
	}
	e.trend.invalidate()
}

// Consent is what user allowed (full consent unless a user record said
// otherwise).
func (e *Engine) Consent(user string) event.Consent {
	if e.nConsent.Load() == 0 {
		return event.FullConsent
	}
	if c, ok := e.consent.Load(user); ok {
		return c.(event.Consent)
	}
	return event.FullConsent
}

func (e *Engine) setConsent(user string, c event.Consent) {
	if c == event.FullConsent {
		if _, had := e.consent.LoadAndDelete(user); had {
			e.nConsent.Add(-1)
		}
		return
	}
	if _, had := e.consent.Swap(user, c); !had {
		e.nConsent.Add(1)
	}
}

// applyUser records a user's consent. Withdrawing personalisation stops
// the user's later events from feeding others' features; what they fed
// before stays in the (anonymous) item aggregates.
func (e *Engine) applyUser(u *event.User) {
	c := event.ConsentOf(u.Attributes, e.Consent(u.ID))
	e.setConsent(u.ID, c)
	e.changes.user(u.ID)
}
