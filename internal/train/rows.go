package train

import (
	"cmp"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/ripple-rec/ripple/internal/model"
)

// accumulator is a dense row with the list of touched columns: adding is one
// array write, and clearing costs only what was touched.
type accumulator struct {
	w       []float32
	touched []int32
}

func newAccumulator(n int) *accumulator { return &accumulator{w: make([]float32, n)} }

func (a *accumulator) add(j int32, w float32) {
	if a.w[j] == 0 {
		a.touched = append(a.touched, j)
	}
	a.w[j] += w
}

type entry struct {
	j int32
	w float32
}

// top moves the row's topN strongest positive entries, except column self,
// into out (strongest first; ties to the smaller item id) and clears the row.
func (a *accumulator) top(self int32, topN int, items []string, out []entry) []entry {
	out = out[:0]
	for _, j := range a.touched {
		if w := a.w[j]; j != self && w > 0 {
			out = append(out, entry{j, w})
		}
		a.w[j] = 0
	}
	a.touched = a.touched[:0]
	slices.SortFunc(out, func(x, y entry) int {
		if c := cmp.Compare(y.w, x.w); c != 0 {
			return c
		}
		return cmp.Compare(items[x.j], items[y.j])
	})
	if len(out) > topN {
		out = out[:topN]
	}
	return out
}

// buildRows computes every item's row on all cores and assembles the table.
// row fills the accumulator for item i; finish, when set, rescales a row's
// kept entries (normalisation) before they are stored.
func buildRows(items []string, topN int, row func(i int32, acc *accumulator), finish func(i int32, row []entry)) (*model.ItemItem, error) {
	n := len(items)
	rows := make([][]entry, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			acc := newAccumulator(n)
			var buf []entry
			for {
				i := int32(next.Add(1) - 1)
				if int(i) >= n {
					return
				}
				row(i, acc)
				buf = acc.top(i, topN, items, buf)
				if finish != nil {
					finish(i, buf)
				}
				rows[i] = slices.Clone(buf)
			}
		})
	}
	wg.Wait()
	offsets := make([]uint32, n+1)
	total := 0
	for i, r := range rows {
		total += len(r)
		offsets[i+1] = uint32(total)
	}
	nbrs, weights := make([]int32, 0, total), make([]float32, 0, total)
	for _, r := range rows {
		for _, e := range r {
			nbrs = append(nbrs, e.j)
			weights = append(weights, e.w)
		}
	}
	return model.NewItemItem(items, offsets, nbrs, weights)
}

// normalizeSum scales a row to sum 1: each anchor then contributes at most
// its history weight, whatever its popularity.
func normalizeSum(_ int32, row []entry) {
	s := float32(0)
	for _, e := range row {
		s += e.w
	}
	if s > 0 {
		for k := range row {
			row[k].w /= s
		}
	}
}
