package feedback

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/model"
)

// sink keeps examples in memory, or fails.
type sink struct {
	got  []Example
	fail bool
}

func (s *sink) Append(exs []Example) error {
	if s.fail {
		return errors.New("disk full")
	}
	s.got = append(s.got, exs...)
	return nil
}

func vecs(n int, base float64) [][model.NumRankFeatures]float64 {
	out := make([][model.NumRankFeatures]float64, n)
	for i := range out {
		out[i][0], out[i][5] = base+float64(i), 0.05
	}
	return out
}

func TestEngagedListsBecomeExamplesWhenTheyClose(t *testing.T) {
	s := &sink{}
	tr, c := newTracker(t, Options{Window: time.Minute, PerUser: 2, MaxUsers: 100, Examples: s})

	tr.Served("u", "blend@2", []string{"a", "b", "c"}, vecs(3, 10))
	tr.Observe([]event.Interaction{ev("u", "b", "click"), ev("u", "b", "purchase"), ev("u", "c", "view")})
	tr.Served("v", "blend@2", []string{"a", "b"}, vecs(2, 20)) // never engaged: no example
	assert.Empty(t, s.got, "a list stays open for its window: later engagements still count")

	c.t = c.t.Add(2 * time.Minute)
	tr.Served("w", "blend@2", []string{"x"}, vecs(1, 30)) // any call sweeps
	require.Len(t, s.got, 1)
	ex := s.got[0]
	assert.Equal(t, "blend@2", ex.Model)
	assert.Equal(t, time.Unix(1_700_000_000, 0).UnixMilli(), ex.At)
	require.Len(t, ex.Items, 3)
	assert.Equal(t, []float64{0, 3, 0}, []float64{ex.Items[0].Label, ex.Items[1].Label, ex.Items[2].Label},
		"the strongest engagement per position; a view is no engagement")
	assert.Equal(t, 11.0, ex.Items[1].X[0], "the vector served at that position")
	assert.Equal(t, 1.0, testutil.ToFloat64(tr.m.examples))

	// A list pushed out by the user's newer lists closes at once.
	tr.Served("w", "m", []string{"y"}, vecs(1, 40))
	tr.Observe([]event.Interaction{ev("w", "x", "click")})
	tr.Served("w", "m", []string{"z"}, vecs(1, 50))
	require.Len(t, s.got, 2)
	assert.Equal(t, 30.0, s.got[1].Items[0].X[0])

	// Lists served without vectors count in the rates but make no example.
	tr.Served("n", "m", []string{"q"}, nil)
	tr.Observe([]event.Interaction{ev("n", "q", "click")})
	tr.Close()
	assert.Len(t, s.got, 2)
}

func TestErasedUsersListsNeverBecomeExamples(t *testing.T) {
	s := &sink{}
	tr, c := newTracker(t, Options{Window: time.Minute, MaxUsers: 100, Examples: s})
	tr.Served("gone", "m", []string{"a", "b"}, vecs(2, 0))
	tr.Observe([]event.Interaction{ev("gone", "a", "click")})
	tr.Forget("gone")
	c.t = c.t.Add(time.Hour)
	tr.Served("other", "m", []string{"a"}, vecs(1, 0))
	tr.Close()
	assert.Empty(t, s.got)
}

func TestCloseWritesOpenEngagedLists(t *testing.T) {
	s := &sink{}
	tr, _ := newTracker(t, Options{Window: time.Hour, MaxUsers: 100, Examples: s})
	tr.Served("u", "m", []string{"a", "b"}, vecs(2, 0))
	tr.Observe([]event.Interaction{ev("u", "b", "cart")})
	tr.Close()
	require.Len(t, s.got, 1)
	assert.Equal(t, 2.0, s.got[0].Items[1].Label)
}

func TestExampleSinkFailureDropsAndCounts(t *testing.T) {
	s := &sink{fail: true}
	tr, _ := newTracker(t, Options{Window: time.Hour, MaxUsers: 100, Examples: s})
	var errs []error
	tr.OnExampleError(func(err error) { errs = append(errs, err) })
	tr.Served("u", "m", []string{"a"}, vecs(1, 0))
	tr.Observe([]event.Interaction{ev("u", "a", "click")})
	tr.Close()
	assert.Len(t, errs, 1)
	assert.Equal(t, 1.0, testutil.ToFloat64(tr.m.exampleErrors))
	assert.Equal(t, 0.0, testutil.ToFloat64(tr.m.examples))
}

func TestOpenListsAreBounded(t *testing.T) {
	s := &sink{}
	tr, _ := newTracker(t, Options{Window: time.Hour, PerUser: 1, MaxUsers: 5, Examples: s})
	for i := range 100 {
		u := fmt.Sprint("u", i%50)
		tr.Served(u, "m", []string{"a"}, vecs(1, float64(i)))
		tr.Observe([]event.Interaction{ev(u, "a", "click")})
	}
	assert.LessOrEqual(t, len(tr.open), maxOpenFactor*5*1)
	waiting := 0
	for _, l := range tr.open {
		if !l.closed {
			waiting++
		}
	}
	assert.Len(t, s.got, 100-waiting, "every engaged list closed so far was written once")
	tr.Close()
	assert.Len(t, s.got, 100)
}

func example(at int64, label float64) Example {
	return Example{At: at, Model: "blend@1", Items: []Shown{{Label: label, X: [model.NumRankFeatures]float64{float64(at)}}}}
}

func TestExampleLogRoundTripsRotatesAndSkipsTornLines(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "feedback")
	l, err := OpenExampleLog(dir, 1<<20)
	require.NoError(t, err)
	// 1 MiB bound, 128 KiB segments: ~3 MiB of examples leaves the
	// newest ~1 MiB.
	const n = 30_000
	for i := range n {
		require.NoError(t, l.Append([]Example{example(int64(i), 1)}))
	}
	require.NoError(t, l.Close())
	segs, err := segments(dir)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(segs), 8, "older segments dropped beyond the bound")
	var total int64
	for _, s := range segs {
		fi, err := os.Stat(segmentName(dir, s))
		require.NoError(t, err)
		total += fi.Size()
	}
	assert.LessOrEqual(t, total, int64(1<<20+4096))
	assert.Greater(t, total, int64(1<<20-(1<<17)-4096), "all but the oldest segment's worth kept")

	// A crash mid-write leaves a torn last line; reopening appends after it.
	f, err := os.OpenFile(segmentName(dir, segs[len(segs)-1]), os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"at":1,"model":"blend@1","items":[{"lab`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	l, err = OpenExampleLog(dir, 1<<20)
	require.NoError(t, err)
	require.NoError(t, l.Append([]Example{example(n, 3)}))
	require.NoError(t, l.Close())

	var got []Example
	skipped, err := ReadExamples(dir, func(ex *Example) error { got = append(got, *ex); return nil })
	require.NoError(t, err)
	assert.Equal(t, 1, skipped)
	require.NotEmpty(t, got)
	assert.Less(t, len(got), n, "the oldest were dropped")
	for i := 1; i < len(got); i++ {
		require.Equal(t, got[i-1].At+1, got[i].At, "oldest first, none lost between the kept ones")
	}
	assert.Equal(t, example(n, 3), got[len(got)-1])

	skipped, err = ReadExamples(filepath.Join(dir, "absent"), func(*Example) error { return nil })
	assert.NoError(t, err, "no log yet: no examples")
	assert.Zero(t, skipped)
}

func TestExampleLogReportsWriteFailures(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenExampleLog(dir, 1<<20)
	require.NoError(t, err)
	require.NoError(t, l.f.Close()) // the file is gone from under it
	err = l.Append([]Example{example(1, 1)})
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "closed") || errors.Is(err, os.ErrClosed), err.Error())
}

func TestItemStatsSurviveARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "items.ndjson")
	tr, _ := newTracker(t, Options{Window: time.Hour, MaxUsers: 100})
	tr.Served("u", "m", []string{"a", "b"}, nil)
	tr.Served("v", "m", []string{"a"}, nil)
	tr.Observe([]event.Interaction{ev("u", "a", "click")})
	require.NoError(t, tr.SaveItems(path))

	again, _ := newTracker(t, Options{Window: time.Hour, MaxUsers: 100})
	skipped, err := again.LoadItems(path)
	require.NoError(t, err)
	assert.Zero(t, skipped)
	imp, eng := make([]float64, 3), make([]float64, 3)
	again.ItemStats([]string{"a", "b", "c"}, imp, eng)
	assert.Equal(t, []float64{2, 1, 0}, imp)
	assert.Equal(t, []float64{1, 0, 0}, eng)

	// A damaged line is skipped; a missing file holds nothing.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("{\"item\":\"x\",\"impressions\":-1}\n{\"ite")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	skipped, err = again.LoadItems(path)
	require.NoError(t, err)
	assert.Equal(t, 2, skipped)
	skipped, err = again.LoadItems(filepath.Join(t.TempDir(), "absent"))
	assert.NoError(t, err)
	assert.Zero(t, skipped)
	assert.Error(t, tr.SaveItems(filepath.Join(t.TempDir(), "no-such-dir", "items.ndjson")))
}
