package eval

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
)

func TestSplitStratified(t *testing.T) {
	var evs []event.Interaction
	for u := range 20 {
		for i := range 20 {
			evs = append(evs, event.Interaction{User: fmt.Sprint("u", u), Item: fmt.Sprint("i", (u+i)%30), TS: int64(i)})
		}
	}
	evs = append(evs, event.Interaction{User: "lonely", Item: "i1", TS: 5})
	d := FromInteractions(evs)
	h, err := d.SplitStratified(0.75, 42)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := d.SplitStratified(0.75, 42)
	if len(h.Cases) != 20 || h.Skipped != 1 || len(h.Train) != 20*15+1 {
		t.Fatalf("%d cases, %d skipped, %d training events", len(h.Cases), h.Skipped, len(h.Train))
	}
	for i, c := range h.Cases {
		if len(c.History) != 15 || len(c.Targets) != 5 || c.Target != "" {
			t.Fatalf("%s: %d history, %d targets", c.User, len(c.History), len(c.Targets))
		}
		for _, tg := range c.Targets {
			if slices.Contains(c.History, tg) {
				t.Fatalf("%s: target %s is also training input", c.User, tg)
			}
		}
		if !slices.Equal(c.Targets, again.Cases[i].Targets) {
			t.Fatal("the split is not reproducible")
		}
	}
	if _, err := d.SplitStratified(1, 42); err == nil {
		t.Error("ratio 1 accepted")
	}
}

func TestMultiTargetMetricsHandComputed(t *testing.T) {
	list := []features.Scored{{ID: "x", Score: 5}, {ID: "a", Score: 4}, {ID: "y", Score: 4}, {ID: "b", Score: 1}}
	ranks := TargetRanks(list, map[string]bool{"a": true, "b": true, "c": true})
	// a ties with y (counted against it): rank 3; b: x and y above, a listed before: rank 4.
	if !slices.Equal(ranks, []int{3, 4}) {
		t.Fatalf("ranks %v", ranks)
	}
	a := at([]outcome{{ranks: ranks, n: 3}}, 10)
	ideal := Gain(1) + Gain(2) + Gain(3)
	if math.Abs(a.NDCG-(Gain(3)+Gain(4))/ideal) > 1e-12 || a.Precision != 0.2 || math.Abs(a.Recall-2.0/3) > 1e-12 || a.HR != 1 {
		t.Fatalf("%+v", a)
	}
}
