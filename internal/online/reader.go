package online

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/ripple-rec/ripple/internal/cache"
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/resilience"
	"github.com/ripple-rec/ripple/internal/store"
)

// ReaderOptions size and time the cache tiers, one per feature group.
type ReaderOptions struct {
	Capacity int // L1 entries per tier
	// TTLs per group: how long a value is served from L1 without asking
	// the store. Invalidations from the bus usually end it sooner.
	UserTTL, ItemTTL, NeighborsTTL, TrendingTTL, ValuesTTL time.Duration
	// StaleFor: how long past its TTL a value may be served (marked stale)
	// while a refresh runs or the store is failing.
	StaleFor time.Duration
	// FreshFor is the freshness threshold: a value older than this (since
	// it was read from the store) makes the response "stale".
	FreshFor time.Duration
	Jitter   float64
	Beta     float64       // XFetch early refresh
	Timeout  time.Duration // per store read
	Bus      cache.Bus
	Metrics  *cache.Metrics
	// Parts, when not 0, is how many parts item and global records have
	// (one per log partition, written by partitioned workers): reads merge
	// them (see merge.go). Features are the specs the merge follows.
	Parts    int
	Features *features.Config
	// Tracing records every store read of a tier (one batch load) as a
	// span of the request that caused it; L1 hits record nothing. nil: no
	// spans.
	Tracing trace.TracerProvider
}

// DefaultReaderOptions are the serve defaults.
func DefaultReaderOptions() ReaderOptions {
	return ReaderOptions{Capacity: 100_000, UserTTL: 5 * time.Second, ItemTTL: 10 * time.Second,
		NeighborsTTL: 10 * time.Second, TrendingTTL: time.Second, ValuesTTL: 2 * time.Second,
		StaleFor: 5 * time.Minute, FreshFor: 30 * time.Second, Jitter: 0.1, Beta: 1, Timeout: 50 * time.Millisecond}
}

// userEntry is a user as the pipeline reads it.
type userEntry struct {
	view features.UserView
	seen map[string]struct{}
}

func newUserEntry(d userDoc, seen []string, exists bool) userEntry {
	e := userEntry{view: features.UserView{Exists: exists, ComputedAt: d.At, Recent: d.Recent, Session: d.Session,
		Categories: d.Categories, Events: d.Events, NoPersonalization: d.NoPers}}
	e.seen = make(map[string]struct{}, len(seen))
	for _, id := range seen {
		e.seen[id] = struct{}{}
	}
	return e
}

type valuesEntry struct {
	vals  features.Values
	found bool
}

// Reader serves features from the online store through in-process tiers.
type Reader struct {
	st     store.Online
	bus    *fanout
	users  *cache.Tiered[userEntry]
	infos  *cache.Tiered[features.ItemInfo]
	nbrs   *cache.Tiered[[]features.Neighbor]
	trend  *cache.Tiered[[]features.Scored]
	values *cache.Tiered[valuesEntry]
	// lastTrend keeps the last trending lists read, without expiry: the
	// popularity fallback when the store fails and L1 has nothing.
	lastTrend sync.Map // category → []features.Scored
	defaults  func(entity string) features.Values
	freshFor  time.Duration
	// local, set by this node's publisher, serves a user it changed from
	// the engine until the store has the change (read-your-writes).
	local func(id string) (userEntry, features.Values, bool)
	parts int
	specs *features.Config
}

// NewReader builds the tiers over st. defaults gives an entity's typed
// defaults (the engine's Values for an unknown id).
func NewReader(st store.Online, opts ReaderOptions, defaults func(entity string) features.Values) (*Reader, error) {
	if opts.FreshFor <= 0 {
		opts.FreshFor = 30 * time.Second
	}
	r := &Reader{st: st, bus: &fanout{}, defaults: defaults, freshFor: opts.FreshFor, parts: opts.Parts, specs: opts.Features}
	if r.parts > 0 && r.specs == nil {
		return nil, errors.New("online: reading parts needs the feature specs")
	}
	bus := opts.Bus
	opts.Bus = r.bus
	ttl := func(d time.Duration) func(string) time.Duration { return func(string) time.Duration { return d } }
	tr := observe.Tracer(opts.Tracing, "github.com/ripple-rec/ripple/internal/online")
	var err error
	if r.users, err = cache.New(cache.Options[userEntry]{Name: "user", Capacity: opts.Capacity, Load: traceLoad(tr, "user", r.loadUsers),
		TTL: ttl(opts.UserTTL), Jitter: opts.Jitter, Beta: opts.Beta, StaleFor: opts.StaleFor,
		LoadTimeout: opts.Timeout, Bus: opts.Bus, Metrics: opts.Metrics}); err != nil {
		return nil, err
	}
	if r.infos, err = cache.New(cache.Options[features.ItemInfo]{Name: "item", Capacity: opts.Capacity, Load: traceLoad(tr, "item", r.loadInfos),
		TTL: ttl(opts.ItemTTL), Jitter: opts.Jitter, Beta: opts.Beta, StaleFor: opts.StaleFor,
		LoadTimeout: opts.Timeout, Bus: opts.Bus, Metrics: opts.Metrics}); err != nil {
		return nil, err
	}
	if r.nbrs, err = cache.New(cache.Options[[]features.Neighbor]{Name: "neighbors", Capacity: opts.Capacity, Load: traceLoad(tr, "neighbors", r.loadNbrs),
		TTL: ttl(opts.NeighborsTTL), Jitter: opts.Jitter, Beta: opts.Beta, StaleFor: opts.StaleFor,
		LoadTimeout: opts.Timeout, Bus: opts.Bus, Metrics: opts.Metrics}); err != nil {
		return nil, err
	}
	if r.trend, err = cache.New(cache.Options[[]features.Scored]{Name: "trending", Capacity: 10_000, Load: traceLoad(tr, "trending", r.loadTrend),
		TTL: ttl(opts.TrendingTTL), Jitter: opts.Jitter, Beta: opts.Beta, StaleFor: opts.StaleFor,
		LoadTimeout: opts.Timeout, Metrics: opts.Metrics}); err != nil {
		return nil, err
	}
	if r.values, err = cache.New(cache.Options[valuesEntry]{Name: "values", Capacity: opts.Capacity, Load: traceLoad(tr, "values", r.loadValues),
		TTL: ttl(opts.ValuesTTL), Jitter: opts.Jitter, StaleFor: opts.StaleFor,
		LoadTimeout: opts.Timeout, Bus: opts.Bus, Metrics: opts.Metrics}); err != nil {
		return nil, err
	}
	if bus != nil {
		if err := r.bus.attach(bus, false); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// AttachBus connects the invalidation bus after the fact (the node
// started while Redis was down). The tiers are flushed: they may have
// missed invalidations.
func (r *Reader) AttachBus(bus cache.Bus) error { return r.bus.attach(bus, true) }

// Close stops the tiers' background work.
func (r *Reader) Close() {
	for _, c := range []interface{ Close() }{r.users, r.infos, r.nbrs, r.trend, r.values} {
		if c != nil {
			c.Close()
		}
	}
}

// traceLoad wraps a tier's batch load in a span: one per store round
// trip, named by tier, with key and hit counts (never the keys: user
// tiers are keyed by user id).
func traceLoad[V any](tr trace.Tracer, tier string, load cache.LoadFunc[V]) cache.LoadFunc[V] {
	name := "online.load " + tier
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient)} // built once: Start with opts... allocates nothing more
	return func(ctx context.Context, keys []string) ([]V, []bool, error) {
		ctx, span := tr.Start(ctx, name, opts...)
		vals, found, err := load(ctx, keys)
		if span.IsRecording() {
			hits := 0
			for _, f := range found {
				if f {
					hits++
				}
			}
			span.SetAttributes(attribute.String("ripple.tier", tier), attribute.Int("ripple.keys", len(keys)),
				attribute.Int("ripple.found", hits))
		}
		observe.SetError(span, err)
		span.End()
		return vals, found, err
	}
}

// strip removes a cache key's tier prefix ("u:", "i:", ...).
func strip(keys []string, n int) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k[n:]
	}
	return out
}

func (r *Reader) loadUsers(ctx context.Context, keys []string) ([]userEntry, []bool, error) {
	ids := strip(keys, 2)
	skeys := make([]string, len(ids))
	for i, id := range ids {
		skeys[i] = userKey(id)
	}
	rows, err := r.st.Get(ctx, skeys, []string{fieldView, fieldSeen})
	if err != nil {
		return nil, nil, err
	}
	vals, found := make([]userEntry, len(keys)), make([]bool, len(keys))
	for i, row := range rows {
		if row[0] == nil {
			continue
		}
		var d userDoc
		var seen []string
		if err := json.Unmarshal(row[0], &d); err != nil {
			return nil, nil, err
		}
		if row[1] != nil {
			if err := json.Unmarshal(row[1], &seen); err != nil {
				return nil, nil, err
			}
		}
		vals[i], found[i] = newUserEntry(d, seen, true), true
	}
	return vals, found, nil
}

// loadItemField reads one field of items; with parts, each calls back with
// every part that has it.
func (r *Reader) loadItemField(ctx context.Context, keys []string, field string, each func(i int, raws [][]byte) error) ([]bool, error) {
	ids := strip(keys, 2)
	skeys := make([]string, len(ids))
	for i, id := range ids {
		skeys[i] = itemKey(id)
	}
	fields := []string{field}
	if r.parts > 0 {
		fields = partFields(r.parts, field)
	}
	rows, err := r.st.Get(ctx, skeys, fields)
	if err != nil {
		return nil, err
	}
	found := make([]bool, len(keys))
	var raws [][]byte
	for i, row := range rows {
		raws = raws[:0]
		for _, raw := range row {
			if raw != nil {
				raws = append(raws, raw)
			}
		}
		if len(raws) == 0 {
			continue
		}
		if err := each(i, raws); err != nil {
			return nil, err
		}
		found[i] = true
	}
	return found, nil
}

func (r *Reader) loadInfos(ctx context.Context, keys []string) ([]features.ItemInfo, []bool, error) {
	vals := make([]features.ItemInfo, len(keys))
	var docs []itemDoc
	found, err := r.loadItemField(ctx, keys, fieldInfo, func(i int, raws [][]byte) error {
		docs = docs[:0]
		for _, raw := range raws {
			var d itemDoc
			if err := json.Unmarshal(raw, &d); err != nil {
				return err
			}
			docs = append(docs, d)
		}
		d := mergeInfos(docs)
		vals[i] = d.info()
		return nil
	})
	return vals, found, err
}

func (r *Reader) loadNbrs(ctx context.Context, keys []string) ([][]features.Neighbor, []bool, error) {
	vals := make([][]features.Neighbor, len(keys))
	found, err := r.loadItemField(ctx, keys, fieldNbrs, func(i int, raws [][]byte) error {
		if len(raws) == 1 && r.parts == 0 {
			return json.Unmarshal(raws[0], &vals[i])
		}
		parts := make([][]features.Neighbor, len(raws))
		for j, raw := range raws {
			if err := json.Unmarshal(raw, &parts[j]); err != nil {
				return err
			}
		}
		vals[i] = mergeNeighbors(parts, 0)
		return nil
	})
	return vals, found, err
}

func (r *Reader) loadTrend(ctx context.Context, keys []string) ([][]features.Scored, []bool, error) {
	fields := make([]string, len(keys))
	for i, k := range keys {
		fields[i] = fieldTrend
		if cat := k[2:]; cat != "" {
			fields[i] = trendCatPfx + cat
		}
	}
	per := 1
	if r.parts > 0 {
		per = r.parts
		fields = partFields(r.parts, fields...) // part-major: field j of part p at p*len(keys)+j
	}
	rows, err := r.st.Get(ctx, []string{globalKey}, fields)
	if err != nil {
		return nil, nil, err
	}
	vals, found := make([][]features.Scored, len(keys)), make([]bool, len(keys))
	for i := range keys {
		var parts [][]features.Scored
		for p := range per {
			raw := rows[0][p*len(keys)+i]
			if raw == nil {
				continue
			}
			var l []features.Scored
			if err := json.Unmarshal(raw, &l); err != nil {
				return nil, nil, err
			}
			parts = append(parts, l)
		}
		switch {
		case len(parts) == 0:
			continue
		case r.parts == 0:
			vals[i] = parts[0]
		default:
			vals[i] = mergeScored(parts)
		}
		found[i] = true
		r.lastTrend.Store(keys[i][2:], vals[i])
	}
	return vals, found, nil
}

func (r *Reader) loadValues(ctx context.Context, keys []string) ([]valuesEntry, []bool, error) {
	skeys := make([]string, len(keys))
	for i, k := range keys {
		entity, id, _ := strings.Cut(k[2:], ":")
		switch entity {
		case features.EntityUser:
			skeys[i] = userKey(id)
		case features.EntityItem:
			skeys[i] = itemKey(id)
		default:
			skeys[i] = globalKey
		}
	}
	return r.readValues(ctx, skeys)
}

// readValues reads the values of store keys skeys. Users are whole records;
// with parts, items and the global record are merged over their parts.
func (r *Reader) readValues(ctx context.Context, skeys []string) ([]valuesEntry, []bool, error) {
	whole := []string{fieldValues, fieldAt}
	partOf := partFields(r.parts, fieldValues, fieldAt, fieldClk, fieldNbrs, fieldWin)
	var wk, pk []int // indices of keys read whole, read in parts
	for i, k := range skeys {
		if r.parts == 0 || strings.HasPrefix(k, "u:") {
			wk = append(wk, i)
		} else {
			pk = append(pk, i)
		}
	}
	vals, found := make([]valuesEntry, len(skeys)), make([]bool, len(skeys))
	for _, set := range []struct {
		idx    []int
		fields []string
		stride int // fields per part
	}{{wk, whole, len(whole)}, {pk, partOf, len(partOf) / max(1, r.parts)}} {
		if len(set.idx) == 0 {
			continue
		}
		sk := make([]string, len(set.idx))
		for j, i := range set.idx {
			sk[j] = skeys[i]
		}
		rows, err := r.st.Get(ctx, sk, set.fields)
		if err != nil {
			return nil, nil, err
		}
		for j, row := range rows {
			var parts []valuesPart
			for p := 0; p+1 < len(row); p += set.stride {
				if row[p] == nil {
					continue
				}
				v, err := decodeValues(row[p], row[p+1])
				if err != nil {
					return nil, nil, err
				}
				vp := valuesPart{vals: v}
				if len(set.fields) == len(whole) {
					parts = append(parts, vp)
					break
				}
				if row[p+2] != nil {
					vp.clk, _ = strconv.ParseInt(string(row[p+2]), 10, 64)
				}
				if row[p+3] != nil {
					if err := json.Unmarshal(row[p+3], &vp.nbrs); err != nil {
						return nil, nil, err
					}
				}
				if row[p+4] != nil {
					if err := json.Unmarshal(row[p+4], &vp.win); err != nil {
						return nil, nil, err
					}
				}
				parts = append(parts, vp)
			}
			i := set.idx[j]
			switch {
			case len(parts) == 0:
				continue
			case len(set.fields) == len(whole):
				vals[i] = valuesEntry{vals: parts[0].vals, found: true}
			default:
				scope := features.ScopeItem
				if sk[j] == globalKey {
					scope = features.ScopeGlobal
				}
				vals[i] = valuesEntry{vals: mergeValues(r.specs, scope, parts), found: true}
			}
			found[i] = true
		}
	}
	return vals, found, nil
}

// Consent reads what each of users allows, as published, from the store
// (no tier: a consent change must count at once). Users without a record
// or without a consent field allow everything.
func (r *Reader) Consent(ctx context.Context, users []string) ([]event.Consent, error) {
	out := make([]event.Consent, len(users))
	idx := map[string][]int{}
	var keys []string
	for i, u := range users {
		out[i] = event.FullConsent
		if _, ok := idx[u]; !ok {
			keys = append(keys, userKey(u))
		}
		idx[u] = append(idx[u], i)
	}
	// It gates appends: guarded as a write, not as a 50 ms serving read.
	rows, err := r.st.Get(store.OnWritePath(ctx), keys, []string{fieldConsent})
	if err != nil {
		return nil, err
	}
	for j, row := range rows {
		if row[0] == nil {
			continue
		}
		var c event.Consent
		if err := json.Unmarshal(row[0], &c); err != nil {
			return nil, err
		}
		for _, i := range idx[keys[j][len("u:"):]] {
			out[i] = c
		}
	}
	return out, nil
}

// level is what serving e costs in freshness: Degraded when there was no
// value (the default is served), Stale when the value is older than the
// freshness threshold (served from L1 while the store fails, or not yet
// refreshed), else Healthy.
func level[V any](e cache.Entry[V], freshFor time.Duration) resilience.Level {
	switch {
	case e.Err != nil:
		return resilience.Degraded
	case e.Stale && time.Since(e.LoadedAt) > freshFor:
		return resilience.Stale
	}
	return resilience.Healthy
}

// Values reads an entity's feature values: from the store, or the typed
// defaults (and Degraded) when it cannot answer. Missing features of a
// found record are filled with their defaults too.
func (r *Reader) Values(ctx context.Context, entity, id string) (features.Values, bool, resilience.Level) {
	if entity == features.EntityUser && r.local != nil {
		if e, vals, ok := r.local(id); ok {
			return vals, e.view.Exists, resilience.Healthy
		}
	}
	e, _ := r.values.Get(ctx, valuesCacheKey(entity, id))
	lvl := level(e, r.freshFor)
	def := r.defaults(entity)
	if e.Err != nil || !e.Found || !e.Value.found {
		return def, false, lvl
	}
	out := features.Values{ComputedAt: e.Value.vals.ComputedAt, Features: make(map[string]features.Value, len(def.Features))}
	for name, v := range def.Features {
		if got, ok := e.Value.vals.Features[name]; ok {
			v = got
		}
		out.Features[name] = v
	}
	return out, true, lvl
}

// Items reads item info for ids.
func (r *Reader) Items(ctx context.Context, ids []string, out []features.ItemInfo) resilience.Level {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = infoCacheKey(id)
	}
	entries := make([]cache.Entry[features.ItemInfo], len(ids))
	_ = r.infos.GetBatch(ctx, keys, entries)
	var t resilience.Tracker
	for i, e := range entries {
		t.Note(level(e, r.freshFor))
		out[i] = features.ItemInfo{Trend: math.Inf(-1)}
		if e.Err == nil && e.Found {
			out[i] = e.Value
		}
	}
	return t.Level()
}
