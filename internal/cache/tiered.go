package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
)

// ErrClosed is returned for keys that need a load after Close.
var ErrClosed = errors.New("cache: closed")

const (
	defaultLoadTimeout = 50 * time.Millisecond
	// refreshBackoff pauses background refreshes after one failed, so that a store that is down
	// is not hit by every request that sees a stale entry; stale values keep being served.
	refreshBackoff = 250 * time.Millisecond
	// maxNegLog bounds -ln(r) for r drawn from [2^-53, 1]: beyond this distance from expiry an
	// XFetch draw can never trigger, so the hit path skips the draw.
	maxNegLog = 37
	// coarseResolution is how often L1's clock reads the time.
	coarseResolution = 10 * time.Millisecond
)

// LoadFunc reads many keys from the store in one round trip. found[i] false means keys[i] is
// absent in the store; values and found must have len(keys) elements.
type LoadFunc[V any] func(ctx context.Context, keys []string) (values []V, found []bool, err error)

// Options configure a Tiered cache. Load, TTL and Capacity are required.
type Options[V any] struct {
	// Name labels the metrics of this cache.
	Name string
	// Capacity is the maximum number of L1 entries.
	Capacity int
	// Load is the batch loader called for keys missing in L1.
	Load LoadFunc[V]
	// TTL returns how long a value of key stays fresh; callers encode the feature group in the
	// key prefix.
	TTL func(key string) time.Duration
	// NegativeTTL is how long an absence is cached. 0 means a tenth of TTL(key); <0 disables
	// negative caching.
	NegativeTTL time.Duration
	// Jitter spreads expiries: each TTL is scaled by a uniform factor in [1-Jitter, 1+Jitter].
	// Must be in [0, 1).
	Jitter float64
	// Beta tunes XFetch early refresh (0 disables it; 1 is the paper's optimum). A fresh entry is
	// refreshed in the background when now - delta*Beta*ln(rand) >= expiry, delta being the time
	// its load took.
	Beta float64
	// StaleFor is how long past its TTL an entry may still be served, marked stale: at once while
	// a background refresh runs, and instead of an error while loads fail.
	StaleFor time.Duration
	// LoadTimeout bounds every load. Loads run detached from the caller's cancellation, so one
	// caller giving up does not fail the others waiting on the same keys. Default 50ms.
	LoadTimeout time.Duration
	// Bus, if set, carries invalidations between instances. Close does not close it.
	Bus Bus
	// Metrics, if set, receives this cache's metrics.
	Metrics *Metrics
	// Now is the clock; tests pass a fake one. Default time.Now. With a clock of its own, L1
	// drops expired entries only as it is used, not also once a second.
	Now func() time.Time
	// Rand returns a uniform number in [0, 1) for jitter and XFetch; tests pass a fixed one.
	// Default math/rand/v2.Float64.
	Rand func() float64
}

// Entry is the result for one key of GetBatch.
type Entry[V any] struct {
	Value V
	// Found is false when the store has no value for the key (possibly from a cached absence).
	Found bool
	// Stale is true when the value is past its TTL, served while a refresh runs or loads fail.
	Stale bool
	// LoadedAt is when the value was read from the store (or Set).
	LoadedAt time.Time
	// Err is set when the key has neither a value nor a stale fallback.
	Err error
}

// item is what L1 holds for a key; times are Unix nanoseconds.
type item[V any] struct {
	value      V
	found      bool
	loadedAt   int64
	expiresAt  int64 // fresh until
	staleUntil int64 // servable (stale) until; L1 drops the entry then
	delta      int64 // how long the load took, for XFetch
}

// flight is one running load of many keys. Waiters block on done, then read items/err.
type flight[V any] struct {
	done       chan struct{}
	keys       []string
	items      []item[V]
	superseded []bool // a Set or invalidation overtook the load of keys[i]: do not store it
	err        error
}

type slot[V any] struct {
	f *flight[V]
	i int
}

// Tiered is a read-through cache keyed by string: L1 in process, the store behind Load.
type Tiered[V any] struct {
	name        string
	load        LoadFunc[V]
	ttl         func(string) time.Duration
	negTTL      time.Duration
	jitter      float64
	beta        float64
	staleFor    int64
	loadTimeout time.Duration
	bus         Bus
	now         func() time.Time
	rand        func() float64
	m           cacheMetrics

	l1     *otter.Cache[string, item[V]]
	coarse *otter.CoarseClock // L1's clock, nil with Options.Now

	mu       sync.Mutex // guards inflight, closed, flight.superseded and L1 writes of loads
	inflight map[string]slot[V]
	closed   bool
	wg       sync.WaitGroup // loads running in the background

	refreshHold atomic.Int64 // no background refresh before this time (Unix ns)
	closing     context.Context
	stop        context.CancelFunc
}

// New builds a Tiered cache and, if opts.Bus is set, subscribes it to invalidations.
func New[V any](opts Options[V]) (*Tiered[V], error) {
	switch {
	case opts.Load == nil:
		return nil, errors.New("cache: Options.Load is required")
	case opts.TTL == nil:
		return nil, errors.New("cache: Options.TTL is required")
	case opts.Capacity <= 0:
		return nil, fmt.Errorf("cache: Options.Capacity must be > 0, got %d", opts.Capacity)
	case opts.Jitter < 0 || opts.Jitter >= 1:
		return nil, fmt.Errorf("cache: Options.Jitter must be in [0, 1), got %v", opts.Jitter)
	case opts.Beta < 0 || opts.StaleFor < 0 || opts.LoadTimeout < 0:
		return nil, errors.New("cache: Options.Beta, StaleFor and LoadTimeout must not be negative")
	}
	if opts.Name == "" {
		opts.Name = "default"
	}
	if opts.LoadTimeout == 0 {
		opts.LoadTimeout = defaultLoadTimeout
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	t := &Tiered[V]{
		name:        opts.Name,
		load:        opts.Load,
		ttl:         opts.TTL,
		negTTL:      opts.NegativeTTL,
		jitter:      opts.Jitter,
		beta:        opts.Beta,
		staleFor:    int64(opts.StaleFor),
		loadTimeout: opts.LoadTimeout,
		bus:         opts.Bus,
		now:         opts.Now,
		rand:        opts.Rand,
		m:           opts.Metrics.forCache(opts.Name),
		inflight:    make(map[string]slot[V]),
	}
	oo := &otter.Options[string, item[V]]{
		MaximumSize: opts.Capacity,
		// L1 keeps an entry as long as it may be served, stale included.
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, item[V]]) time.Duration {
			return time.Duration(e.Value.staleUntil - t.nowNano())
		}),
		OnAtomicDeletion: func(e otter.DeletionEvent[string, item[V]]) {
			if e.Cause == otter.CauseOverflow {
				t.m.evictions.Inc()
			}
		},
	}
	if t.now == nil {
		t.now = time.Now
		// Reading the precise time on every L1 read is a large part of a hit. L1 expiry is only
		// the backstop that frees memory (GetBatch decides freshness with its own clock), so it
		// can lag by the resolution.
		t.coarse = otter.NewCoarseClock(coarseResolution)
		oo.Clock = t.coarse
	} else {
		// L1 expires entries on the same clock; it gets no ticks, so no periodic clean-up runs
		// on a clock that may not move.
		oo.Clock = clockFunc(t.now)
	}
	l1, err := otter.New(oo)
	if err != nil {
		if t.coarse != nil {
			t.coarse.Stop()
		}
		return nil, fmt.Errorf("cache %q: build L1: %w", opts.Name, err)
	}
	t.l1 = l1
	t.closing, t.stop = context.WithCancel(context.Background())
	if t.bus != nil {
		if err := t.bus.Subscribe(t.closing, t.onBus); err != nil {
			t.Close()
			return nil, fmt.Errorf("cache %q: subscribe to invalidations: %w", opts.Name, err)
		}
	}
	return t, nil
}

// clockFunc is an otter.Clock over Options.Now.
type clockFunc func() time.Time

func (c clockFunc) NowNano() int64                      { return c().UnixNano() }
func (c clockFunc) Tick(time.Duration) <-chan time.Time { return nil }

func (t *Tiered[V]) nowNano() int64 { return t.now().UnixNano() }

// Get returns the entry of one key; see GetBatch.
func (t *Tiered[V]) Get(ctx context.Context, key string) (Entry[V], error) {
	keys := [1]string{key}
	var out [1]Entry[V]
	err := t.GetBatch(ctx, keys[:], out[:])
	return out[0], err
}

// GetBatch fills out[i] with the entry of keys[i]: from L1 when fresh, else from L1 marked
// stale within StaleFor (refreshing in the background), else from one batched Load shared with
// concurrent callers wanting the same keys. It returns an error only if some key got neither a
// value nor a stale fallback; that key's Entry.Err says why. len(out) must be >= len(keys).
func (t *Tiered[V]) GetBatch(ctx context.Context, keys []string, out []Entry[V]) error {
	if len(out) < len(keys) {
		return fmt.Errorf("cache %q: out has %d entries for %d keys", t.name, len(out), len(keys))
	}
	now := t.nowNano()
	var (
		pending []int    // indexes of keys to load and wait for
		early   []string // fresh keys XFetch picked for an early refresh
		expired []string // stale keys served while they are refreshed
		hits    int
		negHits int
		stale   int
	)
	for i, k := range keys {
		it, ok := t.l1.GetIfPresent(k)
		switch {
		case !ok || now >= it.staleUntil:
			pending = append(pending, i)
			continue
		case now < it.expiresAt:
			if t.refreshEarly(now, &it) {
				early = append(early, k)
			}
			if it.found {
				hits++
			} else {
				negHits++
			}
		default:
			expired = append(expired, k)
			stale++
		}
		out[i] = Entry[V]{Value: it.value, Found: it.found, Stale: now >= it.expiresAt, LoadedAt: time.Unix(0, it.loadedAt)}
		t.m.age.Observe(seconds(now - it.loadedAt))
	}
	t.m.count(hits, negHits, stale, len(pending))
	if len(early) > 0 || len(expired) > 0 {
		t.refresh(ctx, now, early, expired)
	}
	if len(pending) == 0 {
		return nil
	}
	return t.loadAndWait(ctx, keys, pending, out)
}

// refreshEarly is the XFetch draw (Vattani et al. 2015) for a fresh entry.
func (t *Tiered[V]) refreshEarly(now int64, it *item[V]) bool {
	if t.beta == 0 || it.delta <= 0 {
		return false
	}
	window := float64(it.delta) * t.beta
	gap := float64(it.expiresAt - now)
	if gap > window*maxNegLog {
		return false
	}
	return gap <= window*-math.Log(1-t.rand())
}

// loadAndWait loads the keys at pending that no one is loading yet, then waits for all of
// them, or for ctx: the keys still awaited then get ctx.Err() while their loads go on.
func (t *Tiered[V]) loadAndWait(ctx context.Context, keys []string, pending []int, out []Entry[V]) error {
	slots := make([]slot[V], len(pending))
	var mine *flight[V]
	t.mu.Lock()
	for j, i := range pending {
		k := keys[i]
		if s, ok := t.inflight[k]; ok {
			slots[j] = s
			continue
		}
		if mine == nil {
			mine = &flight[V]{done: make(chan struct{}), keys: make([]string, 0, len(pending)-j)}
		}
		s := slot[V]{f: mine, i: len(mine.keys)}
		mine.keys = append(mine.keys, k)
		t.inflight[k] = s
		slots[j] = s
	}
	t.startLocked(ctx, mine, false)
	t.mu.Unlock()

	var failed error
	for j, i := range pending {
		f := slots[j].f
		select {
		case <-f.done:
		default:
			select {
			case <-f.done:
			case <-ctx.Done():
				out[i] = Entry[V]{Err: ctx.Err()}
				failed = out[i].Err
				continue
			}
		}
		if f.err != nil {
			out[i] = Entry[V]{Err: f.err}
			failed = f.err
			continue
		}
		it := &f.items[slots[j].i]
		out[i] = Entry[V]{Value: it.value, Found: it.found, LoadedAt: time.Unix(0, it.loadedAt)}
		t.m.age.Observe(0)
	}
	if failed != nil {
		return fmt.Errorf("cache %q: %w", t.name, failed)
	}
	return nil
}

// refresh reloads early and expired keys in one background load, skipping those being loaded
// already.
func (t *Tiered[V]) refresh(ctx context.Context, now int64, early, expired []string) {
	if now < t.refreshHold.Load() {
		return
	}
	var f *flight[V]
	started := 0
	t.mu.Lock()
	for j, k := range slices.Concat(early, expired) {
		if _, ok := t.inflight[k]; ok {
			continue
		}
		if f == nil {
			f = &flight[V]{done: make(chan struct{}), keys: make([]string, 0, len(early)+len(expired)-j)}
		}
		t.inflight[k] = slot[V]{f: f, i: len(f.keys)}
		f.keys = append(f.keys, k)
		if j < len(early) {
			started++
		}
	}
	t.startLocked(ctx, f, true)
	t.mu.Unlock()
	add(t.m.earlyRefreshes, started)
}

// startLocked runs the load of f (if any) on its own goroutine. Callers hold t.mu.
func (t *Tiered[V]) startLocked(ctx context.Context, f *flight[V], background bool) {
	if f == nil {
		return
	}
	f.superseded = make([]bool, len(f.keys))
	if t.closed {
		t.finishLocked(f, nil, nil, ErrClosed, 0, 0)
		return
	}
	t.wg.Add(1)
	go t.run(context.WithoutCancel(ctx), f, background)
}

// run loads f under a deadline that no single caller can cancel, but Close can.
func (t *Tiered[V]) run(ctx context.Context, f *flight[V], background bool) {
	defer t.wg.Done()
	ctx, cancel := context.WithTimeout(ctx, t.loadTimeout)
	defer cancel()
	defer context.AfterFunc(t.closing, cancel)()

	start := t.nowNano()
	values, found, err := t.callLoad(ctx, f.keys)
	end := t.nowNano()
	if err != nil {
		err = fmt.Errorf("load %d keys: %w", len(f.keys), err)
		t.m.loadErrors.Inc()
		if background {
			t.refreshHold.Store(end + int64(refreshBackoff))
		}
	}
	t.mu.Lock()
	t.finishLocked(f, values, found, err, start, end-start)
	t.mu.Unlock()
}

func (t *Tiered[V]) callLoad(ctx context.Context, keys []string) (values []V, found []bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("loader panicked: %v", p)
		}
	}()
	values, found, err = t.load(ctx, keys)
	if err == nil && (len(values) != len(keys) || len(found) != len(keys)) {
		err = fmt.Errorf("loader returned %d values and %d found flags for %d keys", len(values), len(found), len(keys))
	}
	return values, found, err
}

// finishLocked publishes the result of f to L1 and its waiters. Callers hold t.mu, which
// orders it against Set and invalidations of the same keys.
func (t *Tiered[V]) finishLocked(f *flight[V], values []V, found []bool, err error, at, delta int64) {
	if err == nil {
		f.items = make([]item[V], len(f.keys))
		storeHits := 0
		for i, k := range f.keys {
			f.items[i] = t.newItem(k, values[i], found[i], at, delta)
			if found[i] {
				storeHits++
			}
			if !f.superseded[i] {
				t.store(k, f.items[i])
			}
		}
		add(t.m.storeHits, storeHits)
		add(t.m.storeMisses, len(f.keys)-storeHits)
	}
	f.err = err
	for i, k := range f.keys {
		if s, ok := t.inflight[k]; ok && s.f == f && s.i == i {
			delete(t.inflight, k)
		}
	}
	close(f.done)
}

func (t *Tiered[V]) newItem(key string, v V, found bool, at, delta int64) item[V] {
	ttl := t.ttl(key)
	if !found {
		switch {
		case t.negTTL < 0:
			ttl = 0
		case t.negTTL > 0:
			ttl = t.negTTL
		default:
			ttl /= 10
		}
	}
	if t.jitter > 0 {
		ttl = time.Duration(float64(ttl) * (1 + t.jitter*(2*t.rand()-1)))
	}
	exp := at + int64(ttl)
	return item[V]{value: v, found: found, loadedAt: at, expiresAt: exp, staleUntil: exp + t.staleFor, delta: delta}
}

// store writes it to L1, or drops key if it must not be served: an absence with negative
// caching disabled, or a value that expires as it is loaded.
func (t *Tiered[V]) store(key string, it item[V]) {
	if (!it.found && t.negTTL < 0) || it.staleUntil <= it.loadedAt {
		t.l1.Invalidate(key)
		return
	}
	t.l1.Set(key, it)
}

// Set makes v the value of key in L1 at once (read-your-writes), after the caller wrote it to
// the store. A load of key already running will not overwrite it. To make other instances
// drop their copy, call Invalidate first, then Set: an instance ignores its own invalidations.
func (t *Tiered[V]) Set(key string, v V) {
	now := t.nowNano()
	var delta int64
	if old, ok := t.l1.GetEntryQuietly(key); ok {
		delta = old.Value.delta
	}
	t.mu.Lock()
	t.supersedeLocked(key)
	t.store(key, t.newItem(key, v, true, now, delta))
	t.mu.Unlock()
}

// Invalidate drops keys here and, through the Bus, on the other instances.
func (t *Tiered[V]) Invalidate(ctx context.Context, keys ...string) error {
	t.InvalidateLocal(keys...)
	if t.bus == nil || len(keys) == 0 {
		return nil
	}
	if err := t.bus.Publish(ctx, keys); err != nil {
		return fmt.Errorf("cache %q: publish invalidation of %d keys: %w", t.name, len(keys), err)
	}
	return nil
}

// InvalidateLocal drops keys from L1 of this instance only; loads of them already running will
// not store their result.
func (t *Tiered[V]) InvalidateLocal(keys ...string) {
	t.mu.Lock()
	for _, k := range keys {
		t.supersedeLocked(k)
		t.l1.Invalidate(k)
	}
	t.mu.Unlock()
}

func (t *Tiered[V]) supersedeLocked(key string) {
	if s, ok := t.inflight[key]; ok {
		s.f.superseded[s.i] = true
	}
}

// Purge drops every L1 entry of this instance; loads running now will not
// store their results.
func (t *Tiered[V]) Purge() { t.flush() }

// flush drops all of L1: invalidations may have been missed.
func (t *Tiered[V]) flush() {
	t.mu.Lock()
	for _, s := range t.inflight {
		s.f.superseded[s.i] = true
	}
	t.l1.InvalidateAll()
	t.mu.Unlock()
	t.m.flushes.Inc()
}

// onBus handles a message of the Bus: keys to drop, or nil when the subscription was
// (re)established and everything cached before may have missed invalidations.
func (t *Tiered[V]) onBus(keys []string) {
	if t.closing.Err() != nil {
		return
	}
	if keys == nil {
		t.flush()
		return
	}
	t.InvalidateLocal(keys...)
	add(t.m.invalidations, len(keys))
}

// Close stops the background work: running loads are cancelled and waited for, the Bus
// subscription ends, and L1 stops its clean-up goroutine. Hits are still served afterwards;
// keys that need a load get ErrClosed.
func (t *Tiered[V]) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	t.mu.Unlock()
	t.stop()
	t.wg.Wait()
	t.l1.StopAllGoroutines()
	if t.coarse != nil {
		t.coarse.Stop()
	}
}

func seconds(ns int64) float64 {
	if ns < 0 {
		return 0
	}
	return float64(ns) / 1e9
}
