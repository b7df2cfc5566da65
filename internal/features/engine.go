package features

import (
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
	items  *store.Map[itemRow]
	global globalRow

	clock   atomic.Int64  // newest event time applied (unix ms)
	applied atomic.Uint64 // log offset applied up to

	trend trendIndex

	// catNames holds one copy of each category name, used by every item
	// meta, so users' category maps compare keys by pointer. Only the
	// applying (or restoring) goroutine touches it.
	catNames map[string]string
}

type winSpec struct {
	spec   *Spec
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
}

type userRow struct {
	mu      sync.Mutex
	updated int64 // wall clock of the last apply: computed_at
	lastTS  int64 // newest event time: the user's lateness watermark
	windows []ring
	recency []int64
	session session
	last    lastN
	items   map[string]*decayed
	cats    map[string]*decayed
}

type itemRow struct {
	mu sync.Mutex
	// id is the items map's copy of the key. Apply keys everything about
	// the item (last_n, sessions, affinity, co-visitation) with it, so map
	// lookups compare ids by pointer and one copy of each id stays in memory.
	id      string
	updated int64
	meta    *itemMeta
	windows []ring
	recency []int64
	trend   decayed
	covis   covis
}

type itemMeta struct {
	categories []string
	attributes map[string]string
	hidden     bool
}

type globalRow struct {
	mu      sync.Mutex
	updated int64
	windows []ring
}

// NewEngine builds an engine for cfg. now is the wall clock used for
// computed_at stamps (nil: time.Now).
func NewEngine(cfg *Config, now func() time.Time) *Engine {
	if now == nil {
		now = time.Now
	}
	e := &Engine{cfg: cfg, now: now, users: store.NewMap[userRow](), items: store.NewMap[itemRow](), catNames: map[string]string{}}
	e.c.lateness = time.Duration(cfg.Lateness).Milliseconds()
	for i := range cfg.Features {
		s := &cfg.Features[i]
		switch s.Kind {
		case KindWindowCount, KindWindowSum:
			w := winSpec{spec: s, width: max(1, time.Duration(s.Window).Milliseconds()/int64(s.Buckets)), filter: s.Events, sum: s.Kind == KindWindowSum}
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
		case KindLastN:
			e.c.lastN = s
		case KindAffinity:
			if s.Scope == ScopeUserItem {
				e.c.userItem = s
			} else {
				e.c.userCat = s
			}
		case KindTrending:
			e.c.trending = s
		case KindCovisitation:
			e.c.covis = s
		}
	}
	e.global.windows = newRings(e.c.globalWin)
	return e
}

// Config returns the engine's feature configuration.
func (e *Engine) Config() *Config { return e.cfg }

func newRings(ws []winSpec) []ring {
	r := make([]ring, len(ws))
	for i, w := range ws {
		r[i] = newRing(w.spec.Buckets)
	}
	return r
}

func (e *Engine) newUser() *userRow {
	return &userRow{windows: newRings(e.c.userWin), recency: make([]int64, len(e.c.userRec))}
}

func (e *Engine) newItem() *itemRow {
	return &itemRow{windows: newRings(e.c.itemWin), recency: make([]int64, len(e.c.itemRec))}
}

// item returns id's row, creating it. Only the applying goroutine creates
// rows or reads id, so setting it outside the row lock is safe.
func (e *Engine) item(id string) *itemRow {
	it := e.items.GetOrCreate(id, e.newItem)
	if it.id == "" {
		it.id = id
	}
	return it
}

func matches(filter []string, typ string) bool {
	if len(filter) == 0 {
		return true
	}
	for _, f := range filter {
		if f == typ {
			return true
		}
	}
	return false
}

func weight(s *Spec, ev *event.Interaction) float64 {
	w, ok := s.Weights[ev.Type]
	if !ok {
		w = 1
	}
	if ev.Type == "rating" && ev.Value > 0 {
		w *= ev.Value / 5
	}
	return w
}

func applyWindows(rings []ring, ws []winSpec, ev *event.Interaction) {
	for i := range ws {
		w := &ws[i]
		if !matches(w.filter, ev.Type) {
			continue
		}
		v := 1.0
		if w.sum {
			v = ev.Value
		}
		rings[i].add(ev.TS/w.width, v)
	}
}

// Applied is the log offset whose effects the state includes.
func (e *Engine) Applied() uint64 { return e.applied.Load() }

// SetApplied records the offset after restoring a snapshot.
func (e *Engine) SetApplied(off uint64) { e.applied.Store(off) }

// Clock is the newest event time applied, the engine's notion of "now" for
// windows and decays (event time, not arrival time).
func (e *Engine) Clock() int64 { return e.clock.Load() }

// Late counts events that arrived beyond the lateness bound.
func (e *Engine) Late() int64 { return e.late.Load() }

// Apply folds one log record at offset into the state. Offsets at or below
// Applied are ignored, which makes replay after a crash exactly-once.
func (e *Engine) Apply(off uint64, rec *event.Record) {
	if off != 0 && off <= e.applied.Load() {
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
	}
	if off != 0 {
		e.applied.Store(off)
	}
}

func (e *Engine) applyInteraction(ev *event.Interaction, wall int64) {
	if ev.TS > e.clock.Load() {
		e.clock.Store(ev.TS)
	}
	// The item row is needed below anyway; one lookup serves both.
	it := e.item(ev.Item)
	item := it.id
	var cats []string
	if e.c.userCat != nil {
		it.mu.Lock()
		if it.meta != nil {
			cats = it.meta.categories // replaced, never mutated: safe to keep
		}
		it.mu.Unlock()
	}

	// Previous items paired with this one for co-visitation, newest first.
	type prevItem struct {
		ItemAt
		row *itemRow
	}
	var prevBuf [8]prevItem
	prev := prevBuf[:0]

	u := e.users.GetOrCreate(ev.User, e.newUser)
	u.mu.Lock()
	late := ev.TS < u.lastTS-e.c.lateness
	if ev.TS > u.lastTS {
		u.lastTS = ev.TS
	}
	u.updated = wall
	if late {
		e.late.Add(1)
	} else {
		applyWindows(u.windows, e.c.userWin, ev)
	}
	for i, r := range e.c.userRec {
		if matches(r.filter, ev.Type) && ev.TS > u.recency[i] {
			u.recency[i] = ev.TS
		}
	}
	if s := e.c.session; s != nil {
		u.session.add(ev.Session, item, ev.TS, time.Duration(s.Gap).Milliseconds(), s.N)
	}
	if cv := e.c.covis; cv != nil {
		gap := time.Duration(cv.Gap).Milliseconds()
		u.last.recentFirst(func(p ItemAt, row *itemRow) bool {
			if len(prev) >= cv.Distance || len(prev) == cap(prevBuf) || ev.TS-p.TS > gap {
				return false
			}
			prev = append(prev, prevItem{p, row})
			return true
		})
	}
	u.last.push(ItemAt{Item: item, TS: ev.TS, Type: ev.Type}, it, e.c.lastN.N)
	if s := e.c.userItem; s != nil {
		if u.items == nil {
			u.items = make(map[string]*decayed, 8)
		}
		d := u.items[item]
		if d == nil {
			d = &decayed{}
			u.items[item] = d
		}
		d.add(weight(s, ev), ev.TS, halfLife(s))
	}
	if s := e.c.userCat; s != nil && len(cats) > 0 {
		if u.cats == nil {
			u.cats = make(map[string]*decayed, 4)
		}
		w := weight(s, ev) / float64(len(cats))
		for _, c := range cats {
			d := u.cats[c]
			if d == nil {
				d = &decayed{}
				u.cats[c] = d
			}
			d.add(w, ev.TS, halfLife(s))
		}
	}
	u.mu.Unlock()

	it.mu.Lock()
	it.updated = wall
	if !late {
		applyWindows(it.windows, e.c.itemWin, ev)
	}
	for i, r := range e.c.itemRec {
		if matches(r.filter, ev.Type) && ev.TS > it.recency[i] {
			it.recency[i] = ev.TS
		}
	}
	if s := e.c.trending; s != nil {
		it.trend.add(weight(s, ev), ev.TS, halfLife(s))
	}
	it.mu.Unlock()

	if cv := e.c.covis; cv != nil && len(prev) > 0 {
		w := weight(cv, ev)
		for d, p := range prev {
			if p.Item == item {
				continue
			}
			v := w / float64(d+1)
			// Forward (p then item) is the signal for "what comes next";
			// the backward edge is weaker but helps sparse catalogues.
			pr := p.row
			if pr == nil {
				pr = e.item(p.Item)
			}
			pr.mu.Lock()
			pr.covis.add(item, v, cv.N)
			pr.updated = wall
			pr.mu.Unlock()
			it.mu.Lock()
			it.covis.add(p.Item, v*backwardWeight, cv.N)
			it.mu.Unlock()
		}
	}

	if len(e.c.globalWin) > 0 && !late {
		e.global.mu.Lock()
		applyWindows(e.global.windows, e.c.globalWin, ev)
		e.global.updated = wall
		e.global.mu.Unlock()
	}
}

// categories copies cats using the shared copy of each name.
func (e *Engine) categories(cats []string) []string {
	if len(cats) == 0 {
		return nil
	}
	out := make([]string, len(cats))
	for i, c := range cats {
		name, ok := e.catNames[c]
		if !ok {
			name = c
			e.catNames[c] = c
		}
		out[i] = name
	}
	return out
}

// backwardWeight scales the item→previous-item edge of co-visitation.
const backwardWeight = 0.5

func halfLife(s *Spec) float64 { return float64(time.Duration(s.HalfLife).Milliseconds()) }

func (e *Engine) applyItem(m *event.Item, wall int64) {
	it := e.item(m.ID)
	it.mu.Lock()
	it.meta = &itemMeta{categories: e.categories(m.Categories), attributes: m.Attributes, hidden: m.Hidden}
	it.updated = wall
	it.mu.Unlock()
	e.trend.invalidate()
}
