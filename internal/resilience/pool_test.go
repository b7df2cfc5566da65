package resilience

import (
	"context"
	"math"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func poolMetric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	return metricValue(t, reg, name, map[string]string{"pool": "p"})
}

func TestPoolBoundsTheWait(t *testing.T) {
	tests := []struct {
		name    string
		maxWait time.Duration
	}{
		{"refuses at once without a wait budget", 0},
		{"refuses after the wait budget", 20 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			p := NewPool(2, tt.maxWait, WithPoolMetrics(NewMetrics(reg), "p"))
			for range 2 {
				_, err := p.Acquire(context.Background())
				require.NoError(t, err)
			}
			// The context only stops a broken pool from hanging the test.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			release, err := p.Acquire(ctx)
			waited := time.Since(start)
			require.NoError(t, ctx.Err(), "Acquire waited past its own budget")
			require.ErrorIs(t, err, ErrPoolExhausted)
			require.NotNil(t, release, "release is a no-op, never nil")
			release()
			assert.Equal(t, 2, p.InUse(), "a refused Acquire holds nothing")
			assert.GreaterOrEqual(t, waited, tt.maxWait)
			assert.Less(t, waited, tt.maxWait+time.Second, "no queueing beyond the budget")
			assert.Equal(t, 1.0, poolMetric(t, reg, "ripple_store_pool_exhausted_total"))
			assert.Equal(t, 2.0, poolMetric(t, reg, "ripple_store_pool_in_use"))
			assert.Equal(t, 2.0, poolMetric(t, reg, "ripple_store_pool_size"))
			assert.Equal(t, 2.0, poolMetric(t, reg, "ripple_store_pool_wait_seconds"), "one observation per granted slot")
		})
	}
}

func TestPoolReleaseFrees(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := NewPool(1, time.Second, WithPoolMetrics(NewMetrics(reg), "p"))
	release, err := p.Acquire(context.Background())
	require.NoError(t, err)

	got := make(chan error)
	go func() {
		r, err := p.Acquire(context.Background()) // waits for the slot
		if err == nil {
			r()
		}
		got <- err
	}()
	time.Sleep(10 * time.Millisecond)
	release()
	release() // a second release must not free a slot someone else holds
	select {
	case err := <-got:
		require.NoError(t, err, "the waiter gets the freed slot")
	case <-time.After(5 * time.Second):
		t.Fatal("waiter was not woken by release")
	}
	assert.Equal(t, 0, p.InUse())
	assert.Equal(t, 0.0, poolMetric(t, reg, "ripple_store_pool_in_use"))
}

func TestPoolDoubleReleaseFreesOnce(t *testing.T) {
	p := NewPool(2, 0)
	r1, err := p.Acquire(context.Background())
	require.NoError(t, err)
	_, err = p.Acquire(context.Background())
	require.NoError(t, err)
	r1()
	r1()
	assert.Equal(t, 1, p.InUse())
	_, err = p.Acquire(context.Background())
	require.NoError(t, err)
	_, err = p.Acquire(context.Background())
	assert.ErrorIs(t, err, ErrPoolExhausted, "double release must not have created a slot")
}

func TestPoolContextEndsTheWait(t *testing.T) {
	p := NewPool(1, time.Hour)
	_, err := p.Acquire(context.Background())
	require.NoError(t, err)

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	short, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	tests := []struct {
		name  string
		ctx   context.Context
		cause error
	}{
		{"already canceled", canceled, context.Canceled},
		{"deadline while waiting", short, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			_, err := p.Acquire(tt.ctx)
			assert.ErrorIs(t, err, ErrPoolExhausted)
			assert.ErrorIs(t, err, tt.cause)
			assert.Less(t, time.Since(start), time.Second)
		})
	}
	// A canceled context is refused even when a slot is free.
	free := NewPool(1, 0)
	_, err = free.Acquire(canceled)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, free.InUse())
}

// Waiters that give up leave nothing behind: no goroutine, no timer, no slot.
func TestPoolNoLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	p := NewPool(4, 5*time.Millisecond)
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			release, err := p.Acquire(context.Background())
			if err == nil {
				time.Sleep(time.Millisecond)
				release()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 0, p.InUse())
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	assert.LessOrEqual(t, runtime.NumGoroutine(), before)
}

// Under contention the pool never lets more than size callers in at once.
func TestPoolNeverOversubscribes(t *testing.T) {
	const size = 3
	p := NewPool(size, 50*time.Millisecond)
	var mu sync.Mutex
	in, peak := 0, 0
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 20 {
				release, err := p.Acquire(context.Background())
				if err != nil {
					continue
				}
				mu.Lock()
				in++
				peak = max(peak, in)
				mu.Unlock()
				runtime.Gosched()
				mu.Lock()
				in--
				mu.Unlock()
				release()
			}
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, peak, size)
	assert.Positive(t, peak)
}

func TestNewPoolSizeAtLeastOne(t *testing.T) {
	assert.Equal(t, 1, NewPool(0, 0).Size())
	assert.Equal(t, 1, NewPool(-3, 0).Size())
	assert.Equal(t, 7, NewPool(7, 0).Size())
}

func TestPoolSize(t *testing.T) {
	tests := []struct {
		rps     float64
		latency time.Duration
		safety  float64
		want    int
	}{
		{4000, 2 * time.Millisecond, 2, 16},    // Little's law × safety
		{300, 35 * time.Millisecond, 2, 21},    // float gives 21.000000000000004: not rounded up to 22
		{1000, 50 * time.Millisecond, 1.1, 55}, // float gives 55.00000000000001
		{4000, 2 * time.Millisecond, 1, 8},     // Little's law alone
		{1000, 3 * time.Millisecond, 1.5, 5},   // 4.5 rounds up
		{10000, time.Millisecond, 3, 30},
		{100, time.Millisecond, 2, 1},          // 0.2 rounds up to 1
		{1000, 10 * time.Millisecond, 0.5, 10}, // safety below 1 counts as 1
		{1000, 10 * time.Millisecond, math.NaN(), 10},
		{0, time.Second, 2, 1},
		{-5, time.Second, 2, 1},
		{math.NaN(), time.Second, 2, 1},
		{math.Inf(1), time.Second, 2, math.MaxInt32},
	}
	for _, tt := range tests {
		got := PoolSize(tt.rps, tt.latency, tt.safety)
		assert.Equal(t, tt.want, got, "PoolSize(%v, %v, %v)", tt.rps, tt.latency, tt.safety)
	}
}

func BenchmarkPoolAcquire(b *testing.B) {
	p := NewPool(64, time.Millisecond, WithPoolMetrics(NewMetrics(nil), "p"))
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, err := p.Acquire(ctx)
			if err != nil {
				b.Error(err)
				return
			}
			release()
		}
	})
}
