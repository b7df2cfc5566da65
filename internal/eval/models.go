package eval

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/recommend"
)

// PopRec ranks every item by its number of training events, the baseline of
// the published tables. The published PopRec counted full sequences, test
// item included; this one sees only the training input, so it cannot leak
// the target's own popularity. Items with no training event score 0 and are
// never returned: a target among them is a miss at every cutoff, which is
// where ties against the target would put it anyway.
type PopRec struct {
	order []features.Scored // count desc, then id
}

// NewPopRec counts train.
func NewPopRec(train []event.Interaction) *PopRec {
	counts := map[string]int{}
	for i := range train {
		counts[train[i].Item]++
	}
	p := &PopRec{order: make([]features.Scored, 0, len(counts))}
	for id, n := range counts {
		p.order = append(p.order, features.Scored{ID: id, Score: float64(n)})
	}
	slices.SortFunc(p.order, func(a, b features.Scored) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return p
}

// Rank returns the n most popular items outside c.History.
func (p *PopRec) Rank(_ context.Context, c *Case, n int) ([]features.Scored, error) {
	seen := make(map[string]struct{}, len(c.History))
	for _, it := range c.History {
		seen[it] = struct{}{}
	}
	out := make([]features.Scored, 0, n)
	for _, s := range p.order {
		if len(out) == n {
			break
		}
		if _, ok := seen[s.ID]; !ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// Serving evaluates the serving pipeline as the server runs it. Its engine
// holds exactly the training input, so the pipeline's own seen filter is the
// protocol's history exclusion.
type Serving struct{ Pipeline *recommend.Pipeline }

// Rank asks the pipeline for n items with seen items excluded.
func (s Serving) Rank(ctx context.Context, c *Case, n int) ([]features.Scored, error) {
	resp := s.Pipeline.Recommend(ctx, recommend.Request{User: c.User, K: n})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]features.Scored, len(resp.Items))
	for i, it := range resp.Items {
		out[i] = features.Scored{ID: it.Item, Score: it.Score}
	}
	return out, nil
}
