package resilience

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLevel(t *testing.T) {
	tests := []struct {
		a, b, worst Level
	}{
		{Healthy, Healthy, Healthy},
		{Healthy, Stale, Stale},
		{Stale, Healthy, Stale},
		{Stale, Degraded, Degraded},
		{Degraded, Healthy, Degraded},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.worst, Worst(tt.a, tt.b), "Worst(%v, %v)", tt.a, tt.b)
	}
	for l, want := range map[Level]string{Healthy: "healthy", Stale: "stale", Degraded: "degraded", 9: "Level(9)"} {
		assert.Equal(t, want, l.String())
	}
	out, err := json.Marshal(map[string]Level{"degradation": Stale})
	require.NoError(t, err)
	assert.JSONEq(t, `{"degradation":"stale"}`, string(out))
}

func TestTracker(t *testing.T) {
	tests := []struct {
		name  string
		notes []Level
		want  Level
	}{
		{"nothing noted", nil, Healthy},
		{"all healthy", []Level{Healthy, Healthy}, Healthy},
		{"worst wins", []Level{Stale, Degraded, Healthy}, Degraded},
		{"never improves", []Level{Stale, Healthy}, Stale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr Tracker
			for _, l := range tt.notes {
				tr.Note(l)
			}
			assert.Equal(t, tt.want, tr.Level())
		})
	}
}

// Concurrent reads of one request note levels at once (run with -race).
func TestTrackerConcurrent(t *testing.T) {
	var tr Tracker
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() { tr.Note(Level(i % 3)) })
	}
	wg.Wait()
	assert.Equal(t, Degraded, tr.Level())
}
