package event

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// dedupStep is one call on a Deduper: Reserve (want set) or Release.
type dedupStep struct {
	at      int64
	reserve []string
	want    []bool
	release []string
}

func TestDeduper(t *testing.T) {
	F, T := false, true
	tests := []struct {
		name   string
		maxIDs int
		maxAge time.Duration
		steps  []dedupStep
		len    int
	}{
		{
			name: "duplicates within a batch", maxIDs: 10, maxAge: time.Hour,
			steps: []dedupStep{{reserve: []string{"a", "b", "a", "c", "b"}, want: []bool{F, F, T, F, T}}},
			len:   3,
		},
		{
			name: "empty ids are never duplicates", maxIDs: 10, maxAge: time.Hour,
			steps: []dedupStep{
				{reserve: []string{"", "", "a"}, want: []bool{F, F, F}},
				{reserve: []string{"", "a"}, want: []bool{F, T}},
			},
			len: 1,
		},
		{
			name: "duplicates across calls", maxIDs: 10, maxAge: time.Hour,
			steps: []dedupStep{
				{at: 1, reserve: []string{"a", "b"}, want: []bool{F, F}},
				{at: 2, reserve: []string{"c", "a"}, want: []bool{F, T}},
				{at: 3, reserve: []string{"b", "c", "d"}, want: []bool{T, T, F}},
			},
			len: 4,
		},
		{
			name: "release lets a retry through, once", maxIDs: 10, maxAge: time.Hour,
			steps: []dedupStep{
				{at: 1, reserve: []string{"a", "b"}, want: []bool{F, F}},
				{release: []string{"a"}},
				{at: 2, reserve: []string{"a", "b"}, want: []bool{F, T}},
				{at: 3, reserve: []string{"a"}, want: []bool{T}},
			},
			len: 2,
		},
		{
			name: "release of unknown ids is harmless", maxIDs: 10, maxAge: time.Hour,
			steps: []dedupStep{
				{release: []string{"x", ""}},
				{reserve: []string{"x"}, want: []bool{F}},
				{reserve: []string{"x"}, want: []bool{T}},
			},
			len: 1,
		},
		{
			name: "eviction by count, oldest first", maxIDs: 3, maxAge: time.Hour,
			steps: []dedupStep{
				{at: 1, reserve: []string{"a", "b", "c"}, want: []bool{F, F, F}},
				{at: 2, reserve: []string{"d"}, want: []bool{F}},                 // evicts a
				{at: 3, reserve: []string{"b", "c", "d"}, want: []bool{T, T, T}}, // all still there
				{at: 4, reserve: []string{"a"}, want: []bool{F}},                 // a forgotten; evicts b
				{at: 5, reserve: []string{"c", "d", "a", "b"}, want: []bool{T, T, T, F}},
			},
			len: 3,
		},
		{
			name: "eviction by count within one batch", maxIDs: 2, maxAge: time.Hour,
			steps: []dedupStep{
				{reserve: []string{"a", "b", "c", "a"}, want: []bool{F, F, F, F}},
			},
			len: 2,
		},
		{
			name: "eviction by age", maxIDs: 100, maxAge: time.Second,
			steps: []dedupStep{
				{at: 0, reserve: []string{"a"}, want: []bool{F}},
				{at: 500, reserve: []string{"b"}, want: []bool{F}},
				{at: 1000, reserve: []string{"a", "b"}, want: []bool{T, T}}, // exactly maxAge old: kept
				{at: 1001, reserve: []string{"c"}, want: []bool{F}},         // a expires now
				{at: 1001, reserve: []string{"a", "b"}, want: []bool{F, T}},
				{at: 1501, reserve: []string{"b"}, want: []bool{F}},
			},
			len: 3,
		},
		{
			name: "zero max age keeps ids until count eviction", maxIDs: 2, maxAge: 0,
			steps: []dedupStep{
				{at: 0, reserve: []string{"a"}, want: []bool{F}},
				{at: 1 << 50, reserve: []string{"a"}, want: []bool{T}},
			},
			len: 1,
		},
		{
			name: "non-positive maxIDs keeps one", maxIDs: 0, maxAge: time.Hour,
			steps: []dedupStep{
				{reserve: []string{"a"}, want: []bool{F}},
				{reserve: []string{"a"}, want: []bool{T}},
				{reserve: []string{"b", "a"}, want: []bool{F, F}},
			},
			len: 1,
		},
		{
			// The released id's old ring slot must not evict its new entry.
			name: "count eviction after release and retry", maxIDs: 3, maxAge: time.Hour,
			steps: []dedupStep{
				{at: 0, reserve: []string{"z", "a"}, want: []bool{F, F}},
				{release: []string{"a"}},
				{at: 1, reserve: []string{"a"}, want: []bool{F}},
				{at: 2, reserve: []string{"b"}, want: []bool{F}}, // evicts z
				{at: 3, reserve: []string{"c"}, want: []bool{F}}, // frees a's released slot
				{at: 4, reserve: []string{"a", "b", "c"}, want: []bool{T, T, T}},
				{at: 5, reserve: []string{"z"}, want: []bool{F}},
			},
			len: 3,
		},
		{
			// A released slot at the head must not shield older ids from expiry.
			name: "age eviction after release and retry", maxIDs: 10, maxAge: 10 * time.Millisecond,
			steps: []dedupStep{
				{at: 0, reserve: []string{"w", "x"}, want: []bool{F, F}},
				{release: []string{"x"}},
				{at: 1, reserve: []string{"y"}, want: []bool{F}},
				{at: 5, reserve: []string{"x"}, want: []bool{F}},
				{at: 12, reserve: []string{"y", "x", "w"}, want: []bool{F, T, F}}, // y is 11ms old, x 7ms
			},
			len: 3,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewDeduper(tc.maxIDs, tc.maxAge)
			for i, s := range tc.steps {
				if s.release != nil {
					d.Release(s.release)
					continue
				}
				if got := d.Reserve(s.reserve, s.at); !reflect.DeepEqual(got, s.want) {
					t.Fatalf("step %d: Reserve(%q, %d) = %v, want %v", i, s.reserve, s.at, got, s.want)
				}
			}
			if d.Len() != tc.len {
				t.Fatalf("Len = %d, want %d", d.Len(), tc.len)
			}
		})
	}
}

// Under churn with releases, the Deduper never holds more than maxIDs ids
// and always remembers the most recent reservation of each id it holds.
func TestDeduperChurn(t *testing.T) {
	const maxIDs = 16
	d := NewDeduper(maxIDs, time.Hour)
	for i := 0; i < 10_000; i++ {
		id := fmt.Sprint(i % 40)
		dup := d.Reserve([]string{id}, int64(i))
		if i%3 == 0 && !dup[0] {
			d.Release([]string{id})
		}
		if n := d.Len(); n > maxIDs {
			t.Fatalf("step %d: %d ids remembered, limit %d", i, n, maxIDs)
		}
	}
}

func TestDeduperConcurrentRetries(t *testing.T) {
	d := NewDeduper(1000, time.Hour)
	var wg sync.WaitGroup
	var winners [100]atomic.Int32
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]string, 100)
			for i := range ids {
				ids[i] = fmt.Sprint("id-", i)
			}
			for i, dup := range d.Reserve(ids, 1) {
				if !dup {
					winners[i].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	for i := range winners {
		if n := winners[i].Load(); n != 1 {
			t.Fatalf("id-%d passed %d times, want exactly once", i, n)
		}
	}
}

func TestDeduperPendingRetryWaitsForOriginal(t *testing.T) {
	d := NewDeduper(100, time.Hour)
	dup, wait := d.TryReserve([]string{"a", "b", "a"}, 1)
	if wait != nil || !reflect.DeepEqual(dup, []bool{false, false, true}) {
		t.Fatalf("first reserve: dup=%v wait=%v", dup, wait)
	}
	// A retry while the original is in flight must not be called a duplicate.
	dup, wait = d.TryReserve([]string{"c", "a"}, 2)
	if wait == nil || dup != nil {
		t.Fatalf("retry of a pending id: dup=%v, want a wait channel", dup)
	}
	if d.Len() != 2 {
		t.Fatalf("a waiting retry must reserve nothing, have %d ids", d.Len())
	}
	// The original fails: the retry is woken and now owns the ids.
	d.Release([]string{"a", "b"})
	select {
	case <-wait:
	default:
		t.Fatal("Release must wake waiters")
	}
	dup, wait = d.TryReserve([]string{"c", "a"}, 3)
	if wait != nil || !reflect.DeepEqual(dup, []bool{false, false}) {
		t.Fatalf("after release: dup=%v wait=%v", dup, wait)
	}
	// The second original succeeds: later retries are duplicates.
	_, wait = d.TryReserve([]string{"a"}, 4)
	if wait == nil {
		t.Fatal("a is pending again")
	}
	d.Commit([]string{"c", "a"})
	<-wait
	dup, wait = d.TryReserve([]string{"a", "c", "d"}, 5)
	if wait != nil || !reflect.DeepEqual(dup, []bool{true, true, false}) {
		t.Fatalf("after commit: dup=%v wait=%v", dup, wait)
	}
}
