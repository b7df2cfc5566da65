package features

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// ring is a sliding event-time window of n fixed-width buckets. Bucket b
// holds events with ts/width == b; the valid buckets are (latest-n, latest].
// Only non-empty buckets are stored, sorted by index: most entities see few
// events per window, so a sparse ring is a fraction of a dense one's memory
// and cache footprint. A bucket's contents do not depend on arrival order,
// so applying the same events in any order yields the same ring: the
// property that lets partitions merge item counters.
type ring struct {
	n int64
	b []bucket
}

type bucket struct {
	idx int64
	v   float64
}

func newRing(n int) ring { return ring{n: int64(n)} }

func (r *ring) add(idx int64, v float64) {
	k := len(r.b)
	if k == 0 {
		r.b = append(r.b, bucket{idx, v})
		return
	}
	latest := r.b[k-1].idx
	switch {
	case idx > latest:
		cut := 0
		for cut < k && r.b[cut].idx <= idx-r.n {
			cut++
		}
		if cut > 0 {
			r.b = append(r.b[:0], r.b[cut:]...)
		}
		r.b = append(r.b, bucket{idx, v})
	case idx <= latest-r.n:
		// older than the window: already expired
	default:
		i := k - 1
		for i >= 0 && r.b[i].idx > idx {
			i--
		}
		if i >= 0 && r.b[i].idx == idx {
			r.b[i].v += v
			return
		}
		r.b = slices.Insert(r.b, i+1, bucket{idx, v})
	}
}

// sum over buckets (now-n, now].
func (r *ring) sum(now int64) float64 {
	s := 0.0
	for _, x := range r.b {
		if x.idx > now-r.n && x.idx <= now {
			s += x.v
		}
	}
	return s
}

// decayed is an exponentially decayed weight: w as of time t.
type decayed struct {
	W float64
	T int64
}

// add folds in weight v at time ts with half-life hl (ms). Out-of-order
// additions decay the new weight instead, so the result is order-free.
func (d *decayed) add(v float64, ts int64, hl float64) {
	switch {
	case d.W == 0 && d.T == 0:
		d.W, d.T = v, ts
	case ts >= d.T:
		d.W = d.W*math.Exp2(-float64(ts-d.T)/hl) + v
		d.T = ts
	default:
		d.W += v * math.Exp2(-float64(d.T-ts)/hl)
	}
}

func (d decayed) at(now int64, hl float64) float64 {
	if now <= d.T {
		return d.W
	}
	return d.W * math.Exp2(-float64(now-d.T)/hl)
}

// logScore ranks decayed weights without choosing a "now": for any now,
// at(now) order equals logScore order. Old datasets would underflow at().
func (d decayed) logScore(hl float64) float64 {
	if d.W <= 0 {
		return math.Inf(-1)
	}
	return math.Log2(d.W) + float64(d.T)/hl
}

// ItemAt is an item with the time and type of the interaction.
type ItemAt struct {
	Item string `json:"item"`
	TS   int64  `json:"ts"`
	Type string `json:"type"`
}

// lastN is a fixed-capacity ring of a user's most recent items, oldest first
// when read.
type lastN struct {
	items []ItemAt
	// rows[i] is items[i]'s row (nil after a restore), so co-visitation
	// reaches previous items without a map lookup each.
	rows []*itemRow
	next int // write position once full
}

func (l *lastN) push(it ItemAt, row *itemRow, n int) {
	if len(l.items) < n {
		l.items = append(l.items, it)
		l.rows = append(l.rows, row)
		return
	}
	l.items[l.next] = it
	l.rows[l.next] = row
	l.next = (l.next + 1) % n
}

// list returns items oldest → newest.
func (l *lastN) list() []ItemAt {
	out := make([]ItemAt, 0, len(l.items))
	out = append(out, l.items[l.next:]...)
	return append(out, l.items[:l.next]...)
}

// recentFirst calls fn from newest to oldest until it returns false.
func (l *lastN) recentFirst(fn func(ItemAt, *itemRow) bool) {
	n := len(l.items)
	for i := 0; i < n; i++ {
		idx := (l.next - 1 - i + 2*n) % n
		if !fn(l.items[idx], l.rows[idx]) {
			return
		}
	}
}

// session tracks the current session: explicit session ids win, otherwise
// an inactivity gap starts a new one.
type session struct {
	ID    string
	Start int64
	Last  int64
	Count int
	Items []string
}

func (s *session) add(id string, item string, ts int64, gap int64, n int) {
	newSession := s.Count == 0 || (id != "" && id != s.ID) || (id == "" && ts-s.Last > gap)
	if newSession {
		*s = session{ID: id, Start: ts, Last: ts, Items: s.Items[:0]}
	}
	s.Count++
	if ts > s.Last {
		s.Last = ts
	}
	if len(s.Items) < n {
		s.Items = append(s.Items, item)
	} else {
		copy(s.Items, s.Items[1:])
		s.Items[n-1] = item
	}
}

// Neighbor is an item with a weight.
type Neighbor struct {
	Item   string  `json:"item"`
	Weight float64 `json:"weight"`
}

// covis holds an item's co-visitation neighbours. Increments commute; the
// list is pruned back to cap when it grows to 2×cap, dropping the weakest,
// and the sorted view is rebuilt lazily on read.
type covis struct {
	w      map[string]float64
	sorted []Neighbor
	dirty  bool
}

func (c *covis) add(item string, v float64, cap int) {
	if c.w == nil {
		c.w = make(map[string]float64, 8)
	}
	c.w[item] += v
	c.dirty = true
	if len(c.w) >= 2*cap {
		c.prune(cap)
	}
}

// prune keeps the cap strongest neighbours, ties going to the smaller id as
// in sortedView. Only weights are sorted; ids are compared only among the
// ties at the cut, which keeps pruning cheap on the apply path.
func (c *covis) prune(cap int) {
	ws := make([]float64, 0, len(c.w))
	for _, w := range c.w {
		ws = append(ws, w)
	}
	slices.Sort(ws)
	cut := ws[len(ws)-cap] // the weakest weight kept
	keepTies := 0
	for _, w := range ws[len(ws)-cap:] {
		if w != cut {
			break
		}
		keepTies++
	}
	var ties []string
	for k, w := range c.w {
		switch {
		case w < cut:
			delete(c.w, k)
		case w == cut:
			ties = append(ties, k)
		}
	}
	if len(ties) > keepTies {
		slices.Sort(ties)
		for _, k := range ties[keepTies:] {
			delete(c.w, k)
		}
	}
	c.dirty = true
}

// sortedView returns neighbours by weight desc, ties by item id so results
// are deterministic.
func (c *covis) sortedView() []Neighbor {
	if !c.dirty && c.sorted != nil {
		return c.sorted
	}
	// Readers copy what they return, so the previous view's array is free
	// to reuse: pruning rebuilds it every cap insertions.
	out := slices.Grow(c.sorted[:0], len(c.w))
	for k, v := range c.w {
		out = append(out, Neighbor{k, v})
	}
	slices.SortFunc(out, func(a, b Neighbor) int {
		if c := cmp.Compare(b.Weight, a.Weight); c != 0 {
			return c
		}
		return strings.Compare(a.Item, b.Item)
	})
	c.sorted, c.dirty = out, false
	return out
}
