package eval

import (
	"context"
	"fmt"

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
	count map[string]float64
}

// NewPopRec counts train.
func NewPopRec(train []event.Interaction) *PopRec {
	counts := map[string]int{}
	for i := range train {
		counts[train[i].Item]++
	}
	p := &PopRec{order: make([]features.Scored, 0, len(counts)), count: make(map[string]float64, len(counts))}
	for id, n := range counts {
		p.order = append(p.order, features.Scored{ID: id, Score: float64(n)})
		p.count[id] = float64(n)
	}
	sortScored(p.order)
	return p
}

// Rank returns the n most popular items outside c.History (unless the
// protocol keeps history in the ranking).
func (p *PopRec) Rank(_ context.Context, c *Case, n int) ([]features.Scored, error) {
	return firstN(p.order, excluded(c), n), nil
}

// Serving evaluates the serving pipeline as the server runs it. Its engine
// holds exactly the training input, so the pipeline's own seen filter is the
// protocol's history exclusion. A case with Input (a test session the
// engine never saw) is served from that input alone (sessions).
type Serving struct {
	Pipeline *recommend.Pipeline
	sessions *sessions
}

// Rank asks the pipeline for n items, seen items excluded unless the case
// keeps them.
func (s Serving) Rank(ctx context.Context, c *Case, n int) ([]features.Scored, error) {
	if c.Input != nil {
		if s.sessions == nil {
			return nil, fmt.Errorf("case %s carries its input but the pipeline was not built to serve it", c.User)
		}
		ctx = s.sessions.with(ctx, c)
	}
	resp := s.Pipeline.Recommend(ctx, recommend.Request{User: c.User, K: n, IncludeSeen: c.IncludeSeen})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]features.Scored, len(resp.Items))
	for i, it := range resp.Items {
		out[i] = features.Scored{ID: it.Item, Score: it.Score}
	}
	return out, nil
}
