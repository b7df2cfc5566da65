package event

import (
	"sync"
	"time"
)

// Deduper remembers recently seen event ids so a client retry of an
// acknowledged batch has no second effect. The window is bounded by count and
// age; it is rebuilt after a restart by replaying the log tail, so it is as
// durable as the log itself.
type Deduper struct {
	mu    sync.Mutex
	seen  map[string]seenAt
	order []string // FIFO ring of ids for eviction
	head  int
	size  int
	// evicted counts slots ever evicted: the absolute position of head. A
	// released id that is reserved again has two slots; only the one its
	// seenAt points at may delete it.
	evicted uint64
	maxAge  int64
	// changed is closed (and replaced) whenever a pending id is committed
	// or released, waking requests that wait on it.
	changed chan struct{}
}

type seenAt struct {
	ms      int64  // time seen (unix ms)
	pos     uint64 // absolute ring position of the id's live slot
	pending bool   // reserved by a request whose append has not finished
}

// NewDeduper keeps at most maxIDs ids, none older than maxAge.
func NewDeduper(maxIDs int, maxAge time.Duration) *Deduper {
	if maxIDs <= 0 {
		maxIDs = 1
	}
	return &Deduper{seen: make(map[string]seenAt, min(maxIDs, 1<<16)), order: make([]string, maxIDs), maxAge: maxAge.Milliseconds(),
		changed: make(chan struct{})}
}

// TryReserve is Reserve for the write path: the ids are held as pending
// until Commit or Release. If any id is pending in another request, nothing
// is reserved and wait is closed once that request finishes: a retry racing
// its own original must not be called a duplicate before the original is
// durable, or a failed original would leave the event acknowledged but lost.
func (d *Deduper) TryReserve(ids []string, now int64) (dup []bool, wait <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(now)
	for _, id := range ids {
		if s, ok := d.seen[id]; ok && s.pending && id != "" {
			return nil, d.changed
		}
	}
	return d.reserve(ids, now, true), nil
}

// Commit marks pending ids as durable.
func (d *Deduper) Commit(ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		if s, ok := d.seen[id]; ok {
			s.pending = false
			d.seen[id] = s
		}
	}
	d.wake()
}

func (d *Deduper) wake() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// Reserve marks ids as seen and reports which were already seen (within the
// batch too). Empty ids are never duplicates. Reserve is atomic, so two
// concurrent retries of the same id cannot both pass.
func (d *Deduper) Reserve(ids []string, now int64) (dup []bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(now)
	return d.reserve(ids, now, false)
}

func (d *Deduper) reserve(ids []string, now int64, pending bool) (dup []bool) {
	dup = make([]bool, len(ids))
	for i, id := range ids {
		if id == "" {
			continue
		}
		if _, ok := d.seen[id]; ok {
			dup[i] = true
			continue
		}
		d.insert(id, now, pending)
	}
	return dup
}

// Release forgets ids whose append failed, so the client's retry is accepted.
func (d *Deduper) Release(ids []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		delete(d.seen, id) // its ring slot is skipped on eviction
	}
	d.wake()
}

// Len is the number of ids remembered.
func (d *Deduper) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

func (d *Deduper) insert(id string, now int64, pending bool) {
	if d.size == len(d.order) {
		d.evictOldest()
	}
	d.order[(d.head+d.size)%len(d.order)] = id
	d.seen[id] = seenAt{ms: now, pos: d.evicted + uint64(d.size), pending: pending}
	d.size++
}

func (d *Deduper) evictOldest() {
	id := d.order[d.head]
	if s, ok := d.seen[id]; ok && s.pos == d.evicted {
		delete(d.seen, id)
	}
	d.order[d.head] = ""
	d.head = (d.head + 1) % len(d.order)
	d.size--
	d.evicted++
}

func (d *Deduper) expire(now int64) {
	for d.size > 0 {
		s, ok := d.seen[d.order[d.head]]
		if ok && s.pos == d.evicted && (d.maxAge <= 0 || now-s.ms <= d.maxAge) {
			return
		}
		d.evictOldest()
	}
}
