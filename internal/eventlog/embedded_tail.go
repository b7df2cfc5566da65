package eventlog

import (
	"math"
	"sync"
)

// tailCache holds the newest committed records so that consumers tailing the
// log right behind the writer never touch Pebble. Records live in per-batch
// arenas that are never written after publication, so a reader may keep a
// slice after releasing the lock: eviction only drops the reference.
type tailCache struct {
	mu       sync.RWMutex
	recs     [][]byte // ring: offset o lives at recs[o%len(recs)]
	first    uint64   // oldest cached offset
	end      uint64   // one past the newest cached offset
	bytes    int64
	maxBytes int64
}

func newTailCache(records int, maxBytes int64, end uint64) *tailCache {
	t := &tailCache{first: end, end: end, maxBytes: maxBytes}
	if records > 0 && maxBytes > 0 {
		t.recs = make([][]byte, records)
	}
	return t
}

// add caches the records of a committed batch, which must start at t.end.
func (t *tailCache) add(first uint64, reqs []*appendReq) {
	if len(t.recs) == 0 {
		return
	}
	var n, size int
	for _, r := range reqs {
		n += len(r.payloads)
	}
	// Only the last len(t.recs) records of a huge batch can stay cached.
	skip := max(0, n-len(t.recs))
	i := 0
	for _, r := range reqs {
		for _, p := range r.payloads {
			if i >= skip {
				size += len(p)
			}
			i++
		}
	}
	arena := make([]byte, 0, size)

	t.mu.Lock()
	defer t.mu.Unlock()
	if skip > 0 {
		// The batch replaces the whole ring; what it skips is never cached.
		t.evict(t.end)
		t.first, t.end = first+uint64(skip), first+uint64(skip)
	}
	i = 0
	for _, r := range reqs {
		for _, p := range r.payloads {
			if i++; i <= skip {
				continue
			}
			if t.end-t.first == uint64(len(t.recs)) {
				t.evict(t.first + 1)
			}
			arena = append(arena, p...)
			t.recs[t.end%uint64(len(t.recs))] = arena[len(arena)-len(p) : len(arena) : len(arena)]
			t.bytes += int64(len(p))
			t.end++
		}
	}
	for t.bytes > t.maxBytes && t.first < t.end {
		t.evict(t.first + 1)
	}
}

// evict drops cached records below upTo. Callers hold t.mu.
func (t *tailCache) evict(upTo uint64) {
	for ; t.first < upTo && t.first < t.end; t.first++ {
		i := t.first % uint64(len(t.recs))
		t.bytes -= int64(len(t.recs[i]))
		t.recs[i] = nil
	}
	if t.first < upTo {
		t.first = upTo
	}
}

// read fills dst with the cached records starting at from. It returns false
// when from is not cached; dst must not reach past the log's durable end.
func (t *tailCache) read(from uint64, dst [][]byte) (int, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if from < t.first || from >= t.end {
		return 0, false
	}
	n := min(uint64(len(dst)), t.end-from)
	for i := range n {
		dst[i] = t.recs[(from+i)%uint64(len(t.recs))]
	}
	return int(n), true
}

// oldest is the first offset the cache can serve.
func (t *tailCache) oldest() uint64 {
	if len(t.recs) == 0 {
		return math.MaxUint64
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.first
}

// clear drops every cached record (after a redaction: the cache must not
// serve what the store no longer holds).
func (t *tailCache) clear() {
	if len(t.recs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.evict(t.end)
}
