package feedback

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/model"
)

// Options bound the tracker.
type Options struct {
	// Window is how long after a list was served an engagement with one of
	// its items is attributed to it.
	Window time.Duration
	// PerUser is how many recent lists are kept per user.
	PerUser int
	// MaxUsers bounds the users remembered; the longest-idle go first.
	MaxUsers int
	// Engagements are the event types attributed (default click, cart,
	// purchase).
	Engagements []string
	// MaxModels bounds the model versions reported (oldest dropped).
	MaxModels int
	// Examples, when set, receives each served list that was engaged with,
	// once it closes (its window ends, a newer list pushes it out, or its
	// user is evicted), as a ranking example: the feature vectors served
	// and the engagement per position. Lists of erased users are not sent.
	Examples ExampleSink
}

// ExampleSink stores ranking examples (ExampleLog does, on disk).
type ExampleSink interface {
	Append(exs []Example) error
}

// DefaultOptions: 30 minutes, 3 lists per user, 100,000 users (about
// 80 MB at k = 10 when full).
func DefaultOptions() Options {
	return Options{Window: 30 * time.Minute, PerUser: 3, MaxUsers: 100_000,
		Engagements: []string{"click", "cart", "purchase"}, MaxModels: 16}
}

// Buckets are the position groups metrics and reports use.
var Buckets = []string{"1", "2", "3", "4-5", "6-10", "11-20", "21+"}

func bucket(pos int) int { // pos is 1-based
	switch {
	case pos <= 3:
		return pos - 1
	case pos <= 5:
		return 3
	case pos <= 10:
		return 4
	case pos <= 20:
		return 5
	}
	return 6
}

// list is one served recommendation list.
type list struct {
	at     time.Time
	model  string
	items  []string        // best first: position is index + 1
	credit map[string]bool // item+"\x00"+type already counted; nil until one is
	// vecs are the items' feature vectors as served (nil: not logged);
	// labels their strongest engagement so far (Label).
	vecs   [][model.NumRankFeatures]float64
	labels []float64
	closed bool // sent as an example, or dropped
}

// position is item's 1-based position in l, 0 when l did not show it; the
// first occurrence counts.
func (l *list) position(item string) int {
	for i, it := range l.items {
		if it == item {
			return i + 1
		}
	}
	return 0
}

type userLists struct {
	lists []*list // oldest first
	last  time.Time
}

// counts per model and bucket.
type counts struct {
	impressions [7]float64
	engaged     map[string]*[7]float64 // by event type
	first       time.Time
}

// Tracker attributes engagements to served lists. It is safe for
// concurrent use; every call is O(list length) under one mutex.
type Tracker struct {
	opts   Options
	engage map[string]bool
	mu     sync.Mutex
	users  map[string]*userLists
	models map[string]*counts
	items  map[string]*[2]float64 // impressions, engagements per item: the exploration slot's evidence
	m      *metrics
	now    func() time.Time
	// open are the lists with vectors, oldest first, until their window
	// ends: then they close and, when engaged, become examples.
	open    []*list
	pending []Example // closed under the lock, sent after it
	sinkErr func(error)
}

// New returns a tracker; metrics are registered on r when not nil.
func New(opts Options, r prometheus.Registerer) *Tracker {
	d := DefaultOptions()
	if opts.Window <= 0 {
		opts.Window = d.Window
	}
	if opts.PerUser <= 0 {
		opts.PerUser = d.PerUser
	}
	if opts.MaxUsers <= 0 {
		opts.MaxUsers = d.MaxUsers
	}
	if len(opts.Engagements) == 0 {
		opts.Engagements = d.Engagements
	}
	if opts.MaxModels <= 0 {
		opts.MaxModels = d.MaxModels
	}
	t := &Tracker{opts: opts, engage: map[string]bool{}, users: map[string]*userLists{},
		models: map[string]*counts{}, items: map[string]*[2]float64{}, m: newMetrics(r), now: time.Now}
	for _, e := range opts.Engagements {
		t.engage[e] = true
	}
	return t
}

// family is a model name without its version: blend@7 → blend. Metrics
// carry the family, so a new version per training run adds no series.
func family(model string) string {
	if i := strings.IndexByte(model, '@'); i >= 0 {
		return model[:i]
	}
	return model
}

// Served records that items were shown to user, best first, by model, with
// the feature vectors they were ranked with (nil: none; the list then
// counts in the rates but yields no ranking example). The tracker keeps
// vecs: the caller must not modify it afterwards.
func (t *Tracker) Served(user, model string, items []string, vecs [][model.NumRankFeatures]float64) {
	if user == "" || len(items) == 0 {
		return
	}
	now := t.now()
	l := &list{at: now, model: model, items: slices.Clone(items)}
	if t.opts.Examples != nil && len(vecs) == len(items) {
		l.vecs, l.labels = vecs, make([]float64, len(items))
	}
	fam := family(model)
	t.mu.Lock()
	u := t.users[user]
	if u == nil {
		if len(t.users) >= t.opts.MaxUsers {
			t.evictLocked(now)
		}
		u = &userLists{}
		t.users[user] = u
	}
	u.last = now
	if len(u.lists) == t.opts.PerUser {
		t.closeLocked(u.lists[0])
		copy(u.lists, u.lists[1:])
		u.lists = u.lists[:len(u.lists)-1]
	}
	u.lists = append(u.lists, l)
	c := t.countsLocked(model, now)
	for i, it := range items {
		c.impressions[bucket(i+1)]++
		t.itemLocked(it)[0]++
	}
	if l.vecs != nil {
		t.open = append(t.open, l)
	}
	t.sweepLocked(now)
	exs := t.takeLocked()
	t.mu.Unlock()
	t.send(exs)
	for i := range items {
		t.m.impressions.WithLabelValues(fam, Buckets[bucket(i+1)]).Inc()
	}
}

// Observe attributes accepted interactions to the lists that showed their
// items within the window: each (list, item, type) counts once, so a
// retried event is not counted twice.
func (t *Tracker) Observe(evs []event.Interaction) {
	now := t.now()
	type hit struct {
		fam, typ string
		b        int
	}
	var hits []hit
	t.mu.Lock()
	for i := range evs {
		e := &evs[i]
		if !t.engage[e.Type] {
			continue
		}
		u := t.users[e.User]
		if u == nil {
			continue
		}
		// Newest list first: the engagement is credited to the latest
		// list that showed the item.
		for k := len(u.lists) - 1; k >= 0; k-- {
			l := u.lists[k]
			if now.Sub(l.at) > t.opts.Window {
				break
			}
			p := l.position(e.Item)
			if p == 0 {
				continue
			}
			key := e.Item + "\x00" + e.Type
			if l.credit[key] {
				break
			}
			if l.credit == nil {
				l.credit = map[string]bool{}
			}
			l.credit[key] = true
			c := t.countsLocked(l.model, now)
			if c.engaged[e.Type] == nil {
				c.engaged[e.Type] = &[7]float64{}
			}
			c.engaged[e.Type][bucket(p)]++
			t.itemLocked(e.Item)[1]++
			if l.labels != nil {
				l.labels[p-1] = max(l.labels[p-1], Label(e.Type))
			}
			hits = append(hits, hit{family(l.model), e.Type, bucket(p)})
			break
		}
	}
	t.sweepLocked(now)
	exs := t.takeLocked()
	t.mu.Unlock()
	t.send(exs)
	for _, h := range hits {
		t.m.engaged.WithLabelValues(h.fam, Buckets[h.b], h.typ).Inc()
	}
}

// maxItems bounds the per-item counters the exploration slot reads.
const maxItems = 1 << 20

func (t *Tracker) itemLocked(item string) *[2]float64 {
	c := t.items[item]
	if c == nil {
		if len(t.items) >= maxItems {
			n := 0 // drop a tenth, arbitrary (map order): counters restart at the prior
			for id := range t.items {
				delete(t.items, id)
				if n++; n >= maxItems/10 {
					break
				}
			}
		}
		c = &[2]float64{}
		t.items[item] = c
	}
	return c
}

// ItemStats fills each item's impressions and engagements so far (the
// exploration slot's evidence).
func (t *Tracker) ItemStats(items []string, impressions, engagements []float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, it := range items {
		if c := t.items[it]; c != nil {
			impressions[i], engagements[i] = c[0], c[1]
		}
	}
}

// Forget drops everything remembered about user (erasure).
func (t *Tracker) Forget(user string) {
	t.mu.Lock()
	if u := t.users[user]; u != nil {
		for _, l := range u.lists {
			l.closed = true // dropped: an erased user's lists never become examples
		}
	}
	delete(t.users, user)
	t.mu.Unlock()
}

func (t *Tracker) countsLocked(model string, now time.Time) *counts {
	c := t.models[model]
	if c == nil {
		if len(t.models) >= t.opts.MaxModels {
			oldest := ""
			for name, m := range t.models {
				if oldest == "" || m.first.Before(t.models[oldest].first) {
					oldest = name
				}
			}
			delete(t.models, oldest)
		}
		c = &counts{engaged: map[string]*[7]float64{}, first: now}
		t.models[model] = c
	}
	return c
}

// evictLocked drops lists past the window, then, if still full, the
// longest-idle tenth of users: amortised O(1) per Served.
func (t *Tracker) evictLocked(now time.Time) {
	for id, u := range t.users {
		if now.Sub(u.last) > t.opts.Window {
			t.closeAllLocked(u)
			delete(t.users, id)
		}
	}
	if len(t.users) < t.opts.MaxUsers {
		return
	}
	ids := slices.Collect(maps.Keys(t.users))
	slices.SortFunc(ids, func(a, b string) int { return t.users[a].last.Compare(t.users[b].last) })
	for _, id := range ids[:max(1, len(ids)/10)] {
		t.closeAllLocked(t.users[id])
		delete(t.users, id)
	}
}

// Users is how many users are remembered.
func (t *Tracker) Users() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.users)
}
