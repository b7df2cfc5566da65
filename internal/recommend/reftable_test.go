package recommend

import (
	"math/rand/v2"
	"testing"
)

// TestRefTableMatchesMap: across many resets (including a generation
// wrap) and growth, the table answers like a fresh map per request.
func TestRefTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tab := newRefTable(4)
	tab.gen = ^uint32(0) - 5 // wrap around within the test
	for round := 0; round < 200; round++ {
		ref := map[uint32]*candidate{}
		for i := 0; i < rng.IntN(300); i++ {
			k := uint32(rng.IntN(500))
			got := tab.get(k)
			if got != ref[k] {
				t.Fatalf("round %d: get(%d) = %p, want %p", round, k, got, ref[k])
			}
			if got == nil {
				x := &candidate{ref: k}
				tab.put(k, x)
				ref[k] = x
			}
		}
		if tab.n != len(ref) {
			t.Fatalf("round %d: %d entries, want %d", round, tab.n, len(ref))
		}
		tab.reset()
		for k := range ref {
			if tab.get(k) != nil {
				t.Fatalf("round %d: %d survived reset", round, k)
			}
		}
	}
}
