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
}

type seenAt struct {
	ms  int64  // time seen (unix ms)
	pos uint64 // absolute ring position of the id's live slot
}

// NewDeduper keeps at most maxIDs ids, none older than maxAge.
func NewDeduper(maxIDs int, maxAge time.Duration) *Deduper {
	if maxIDs <= 0 {
		maxIDs = 1
	}
	return &Deduper{seen: make(map[string]seenAt, min(maxIDs, 1<<16)), order: make([]string, maxIDs), maxAge: maxAge.Milliseconds()}
}

// Reserve marks ids as seen and reports which were already seen (within the
// batch too). Empty ids are never duplicates. Reserve is atomic, so two
// concurrent retries of the same id cannot both pass.
func (d *Deduper) Reserve(ids []string, now int64) (dup []bool) {
	dup = make([]bool, len(ids))
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire(now)
	for i, id := range ids {
		if id == "" {
			continue
		}
		if _, ok := d.seen[id]; ok {
			dup[i] = true
			continue
		}
		d.insert(id, now)
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
}

// Len is the number of ids remembered.
func (d *Deduper) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.seen)
}

func (d *Deduper) insert(id string, now int64) {
	if d.size == len(d.order) {
		d.evictOldest()
	}
	d.order[(d.head+d.size)%len(d.order)] = id
	d.seen[id] = seenAt{ms: now, pos: d.evicted + uint64(d.size)}
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
