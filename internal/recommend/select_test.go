package recommend

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
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

func TestDiversify(t *testing.T) {
	score := []float64{1, 0.99, 0.98, 0.9}
	for _, tc := range []struct {
		name    string
		d       float64
		primary []int32
		ahead   func(i, j int) bool
		stop    int // pick returns false after this many (0: never)
		want    []int
	}{
		{"off", 0, []int32{0, 0, 0, 1}, nil, 0, []int{0, 1, 2}},
		{"no categories", 0.5, nil, nil, 0, []int{0, 1, 2}},
		// After two picks of category 0, 0.98·0.95² = 0.884 < 0.9.
		{"penalised", 0.05, []int32{0, 0, 0, 1}, nil, 0, []int{0, 1, 3}},
		{"uncategorised items are not penalised", 0.05, []int32{0, 0, 0, -1}, nil, 0, []int{0, 1, 3}},
		{"stops when pick says so", 0.05, []int32{0, 0, 0, 1}, nil, 2, []int{0, 1}},
		// Equal scores, then 1·0.5 = 0.5 ties 0.5: ahead decides both.
		{"ties to ahead", 0.5, []int32{0, 0, 1}, func(i, j int) bool { return i > j }, 0, []int{1, 2, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := score
			if tc.name == "ties to ahead" {
				s = []float64{1, 1, 0.5}
			}
			ahead := tc.ahead
			if ahead == nil {
				ahead = func(i, j int) bool { return i < j }
			}
			var got []int
			Diversify(len(s), 3, tc.d, tc.primary, func(i int) float64 { return s[i] }, ahead, func(i int, _ float64) bool {
				got = append(got, i)
				return tc.stop == 0 || len(got) < tc.stop
			})
			assert.Equal(t, tc.want, got)
		})
	}
}
