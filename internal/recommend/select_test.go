package recommend

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestSelectTopMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 500; trial++ {
		n := rng.IntN(300)
		list := make([]*candidate, n)
		for i := range list {
			// Few distinct scores: plenty of ties, broken by id.
			list[i] = &candidate{id: fmt.Sprint(i), score: float64(rng.IntN(5))}
		}
		want := append([]*candidate(nil), list...)
		sort.Slice(want, func(i, j int) bool { return better(want[i], want[j]) })
		top := rng.IntN(n + 2)
		selectTop(list, top)
		got := list[:min(top, n)]
		sort.Slice(got, func(i, j int) bool { return better(got[i], got[j]) })
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("trial %d n=%d top=%d: position %d is %s, want %s", trial, n, top, i, got[i].id, want[i].id)
			}
		}
	}
}
