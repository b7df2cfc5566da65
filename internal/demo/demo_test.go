package demo

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
)

func TestGenerateIsDeterministicAndValid(t *testing.T) {
	end := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	o := DefaultOptions(end)
	a, b := Generate(o), Generate(o)
	require.Equal(t, a, b, "same options, same dataset")
	assert.Len(t, a.Items, o.Items)
	require.Greater(t, len(a.Events), 10*o.Users)

	v := event.NewValidator()
	v.Now = func() time.Time { return end }
	users, items := map[string]int{}, map[string]int{}
	for i := range a.Events {
		e := a.Events[i]
		require.NoError(t, v.Interaction(&e))
		require.LessOrEqual(t, e.TS, end.UnixMilli())
		require.GreaterOrEqual(t, e.TS, end.Add(-o.Span).UnixMilli())
		if i > 0 {
			require.GreaterOrEqual(t, e.TS, a.Events[i-1].TS, "events are sorted by time")
		}
		users[e.User]++
		items[e.Item]++
	}
	// Power-law popularity: the top 1% of items take far more than 1% of events.
	top := 0
	for i := 0; i < o.Items/100; i++ {
		top += items[a.Items[i].ID]
	}
	assert.Greater(t, float64(top)/float64(len(a.Events)), 0.05)
	assert.Len(t, users, o.Users)

	o.Seed++
	assert.NotEqual(t, a.Events[:50], Generate(o).Events[:50], "the seed matters")
}
