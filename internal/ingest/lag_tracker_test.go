package ingest

import (
	"testing"
	"time"
)

// TestLagTracker: the seconds estimate is a lower bound on the age of the
// oldest unapplied record, from when samples first saw it.
func TestLagTracker(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	type step struct {
		after   time.Duration // since t0
		applied uint64
		b       *Backlog // nil: the broker did not answer
		want    float64
		known   bool
	}
	backlog := func(records, newest uint64) *Backlog { return &Backlog{Records: records, Newest: newest} }
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"caught up", []step{
			{0, 10, backlog(0, 10), 0, true},
			{time.Second, 10, backlog(0, 10), 0, true},
		}},
		{"empty partition", []step{{0, 0, backlog(0, 0), 0, true}}},
		{"a stuck applier ages from the first sighting", []step{
			{0, 5, backlog(5, 10), 0, true},
			{time.Second, 5, backlog(7, 12), 1, true},
			{2 * time.Second, 5, backlog(7, 12), 2, true},
			// Past the first sighting, not the second: offsets 11 and 12
			// were first seen at 1s.
			{3 * time.Second, 10, backlog(2, 12), 2, true},
			{4 * time.Second, 12, backlog(0, 12), 0, true},
		}},
		{"steady flow applied between samples is fresh", []step{
			{0, 100, backlog(3, 103), 0, true},
			{time.Second, 103, backlog(4, 107), 0, true},
			{2 * time.Second, 107, backlog(2, 109), 0, true},
		}},
		{"a quiet partition's new record is new, not as old as the last applied one", []step{
			{0, 100, backlog(0, 100), 0, true},
			{time.Hour, 100, backlog(1, 101), 0, true},
			{time.Hour + time.Second, 100, backlog(1, 101), 1, true},
		}},
		{"records applied while the broker answered are not lag", []step{
			{0, 12, backlog(2, 12), 0, true},
			{time.Second, 12, backlog(2, 12), 0, true},
		}},
		{"broker silent: known sightings keep ageing", []step{
			{0, 5, backlog(5, 10), 0, true},
			{3 * time.Second, 5, nil, 3, true},
			{4 * time.Second, 10, nil, 0, false},
		}},
		{"broker silent from the start", []step{{0, 5, nil, 0, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := lagTracker{sightings: make([][]sighting, 1)}
			for i, s := range tc.steps {
				got, known := tr.observe(0, s.applied, s.b, t0.Add(s.after))
				if got != s.want || known != s.known {
					t.Fatalf("step %d: observe = %v, %v; want %v, %v", i, got, known, s.want, s.known)
				}
			}
		})
	}
}

// TestLagTrackerBounded: a lag that grows for long keeps a bounded number
// of sightings, and still counts from the first.
func TestLagTrackerBounded(t *testing.T) {
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	tr := lagTracker{sightings: make([][]sighting, 1)}
	for i := range 10 * maxSightings {
		got, _ := tr.observe(0, 0, &Backlog{Records: uint64(i + 1), Newest: uint64(i + 1)}, t0.Add(time.Duration(i)*time.Second))
		if want := float64(i); got != want {
			t.Fatalf("sample %d: %v seconds, want %v", i, got, want)
		}
		if n := len(tr.sightings[0]); n > maxSightings {
			t.Fatalf("sample %d: %d sightings kept", i, n)
		}
	}
	// Applying a prefix moves the estimate to a later sighting, never to
	// an earlier time than the truth.
	got, _ := tr.observe(0, 5*maxSightings, &Backlog{Records: 1, Newest: 10 * maxSightings}, t0.Add(10*maxSightings*time.Second))
	if truth := float64(5 * maxSightings); got > truth || got < truth-float64(maxSightings) {
		t.Fatalf("after applying half: %v seconds, truth %v", got, truth)
	}
}
