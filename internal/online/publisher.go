package online

import (
	"context"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/store"
)

// PublisherOptions size what is published.
type PublisherOptions struct {
	// Source names the log the engine applies (offsets are per source).
	Source string
	// TTL is set on every record: entities nobody touches age out.
	TTL         time.Duration
	RecentItems int // items in a user's _view
	Neighbors   int // co-visited neighbours per item
	Seen        int // items in a user's _seen
	Trending    int // items in each trending list
	// GlobalEvery bounds how often the global record (trending lists) is
	// rewritten: the trending index itself is rebuilt at most once a second.
	GlobalEvery time.Duration
	// RetryEvery is the pause after a failed write.
	RetryEvery time.Duration
	// CheckEvery is how often an idle publisher checks that the store
	// still holds its offset: a Redis that restarted empty is found and
	// resynced even when no event arrives.
	CheckEvery time.Duration
	// ResyncChunk is how many entities one resync write carries.
	ResyncChunk int
	// Part, when set, makes item and global records parts (named Part)
	// of a record that several engines add to: the publisher of one log
	// partition's engine, read by a Reader with Parts (see merge.go).
	Part string
	// AnnounceOnly: this node serves no reads from r (a worker), so r is
	// used only to announce changes to the other nodes; its tiers are not
	// refreshed and it does not read unwritten users from this engine.
	AnnounceOnly bool
	Registerer   prometheus.Registerer
	Logger       *slog.Logger
}

func (o *PublisherOptions) defaults() {
	if o.TTL <= 0 {
		o.TTL = 7 * 24 * time.Hour
	}
	if o.RecentItems <= 0 {
		o.RecentItems = 50
	}
	if o.Neighbors <= 0 {
		o.Neighbors = 100
	}
	if o.Seen <= 0 {
		o.Seen = 1000
	}
	if o.Trending <= 0 {
		o.Trending = 500
	}
	if o.GlobalEvery <= 0 {
		o.GlobalEvery = time.Second
	}
	if o.RetryEvery <= 0 {
		o.RetryEvery = 250 * time.Millisecond
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = 2 * time.Second
	}
	if o.ResyncChunk <= 0 {
		o.ResyncChunk = 2000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// sourceScanner finds a source's records in the store (the Redis store).
type sourceScanner interface {
	ScanSource(ctx context.Context, kind, source string, fn func(key string) error) error
}

// Publisher writes what each apply changed to the online store.
//
// The applying goroutine only notes which entities changed; the writer
// goroutine reads them from the engine, writes them, and then updates this
// node's tiers. Until a changed user is written, this node's reader serves
// that user from the engine (read-your-writes before the store has them).
// Records are stamped with the offset the applier had reached when the
// changes were taken; reading the engine later can only include more, and
// the store keeps the newer of two stamps.
type Publisher struct {
	eng  *features.Engine
	st   store.Online
	r    *Reader // this node's tiers; nil: none
	opts PublisherOptions
	m    *publisherMetrics

	mu   sync.Mutex
	pend pending
	// unwritten: users changed (or erased) here and not yet acknowledged
	// by the store, with the offset that changed them last (only when
	// this node's tiers are refreshed: see localUser).
	unwritten map[string]uint64

	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	resync    atomic.Bool
	published atomic.Uint64 // offset the store acknowledged
	started   atomic.Bool

	lastAck    uint64 // writer goroutine only
	lastGlobal time.Time
	fields     fieldBytes // writer goroutine only
	// vals holds the values of the record being built (writer goroutine
	// only), cleared after each: no user's values outlive their record.
	vals []features.NamedValue
}

type pending struct {
	users  map[string]struct{}
	items  map[string]struct{}
	erased map[string]struct{}
	global bool
	offset uint64
	since  time.Time // oldest change not yet written
}

func newPending() pending {
	return pending{users: map[string]struct{}{}, items: map[string]struct{}{}, erased: map[string]struct{}{}}
}

func (p *pending) empty() bool {
	return len(p.users) == 0 && len(p.items) == 0 && len(p.erased) == 0 && !p.global
}

// NewPublisher tracks eng's changes from now on; call it before the engine
// applies anything that must reach the store (Start resyncs anything older).
func NewPublisher(eng *features.Engine, st store.Online, r *Reader, opts PublisherOptions) *Publisher {
	opts.defaults()
	eng.TrackChanges()
	p := &Publisher{eng: eng, st: st, r: r, opts: opts, pend: newPending(), unwritten: map[string]uint64{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	p.m = newPublisherMetrics(opts.Registerer, p)
	if r != nil && !opts.AnnounceOnly {
		r.local = p.localUser
	}
	return p
}

// localUser is the engine's copy of a user this node changed and the
// store does not have yet.
func (p *Publisher) localUser(id string) (userEntry, features.Values, bool) {
	p.mu.Lock()
	_, ok := p.unwritten[id]
	p.mu.Unlock()
	if !ok {
		return userEntry{}, features.Values{}, false
	}
	doc, seen := p.userState(id)
	vals, _ := p.eng.Values(features.EntityUser, id)
	return newUserEntry(doc.userDoc, seen, doc.exists), vals, true
}

// Start compares the store's offset for this source with the engine's and
// resyncs everything when the store is behind (first start, or the store
// lost its data), then runs the writer.
func (p *Publisher) Start(ctx context.Context) {
	p.StartResync(ctx, false)
}

// StartResync is Start that rewrites everything when force is set (the
// feature specs changed: the store holds values computed under the old
// ones, at the same offsets).
func (p *Publisher) StartResync(ctx context.Context, force bool) {
	off, err := p.st.Offset(ctx, p.opts.Source)
	switch {
	case force:
		p.opts.Logger.Info("feature specs changed; rewriting the online store")
		p.resync.Store(true)
	case err != nil:
		p.opts.Logger.Warn("online store unreachable at start; will resync when it answers", "err", err)
		p.resync.Store(true)
	case off < p.eng.Applied():
		p.opts.Logger.Info("online store behind the engine; resyncing", "store_offset", off, "applied", p.eng.Applied())
		p.resync.Store(true)
	default:
		p.lastAck = off
		p.published.Store(off)
	}
	p.started.Store(true)
	go p.run()
	p.kick()
}

// Published is the offset up to which the store holds every change: 0
// while a resync is due.
func (p *Publisher) Published() uint64 { return p.published.Load() }

// Close stops the writer after one last attempt to write what is pending.
func (p *Publisher) Close() {
	if !p.started.Load() {
		return
	}
	close(p.stop)
	<-p.done
}

func (p *Publisher) kick() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// AfterApply takes the engine's changes up to applied. It runs on the
// applying goroutine, between applies, and only records ids.
func (p *Publisher) AfterApply(applied uint64) {
	ch := p.eng.TakeChanges()
	if ch.Empty() {
		return
	}
	// Only a node that reads its own users back tracks which are unwritten.
	local := p.refreshesLocal()
	p.mu.Lock()
	if p.pend.empty() {
		p.pend.since = time.Now()
	}
	// Erasures first: a user erased and then active again within one
	// batch must end up written (a Put replaces the whole record), not
	// deleted while the engine has them.
	for _, id := range ch.Erased {
		delete(p.pend.users, id)
		p.pend.erased[id] = struct{}{}
		if local {
			p.unwritten[id] = applied
		}
	}
	for _, id := range ch.Users {
		delete(p.pend.erased, id)
		p.pend.users[id] = struct{}{}
		if local {
			p.unwritten[id] = applied
		}
	}
	for _, id := range ch.Items {
		p.pend.items[id] = struct{}{}
	}
	p.pend.global = p.pend.global || ch.Global
	p.pend.offset = max(p.pend.offset, applied)
	p.mu.Unlock()
	p.kick()
}

func (p *Publisher) run() {
	defer close(p.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	globalTick := time.NewTicker(p.opts.GlobalEvery)
	defer globalTick.Stop()
	check := time.NewTicker(p.opts.CheckEvery)
	defer check.Stop()
	for {
		select {
		case <-p.stop:
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			p.flush(ctx, true)
			cancel()
			return
		case <-p.wake:
		case <-retry.C:
		case <-check.C:
			if !p.storeLost() {
				continue
			}
		case <-globalTick.C:
			p.mu.Lock()
			global := p.pend.global
			p.mu.Unlock()
			if !global && !p.resync.Load() {
				continue
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ok := p.flush(ctx, false)
		cancel()
		if !ok {
			retry.Reset(p.opts.RetryEvery + rand.N(p.opts.RetryEvery))
		}
	}
}

// flush writes what is pending; false means it must be retried.
func (p *Publisher) flush(ctx context.Context, final bool) bool {
	defer p.fields.release()
	if p.resync.Load() {
		if err := p.resyncAll(ctx); err != nil {
			p.m.writes.WithLabelValues("failed").Inc()
			p.opts.Logger.Warn("online store resync failed; retrying", "err", err)
			return false
		}
		p.resync.Store(false)
	}
	p.mu.Lock()
	pend := p.pend
	// Sized as the last: under load, every flush takes about as many.
	p.pend = pending{users: make(map[string]struct{}, len(pend.users)), items: make(map[string]struct{}, len(pend.items)),
		erased: map[string]struct{}{}}
	// The global record is rewritten at most every GlobalEvery.
	deferGlobal := pend.global && !final && time.Since(p.lastGlobal) < p.opts.GlobalEvery
	if deferGlobal {
		pend.global = false
		p.pend.global = true
		p.pend.offset = pend.offset
		if p.pend.since.IsZero() {
			p.pend.since = pend.since
		}
	}
	p.mu.Unlock()
	if pend.empty() {
		return true
	}
	b := &store.Batch{Source: p.opts.Source, Offset: pend.offset, TTL: p.opts.TTL, Commit: true, Expect: p.lastAck,
		Put: make([]store.Entity, 0, len(pend.users)+len(pend.items)+1)}
	var entries map[string]userEntry
	var values map[string]features.Values
	local := p.refreshesLocal()
	if local {
		entries = make(map[string]userEntry, len(pend.users))
		values = make(map[string]features.Values, len(pend.users))
	}
	for id := range pend.users {
		e, entry, vals := p.userRecord(id, local)
		b.Put = append(b.Put, e)
		if local {
			entries[id], values[id] = entry, vals
		}
	}
	for id := range pend.items {
		b.Put = append(b.Put, p.itemRecord(id))
	}
	if pend.global {
		b.Put = append(b.Put, p.globalRecord())
	}
	for id := range pend.erased {
		b.Delete = append(b.Delete, userKey(id))
	}
	start := time.Now()
	prev, err := p.st.Write(ctx, b)
	p.m.writeSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		p.m.writes.WithLabelValues("failed").Inc()
		p.requeue(pend)
		p.opts.Logger.Debug("online store write failed; will retry", "entities", len(b.Put), "err", err)
		return false
	}
	p.m.writes.WithLabelValues("ok").Inc()
	p.m.entities.Add(float64(len(b.Put) + len(b.Delete)))
	if pend.global {
		p.lastGlobal = time.Now()
	}
	if prev < p.lastAck {
		// The store holds less than it acknowledged: it restarted empty or
		// failed over to a replica that was behind. Everything is rewritten.
		p.lost(prev)
		p.kick()
		p.refreshLocal(pend, entries, values)
		p.announce(pend)
		return true
	}
	p.lastAck = max(p.lastAck, pend.offset)
	p.refreshLocal(pend, entries, values)
	p.announce(pend)
	// Published last: once it counts, this node's tiers hold the change
	// and the other nodes have been told.
	if !p.resync.Load() {
		p.published.Store(p.lastAck)
	}
	return true
}

// storeLost reports whether the store holds less than it acknowledged
// (it restarted empty, or failed over to a replica that was behind), and
// schedules a resync when it does.
func (p *Publisher) storeLost() bool {
	if p.lastAck == 0 || p.resync.Load() {
		return p.resync.Load()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	off, err := p.st.Offset(ctx, p.opts.Source)
	if err != nil || off >= p.lastAck {
		return false
	}
	p.lost(off)
	return true
}

// lost schedules a resync: the store holds less than it acknowledged.
// Until the resync is done nothing counts as published.
func (p *Publisher) lost(storeOffset uint64) {
	p.opts.Logger.Warn("online store lost data; resyncing", "store_offset", storeOffset, "acknowledged", p.lastAck)
	p.m.resyncs.Inc()
	p.resync.Store(true)
	p.lastAck = 0
	p.published.Store(0)
}

// refreshLocal puts what the store now holds into this node's tiers (its
// own invalidations do not reach it) and ends the local reads of users
// the store has caught up with.
func (p *Publisher) refreshLocal(pend pending, entries map[string]userEntry, values map[string]features.Values) {
	if p.refreshesLocal() {
		for id, e := range entries {
			p.r.users.Set(userCacheKey(id), e)
			p.r.values.Set(valuesCacheKey(features.EntityUser, id), valuesEntry{vals: values[id], found: true})
		}
		for id := range pend.erased {
			p.r.users.Set(userCacheKey(id), userEntry{})
			p.r.values.InvalidateLocal(valuesCacheKey(features.EntityUser, id))
		}
		ids := slices.Collect(maps.Keys(pend.items))
		keys := make([]string, len(ids))
		for _, tier := range []struct {
			c   interface{ InvalidateLocal(...string) }
			key func(string) string
		}{{p.r.infos, infoCacheKey}, {p.r.nbrs, nbrsCacheKey}, {p.r.values, func(id string) string {
			return valuesCacheKey(features.EntityItem, id)
		}}} {
			for i, id := range ids {
				keys[i] = tier.key(id)
			}
			tier.c.InvalidateLocal(keys...)
		}
	}
	p.mu.Lock()
	for id, off := range p.unwritten {
		if off <= pend.offset {
			delete(p.unwritten, id)
		}
	}
	p.mu.Unlock()
}

// refreshesLocal: this node serves reads from its tiers, which the
// publisher refreshes with what it wrote.
func (p *Publisher) refreshesLocal() bool { return p.r != nil && !p.opts.AnnounceOnly }

// requeue puts a failed batch back under what arrived since.
func (p *Publisher) requeue(old pending) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cur := &p.pend
	for id := range old.users {
		if _, gone := cur.erased[id]; !gone {
			cur.users[id] = struct{}{}
		}
	}
	for id := range old.erased {
		if _, back := cur.users[id]; !back {
			cur.erased[id] = struct{}{}
		}
	}
	for id := range old.items {
		cur.items[id] = struct{}{}
	}
	cur.global = cur.global || old.global
	cur.offset = max(cur.offset, old.offset)
	if cur.since.IsZero() || (!old.since.IsZero() && old.since.Before(cur.since)) {
		cur.since = old.since
	}
}

// announce tells other nodes' tiers to drop what this write replaced.
func (p *Publisher) announce(pend pending) {
	if p.r == nil {
		return
	}
	keys := make([]string, 0, 2*len(pend.users)+3*len(pend.items)+len(pend.erased))
	for id := range pend.users {
		keys = append(keys, userCacheKey(id), valuesCacheKey(features.EntityUser, id))
	}
	for id := range pend.erased {
		keys = append(keys, userCacheKey(id), valuesCacheKey(features.EntityUser, id))
	}
	for id := range pend.items {
		keys = append(keys, infoCacheKey(id), nbrsCacheKey(id), valuesCacheKey(features.EntityItem, id))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.r.bus.Publish(ctx, keys); err != nil {
		// TTLs bound how long other nodes serve the replaced values.
		p.opts.Logger.Debug("invalidation publish failed", "keys", len(keys), "err", err)
	}
}

// resyncAll rewrites every entity, in chunks, stamped with the offset
// applied when it began; the offset is committed after the last chunk.
func (p *Publisher) resyncAll(ctx context.Context) error {
	off := p.eng.Applied()
	start := time.Now()
	n := 0
	var chunk []store.Entity
	write := func(commit bool) error {
		b := &store.Batch{Source: p.opts.Source, Offset: off, TTL: p.opts.TTL, Put: chunk, Commit: commit}
		if _, err := p.st.Write(ctx, b); err != nil {
			return err
		}
		n += len(chunk)
		chunk = chunk[:0]
		return nil
	}
	var err error
	users := map[string]bool{}
	addUser := func(id string) bool {
		if users[id] {
			return true
		}
		users[id] = true
		e, _, _ := p.userRecord(id, false)
		chunk = append(chunk, e)
		if len(chunk) == p.opts.ResyncChunk {
			err = write(false)
		}
		return err == nil
	}
	p.eng.RangeUsers(addUser)
	if err == nil {
		p.eng.RangeConsentUsers(addUser) // consent-only users have no other state
	}
	if err != nil {
		return err
	}
	// Users this source wrote that the engine no longer has were erased
	// while the store could not take the deletion: delete them now.
	if sc, ok := p.st.(sourceScanner); ok {
		var gone []string
		if err := sc.ScanSource(ctx, "u:", p.opts.Source, func(key string) error {
			if !users[key[len("u:"):]] {
				gone = append(gone, key)
			}
			return nil
		}); err != nil {
			return err
		}
		if len(gone) > 0 {
			if _, err := p.st.Write(ctx, &store.Batch{Source: p.opts.Source, Offset: off, Delete: gone}); err != nil {
				return err
			}
			if p.r != nil {
				keys := make([]string, 0, 2*len(gone))
				for _, k := range gone {
					id := k[len("u:"):]
					keys = append(keys, userCacheKey(id), valuesCacheKey(features.EntityUser, id))
				}
				p.r.users.InvalidateLocal(keys...)
				p.r.values.InvalidateLocal(keys...)
				_ = p.r.bus.Publish(ctx, keys)
			}
			p.opts.Logger.Info("online store resync deleted users the engine no longer has", "users", len(gone))
		}
	}
	p.eng.RangeItems(func(id string) bool {
		chunk = append(chunk, p.itemRecord(id))
		if len(chunk) == p.opts.ResyncChunk {
			err = write(false)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	chunk = append(chunk, p.globalRecord())
	if err := write(true); err != nil {
		return err
	}
	p.lastAck = max(p.lastAck, off)
	p.published.Store(p.lastAck)
	p.lastGlobal = time.Now()
	p.opts.Logger.Info("online store resynced", "entities", n, "offset", off, "seconds", time.Since(start).Seconds())
	return nil
}

// userState reads one user from the engine: the _view document (and
// whether the engine has the user) and the _seen list.
func (p *Publisher) userState(id string) (userState, []string) {
	v := p.eng.User(id, p.opts.RecentItems)
	seen := p.eng.SeenItems(id, p.opts.Seen)
	doc := userDoc{At: v.ComputedAt, Recent: v.Recent, Session: v.Session, Categories: v.Categories, Events: v.Events,
		NoPers: v.NoPersonalization}
	return userState{doc, v.Exists}, seen
}

// userState is a user's _view document and whether the engine has them.
type userState struct {
	userDoc
	exists bool
}

// userRecord materializes one user: the store record and, when local is
// set, the entry and values for this node's tiers.
func (p *Publisher) userRecord(id string, local bool) (store.Entity, userEntry, features.Values) {
	doc, seen := p.userState(id)
	at := p.readValues(features.EntityUser, id, p.eng.Clock())
	defer p.clearValues()
	f := &p.fields
	e := store.Entity{Key: userKey(id), Fields: make([]store.Field, 0, 5)}
	add := func(name string, val []byte) { e.Fields = append(e.Fields, store.Field{Name: name, Value: val}) }
	add(fieldView, f.keep(appendUserDoc(f.scratch, &doc.userDoc)))
	add(fieldSeen, f.keep(appendStrings(f.scratch, seen)))
	add(fieldAt, f.keep(strconv.AppendInt(f.scratch, doc.At, 10)))
	add(fieldValues, f.keep(appendValuesField(f.scratch, p.vals)))
	if c := p.eng.Consent(id); c != event.FullConsent {
		add(fieldConsent, encode(c))
	}
	p.m.observe(features.EntityUser, doc.At, p.vals)
	if !local {
		return e, userEntry{}, features.Values{}
	}
	vals := features.Values{ComputedAt: at, Features: make(map[string]features.Value, len(p.vals))}
	for _, v := range p.vals {
		vals.Features[v.Name] = v.Value
	}
	return e, newUserEntry(doc.userDoc, seen, doc.exists), vals
}

// readValues reads an entity's values at clock now into p.vals and
// returns its computed_at.
func (p *Publisher) readValues(entity, id string, now int64) int64 {
	var at int64
	p.vals, at, _ = p.eng.AppendValuesAt(p.vals[:0], entity, id, now)
	return at
}

func (p *Publisher) clearValues() {
	clear(p.vals)
	p.vals = p.vals[:0]
}

func (p *Publisher) itemRecord(id string) store.Entity {
	var info [1]features.ItemInfo
	p.eng.Items([]string{id}, info[:])
	f := &p.fields
	e := store.Entity{Key: itemKey(id), Part: p.opts.Part, Fields: make([]store.Field, 0, 6)}
	add := func(name string, val []byte) { e.Fields = append(e.Fields, store.Field{Name: name, Value: val}) }
	at := p.partValues(add, features.EntityItem, id)
	defer p.clearValues()
	nbrs := p.eng.Neighbors(id, p.opts.Neighbors)
	if nbrs == nil {
		nbrs = []features.Neighbor{}
	}
	doc := newItemDoc(at, info[0])
	add(fieldInfo, f.keep(appendItemDoc(f.scratch, &doc)))
	add(fieldNbrs, f.keep(appendNeighbors(f.scratch, nbrs)))
	add(fieldAt, f.keep(strconv.AppendInt(f.scratch, at, 10)))
	add(fieldValues, f.keep(appendValuesField(f.scratch, p.vals)))
	p.m.observe(features.EntityItem, at, p.vals)
	return e
}

func (p *Publisher) globalRecord() store.Entity {
	f := &p.fields
	e := store.Entity{Key: globalKey, Part: p.opts.Part}
	add := func(name string, val []byte) { e.Fields = append(e.Fields, store.Field{Name: name, Value: val}) }
	at := p.partValues(add, features.EntityGlobal, "")
	defer p.clearValues()
	add(fieldTrend, f.keep(appendScored(f.scratch, scoredOrEmpty(p.eng.Trending("", p.opts.Trending)))))
	for _, c := range p.eng.TrendingCategories() {
		add(trendCatPfx+c, f.keep(appendScored(f.scratch, scoredOrEmpty(p.eng.Trending(c, p.opts.Trending)))))
	}
	add(fieldAt, f.keep(strconv.AppendInt(f.scratch, at, 10)))
	add(fieldValues, f.keep(appendValuesField(f.scratch, p.vals)))
	p.m.observe(features.EntityGlobal, at, p.vals)
	return e
}

// partValues reads an item's or the global record's values. As a part
// (partitioned workers) it stamps them with the engine clock they were
// computed at (readers align the parts' decays and recencies to the newest
// stamp) and adds the raw window buckets (readers sum them and evaluate
// the windows at the newest clock: a part not rewritten since an older
// clock still counts what has left the window since). The clock is read
// once, first, and the values are computed at it: read separately, the
// applier could move the clock between the two, and a part's decayed
// values would be aligned from the wrong time. Anything applied after the
// clock was read is left for the next flush, which the event that changed
// it causes.
func (p *Publisher) partValues(add func(string, []byte), entity, id string) (computedAt int64) {
	clk := p.eng.Clock()
	at := p.readValues(entity, id, clk)
	if p.opts.Part == "" {
		return at
	}
	f := &p.fields
	add(fieldClk, f.keep(strconv.AppendInt(f.scratch, clk, 10)))
	add(fieldWin, f.keep(appendWindowBuckets(f.scratch, func(fn func(string, []features.Bucket)) bool {
		return p.eng.RangeWindowBuckets(entity, id, fn)
	})))
	return at
}

func scoredOrEmpty(l []features.Scored) []features.Scored {
	if l == nil {
		return []features.Scored{}
	}
	return l
}

// pendingAge is how long the oldest unwritten change has waited.
func (p *Publisher) pendingAge() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pend.empty() || p.pend.since.IsZero() {
		return 0
	}
	return time.Since(p.pend.since).Seconds()
}
