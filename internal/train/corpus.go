package train

import (
	"cmp"
	"slices"

	"github.com/ripple-rec/ripple/internal/event"
)

// Corpus is interaction histories over a dense item index: what every
// trainer reads.
type Corpus struct {
	Items []string // dense index → item id
	index map[string]int32
	Users []string
	Seqs  [][]int32 // per user, oldest first
	Times [][]int64 // per user, the events' timestamps
	// Origin is, per user and position, the event's index in the input.
	Origin [][]int32
	Count  []int32 // events per item
	// ByItem lists, per item, where it occurs: (user, position) pairs.
	ByItem [][]Occurrence
	Events int
	MaxTS  int64
}

// Occurrence is one event of an item in a user's sequence.
type Occurrence struct{ User, Pos int32 }

// NewCorpus groups evs by user. Within a user, events are ordered by
// timestamp, equal timestamps keeping their order in evs (the log order),
// exactly as the feature engine applied them.
func NewCorpus(evs []event.Interaction) *Corpus {
	c := &Corpus{index: map[string]int32{}}
	byUser := map[string]int{}
	for i := range evs {
		e := &evs[i]
		u, ok := byUser[e.User]
		if !ok {
			u = len(c.Users)
			byUser[e.User] = u
			c.Users = append(c.Users, e.User)
			c.Seqs = append(c.Seqs, nil)
			c.Times = append(c.Times, nil)
			c.Origin = append(c.Origin, nil)
		}
		it, ok := c.index[e.Item]
		if !ok {
			it = int32(len(c.Items))
			c.index[e.Item] = it
			c.Items = append(c.Items, e.Item)
			c.Count = append(c.Count, 0)
		}
		c.Count[it]++
		c.Seqs[u] = append(c.Seqs[u], it)
		c.Times[u] = append(c.Times[u], e.TS)
		c.Origin[u] = append(c.Origin[u], int32(i))
		c.MaxTS = max(c.MaxTS, e.TS)
		c.Events++
	}
	for u := range c.Seqs {
		if !slices.IsSortedFunc(c.Times[u], cmp.Compare[int64]) {
			order := make([]int, len(c.Seqs[u]))
			for i := range order {
				order[i] = i
			}
			slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(c.Times[u][a], c.Times[u][b]) })
			seq, ts, orig := make([]int32, len(order)), make([]int64, len(order)), make([]int32, len(order))
			for i, o := range order {
				seq[i], ts[i], orig[i] = c.Seqs[u][o], c.Times[u][o], c.Origin[u][o]
			}
			c.Seqs[u], c.Times[u], c.Origin[u] = seq, ts, orig
		}
	}
	c.ByItem = make([][]Occurrence, len(c.Items))
	for u, seq := range c.Seqs {
		for p, it := range seq {
			c.ByItem[it] = append(c.ByItem[it], Occurrence{int32(u), int32(p)})
		}
	}
	return c
}

// Index returns item's dense index.
func (c *Corpus) Index(item string) (int32, bool) {
	i, ok := c.index[item]
	return i, ok
}
