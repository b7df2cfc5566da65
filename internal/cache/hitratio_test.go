package cache

import (
	"context"
	"math/rand/v2"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The hit-ratio study of HITRATIO.md: a Zipf(s=1) trace over 1M keys, a cache of 10% of them.
const (
	zipfKeys     = 1_000_000
	zipfCapacity = 100_000
	zipfRequests = 5_000_000
	zipfWarmup   = 1_000_000 // requests before the "warm" hit ratio starts counting
	zipfSeed     = 2026
)

// zipfSampler draws ranks 0..n-1 with P(i) proportional to 1/(i+1)^1, by inverse CDF over the
// harmonic numbers (math/rand's Zipf needs s > 1).
type zipfSampler struct {
	cdf []float64 // cdf[i] = H(i+1)/H(n)
	rng *rand.Rand
}

func newZipfSampler(n int, seed uint64) *zipfSampler {
	cdf := make([]float64, n)
	h := 0.0
	for i := range cdf {
		h += 1 / float64(i+1)
		cdf[i] = h
	}
	for i := range cdf {
		cdf[i] /= h
	}
	return &zipfSampler{cdf: cdf, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (z *zipfSampler) next() int32 {
	i := sort.SearchFloat64s(z.cdf, z.rng.Float64())
	return int32(min(i, len(z.cdf)-1))
}

func harmonic(n int) float64 {
	h := 0.0
	for i := n; i >= 1; i-- { // smallest terms first, for accuracy
		h += 1 / float64(i)
	}
	return h
}

// ratio counts hits overall and after the warm-up.
type ratio struct{ hits, warmHits int }

func (r *ratio) hit(i int) {
	r.hits++
	if i >= zipfWarmup {
		r.warmHits++
	}
}

func (r ratio) all() float64  { return float64(r.hits) / zipfRequests }
func (r ratio) warm() float64 { return float64(r.warmHits) / (zipfRequests - zipfWarmup) }

// lruHits simulates a plain LRU of capacity entries: an intrusive list over arrays.
func lruHits(trace []int32, capacity int) ratio {
	const none = -1
	slotOf := make(map[int32]int32, capacity)
	key := make([]int32, 0, capacity)
	prev := make([]int32, 0, capacity)
	next := make([]int32, 0, capacity)
	head, tail := int32(none), int32(none) // head = most recent
	unlink := func(s int32) {
		if prev[s] != none {
			next[prev[s]] = next[s]
		} else {
			head = next[s]
		}
		if next[s] != none {
			prev[next[s]] = prev[s]
		} else {
			tail = prev[s]
		}
	}
	pushFront := func(s int32) {
		prev[s], next[s] = none, head
		if head != none {
			prev[head] = s
		}
		head = s
		if tail == none {
			tail = s
		}
	}
	var r ratio
	for i, k := range trace {
		if s, ok := slotOf[k]; ok {
			r.hit(i)
			unlink(s)
			pushFront(s)
			continue
		}
		var s int32
		if len(key) < capacity {
			s = int32(len(key))
			key, prev, next = append(key, k), append(prev, none), append(next, none)
		} else {
			s = tail
			unlink(s)
			delete(slotOf, key[s])
			key[s] = k
		}
		slotOf[k] = s
		pushFront(s)
	}
	return r
}

// beladyHits simulates Belady's offline optimum (MIN) with bypass: on a miss with a full cache,
// evict the entry used again furthest in the future, or do not admit the new key if it is
// itself used again later than all of them. Entries live in a max-heap by next use, with lazy
// deletion: a heap element is current only if it matches nextUse of its key.
func beladyHits(trace []int32, capacity int) ratio {
	n := len(trace)
	never := int32(n)
	nextAt := make([]int32, n)
	last := make([]int32, zipfKeys)
	for i := range last {
		last[i] = never
	}
	for i := n - 1; i >= 0; i-- {
		nextAt[i] = last[trace[i]]
		last[trace[i]] = int32(i)
	}
	nextUse := make([]int32, zipfKeys) // of cached keys; -1 when not cached
	for i := range nextUse {
		nextUse[i] = -1
	}
	h := maxHeap{}
	size := 0
	var r ratio
	for i, k := range trace {
		nu := nextAt[i]
		if nextUse[k] >= 0 {
			r.hit(i)
			nextUse[k] = nu
			h.push(nu, k)
			continue
		}
		if nu == never {
			continue // never used again: caching it cannot help
		}
		if size == capacity {
			for { // drop heap elements that are no longer current
				tnu, tk := h.top()
				if nextUse[tk] == tnu {
					break
				}
				h.pop()
			}
			tnu, tk := h.top()
			if tnu < nu {
				continue // bypass: the new key is needed later than anything cached
			}
			h.pop()
			nextUse[tk] = -1
			size--
		}
		nextUse[k] = nu
		h.push(nu, k)
		size++
	}
	return r
}

// maxHeap holds (next use, key) pairs packed in a uint64, largest next use on top.
type maxHeap []uint64

func (h *maxHeap) push(nu, k int32) {
	*h = append(*h, uint64(nu)<<32|uint64(uint32(k)))
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if s[p] >= s[i] {
			break
		}
		s[p], s[i] = s[i], s[p]
		i = p
	}
}

func (h maxHeap) top() (nu, k int32) { return int32(h[0] >> 32), int32(uint32(h[0])) }

func (h *maxHeap) pop() {
	s := *h
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, big := 2*i+1, i
		if l < len(s) && s[l] > s[big] {
			big = l
		}
		if r := l + 1; r < len(s) && s[r] > s[big] {
			big = r
		}
		if big == i {
			break
		}
		s[i], s[big] = s[big], s[i]
		i = big
	}
	*h = s
}

// tieredHits runs the trace through Tiered (L1 = otter) with an instant loader; a request is a
// hit when it did not call the loader.
func tieredHits(t *testing.T, trace []int32, keys []string, capacity int) ratio {
	loads := 0
	c, err := New(Options[int]{
		Name:     "zipf",
		Capacity: capacity,
		Load: func(_ context.Context, ks []string) ([]int, []bool, error) {
			loads++ // Get waits for its load: no race
			return make([]int, len(ks)), make([]bool, len(ks)), nil
		},
		TTL:         constTTL(time.Hour),
		NegativeTTL: time.Hour,
		Metrics:     NewMetrics(prometheus.NewRegistry()),
	})
	require.NoError(t, err)
	defer c.Close()
	var r ratio
	ctx := context.Background()
	for i, k := range trace {
		before := loads
		if _, err := c.Get(ctx, keys[k]); err != nil {
			t.Fatal(err)
		}
		if loads == before {
			r.hit(i)
		}
	}
	return r
}

// otterHits runs the trace through a bare otter cache: GetIfPresent, Set on a miss. With inline
// set, its maintenance runs on the calling goroutine instead of on goroutines of its own, so
// that none of the reads it records is dropped while maintenance lags behind a tight loop.
func otterHits(trace []int32, keys []string, capacity int, inline bool) ratio {
	o := &otter.Options[string, int]{MaximumSize: capacity}
	if inline {
		o.Executor = func(fn func()) { fn() }
	}
	c := otter.Must(o)
	var r ratio
	for i, k := range trace {
		if _, ok := c.GetIfPresent(keys[k]); ok {
			r.hit(i)
			continue
		}
		c.Set(keys[k], 0)
	}
	return r
}

// TestHitRatioZipf is the hit-ratio study of HITRATIO.md; run it with
//
//	go test -run TestHitRatioZipf -v -count=1 ./internal/cache/
func TestHitRatioZipf(t *testing.T) {
	if testing.Short() {
		t.Skip("hit-ratio study: skipped with -short")
	}
	if raceEnabled {
		t.Skip("hit-ratio study: skipped under -race (too slow); run without -race")
	}
	start := time.Now()
	z := newZipfSampler(zipfKeys, zipfSeed)
	trace := make([]int32, zipfRequests)
	freq := make([]int32, zipfKeys)
	for i := range trace {
		trace[i] = z.next()
		freq[trace[i]]++
	}
	keys := make([]string, zipfKeys)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	distinct := 0
	topMass := 0
	for i, f := range freq {
		if f > 0 {
			distinct++
		}
		if i < zipfCapacity {
			topMass += int(f)
		}
	}
	static := harmonic(zipfCapacity) / harmonic(zipfKeys)
	// The sampler is right: rank 1 has mass 1/H(n), the top 10% has the static optimum.
	assert.InDelta(t, 1/harmonic(zipfKeys), float64(freq[0])/zipfRequests, 0.002)
	assert.InDelta(t, static, float64(topMass)/zipfRequests, 0.002)
	t.Logf("trace: %d requests, %d distinct keys, generated in %v", zipfRequests, distinct, time.Since(start))

	type result struct {
		name string
		r    ratio
	}
	var results []result
	run := func(name string, f func() ratio) ratio {
		s := time.Now()
		r := f()
		results = append(results, result{name, r})
		t.Logf("%-28s hit ratio %.4f (after warm-up %.4f) in %v", name, r.all(), r.warm(), time.Since(s).Round(time.Millisecond))
		return r
	}
	tiered := run("Tiered (otter v2 W-TinyLFU)", func() ratio { return tieredHits(t, trace, keys, zipfCapacity) })
	run("otter v2 alone", func() ratio { return otterHits(trace, keys, zipfCapacity, false) })
	bare := run("otter v2 alone, inline", func() ratio { return otterHits(trace, keys, zipfCapacity, true) })
	lru := run("LRU", func() ratio { return lruHits(trace, zipfCapacity) })
	opt := run("Belady MIN (offline opt.)", func() ratio { return beladyHits(trace, zipfCapacity) })
	t.Logf("%-28s hit ratio %.4f (H(%d,1)/H(%d,1))", "static optimum", static, zipfCapacity, zipfKeys)
	t.Logf("compulsory misses: %d distinct keys, so no cache exceeds %.4f", distinct, 1-float64(distinct)/zipfRequests)
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))

	assert.Greater(t, tiered.all(), lru.all(), "W-TinyLFU beats LRU on Zipf")
	assert.InDelta(t, bare.all(), tiered.all(), 0.02, "Tiered keeps otter's policy")
	assert.GreaterOrEqual(t, opt.hits, tiered.hits, "nothing beats Belady")
	assert.GreaterOrEqual(t, opt.hits, lru.hits)
	assert.LessOrEqual(t, opt.all(), 1-float64(distinct)/zipfRequests)
}
