package model

import "fmt"

// ItemItem is a sparse item → neighbours table: for each item, its best
// neighbours by weight, strongest first. It is what every trained candidate
// model serves (transition, item kNN, EASE): a user's score for item j is a
// recency-weighted sum over the user's history items h of Weight(h → j).
//
// Rows are stored in CSR form over a dense item index, so a lookup costs one
// map probe for the anchor and nothing per neighbour.
type ItemItem struct {
	Items   []string         // dense index → item id
	index   map[string]int32 // item id → dense index
	Offsets []uint32         // row i is Nbrs[Offsets[i]:Offsets[i+1]]
	Nbrs    []int32
	Weights []float32
}

// NewItemItem wraps CSR arrays as a table, checking that they describe one:
// offsets non-decreasing over len(items)+1 rows, neighbours in range.
func NewItemItem(items []string, offsets []uint32, nbrs []int32, weights []float32) (*ItemItem, error) {
	if len(offsets) != len(items)+1 || offsets[0] != 0 || int(offsets[len(items)]) != len(nbrs) || len(nbrs) != len(weights) {
		return nil, fmt.Errorf("model: item table: %d items, %d offsets, %d neighbours, %d weights do not fit", len(items), len(offsets), len(nbrs), len(weights))
	}
	for i := 1; i < len(offsets); i++ {
		if offsets[i] < offsets[i-1] {
			return nil, fmt.Errorf("model: item table: offsets decrease at row %d", i-1)
		}
	}
	for _, j := range nbrs {
		if j < 0 || int(j) >= len(items) {
			return nil, fmt.Errorf("model: item table: neighbour %d out of range", j)
		}
	}
	m := &ItemItem{Items: items, Offsets: offsets, Nbrs: nbrs, Weights: weights}
	m.buildIndex()
	if len(m.index) != len(items) {
		return nil, fmt.Errorf("model: item table: duplicate item ids")
	}
	return m, nil
}

func (m *ItemItem) buildIndex() {
	m.index = make(map[string]int32, len(m.Items))
	for i, id := range m.Items {
		m.index[id] = int32(i)
	}
}

// Index returns item's dense index.
func (m *ItemItem) Index(item string) (int32, bool) {
	i, ok := m.index[item]
	return i, ok
}

// Row returns the neighbours of the item at dense index i, strongest first.
// The slices alias the table: read only.
func (m *ItemItem) Row(i int32) ([]int32, []float32) {
	lo, hi := m.Offsets[i], m.Offsets[i+1]
	return m.Nbrs[lo:hi], m.Weights[lo:hi]
}

// Len is the number of items the table knows.
func (m *ItemItem) Len() int { return len(m.Items) }
