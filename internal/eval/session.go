package eval

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/recommend"
)

// SplitSessions is the session-based next-item protocol of session-rec's
// evaluation and SR-GNN, on a dataset its source split into training
// sessions (Users) and test sessions (Test). Every training event is
// training input. Each test session loses its events of items absent from
// training (no model can name them); a session left with fewer than 2
// events is dropped. Every prefix of length ≥ 1 of the rest is a case
// whose target is the next event's item: the session is revealed one event
// at a time. History stays in the ranking (Case.IncludeSeen): a session
// may return to an item, and session-rec does not exclude it.
func (d *Dataset) SplitSessions() (*Holdout, error) {
	if d.Test == nil {
		return nil, fmt.Errorf("protocol %s needs a dataset split into training and test sessions by its source (yoochoose, diginetica)", ProtocolSession)
	}
	h := &Holdout{}
	known := map[string]bool{}
	for _, s := range d.Users {
		h.Train = append(h.Train, s.Events...)
		for _, e := range s.Events {
			known[e.Item] = true
		}
	}
	sortForReplay(h.Train)
	for _, s := range d.Test {
		var evs []event.Interaction
		for _, e := range s.Events {
			if known[e.Item] {
				evs = append(evs, e)
			} else {
				h.RemovedUnknown++
			}
		}
		if len(evs) < 2 {
			h.Skipped++
			continue
		}
		h.Sessions++
		items := make([]string, len(evs))
		for i, e := range evs {
			items[i] = e.Item
		}
		for i := 1; i < len(evs); i++ {
			h.Cases = append(h.Cases, Case{User: s.User, History: items[:i:i], Target: items[i], Input: evs[:i:i], IncludeSeen: true})
		}
	}
	return h, nil
}

// sortForReplay orders training input as a log replays it: by event time,
// then user id, keeping each user's order.
func sortForReplay(evs []event.Interaction) {
	slices.SortStableFunc(evs, func(a, b event.Interaction) int {
		if c := cmp.Compare(a.TS, b.TS); c != 0 {
			return c
		}
		return strings.Compare(a.User, b.User)
	})
}

// excluded is the set of items a ranking for c leaves out: its history,
// or nothing when the protocol keeps history in the ranking.
func excluded(c *Case) map[string]bool {
	if c.IncludeSeen {
		return nil
	}
	seen := make(map[string]bool, len(c.History))
	for _, it := range c.History {
		seen[it] = true
	}
	return seen
}

// sessions serves cases whose user the engine never saw (a test session):
// each case gets its own engine fed the case's input in order, through the
// same Apply a server's log replay uses, and the pipeline reads that
// user's state from it and everything else (neighbours, trending, item
// info) from the engine holding the training input. Test sessions thus
// never leak into one another or into the shared aggregates, so cases are
// independent, can run in parallel, and every model, baselines included,
// learnt from the same training input.
type sessions struct {
	base  *features.Engine
	cfg   *features.Config
	items map[string]event.Item // item metadata fed to the server, by id
}

type sessionKey struct{}

// bind is the pipeline's view for a request: the case's session overlay
// when the context carries one, else the shared engine.
func (s *sessions) bind(ctx context.Context) recommend.Features {
	if v, ok := ctx.Value(sessionKey{}).(*sessionView); ok {
		return v
	}
	return s.base
}

// with returns ctx carrying c's session view.
func (s *sessions) with(ctx context.Context, c *Case) context.Context {
	own := features.NewEngine(s.cfg, nil)
	recs := make([]event.Record, 0, 2*len(c.Input))
	v := &sessionView{Engine: s.base, user: c.User, own: own, seen: map[uint32]bool{}}
	for _, e := range c.Input {
		if it, ok := s.items[e.Item]; ok {
			recs = append(recs, event.Record{Kind: event.KindItem, Item: it})
		}
		if ref, ok := s.base.ItemRef(e.Item); ok {
			v.seen[ref] = true
		}
	}
	for _, e := range c.Input {
		recs = append(recs, event.Record{Kind: event.KindInteraction, Interaction: e})
	}
	own.ApplyBatch(make([]uint64, len(recs)), recs)
	return context.WithValue(ctx, sessionKey{}, v)
}

// sessionView is the shared engine with one user's state taken from own.
type sessionView struct {
	*features.Engine
	user string
	own  *features.Engine
	seen map[uint32]bool // the user's items, as the shared engine's refs
}

func (v *sessionView) User(id string, maxRecent int) features.UserView {
	if id == v.user {
		return v.own.User(id, maxRecent)
	}
	return v.Engine.User(id, maxRecent)
}

func (v *sessionView) SeenByRef(user string, refs []uint32, out []bool) {
	if user != v.user {
		v.Engine.SeenByRef(user, refs, out)
		return
	}
	for i, r := range refs {
		out[i] = v.seen[r]
	}
}

// SessionRules is the sequential-rules baseline of session-rec ("SR",
// Ludewig & Jannach 2018, with the framework's defaults): in each training
// session, every item b earns the rule a → b a weight of 1/d from each of
// the up to 10 items a found d steps before it; each item keeps its 20
// strongest rules; a session is scored by the rules of its last item.
// Items without a rule score 0 and are not returned.
type SessionRules struct {
	rules map[string][]features.Scored // best first
}

// Session-rules settings: session-rec's defaults.
const (
	srSteps   = 10
	srPruning = 20
)

// NewSessionRules learns rules from training input in replay order,
// grouping it back into sessions (users).
func NewSessionRules(train []event.Interaction) *SessionRules {
	weights := map[string]map[string]float64{}
	recent := map[string][]string{}
	for _, e := range train {
		prev := recent[e.User]
		for d := 1; d <= min(srSteps, len(prev)); d++ {
			a := prev[len(prev)-d]
			if weights[a] == nil {
				weights[a] = map[string]float64{}
			}
			weights[a][e.Item] += 1 / float64(d)
		}
		recent[e.User] = append(prev, e.Item)
	}
	sr := &SessionRules{rules: make(map[string][]features.Scored, len(weights))}
	for a, bs := range weights {
		list := make([]features.Scored, 0, len(bs))
		for b, w := range bs {
			list = append(list, features.Scored{ID: b, Score: w})
		}
		sortScored(list)
		sr.rules[a] = list[:min(srPruning, len(list))]
	}
	return sr
}

// Rank returns the rules of c's last item.
func (sr *SessionRules) Rank(_ context.Context, c *Case, n int) ([]features.Scored, error) {
	if len(c.History) == 0 {
		return nil, nil
	}
	return firstN(sr.rules[c.History[len(c.History)-1]], excluded(c), n), nil
}

// SessionPop is session-rec's S-POP: items the session has already visited,
// most visited first, then the rest by training popularity.
type SessionPop struct{ pop *PopRec }

// NewSessionPop counts train.
func NewSessionPop(train []event.Interaction) *SessionPop { return &SessionPop{NewPopRec(train)} }

// Rank scores an item by its visits in c's history plus its training
// popularity scaled below one visit.
func (sp *SessionPop) Rank(_ context.Context, c *Case, n int) ([]features.Scored, error) {
	top := 1.0
	if len(sp.pop.order) > 0 {
		top += sp.pop.order[0].Score
	}
	visits := map[string]float64{}
	for _, it := range c.History {
		visits[it]++
	}
	// The n+visited most popular cover the rest of the list whatever the
	// session visited: scores above them come from visits alone.
	list := make([]features.Scored, 0, len(visits)+n)
	for it, v := range visits {
		list = append(list, features.Scored{ID: it, Score: v + sp.pop.count[it]/top})
	}
	for _, s := range sp.pop.order[:min(n+len(visits), len(sp.pop.order))] {
		if visits[s.ID] == 0 {
			list = append(list, features.Scored{ID: s.ID, Score: s.Score / top})
		}
	}
	sortScored(list)
	return firstN(list, excluded(c), n), nil
}

// sortScored orders by score, best first, then by id.
func sortScored(l []features.Scored) {
	slices.SortFunc(l, func(a, b features.Scored) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// firstN is the first n items of ranked outside skip.
func firstN(ranked []features.Scored, skip map[string]bool, n int) []features.Scored {
	out := make([]features.Scored, 0, min(n, len(ranked)))
	for _, s := range ranked {
		if len(out) == n {
			break
		}
		if !skip[s.ID] {
			out = append(out, s)
		}
	}
	return out
}
