package resilience

import (
	"fmt"
	"sync/atomic"
)

// Level is how degraded a response is. Larger is worse, so the level of a
// response is the maximum over the reads that built it.
type Level uint8

const (
	// Healthy: every read was answered fresh by its source.
	Healthy Level = iota
	// Stale: some value came from a cache or snapshot older than its freshness target.
	Stale
	// Degraded: some value is a typed default, served because of a miss, a
	// timeout or an open breaker.
	Degraded
)

// String returns the wire name used in API responses.
func (l Level) String() string {
	switch l {
	case Healthy:
		return "healthy"
	case Stale:
		return "stale"
	case Degraded:
		return "degraded"
	}
	return fmt.Sprintf("Level(%d)", uint8(l))
}

// MarshalText lets a Level appear in JSON as its wire name.
func (l Level) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// Worst returns the more degraded of a and b.
func Worst(a, b Level) Level { return max(a, b) }

// Tracker collects the worst Level seen by the reads of one request. Reads
// may run concurrently (fan-out to several stores), so Note is safe for
// concurrent use. The zero value is ready and reports Healthy.
type Tracker struct {
	v atomic.Uint32
}

// Note records that a read was served at level l.
func (t *Tracker) Note(l Level) {
	for {
		cur := t.v.Load()
		if uint32(l) <= cur || t.v.CompareAndSwap(cur, uint32(l)) {
			return
		}
	}
}

// Level returns the worst level noted so far.
func (t *Tracker) Level() Level { return Level(t.v.Load()) }
