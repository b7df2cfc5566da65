package train

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/model"
)

func sliceSource(evs []event.Interaction, reads *atomic.Int32, gate chan struct{}) Source {
	return func(ctx context.Context, fn func(*event.Interaction) error) error {
		reads.Add(1)
		if gate != nil {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		for i := range evs {
			if err := fn(&evs[i]); err != nil {
				return err
			}
		}
		return nil
	}
}

func TestJobRunsOnceForConcurrentCallers(t *testing.T) {
	reg, err := model.OpenRegistry(t.TempDir(), 3)
	require.NoError(t, err)
	var reads atomic.Int32
	gate := make(chan struct{})
	pr := prometheus.NewRegistry()
	j, err := NewJob(sliceSource(randomLog(100, 30, 6, 5), &reads, gate), reg, DefaultConfig(), nil, nil, pr)
	require.NoError(t, err)
	defer j.Close()
	assert.True(t, j.Start())
	assert.False(t, j.Start(), "one run at a time")
	var wg sync.WaitGroup
	reps := make([]*Report, 3)
	for i := range reps {
		wg.Go(func() {
			r, err := j.Run(context.Background())
			assert.NoError(t, err)
			reps[i] = r
		})
	}
	close(gate)
	wg.Wait()
	assert.Equal(t, int32(1), reads.Load(), "callers joined the running run")
	for _, r := range reps {
		assert.Equal(t, "blend@1", r.Model)
	}
	assert.Equal(t, "blend@1", reg.Current().Name)
	assert.Equal(t, 1.0, testutil.ToFloat64(j.m.runs.WithLabelValues("ok")))
	assert.Equal(t, 1.0, testutil.ToFloat64(j.m.version))
}

func TestJobFailuresKeepServingVersion(t *testing.T) {
	reg, err := model.OpenRegistry(t.TempDir(), 3)
	require.NoError(t, err)
	var reads atomic.Int32
	j, err := NewJob(sliceSource(randomLog(100, 30, 6, 5), &reads, nil), reg, DefaultConfig(), nil, nil, nil)
	require.NoError(t, err)
	_, err = j.Run(context.Background())
	require.NoError(t, err)
	j.Close()

	boom := errors.New("log unreadable")
	j2, err := NewJob(func(context.Context, func(*event.Interaction) error) error { return boom }, reg, DefaultConfig(), nil, nil, nil)
	require.NoError(t, err)
	_, err = j2.Run(context.Background())
	assert.ErrorIs(t, err, boom)
	assert.Equal(t, "blend@1", reg.Current().Name, "a failed run leaves the serving version")
	j2.Close()
	_, err = j2.Run(context.Background())
	assert.ErrorIs(t, err, ErrClosed)
}

func TestJobCloseStopsRunWithoutPromoting(t *testing.T) {
	reg, err := model.OpenRegistry(t.TempDir(), 3)
	require.NoError(t, err)
	var reads atomic.Int32
	gate := make(chan struct{}) // never opened: the run blocks in its source
	j, err := NewJob(sliceSource(randomLog(50, 20, 5, 2), &reads, gate), reg, DefaultConfig(), nil, nil, nil)
	require.NoError(t, err)
	require.True(t, j.Start())
	j.Close()
	assert.Nil(t, reg.Current())
	assert.False(t, j.Running())
}
