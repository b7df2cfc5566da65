package train

import (
	"context"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/feedback"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/recommend"
)

// replay serves every validation user through the pipeline at the state
// the tuner read (every event but the held-out ones) with the blend as
// tuned on the fit components (which never saw the held-out events), and
// returns the lists in which the held-out item was shown, labelled: what
// the server would have served just before the user's last event, with
// the feature vectors it would have logged (point-in-time), and what the
// user did next.
func (t *tuner) replay(ctx context.Context, evs []event.Interaction, b blend, tuning *model.StreamTuning, depth int) []feedback.Example {
	var kept []model.Component
	for _, c := range b.comps {
		if c.Weight > 0 {
			kept = append(kept, c)
		}
	}
	set := model.NewSet("blend@0", t.fit.Items, kept)
	set.StreamWeight, set.Tuned = b.stream, tuning
	cfg := t.cfg
	cfg.ExploreRate = 0 // what the blend ranks, not what exploration tries
	p := recommend.New(t.engine, cfg)
	p.Models = func() *model.Set { return set }
	var out []feedback.Example
	for k, c := range t.cases {
		if k%1024 == 0 && ctx.Err() != nil {
			return nil
		}
		resp := p.Recommend(ctx, recommend.Request{User: t.fit.Users[c.user], K: depth})
		target := t.fit.Items[c.target]
		ex := feedback.Example{At: evs[c.origin].TS, Model: resp.Model, Items: make([]feedback.Shown, len(resp.Items))}
		hit := false
		for i, it := range resp.Items {
			ex.Items[i].X = it.Vector
			if it.Item == target {
				ex.Items[i].Label, hit = 1, true
			}
		}
		if hit {
			out = append(out, ex)
		}
	}
	return out
}
