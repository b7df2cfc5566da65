package features

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"slices"
)

// Diff lists where the states of two quiescent engines with the same specs
// differ, at most max differences. User-owned state (user rows, consent)
// must be equal byte for byte in the snapshot encoding; item and global rows
// must have the same shape with every float within relative tolerance tol.
// The split is invariant 3's: engines that applied the same partitions in
// different interleavings summed the same item increments in another order.
// Applied offsets are not compared (logs differ), nor the late count (a
// counter since start, not state); the clock is.
func Diff(a, b *Engine, tol float64, max int) []string {
	var out []string
	add := func(format string, args ...any) bool {
		if len(out) < max {
			out = append(out, fmt.Sprintf(format, args...))
		}
		return len(out) < max
	}
	if a.Clock() != b.Clock() {
		add("clock %d vs %d", a.Clock(), b.Clock())
	}
	ua, ub := userEntries(a), userEntries(b)
	for _, k := range slices.Sorted(maps.Keys(ua)) {
		if vb, ok := ub[k]; !ok {
			if !add("%q only in the first", k) {
				return out
			}
		} else if !bytes.Equal(ua[k], vb) {
			if !add("%q differs", k) {
				return out
			}
		}
	}
	for k := range ub {
		if _, ok := ua[k]; !ok && !add("%q only in the second", k) {
			return out
		}
	}
	near := func(x, y float64) bool {
		return x == y || math.Abs(x-y) <= tol*math.Max(math.Abs(x), math.Abs(y))
	}
	rings := func(what string, x, y *windows, ws []winSpec) bool {
		for i := range ws {
			lo, hi := x.ring(i, len(ws))
			rx := x.b[lo:hi]
			lo, hi = y.ring(i, len(ws))
			ry := y.b[lo:hi]
			if len(rx) != len(ry) {
				return add("%s window %s: %d vs %d buckets", what, ws[i].spec.Name, len(rx), len(ry))
			}
			for j := range rx {
				if rx[j].idx != ry[j].idx || !near(rx[j].v, ry[j].v) {
					return add("%s window %s bucket %d: %v vs %v", what, ws[i].spec.Name, j, rx[j], ry[j])
				}
			}
		}
		return true
	}
	if !rings("global", &a.global.windows, &b.global.windows, a.c.globalWin) {
		return out
	}
	if a.items.Len() != b.items.Len() {
		add("%d vs %d items", a.items.Len(), b.items.Len())
	}
	rowsA, rowsB := a.itemIdx.load(), b.itemIdx.load()
	ok := true
	a.items.Range(func(id string, x *itemRow) bool {
		y := b.items.Get(id)
		if y == nil {
			ok = add("item %s only in the first", id)
			return ok
		}
		what := "item " + id
		switch {
		case (x.meta == nil) != (y.meta == nil):
			return add("%s: metadata present %v vs %v", what, x.meta != nil, y.meta != nil)
		case x.meta != nil && (!slices.Equal(x.meta.categories, y.meta.categories) || !maps.Equal(x.meta.attributes, y.meta.attributes) || x.meta.hidden != y.meta.hidden):
			return add("%s: metadata differs", what)
		case !slices.Equal(x.recency, y.recency):
			return add("%s: recency %v vs %v", what, x.recency, y.recency)
		case x.trend.T != y.trend.T || !near(x.trend.W, y.trend.W):
			return add("%s: trend %v vs %v", what, x.trend, y.trend)
		case x.covis.w.len() != y.covis.w.len():
			return add("%s: %d vs %d neighbours", what, x.covis.w.len(), y.covis.w.len())
		}
		if !rings(what, &x.windows, &y.windows, a.c.itemWin) {
			return false
		}
		nb := make(map[string]float64, y.covis.w.len())
		for k, w := range y.covis.w.all() {
			nb[rowsB[k].id] = w
		}
		for k, w := range x.covis.w.all() {
			n := rowsA[k].id
			if wb, found := nb[n]; !found || !near(w, wb) {
				return add("%s: neighbour %s %v vs %v", what, n, w, wb)
			}
		}
		return true
	})
	return out
}

// userEntries is the user-owned part of e's snapshot: user rows and consent.
func userEntries(e *Engine) map[string][]byte {
	out := map[string][]byte{}
	_ = e.Snapshot(func(k, v []byte) error {
		if k[0] == snapUser || k[0] == snapConsent {
			out[string(k)] = bytes.Clone(v)
		}
		return nil
	})
	return out
}
