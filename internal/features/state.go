package features

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"
)

// windows are an entity's sliding event-time windows, each a ring of n
// fixed-width buckets. Bucket b holds events with ts/width == b; the valid
// buckets are (latest-n, latest]. Only non-empty buckets are stored, sorted
// by index: most entities see few events per window, so a sparse ring is a
// fraction of a dense one's memory and cache footprint. All of an entity's
// rings share one array, whose first k entries (k = len(ws)) hold where each
// ring's buckets end in their idx field, so an event that updates every
// window touches one allocation, not k. A bucket's contents do not depend
// on arrival order, so applying the same events in any order yields the
// same rings: the property that lets partitions merge item counters.
type windows struct {
	b []bucket
}

type bucket struct {
	idx int64
	v   float64
}

func newWindows(k int) windows {
	if k == 0 {
		return windows{}
	}
	b := make([]bucket, k, k+2)
	for i := range b {
		b[i].idx = int64(k)
	}
	return windows{b}
}

// ring returns where ring i's buckets are in w.b.
func (w *windows) ring(i, k int) (lo, hi int) {
	lo = k
	if i > 0 {
		lo = int(w.b[i-1].idx)
	}
	return lo, int(w.b[i].idx)
}

func (w *windows) add(ws []winSpec, i int, idx int64, v float64) {
	k, n := len(ws), ws[i].n
	lo, hi := w.ring(i, k)
	r := w.b[lo:hi]
	if len(r) == 0 {
		w.insert(i, k, hi, bucket{idx, v})
		return
	}
	latest := r[len(r)-1].idx
	switch {
	case idx > latest:
		cut := 0
		for cut < len(r) && r[cut].idx <= idx-n {
			cut++
		}
		if cut == 0 {
			w.insert(i, k, hi, bucket{idx, v})
			return
		}
		// Slide: drop cut expired buckets, append the new one.
		copy(r, r[cut:])
		r[len(r)-cut] = bucket{idx, v}
		w.remove(i, k, hi-cut+1, cut-1)
	case idx <= latest-n:
		// older than the window: already expired
	default:
		j := len(r) - 1
		for j >= 0 && r[j].idx > idx {
			j--
		}
		if j >= 0 && r[j].idx == idx {
			r[j].v += v
			return
		}
		w.insert(i, k, lo+j+1, bucket{idx, v})
	}
}

// insert puts x at w.b[at], inside ring i.
func (w *windows) insert(i, k, at int, x bucket) {
	w.b = slices.Insert(w.b, at, x)
	for j := i; j < k; j++ {
		w.b[j].idx++
	}
}

// remove drops m buckets from w.b[at:], inside ring i.
func (w *windows) remove(i, k, at, m int) {
	if m == 0 {
		return
	}
	w.b = slices.Delete(w.b, at, at+m)
	for j := i; j < k; j++ {
		w.b[j].idx -= int64(m)
	}
}

// sum of ring i over buckets (now-n, now].
func (w *windows) sum(ws []winSpec, i int, now int64) float64 {
	lo, hi := w.ring(i, len(ws))
	n := ws[i].n
	s := 0.0
	for _, x := range w.b[lo:hi] {
		if inWindow(x.idx, n, now) {
			s += x.v
		}
	}
	return s
}

// inWindow says whether bucket idx is one of the n buckets (now-n, now].
func inWindow(idx, n, now int64) bool { return idx > now-n && idx <= now }

// windowShape is how many buckets a window feature has and how wide (ms)
// each is.
func windowShape(s *Spec) (n, width int64) {
	return int64(s.Buckets), max(1, time.Duration(s.Window).Milliseconds()/int64(s.Buckets))
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

// lastItem is one last_n entry: the item and event type as indices into the
// engine's tables, so a user's history holds no pointers for the GC to scan.
type lastItem struct {
	ts   int64
	item uint32
	typ  uint32
}

// lastN is a fixed-capacity ring of a user's most recent items.
type lastN struct {
	items []lastItem
	next  int // write position once full
}

func (l *lastN) push(it lastItem, n int) {
	if len(l.items) < n {
		l.items = append(l.items, it)
		return
	}
	l.items[l.next] = it
	l.next = (l.next + 1) % n
}

// newest returns the i-th most recent item, 0 ≤ i < len(l.items).
func (l *lastN) newest(i int) lastItem {
	n := len(l.items)
	return l.items[(l.next-1-i+2*n)%n]
}

// list returns items oldest → newest.
func (l *lastN) list() []lastItem {
	out := make([]lastItem, 0, len(l.items))
	out = append(out, l.items[l.next:]...)
	return append(out, l.items[:l.next]...)
}

// session tracks the current session: explicit session ids win, otherwise
// an inactivity gap starts a new one.
type session struct {
	ID    string
	Start int64
	Last  int64
	Count int
	Items []uint32
}

func (s *session) add(id string, item uint32, ts int64, gap int64, n int) {
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
	// Ref is the item's handle for ItemsByRef / SeenByRef: valid for the
	// lifetime of this engine, meaningless in any other.
	Ref uint32 `json:"-"`
}

// covis holds an item's co-visitation neighbours, keyed by item index.
// Increments commute; the list is pruned back to cap when it grows to
// 2×cap, dropping the weakest, and the sorted view is rebuilt lazily on
// read. Ties anywhere go to the smaller item id (the string, never the
// index: indices depend on the order items were first seen, which differs
// between a clean replay and a restore).
type covis struct {
	w      idxMap[float64]
	sorted []Neighbor
	dirty  bool
}

// pruner is the applier's scratch for pruning co-visitation lists, reused
// across prunes; items names indices to break ties.
type pruner struct {
	items *table[*itemRow]
	ws    []float64
	ties  []uint32
	buf   []idxSlot[float64]
}

func (c *covis) add(item uint32, v float64, cap int, p *pruner) {
	*c.w.at(item) += v
	c.dirty = true
	if c.w.len() >= 2*cap {
		c.prune(cap, p)
	}
}

// prune keeps the cap strongest neighbours, ties going to the smaller id as
// in sortedView. Only weights are sorted; ids are compared only among the
// ties at the cut, which keeps pruning cheap on the apply path.
func (c *covis) prune(cap int, p *pruner) {
	ws := p.ws[:0]
	for _, w := range c.w.all() {
		ws = append(ws, w)
	}
	cut := kthLargest(ws, cap) // the weakest weight kept
	keepTies := cap
	for _, w := range ws {
		if w > cut {
			keepTies--
		}
	}
	ties := p.ties[:0]
	for k, w := range c.w.all() {
		if w == cut {
			ties = append(ties, k)
		}
	}
	if len(ties) > keepTies {
		rows := p.items.load() // published: prune may run on the item-side goroutine
		slices.SortFunc(ties, func(a, b uint32) int { return strings.Compare(rows[a].id, rows[b].id) })
		ties = ties[:keepTies]
	}
	slices.Sort(ties) // the ties kept, for the search below
	p.buf = c.w.keep(func(k uint32, w float64) bool {
		if w != cut {
			return w > cut
		}
		_, kept := slices.BinarySearch(ties, k)
		return kept
	}, p.buf)
	p.ws, p.ties = ws, ties
	c.dirty = true
}

// kthLargest returns the k-th largest of ws (k ≥ 1), reordering ws: a
// quickselect, cheaper than sorting on every prune.
func kthLargest(ws []float64, k int) float64 {
	t := len(ws) - k // its index in ascending order
	lo, hi := 0, len(ws)-1
	for lo < hi {
		p := ws[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for ws[i] < p {
				i++
			}
			for ws[j] > p {
				j--
			}
			if i <= j {
				ws[i], ws[j] = ws[j], ws[i]
				i++
				j--
			}
		}
		switch {
		case t <= j:
			hi = j
		case t >= i:
			lo = i
		default:
			return ws[t] // between the parts: equal to the pivot
		}
	}
	return ws[t]
}

// sortedView returns neighbours by weight desc, ties by item id so results
// are deterministic. rows translates indices to ids.
func (c *covis) sortedView(rows []*itemRow) []Neighbor {
	if !c.dirty && c.sorted != nil {
		return c.sorted
	}
	// Readers copy what they return, so the previous view's array is free
	// to reuse: pruning rebuilds it every cap insertions.
	out := slices.Grow(c.sorted[:0], c.w.len())
	for k, v := range c.w.all() {
		out = append(out, Neighbor{Item: rows[k].id, Weight: v, Ref: k})
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
