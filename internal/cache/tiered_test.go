package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeNow is a settable clock.
type fakeNow struct{ ns atomic.Int64 }

func newFakeNow() *fakeNow {
	c := &fakeNow{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeNow) Now() time.Time                  { return time.Unix(0, c.ns.Load()) }
func (c *fakeNow) Advance(d time.Duration)         { c.ns.Add(int64(d)) }
func (c *fakeNow) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// fakeStore is a Load that records its calls. Loads block while gate is closed; took advances
// the clock during a load, to give it a duration.
type fakeStore struct {
	mu      sync.Mutex
	data    map[string]int
	err     error
	calls   [][]string
	ctxErrs []error // ctx.Err() of each load when it returned
	gate    chan struct{}
	clock   *fakeNow
	took    time.Duration
	started chan struct{} // receives once per load start, if not nil
}

func newFakeStore(data map[string]int) *fakeStore {
	return &fakeStore{data: data}
}

func (s *fakeStore) Load(ctx context.Context, keys []string) ([]int, []bool, error) {
	s.mu.Lock()
	s.calls = append(s.calls, append([]string(nil), keys...))
	gate, started := s.gate, s.started
	s.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
		}
	}
	if s.clock != nil && s.took > 0 {
		s.clock.Advance(s.took)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctxErrs = append(s.ctxErrs, ctx.Err())
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	if s.err != nil {
		return nil, nil, s.err
	}
	vals := make([]int, len(keys))
	found := make([]bool, len(keys))
	for i, k := range keys {
		vals[i], found[i] = s.data[k]
	}
	return vals, found, nil
}

func (s *fakeStore) set(k string, v int) {
	s.mu.Lock()
	s.data[k] = v
	s.mu.Unlock()
}

func (s *fakeStore) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *fakeStore) loads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

func (s *fakeStore) call(i int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[i]
}

// closeGate lets waiting and future loads through.
func (s *fakeStore) closeGate() {
	s.mu.Lock()
	g := s.gate
	s.gate = nil
	s.mu.Unlock()
	close(g)
}

func constTTL(d time.Duration) func(string) time.Duration {
	return func(string) time.Duration { return d }
}

type fixture struct {
	c     *Tiered[int]
	store *fakeStore
	clock *fakeNow
	m     *Metrics
}

// newFixture builds a cache over a fake store and clock; opt adjusts the options.
func newFixture(t *testing.T, data map[string]int, opt func(*Options[int])) *fixture {
	t.Helper()
	f := &fixture{store: newFakeStore(data), clock: newFakeNow(), m: NewMetrics(prometheus.NewRegistry())}
	f.store.clock = f.clock
	opts := Options[int]{
		Name:     "test",
		Capacity: 1000,
		Load:     f.store.Load,
		TTL:      constTTL(10 * time.Second),
		Metrics:  f.m,
		Now:      f.clock.Now,
		// Beta 0 and Jitter 0 by default: tests that want randomness ask for it.
		LoadTimeout: 5 * time.Second,
	}
	if opt != nil {
		opt(&opts)
	}
	c, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	f.c = c
	return f
}

func (f *fixture) metric(c *prometheus.CounterVec, labels ...string) int {
	return counterValue(c, labels...)
}

func counterValue(c *prometheus.CounterVec, labels ...string) int {
	var m dto.Metric
	if err := c.WithLabelValues(labels...).Write(&m); err != nil {
		panic(err)
	}
	return int(m.GetCounter().GetValue())
}

func getBatch(t *testing.T, c *Tiered[int], keys ...string) []Entry[int] {
	t.Helper()
	out := make([]Entry[int], len(keys))
	require.NoError(t, c.GetBatch(context.Background(), keys, out))
	return out
}

// eventually polls cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	load := func(context.Context, []string) ([]int, []bool, error) { return nil, nil, nil }
	valid := Options[int]{Capacity: 10, Load: load, TTL: constTTL(time.Second)}
	tests := []struct {
		name   string
		change func(*Options[int])
	}{
		{"no load", func(o *Options[int]) { o.Load = nil }},
		{"no ttl", func(o *Options[int]) { o.TTL = nil }},
		{"no capacity", func(o *Options[int]) { o.Capacity = 0 }},
		{"jitter 1", func(o *Options[int]) { o.Jitter = 1 }},
		{"negative beta", func(o *Options[int]) { o.Beta = -1 }},
		{"negative stale", func(o *Options[int]) { o.StaleFor = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := valid
			tt.change(&o)
			_, err := New(o)
			assert.Error(t, err)
		})
	}
	c, err := New(valid)
	require.NoError(t, err)
	c.Close()
}

// step is one GetBatch after advancing the fake clock, and what it must return.
type step struct {
	advance time.Duration
	keys    []string
	values  []int
	found   []bool
	loads   int // loads so far, after the step
}

func TestGetBatchTTLAndNegativeCaching(t *testing.T) {
	data := map[string]int{"a": 1, "b": 2}
	tests := []struct {
		name  string
		opt   func(*Options[int])
		steps []step
	}{
		{
			name: "miss then hit",
			steps: []step{
				{keys: []string{"a", "b"}, values: []int{1, 2}, found: []bool{true, true}, loads: 1},
				{advance: 9 * time.Second, keys: []string{"a", "b"}, values: []int{1, 2}, found: []bool{true, true}, loads: 1},
			},
		},
		{
			name: "only missing keys are loaded",
			steps: []step{
				{keys: []string{"a"}, values: []int{1}, found: []bool{true}, loads: 1},
				{keys: []string{"a", "b"}, values: []int{1, 2}, found: []bool{true, true}, loads: 2},
				{keys: []string{"b", "a"}, values: []int{2, 1}, found: []bool{true, true}, loads: 2},
			},
		},
		{
			name: "ttl expiry reloads",
			steps: []step{
				{keys: []string{"a"}, values: []int{1}, found: []bool{true}, loads: 1},
				{advance: 10*time.Second - 1, keys: []string{"a"}, values: []int{1}, found: []bool{true}, loads: 1},
				{advance: 1, keys: []string{"a"}, values: []int{1}, found: []bool{true}, loads: 2},
			},
		},
		{
			name: "absence is cached for a tenth of the ttl by default",
			steps: []step{
				{keys: []string{"x", "a"}, values: []int{0, 1}, found: []bool{false, true}, loads: 1},
				{advance: 999 * time.Millisecond, keys: []string{"x"}, values: []int{0}, found: []bool{false}, loads: 1},
				{advance: time.Millisecond, keys: []string{"x", "a"}, values: []int{0, 1}, found: []bool{false, true}, loads: 2},
			},
		},
		{
			name: "explicit negative ttl",
			opt:  func(o *Options[int]) { o.NegativeTTL = 3 * time.Second },
			steps: []step{
				{keys: []string{"x"}, values: []int{0}, found: []bool{false}, loads: 1},
				{advance: 2 * time.Second, keys: []string{"x"}, values: []int{0}, found: []bool{false}, loads: 1},
				{advance: time.Second, keys: []string{"x"}, values: []int{0}, found: []bool{false}, loads: 2},
			},
		},
		{
			name: "negative caching disabled",
			opt:  func(o *Options[int]) { o.NegativeTTL = -1 },
			steps: []step{
				{keys: []string{"x"}, values: []int{0}, found: []bool{false}, loads: 1},
				{keys: []string{"x"}, values: []int{0}, found: []bool{false}, loads: 2},
			},
		},
		{
			name: "per key ttl",
			opt: func(o *Options[int]) {
				o.TTL = func(k string) time.Duration {
					if k == "a" {
						return time.Second
					}
					return time.Minute
				}
			},
			steps: []step{
				{keys: []string{"a", "b"}, values: []int{1, 2}, found: []bool{true, true}, loads: 1},
				{advance: time.Second, keys: []string{"a", "b"}, values: []int{1, 2}, found: []bool{true, true}, loads: 2},
			},
		},
		{
			name: "duplicate keys in a batch",
			steps: []step{
				{keys: []string{"a", "a", "x", "x"}, values: []int{1, 1, 0, 0}, found: []bool{true, true, false, false}, loads: 1},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, data, tt.opt)
			for i, s := range tt.steps {
				f.clock.Advance(s.advance)
				out := getBatch(t, f.c, s.keys...)
				for j := range s.keys {
					assert.Equal(t, s.values[j], out[j].Value, "step %d key %s value", i, s.keys[j])
					assert.Equal(t, s.found[j], out[j].Found, "step %d key %s found", i, s.keys[j])
					assert.False(t, out[j].Stale, "step %d key %s stale", i, s.keys[j])
				}
				assert.Equal(t, s.loads, f.store.loads(), "step %d loads", i)
			}
		})
	}
}

func TestGetBatchMetrics(t *testing.T) {
	f := newFixture(t, map[string]int{"a": 1}, func(o *Options[int]) { o.StaleFor = time.Minute })
	getBatch(t, f.c, "a", "x") // 2 l1 misses; store: 1 hit, 1 miss
	getBatch(t, f.c, "a", "x") // 1 l1 hit, 1 negative hit
	f.clock.Advance(11 * time.Second)
	out := getBatch(t, f.c, "a") // stale, refreshed in the background: store hit
	require.True(t, out[0].Stale)
	f.c.wg.Wait()

	assert.Equal(t, 2, f.metric(f.m.misses, "test", "l1"))
	assert.Equal(t, 2, f.metric(f.m.hits, "test", "store"))
	assert.Equal(t, 1, f.metric(f.m.misses, "test", "store"))
	assert.Equal(t, 1, f.metric(f.m.hits, "test", "l1"))
	assert.Equal(t, 1, f.metric(f.m.negativeHits, "test", "l1"))
	assert.Equal(t, 1, f.metric(f.m.staleServed, "test", "l1"))
}

func TestServedAgeHistogram(t *testing.T) {
	f := newFixture(t, map[string]int{"a": 1}, nil)
	getBatch(t, f.c, "a")
	f.clock.Advance(5 * time.Second)
	getBatch(t, f.c, "a")
	var m dto.Metric
	require.NoError(t, f.m.servedAge.WithLabelValues("test").(prometheus.Histogram).Write(&m))
	assert.Equal(t, uint64(2), m.GetHistogram().GetSampleCount()) // loaded (age 0), then 5s old
	assert.InDelta(t, 5.0, m.GetHistogram().GetSampleSum(), 1e-9)
}

func TestEvictionsAreCounted(t *testing.T) {
	f := newFixture(t, map[string]int{}, func(o *Options[int]) { o.Capacity = 10 })
	for i := range 200 {
		getBatch(t, f.c, fmt.Sprintf("k%d", i))
	}
	f.c.l1.CleanUp()
	eventually(t, "evictions", func() bool { return f.metric(f.m.evictions, "test") >= 150 })
	assert.LessOrEqual(t, f.c.l1.EstimatedSize(), 10)
}

func TestJitterSpreadsExpiries(t *testing.T) {
	const n = 1000
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	tests := []struct {
		jitter     float64
		minSpread  time.Duration // max-min of the expiries must be at least this
		maxSpread  time.Duration
		minDistinc int
	}{
		{jitter: 0, minSpread: 0, maxSpread: 0, minDistinc: 1},
		{jitter: 0.1, minSpread: 1800 * time.Millisecond, maxSpread: 2 * time.Second, minDistinc: n - 5},
		{jitter: 0.5, minSpread: 9 * time.Second, maxSpread: 10 * time.Second, minDistinc: n - 5},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.jitter), func(t *testing.T) {
			data := make(map[string]int, n)
			for i, k := range keys {
				data[k] = i
			}
			f := newFixture(t, data, func(o *Options[int]) {
				o.Jitter = tt.jitter
				o.Rand = rand.New(rand.NewPCG(1, 2)).Float64 // only the load goroutine draws
			})
			loadedAt := f.clock.Now().UnixNano()
			getBatch(t, f.c, keys...)
			lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
			distinct := map[int64]bool{}
			for _, k := range keys {
				e, ok := f.c.l1.GetEntryQuietly(k)
				require.True(t, ok)
				exp := e.Value.expiresAt - loadedAt
				lo, hi = min(lo, exp), max(hi, exp)
				distinct[exp] = true
			}
			ttl := float64(10 * time.Second)
			assert.GreaterOrEqual(t, float64(lo), ttl*(1-tt.jitter))
			assert.LessOrEqual(t, float64(hi), ttl*(1+tt.jitter))
			assert.GreaterOrEqual(t, time.Duration(hi-lo), tt.minSpread)
			assert.LessOrEqual(t, time.Duration(hi-lo), tt.maxSpread)
			assert.GreaterOrEqual(t, len(distinct), tt.minDistinc)

			// Halfway through the jitter window about half of the keys have expired.
			if tt.jitter > 0 {
				f.clock.Advance(10 * time.Second)
				before := f.store.loads()
				getBatch(t, f.c, keys...)
				require.Equal(t, before+1, f.store.loads())
				reloaded := len(f.store.call(before))
				assert.InDelta(t, n/2, reloaded, n/10)
			}
		})
	}
}

func TestRefreshEarlyDraw(t *testing.T) {
	// delta 100ms, beta 1: refresh when gap <= 100ms * -ln(1-r).
	tests := []struct {
		name  string
		beta  float64
		delta time.Duration
		gap   time.Duration
		r     float64
		want  bool
	}{
		{"disabled", 0, 100 * time.Millisecond, time.Nanosecond, 0.99, false},
		{"no load time", 1, 0, time.Nanosecond, 0.99, false},
		{"far from expiry", 1, 100 * time.Millisecond, time.Hour, 0.999999, false},
		{"draw says later", 1, 100 * time.Millisecond, 150 * time.Millisecond, 1 - math.Exp(-1), false},
		{"draw says now", 1, 100 * time.Millisecond, 99 * time.Millisecond, 1 - math.Exp(-1), true},
		{"higher beta refreshes earlier", 2, 100 * time.Millisecond, 150 * time.Millisecond, 1 - math.Exp(-1), true},
		{"r=0 never at a distance", 1, 100 * time.Millisecond, time.Millisecond, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Tiered[int]{beta: tt.beta, rand: func() float64 { return tt.r }}
			it := item[int]{expiresAt: int64(time.Hour), delta: int64(tt.delta)}
			assert.Equal(t, tt.want, c.refreshEarly(int64(time.Hour-tt.gap), &it))
		})
	}
}

func TestXFetchRefreshesHotKeyInBackground(t *testing.T) {
	f := newFixture(t, map[string]int{"hot": 1}, func(o *Options[int]) {
		o.Beta = 1
		o.Rand = func() float64 { return 1 - math.Exp(-1) } // -ln(1-r) = 1
	})
	f.store.took = 100 * time.Millisecond // delta of every load
	out := getBatch(t, f.c, "hot")
	require.Equal(t, 1, out[0].Value)
	loadedAt := out[0].LoadedAt
	expiry := loadedAt.Add(10 * time.Second)

	// 150ms before expiry the draw (window 100ms) does not fire.
	f.clock.Advance(expiry.Add(-150 * time.Millisecond).Sub(f.clock.Now()))
	getBatch(t, f.c, "hot")
	require.Equal(t, 1, f.store.loads())

	// 50ms before expiry it does: the caller gets the cached value at once while the load runs.
	f.store.set("hot", 2)
	f.store.gate = make(chan struct{})
	f.clock.Advance(100 * time.Millisecond)
	for range 5 { // the refresh is deduplicated
		out = getBatch(t, f.c, "hot")
		assert.Equal(t, 1, out[0].Value)
		assert.False(t, out[0].Stale)
	}
	eventually(t, "background load", func() bool { return f.store.loads() == 2 })
	f.store.closeGate()
	eventually(t, "refreshed value", func() bool {
		e, ok := f.c.l1.GetEntryQuietly("hot")
		return ok && e.Value.value == 2
	})
	assert.Equal(t, 2, f.store.loads())
	assert.Equal(t, 1, f.metric(f.m.earlyRefreshes, "test"))
	out = getBatch(t, f.c, "hot")
	assert.Equal(t, 2, out[0].Value)
	assert.True(t, out[0].LoadedAt.Before(expiry), "refreshed before the old value expired")
}

func TestStaleWhileRevalidate(t *testing.T) {
	f := newFixture(t, map[string]int{"a": 1}, func(o *Options[int]) { o.StaleFor = 5 * time.Second })
	getBatch(t, f.c, "a")
	f.store.set("a", 2)
	f.store.gate = make(chan struct{})
	f.clock.Advance(12 * time.Second) // past TTL, within TTL+StaleFor

	out := getBatch(t, f.c, "a") // must not wait for the gated load
	assert.Equal(t, Entry[int]{Value: 1, Found: true, Stale: true, LoadedAt: out[0].LoadedAt}, out[0])
	eventually(t, "background refresh", func() bool { return f.store.loads() == 2 })
	getBatch(t, f.c, "a") // still stale, no second refresh
	f.store.closeGate()
	eventually(t, "refreshed", func() bool {
		e, ok := f.c.l1.GetEntryQuietly("a")
		return ok && e.Value.value == 2
	})
	out = getBatch(t, f.c, "a")
	assert.Equal(t, 2, out[0].Value)
	assert.False(t, out[0].Stale)
	assert.Equal(t, 2, f.store.loads())

	// Beyond TTL+StaleFor the caller waits for the load.
	f.store.set("a", 3)
	f.clock.Advance(15 * time.Second)
	out = getBatch(t, f.c, "a")
	assert.Equal(t, 3, out[0].Value)
	assert.False(t, out[0].Stale)
	assert.Equal(t, 3, f.store.loads())
}

func TestLoadErrorServesStaleWithinBound(t *testing.T) {
	storeDown := errors.New("store down")
	tests := []struct {
		name      string
		advance   time.Duration // after the load; TTL 10s, StaleFor 5s
		wantValue int
		wantStale bool
		wantErr   bool
	}{
		{"fresh", 9 * time.Second, 1, false, false},
		{"stale within bound", 12 * time.Second, 1, true, false},
		{"at the bound", 15*time.Second - 1, 1, true, false},
		{"beyond the bound", 15 * time.Second, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, map[string]int{"a": 1}, func(o *Options[int]) { o.StaleFor = 5 * time.Second })
			getBatch(t, f.c, "a")
			f.store.setErr(storeDown)
			f.clock.Advance(tt.advance)

			for range 2 { // also after the background refresh failed
				out := make([]Entry[int], 1)
				err := f.c.GetBatch(context.Background(), []string{"a"}, out)
				if tt.wantErr {
					require.Error(t, err)
					assert.ErrorIs(t, err, storeDown)
					assert.ErrorIs(t, out[0].Err, storeDown)
					continue
				}
				require.NoError(t, err)
				assert.Equal(t, tt.wantValue, out[0].Value)
				assert.Equal(t, tt.wantStale, out[0].Stale)
				assert.NoError(t, out[0].Err)
				f.c.wg.Wait() // let the background refresh fail
			}
			if tt.wantStale {
				assert.Equal(t, 1, f.metric(f.m.loadErrors, "test"), "one refresh, then backoff")
			}
		})
	}
}

func TestSingleflightSameKey(t *testing.T) {
	f := newFixture(t, map[string]int{"k": 7}, nil)
	f.store.gate = make(chan struct{})
	const n = 100
	var wg sync.WaitGroup
	results := make([]Entry[int], n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = f.c.Get(context.Background(), "k")
		})
	}
	// All 100 missed L1 and are waiting before the load may finish.
	eventually(t, "all callers waiting", func() bool { return f.metric(f.m.misses, "test", "l1") == n })
	f.store.closeGate()
	wg.Wait()
	assert.Equal(t, 1, f.store.loads())
	for i := range n {
		require.NoError(t, errs[i])
		assert.Equal(t, 7, results[i].Value)
	}
}

func TestSingleflightOverlappingBatches(t *testing.T) {
	f := newFixture(t, map[string]int{"a": 1, "b": 2, "c": 3}, nil)
	f.store.gate = make(chan struct{})
	f.store.started = make(chan struct{}, 4)
	var wg sync.WaitGroup
	var outA, outB []Entry[int]
	wg.Go(func() { outA = getBatch(t, f.c, "a", "b") })
	<-f.store.started
	wg.Go(func() { outB = getBatch(t, f.c, "b", "c") })
	<-f.store.started
	assert.Equal(t, []string{"a", "b"}, f.store.call(0))
	assert.Equal(t, []string{"c"}, f.store.call(1), "B loads only c and waits for A's load of b")
	f.store.closeGate()
	wg.Wait()
	assert.Equal(t, []int{1, 2}, []int{outA[0].Value, outA[1].Value})
	assert.Equal(t, []int{2, 3}, []int{outB[0].Value, outB[1].Value})
	assert.Equal(t, 2, f.store.loads())
}

func TestCancelledCallerDoesNotBreakOthers(t *testing.T) {
	f := newFixture(t, map[string]int{"a": 1, "b": 2}, nil)
	f.store.gate = make(chan struct{})
	f.store.started = make(chan struct{}, 1)

	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	var outA [2]Entry[int]
	go func() { errA <- f.c.GetBatch(ctxA, []string{"a", "b"}, outA[:]) }() // A starts the load
	<-f.store.started
	var outB []Entry[int]
	doneB := make(chan struct{})
	go func() { defer close(doneB); outB = getBatch(t, f.c, "b") }()
	eventually(t, "B waiting", func() bool { return f.metric(f.m.misses, "test", "l1") == 3 })

	cancelA()
	select {
	case err := <-errA:
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, outA[0].Err, context.Canceled)
		assert.ErrorIs(t, outA[1].Err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled caller still waiting")
	}
	select {
	case <-doneB:
		t.Fatal("B returned before the load finished")
	default:
	}
	f.store.closeGate()
	<-doneB
	assert.Equal(t, 2, outB[0].Value)
	assert.NoError(t, f.store.ctxErrs[0], "the load did not see A's cancellation")
	// The load finished for everyone: a is cached even though A gave up.
	out := getBatch(t, f.c, "a")
	assert.Equal(t, 1, out[0].Value)
	assert.Equal(t, 1, f.store.loads())
}

func TestLoadTimeout(t *testing.T) {
	f := newFixture(t, map[string]int{"a": 1}, func(o *Options[int]) { o.LoadTimeout = 20 * time.Millisecond })
	f.store.gate = make(chan struct{}) // never opened: the load ends at its deadline
	start := time.Now()
	_, err := f.c.Get(context.Background(), "a")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 2*time.Second)
	assert.Equal(t, 1, f.metric(f.m.loadErrors, "test"))
}

func TestLoaderMisbehaving(t *testing.T) {
	tests := []struct {
		name string
		load LoadFunc[int]
	}{
		{"short result", func(context.Context, []string) ([]int, []bool, error) { return []int{1}, []bool{true}, nil }},
		{"panic", func(context.Context, []string) ([]int, []bool, error) { panic("boom") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Options[int]{Capacity: 10, Load: tt.load, TTL: constTTL(time.Second)})
			require.NoError(t, err)
			defer c.Close()
			out := make([]Entry[int], 2)
			err = c.GetBatch(context.Background(), []string{"a", "b"}, out)
			assert.Error(t, err)
			assert.Error(t, out[0].Err)
			assert.Error(t, out[1].Err)
		})
	}
}

func TestGetBatchOutTooShort(t *testing.T) {
	f := newFixture(t, map[string]int{}, nil)
	assert.Error(t, f.c.GetBatch(context.Background(), []string{"a", "b"}, make([]Entry[int], 1)))
}

func TestSetReadYourWrites(t *testing.T) {
	f := newFixture(t, map[string]int{"a": 1}, nil)
	f.c.Set("a", 5)
	out := getBatch(t, f.c, "a")
	assert.Equal(t, Entry[int]{Value: 5, Found: true, LoadedAt: f.clock.Now()}, out[0])
	assert.Equal(t, 0, f.store.loads())

	// A load that was running when Set happened does not overwrite the newer value.
	f.store.gate = make(chan struct{})
	f.store.started = make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { defer close(done); getBatch(t, f.c, "b") }()
	<-f.store.started
	f.c.Set("b", 9) // the store holds no b yet: the running load will find none
	f.store.closeGate()
	<-done
	out = getBatch(t, f.c, "b")
	assert.Equal(t, 9, out[0].Value)
	assert.True(t, out[0].Found)
	assert.Equal(t, 1, f.store.loads())
}

func TestInvalidateLocal(t *testing.T) {
	f := newFixture(t, map[string]int{"a": 1, "b": 2}, nil)
	getBatch(t, f.c, "a", "b")
	f.store.set("a", 10)
	require.NoError(t, f.c.Invalidate(context.Background(), "a")) // no bus: local only
	out := getBatch(t, f.c, "a", "b")
	assert.Equal(t, []int{10, 2}, []int{out[0].Value, out[1].Value})
	assert.Equal(t, []string{"a"}, f.store.call(1))

	// An invalidation during a load keeps the load's result out of L1.
	f.store.gate = make(chan struct{})
	f.store.started = make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { defer close(done); getBatch(t, f.c, "c") }()
	<-f.store.started
	f.c.InvalidateLocal("c")
	f.store.closeGate()
	<-done
	_, cached := f.c.l1.GetEntryQuietly("c")
	assert.False(t, cached)
}

func TestFlushDropsEverything(t *testing.T) {
	f := newFixture(t, map[string]int{"a": 1, "b": 2}, nil)
	getBatch(t, f.c, "a", "b")
	f.c.onBus(nil)
	assert.Equal(t, 1, f.metric(f.m.flushes, "test"))
	getBatch(t, f.c, "a", "b")
	assert.Equal(t, 2, f.store.loads())
	f.c.onBus([]string{"a"})
	assert.Equal(t, 1, f.metric(f.m.invalidations, "test"))
	getBatch(t, f.c, "a", "b")
	assert.Equal(t, []string{"a"}, f.store.call(2))
}

func TestClose(t *testing.T) {
	f := newFixture(t, map[string]int{"a": 1, "b": 2}, nil)
	getBatch(t, f.c, "a")
	f.store.gate = make(chan struct{})
	f.store.started = make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() { _, err := f.c.Get(context.Background(), "slow"); errc <- err }()
	<-f.store.started
	f.c.Close() // cancels the running load and waits for it
	assert.ErrorIs(t, <-errc, context.Canceled)

	out := getBatch(t, f.c, "a") // hits are still served
	assert.Equal(t, 1, out[0].Value)
	_, err := f.c.Get(context.Background(), "b")
	assert.ErrorIs(t, err, ErrClosed)
	f.c.Close() // idempotent
}

func TestCloseStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	c, err := New(Options[int]{ // real clock: L1 runs a clean-up and a clock goroutine
		Capacity: 10,
		Load:     newFakeStore(map[string]int{"a": 1}).Load,
		TTL:      constTTL(time.Second),
		StaleFor: time.Second,
	})
	require.NoError(t, err)
	for i := range 100 {
		_, err := c.Get(context.Background(), fmt.Sprint(i))
		require.NoError(t, err)
	}
	c.Close()
	eventually(t, "goroutines to stop", func() bool { return runtime.NumGoroutine() <= before })
}
