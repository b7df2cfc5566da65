package feedback

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTracker(t *testing.T, opts Options) (*Tracker, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	tr := New(opts, prometheus.NewRegistry())
	tr.now = c.now
	return tr, c
}

func ev(user, item, typ string) event.Interaction {
	return event.Interaction{User: user, Item: item, Type: typ}
}

func modelOf(r Report, name string) ModelReport {
	for _, m := range r.Models {
		if m.Model == name {
			return m
		}
	}
	return ModelReport{}
}

func TestAttribution(t *testing.T) {
	tr, c := newTracker(t, Options{Window: time.Minute})
	tr.Served("u", "blend@3", []string{"a", "b", "c", "d", "e", "f"}, nil)
	c.t = c.t.Add(10 * time.Second)
	tr.Observe([]event.Interaction{
		ev("u", "b", "click"),    // position 2
		ev("u", "b", "click"),    // a retry: counted once
		ev("u", "b", "purchase"), // another type: counted
		ev("u", "f", "view"),     // not an engagement type
		ev("u", "zz", "click"),   // not shown
		ev("v", "a", "click"),    // not shown to v
	})
	c.t = c.t.Add(2 * time.Minute)
	tr.Observe([]event.Interaction{ev("u", "a", "click")}) // past the window
	m := modelOf(tr.Report(), "blend@3")
	assert.Equal(t, 6.0, m.Impressions)
	assert.Equal(t, map[string]float64{"click": 1, "purchase": 1}, m.Engagements)
	assert.Equal(t, 2.0, m.ByPosition[1].Engagements)
	assert.InDelta(t, 2.0/6, m.Rate, 1e-9)
	assert.Equal(t, 1.0, testutil.ToFloat64(tr.m.engaged.WithLabelValues("blend", "2", "click")))
	assert.Equal(t, 1.0, testutil.ToFloat64(tr.m.impressions.WithLabelValues("blend", "6-10")))
}

func TestNewestListGetsCredit(t *testing.T) {
	tr, c := newTracker(t, Options{Window: time.Hour})
	tr.Served("u", "stream-covis-v1", []string{"a", "b"}, nil)
	c.t = c.t.Add(time.Second)
	tr.Served("u", "blend@1", []string{"b", "a"}, nil)
	tr.Observe([]event.Interaction{ev("u", "a", "click")})
	r := tr.Report()
	assert.Equal(t, 1.0, modelOf(r, "blend@1").ByPosition[1].Engagements)
	assert.Empty(t, modelOf(r, "stream-covis-v1").Engagements)
}

func TestForgetAndBounds(t *testing.T) {
	tr, c := newTracker(t, Options{Window: time.Hour, PerUser: 2, MaxUsers: 10})
	tr.Served("u", "m", []string{"a"}, nil)
	tr.Forget("u")
	tr.Observe([]event.Interaction{ev("u", "a", "click")})
	assert.Empty(t, modelOf(tr.Report(), "m").Engagements, "a forgotten user's lists are gone")

	for i := range 3 { // only the last 2 lists are kept
		tr.Served("w", "m", []string{fmt.Sprint("x", i)}, nil)
	}
	tr.Observe([]event.Interaction{ev("w", "x0", "click"), ev("w", "x2", "click")})
	assert.Equal(t, 1.0, modelOf(tr.Report(), "m").Engagements["click"])

	for i := range 25 {
		c.t = c.t.Add(time.Millisecond)
		tr.Served(fmt.Sprint("user", i), "m", []string{"a"}, nil)
	}
	assert.LessOrEqual(t, tr.Users(), 10)
	tr.Observe([]event.Interaction{ev("user24", "a", "click")})
	assert.Equal(t, 2.0, modelOf(tr.Report(), "m").Engagements["click"], "the newest user is kept")
}

func TestPositionBiasIsDividedOut(t *testing.T) {
	tr, _ := newTracker(t, Options{Window: time.Hour, MaxUsers: 1_000_000})
	// Users look at position 1 always and position 2 half as often; both
	// models show equally good items, "low" shows the good ones second.
	for i := range 1000 {
		u := fmt.Sprint("u", i)
		tr.Served(u, "top@1", []string{"good", "other"}, nil)
		if i%10 == 0 {
			tr.Observe([]event.Interaction{ev(u, "good", "click")})
		}
		v := fmt.Sprint("v", i)
		tr.Served(v, "low@1", []string{"other", "good"}, nil)
		if i%20 == 0 {
			tr.Observe([]event.Interaction{ev(v, "good", "click")})
		}
	}
	r := tr.Report()
	require.InDelta(t, 0.5, r.Propensity[1].Value, 1e-9)
	top, low := modelOf(r, "top@1"), modelOf(r, "low@1")
	assert.Greater(t, top.Rate, low.Rate, "raw rates favour the model that shows the item first")
	assert.InDelta(t, top.DebiasedRate, low.DebiasedRate, 1e-9, "debiased rates compare the items, not the positions")
}

func TestFamily(t *testing.T) {
	assert.Equal(t, "blend", family("blend@12"))
	assert.Equal(t, "stream-covis-v1", family("stream-covis-v1"))
}
