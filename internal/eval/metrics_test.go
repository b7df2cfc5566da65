package eval

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
)

func list(pairs ...any) []features.Scored {
	var out []features.Scored
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, features.Scored{ID: pairs[i].(string), Score: pairs[i+1].(float64)})
	}
	return out
}

func TestTargetRank(t *testing.T) {
	tests := []struct {
		name      string
		list      []features.Scored
		target    string
		rank, tie int
	}{
		{"first, no tie", list("t", 3.0, "a", 2.0), "t", 1, 0},
		{"third", list("a", 3.0, "b", 2.0, "t", 1.0), "t", 3, 0},
		{"tie listed before the target", list("a", 3.0, "b", 2.0, "t", 2.0, "c", 1.0), "t", 3, 1},
		{"tie listed after the target ranks above it", list("a", 3.0, "t", 2.0, "b", 2.0, "c", 1.0), "t", 3, 1},
		{"all tied", list("t", 1.0, "a", 1.0, "b", 1.0, "c", 1.0), "t", 4, 3},
		{"unsorted list: every higher score counts", list("t", 1.0, "a", 5.0, "b", 0.5), "t", 2, 0},
		{"not returned", list("a", 3.0, "b", 2.0), "t", 0, 0},
		{"empty", nil, "t", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rank, ties := TargetRank(tc.list, tc.target)
			if rank != tc.rank || ties != tc.tie {
				t.Fatalf("TargetRank = %d, %d ties; want %d, %d", rank, ties, tc.rank, tc.tie)
			}
		})
	}
}

func TestScoreHandComputed(t *testing.T) {
	// Ranks 1, 3, miss, 11, 20 over 5 users.
	outs := []outcome{
		{rank: 1, top: []string{"a", "b"}},
		{rank: 3, top: []string{"b", "c"}},
		{rank: 0, top: []string{"a"}},
		{rank: 11, top: []string{"d"}},
		{rank: 20},
	}
	m := score(outs, NewCatalogue(10, nil, nil))
	g1, g3, g11, g20 := 1.0, 1/math.Log2(4), 1/math.Log2(12), 1/math.Log2(21)
	want := map[int][2]float64{
		5:  {2.0 / 5, (g1 + g3) / 5},
		10: {2.0 / 5, (g1 + g3) / 5},
		20: {4.0 / 5, (g1 + g3 + g11 + g20) / 5},
	}
	for k, w := range want {
		if got := m.HR(k); math.Abs(got-w[0]) > 1e-12 {
			t.Errorf("HR@%d = %v, want %v", k, got, w[0])
		}
		if got := m.NDCG(k); math.Abs(got-w[1]) > 1e-12 {
			t.Errorf("NDCG@%d = %v, want %v", k, got, w[1])
		}
	}
	if g3 != 0.5 {
		t.Fatalf("1/log2(4) = %v", g3)
	}
	if m.Users != 5 || m.Coverage != 0.4 { // a, b, c, d of 10
		t.Errorf("users %d coverage %v, want 5 and 0.4", m.Users, m.Coverage)
	}
	if m.At[2].Hits != 4 {
		t.Errorf("hits@20 = %d, want 4", m.At[2].Hits)
	}
}

// A tie with the target costs it the rank, through the ranking and the
// metric code both models share.
func TestTiesAgainstTargetEndToEnd(t *testing.T) {
	train := []event.Interaction{
		{User: "x", Item: "a"}, {User: "x", Item: "a"}, {User: "x", Item: "a"},
		{User: "x", Item: "b"}, {User: "x", Item: "b"},
		{User: "x", Item: "c"}, {User: "x", Item: "c"},
		{User: "x", Item: "h"},
	}
	p := NewPopRec(train)
	// b and c both have 2 events; b is listed first (id order) but the
	// target b still ranks behind c.
	o, err := evaluateCase(context.Background(), p, &Case{User: "u", History: []string{"h"}, Target: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if o.rank != 3 || o.ties != 1 {
		t.Fatalf("rank %d ties %d, want 3 and 1", o.rank, o.ties)
	}
	m := score([]outcome{o}, NewCatalogue(4, nil, nil))
	if m.HR(5) != 1 || m.NDCG(5) != 0.5 {
		t.Fatalf("HR@5 %v NDCG@5 %v, want 1 and 0.5", m.HR(5), m.NDCG(5))
	}
}

func TestPopRecExcludesHistory(t *testing.T) {
	train := []event.Interaction{{Item: "a"}, {Item: "a"}, {Item: "a"}, {Item: "b"}, {Item: "b"}, {Item: "c"}}
	got, _ := NewPopRec(train).Rank(context.Background(), &Case{History: []string{"a", "c"}, Target: "z"}, 5)
	if len(got) != 1 || got[0].ID != "b" || got[0].Score != 2 {
		t.Fatalf("Rank = %v, want only b with score 2", got)
	}
}

// A model that returns history items is caught, not silently scored.
func TestHistoryReturnedIsCounted(t *testing.T) {
	leaky := rankerFunc(func(c *Case, n int) []features.Scored { return list("h1", 3.0, "t", 2.0, "h2", 1.0) })
	o, err := evaluateCase(context.Background(), leaky, &Case{History: []string{"h1", "h2"}, Target: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if o.leaked != 2 || o.rank != 2 || !slices.Equal(o.top, []string{"h1", "t", "h2"}) {
		t.Fatalf("outcome %+v", o)
	}
}

type rankerFunc func(c *Case, n int) []features.Scored

func (f rankerFunc) Rank(_ context.Context, c *Case, n int) ([]features.Scored, error) {
	return f(c, n), nil
}

// listCatalogue: a {x y}, b {y z}, c {x}, e {x y} named with a repeat, d
// without categories; training interactions a×4, b×2, c, d (8 in all).
func listCatalogue() *Catalogue {
	meta := []event.Item{
		{ID: "a", Categories: []string{"x", "y"}},
		{ID: "b", Categories: []string{"z", "y"}},
		{ID: "c", Categories: []string{"x"}},
		{ID: "d"},
		{ID: "e", Categories: []string{"y", "x", "x"}},
	}
	var train []event.Interaction
	for _, it := range []string{"a", "a", "a", "a", "b", "b", "c", "d"} {
		train = append(train, event.Interaction{User: "u", Item: it})
	}
	return NewCatalogue(5, meta, train)
}

func TestListMetricsHandComputed(t *testing.T) {
	c := listCatalogue()
	ild, novelty := c.ILD, c.Novelty
	// ILD, 1 − Jaccard: a,b 1 − 1/3; a,c 1 − 1/2; b,c 1 − 0; a,e 1 − 1.
	// Novelty, −log2 of the share of 8: a 4/8 → 1, b 2/8 → 2, c and d
	// 1/8 → 3; an item never trained on counts as 1 → 3.
	tests := []struct {
		name   string
		metric func([]string) (float64, bool)
		list   []string
		want   float64
		ok     bool
	}{
		{"ILD: three items, three pairs", ild, []string{"a", "b", "c"}, (2.0/3 + 1.0/2 + 1) / 3, true},
		{"ILD: an item without categories is left out of the pairs", ild, []string{"a", "d", "b"}, 2.0 / 3, true},
		{"ILD: an item unknown to the catalogue is left out too", ild, []string{"zz", "b", "c"}, 1, true},
		{"ILD: same categories, repeats ignored", ild, []string{"a", "e"}, 0, true},
		{"ILD: one item, no pair", ild, []string{"a"}, 0, false},
		{"ILD: one item with categories, no pair", ild, []string{"a", "d"}, 0, false},
		{"ILD: empty list", ild, nil, 0, false},
		{"ILD: no categories in the catalogue", NewCatalogue(5, nil, nil).ILD, []string{"a", "b"}, 0, false},
		{"novelty: popular items", novelty, []string{"a", "b"}, 1.5, true},
		{"novelty: rare and unseen items", novelty, []string{"c", "never"}, 3, true},
		{"novelty: one item", novelty, []string{"a"}, 1, true},
		{"novelty: whole list", novelty, []string{"a", "b", "c", "d"}, 9.0 / 4, true},
		{"novelty: empty list", novelty, nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.metric(tc.list)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("%v → %v, %v; want %v, %v", tc.list, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// score averages ILD over the users whose list has a pair with categories
// and novelty over the users with a non-empty list.
func TestScoreListMetrics(t *testing.T) {
	outs := []outcome{
		{top: []string{"a", "b", "c"}}, // ILD 13/18, novelty 2
		{top: []string{"a"}},           // no ILD, novelty 1
		{},                             // neither
		{top: []string{"a", "d", "b"}}, // ILD 2/3, novelty 2
	}
	m := score(outs, listCatalogue())
	if m.ILD == nil || math.Abs(*m.ILD-25.0/36) > 1e-12 {
		t.Errorf("ILD = %v, want 25/36", m.ILD)
	}
	if math.Abs(m.Novelty-5.0/3) > 1e-12 {
		t.Errorf("novelty = %v, want 5/3", m.Novelty)
	}
	if m.Coverage != 0.8 { // a, b, c, d of 5
		t.Errorf("coverage = %v, want 0.8", m.Coverage)
	}
	if m := score(outs[1:3], listCatalogue()); m.ILD != nil {
		t.Errorf("ILD = %v with no list holding a pair, want none", *m.ILD)
	}
	if m := score(nil, listCatalogue()); m.ILD != nil || m.Novelty != 0 || m.Coverage != 0 {
		t.Errorf("no users: %+v", m)
	}
}
