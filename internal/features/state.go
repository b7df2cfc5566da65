package features

import (
	"math"
	"sort"
)

// ring is a sliding event-time window of fixed-width buckets. Bucket b holds
// events with ts/width == b; slot b%len. Because a bucket's contents do not
// depend on arrival order, applying the same events in any order yields the
// same ring: the property that lets partitions merge item counters.
type ring struct {
	latest int64 // newest bucket index seen; valid buckets: (latest-len, latest]
	vals   []float64
}

func (r *ring) add(bucket int64, v float64) {
	n := int64(len(r.vals))
	switch {
	case r.latest == 0 && allZero(r.vals):
		r.latest = bucket
	case bucket > r.latest:
		if bucket-r.latest >= n {
			clear(r.vals)
		} else {
			for b := r.latest + 1; b <= bucket; b++ {
				r.vals[b%n] = 0
			}
		}
		r.latest = bucket
	case bucket <= r.latest-n:
		return // older than the window: already expired
	}
	r.vals[bucket%n] += v
}

// sum over buckets (now-len, now].
func (r *ring) sum(now int64) float64 {
	n := int64(len(r.vals))
	lo := max(r.latest-n+1, now-n+1)
	hi := min(r.latest, now)
	s := 0.0
	for b := lo; b <= hi; b++ {
		s += r.vals[b%n]
	}
	return s
}

func allZero(v []float64) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
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
	next  int // write position once full
}

func (l *lastN) push(it ItemAt, n int) {
	if len(l.items) < n {
		l.items = append(l.items, it)
		return
	}
	l.items[l.next] = it
	l.next = (l.next + 1) % n
}

// list returns items oldest → newest.
func (l *lastN) list() []ItemAt {
	out := make([]ItemAt, 0, len(l.items))
	out = append(out, l.items[l.next:]...)
	return append(out, l.items[:l.next]...)
}

// recentFirst calls fn from newest to oldest until it returns false.
func (l *lastN) recentFirst(fn func(ItemAt) bool) {
	n := len(l.items)
	for i := 0; i < n; i++ {
		idx := (l.next - 1 - i + 2*n) % n
		if !fn(l.items[idx]) {
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

func (c *covis) prune(cap int) {
	all := c.sortedView()
	for _, n := range all[cap:] {
		delete(c.w, n.Item)
	}
	c.sorted = all[:cap:cap]
}

// sortedView returns neighbours by weight desc, ties by item id so results
// are deterministic.
func (c *covis) sortedView() []Neighbor {
	if !c.dirty && c.sorted != nil {
		return c.sorted
	}
	out := make([]Neighbor, 0, len(c.w))
	for k, v := range c.w {
		out = append(out, Neighbor{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Weight != out[j].Weight {
			return out[i].Weight > out[j].Weight
		}
		return out[i].Item < out[j].Item
	})
	c.sorted, c.dirty = out, false
	return out
}
