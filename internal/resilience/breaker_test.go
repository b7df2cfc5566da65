package resilience

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clock is a manual clock for windows and cool-downs.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

var errBoom = errors.New("boom")

func ok(context.Context) error   { return nil }
func fail(context.Context) error { return errBoom }

// metricValue reads one sample from reg: a counter's or gauge's value, or
// a histogram's sample count.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			return value(m)
		}
	}
	return 0
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

func calls(t *testing.T, reg *prometheus.Registry, result string) float64 {
	return metricValue(t, reg, "ripple_breaker_calls_total", map[string]string{"breaker": "b", "result": result})
}

func TestBreakerTrips(t *testing.T) {
	const sec = time.Second
	// Each step is: advance the clock, then make one call.
	type step struct {
		advance time.Duration
		fail    bool
	}
	steps := func(pattern string, gap time.Duration) []step {
		var s []step
		for _, c := range pattern {
			s = append(s, step{gap, c == 'F'})
		}
		return s
	}
	tests := []struct {
		name  string
		cfg   BreakerConfig
		steps []step
		want  State
	}{
		{"one short of max failures", BreakerConfig{MaxFailures: 3}, steps("FF", 0), StateClosed},
		{"max failures opens", BreakerConfig{MaxFailures: 3}, steps("FFF", 0), StateOpen},
		{"successes between failures do not reset the count", BreakerConfig{MaxFailures: 3}, steps("FSFSSF", 0), StateOpen},
		{"default is five failures", BreakerConfig{}, steps("FFFF", 0), StateClosed},
		{"default five failures opens", BreakerConfig{}, steps("FFFFF", 0), StateOpen},
		{"failures older than the window roll out", BreakerConfig{MaxFailures: 3, Window: 10 * sec}, steps("FFF", 6*sec), StateClosed},
		{"failures inside the window add up", BreakerConfig{MaxFailures: 3, Window: 10 * sec}, steps("FFF", 4*sec), StateOpen},
		{"ratio needs min calls", BreakerConfig{FailureRatio: 0.5, MinCalls: 10}, steps("FFFFFFFFF", 0), StateClosed},
		{"ratio reached at min calls", BreakerConfig{FailureRatio: 0.5, MinCalls: 10}, steps("SSSSSFFFFF", 0), StateOpen},
		{"ratio below threshold", BreakerConfig{FailureRatio: 0.5, MinCalls: 10}, steps("SSSSSSFFFF", 0), StateClosed},
		{"ratio ignores max failures", BreakerConfig{FailureRatio: 0.9, MinCalls: 4, MaxFailures: 1}, steps("SSFF", 0), StateClosed},
		{"old successes roll out of the ratio", BreakerConfig{FailureRatio: 0.5, MinCalls: 4, Window: 10 * sec}, steps("SSSSSSSSSSFFFF", 2*sec), StateOpen},
		{"same calls inside one window", BreakerConfig{FailureRatio: 0.5, MinCalls: 4, Window: 10 * sec}, steps("SSSSSSSSSSFFFF", 0), StateClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			tt.cfg.Now = clk.Now
			b := NewBreaker(tt.cfg)
			for _, s := range tt.steps {
				clk.Advance(s.advance)
				fn := ok
				if s.fail {
					fn = fail
				}
				_ = b.Do(context.Background(), fn)
			}
			assert.Equal(t, tt.want, b.State())
		})
	}
}

func TestBreakerRejectsWhileOpen(t *testing.T) {
	reg := prometheus.NewRegistry()
	clk := newClock()
	b := NewBreaker(BreakerConfig{Name: "b", MaxFailures: 1, CoolDown: time.Second, Now: clk.Now, Metrics: NewMetrics(reg)})
	require.ErrorIs(t, b.Do(context.Background(), fail), errBoom)
	require.Equal(t, StateOpen, b.State())

	var called atomic.Int32
	for range 5 {
		clk.Advance(100 * time.Millisecond)
		err := b.Do(context.Background(), func(context.Context) error { called.Add(1); return nil })
		require.ErrorIs(t, err, ErrOpen)
		assert.Contains(t, err.Error(), `"b"`)
	}
	assert.Zero(t, called.Load(), "fn must not run while open")
	assert.Equal(t, 5.0, calls(t, reg, "rejected"))
	assert.Equal(t, 1.0, calls(t, reg, "failure"))
	assert.Equal(t, 2.0, metricValue(t, reg, "ripple_breaker_state", map[string]string{"breaker": "b"}))
}

func TestBreakerHalfOpen(t *testing.T) {
	const coolDown = 5 * time.Second
	tests := []struct {
		name  string
		probe func(context.Context) error
		want  State
	}{
		{"probe success closes", ok, StateClosed},
		{"probe failure reopens", fail, StateOpen},
		{"probe timeout reopens", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, StateOpen},
		{"probe error that is not a failure closes", func(context.Context) error { return errNil }, StateClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newClock()
			b := NewBreaker(BreakerConfig{MaxFailures: 1, CoolDown: coolDown, Timeout: 5 * time.Millisecond,
				Now: clk.Now, IsFailure: func(err error) bool { return !errors.Is(err, errNil) }})
			_ = b.Do(context.Background(), fail)
			require.Equal(t, StateOpen, b.State())

			clk.Advance(coolDown - time.Nanosecond)
			require.Equal(t, StateOpen, b.State(), "still cooling down")
			require.ErrorIs(t, b.Do(context.Background(), ok), ErrOpen)

			clk.Advance(time.Nanosecond)
			require.Equal(t, StateHalfOpen, b.State())
			_ = b.Do(context.Background(), tt.probe)
			assert.Equal(t, tt.want, b.State())
			if tt.want == StateOpen { // a new, full cool-down starts at the reopening
				clk.Advance(coolDown - time.Nanosecond)
				assert.Equal(t, StateOpen, b.State())
				clk.Advance(time.Nanosecond)
				assert.Equal(t, StateHalfOpen, b.State())
			}
		})
	}
}

func TestBreakerBoundsProbes(t *testing.T) {
	for _, probes := range []int{1, 3} {
		t.Run(fmt.Sprint(probes), func(t *testing.T) {
			clk := newClock()
			b := NewBreaker(BreakerConfig{MaxFailures: 1, Probes: probes, Timeout: -1, Now: clk.Now})
			_ = b.Do(context.Background(), fail)
			clk.Advance(time.Minute)

			release := make(chan struct{})
			var started, wg sync.WaitGroup
			started.Add(probes)
			for range probes {
				wg.Go(func() {
					assert.NoError(t, b.Do(context.Background(), func(context.Context) error {
						started.Done()
						<-release
						return nil
					}))
				})
			}
			started.Wait()
			var extra atomic.Int32
			err := b.Do(context.Background(), func(context.Context) error { extra.Add(1); return nil })
			assert.ErrorIs(t, err, ErrOpen, "probe slots are all in flight")
			assert.Zero(t, extra.Load())
			close(release)
			wg.Wait()
			assert.Equal(t, StateClosed, b.State())
		})
	}
}

func TestBreakerCanceledProbeFreesItsSlot(t *testing.T) {
	clk := newClock()
	b := NewBreaker(BreakerConfig{MaxFailures: 1, Now: clk.Now})
	_ = b.Do(context.Background(), fail)
	clk.Advance(time.Minute)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.Do(ctx, func(ctx context.Context) error { return ctx.Err() })
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, StateHalfOpen, b.State(), "a canceled probe proves nothing")
	require.NoError(t, b.Do(context.Background(), ok), "the slot was given back")
	assert.Equal(t, StateClosed, b.State())
}

func TestBreakerTimeouts(t *testing.T) {
	reg := prometheus.NewRegistry()
	b := NewBreaker(BreakerConfig{Name: "b", MaxFailures: 3, Timeout: 10 * time.Millisecond, Metrics: NewMetrics(reg)})
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	for i := range 3 {
		start := time.Now()
		err := b.Do(context.Background(), hang)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Less(t, time.Since(start), time.Second, "the call must fail fast at its deadline")
		if i < 2 {
			assert.Equal(t, StateClosed, b.State())
		}
	}
	assert.Equal(t, StateOpen, b.State())
	assert.Equal(t, 3.0, calls(t, reg, "timeout"))
	assert.Zero(t, calls(t, reg, "failure"))
}

// A caller deadline tighter than the breaker's timeout is kept, and missing
// it is a timeout too.
func TestBreakerKeepsTighterCallerDeadline(t *testing.T) {
	b := NewBreaker(BreakerConfig{MaxFailures: 1, Timeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	err := b.Do(ctx, func(ctx context.Context) error {
		got, ok := ctx.Deadline()
		assert.True(t, ok)
		assert.Equal(t, want, got)
		<-ctx.Done()
		return ctx.Err()
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, StateOpen, b.State())
}

// A caller deadline looser than the breaker's timeout does not loosen it.
func TestBreakerTimeoutBeatsLooseCallerDeadline(t *testing.T) {
	b := NewBreaker(BreakerConfig{Timeout: 10 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	err := b.Do(ctx, func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
			return errors.New("the breaker's 10ms deadline was not applied")
		}
	})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

// An error that says "timeout" without wrapping DeadlineExceeded (as net
// errors do) is classified as a timeout.
type netTimeout struct{}

func (netTimeout) Error() string { return "i/o timeout" }
func (netTimeout) Timeout() bool { return true }

var errNil = errors.New("redis: nil")

func TestBreakerClassifies(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	notNil := func(err error) bool { return !errors.Is(err, errNil) }
	tests := []struct {
		name      string
		ctx       context.Context
		isFailure func(error) bool
		fn        func(context.Context) error
		result    string
		counts    bool // counts against the dependency
	}{
		{"success", context.Background(), nil, ok, "success", false},
		{"error", context.Background(), nil, fail, "failure", true},
		{"wrapped net timeout", context.Background(), nil, func(context.Context) error { return fmt.Errorf("read: %w", netTimeout{}) }, "timeout", true},
		{"own deadline", context.Background(), nil, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, "timeout", true},
		{"own deadline, fn returns another error", context.Background(), nil, func(ctx context.Context) error { <-ctx.Done(); return errBoom }, "timeout", true},
		{"caller canceled", canceled, nil, func(ctx context.Context) error { return ctx.Err() }, "canceled", false},
		{"caller canceled, fn returns another error", canceled, nil, fail, "canceled", false},
		{"not a failure per IsFailure", context.Background(), notNil, func(context.Context) error { return fmt.Errorf("get: %w", errNil) }, "success", false},
		{"a failure per IsFailure", context.Background(), notNil, fail, "failure", true},
		{"IsFailure cannot excuse a timeout", context.Background(), func(error) bool { return false }, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, "timeout", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			b := NewBreaker(BreakerConfig{Name: "b", MaxFailures: 1, Timeout: 5 * time.Millisecond,
				IsFailure: tt.isFailure, Metrics: NewMetrics(reg)})
			_ = b.Do(tt.ctx, tt.fn)
			assert.Equal(t, 1.0, calls(t, reg, tt.result))
			want := StateClosed
			if tt.counts {
				want = StateOpen
			}
			assert.Equal(t, want, b.State())
		})
	}
}

func TestBreakerCallerCancelNeverTrips(t *testing.T) {
	b := NewBreaker(BreakerConfig{MaxFailures: 1})
	ratio := NewBreaker(BreakerConfig{FailureRatio: 0.1, MinCalls: 1})
	for range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for _, br := range []*Breaker{b, ratio} {
			_ = br.Do(ctx, func(ctx context.Context) error { return ctx.Err() })
		}
	}
	assert.Equal(t, StateClosed, b.State())
	assert.Equal(t, StateClosed, ratio.State())
}

func TestBreakerStateChanges(t *testing.T) {
	reg := prometheus.NewRegistry()
	clk := newClock()
	type change struct {
		name     string
		from, to State
	}
	var got []change
	b := NewBreaker(BreakerConfig{Name: "b", MaxFailures: 1, CoolDown: time.Second, Now: clk.Now, Metrics: NewMetrics(reg),
		OnStateChange: func(name string, from, to State) { got = append(got, change{name, from, to}) }})
	_ = b.Do(context.Background(), fail) // open
	clk.Advance(time.Second)
	_ = b.Do(context.Background(), fail) // half-open, probe fails: open
	clk.Advance(time.Second)
	_ = b.Do(context.Background(), ok) // half-open, probe succeeds: closed
	assert.Equal(t, []change{
		{"b", StateClosed, StateOpen},
		{"b", StateOpen, StateHalfOpen},
		{"b", StateHalfOpen, StateOpen},
		{"b", StateOpen, StateHalfOpen},
		{"b", StateHalfOpen, StateClosed},
	}, got)
	for to, want := range map[string]float64{"open": 2, "half-open": 2, "closed": 1} {
		assert.Equal(t, want, metricValue(t, reg, "ripple_breaker_transitions_total", map[string]string{"breaker": "b", "to": to}), to)
	}
	assert.Equal(t, 0.0, metricValue(t, reg, "ripple_breaker_state", map[string]string{"breaker": "b"}))
}

// A call admitted before a transition must not move the breaker after it.
func TestBreakerIgnoresStaleResults(t *testing.T) {
	clk := newClock()
	b := NewBreaker(BreakerConfig{MaxFailures: 1, Timeout: -1, Now: clk.Now})
	inSlow, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- b.Do(context.Background(), func(context.Context) error { close(inSlow); <-release; return errBoom })
	}()
	<-inSlow
	_ = b.Do(context.Background(), fail) // open
	clk.Advance(time.Minute)
	require.NoError(t, b.Do(context.Background(), ok)) // probe closes
	require.Equal(t, StateClosed, b.State())
	close(release)
	require.ErrorIs(t, <-done, errBoom)
	assert.Equal(t, StateClosed, b.State(), "the slow failure belongs to an earlier generation")
}

func TestBreakerPanicCountsAsFailure(t *testing.T) {
	b := NewBreaker(BreakerConfig{MaxFailures: 1})
	assert.PanicsWithValue(t, "kaboom", func() {
		_ = b.Do(context.Background(), func(context.Context) error { panic("kaboom") })
	})
	assert.Equal(t, StateOpen, b.State())
}

// Many goroutines through one breaker whose state keeps changing: run
// with -race. Every call is accounted for exactly once.
func TestBreakerConcurrent(t *testing.T) {
	const goroutines, each = 8, 500
	reg := prometheus.NewRegistry()
	b := NewBreaker(BreakerConfig{Name: "b", MaxFailures: 3, Probes: 2, CoolDown: time.Millisecond,
		Window: 50 * time.Millisecond, Metrics: NewMetrics(reg)})
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				_ = b.Do(context.Background(), func(context.Context) error {
					if (g+i)%3 == 0 {
						return errBoom
					}
					return nil
				})
				_ = b.State()
			}
		})
	}
	wg.Wait()
	var total float64
	for o := range numOutcomes {
		total += calls(t, reg, o.String())
	}
	assert.Equal(t, float64(goroutines*each), total)
	assert.Positive(t, calls(t, reg, "rejected"), "the breaker should have opened at some point")
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{StateClosed: "closed", StateHalfOpen: "half-open", StateOpen: "open", 7: "State(7)"} {
		assert.Equal(t, want, s.String())
	}
}

// BenchmarkBreakerDo measures what a closed breaker adds to a call that
// succeeds at once.
func BenchmarkBreakerDo(b *testing.B) {
	deadline, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	cases := []struct {
		name string
		cfg  BreakerConfig
		ctx  context.Context
	}{
		// The breaker derives a 50ms deadline: context.WithTimeout dominates.
		{"derive-deadline", BreakerConfig{}, context.Background()},
		// The caller's deadline is already tighter: no context is derived.
		{"caller-deadline", BreakerConfig{}, deadline},
		{"caller-deadline+metrics", BreakerConfig{Metrics: NewMetrics(nil)}, deadline},
		{"no-timeout", BreakerConfig{Timeout: -1}, context.Background()},
	}
	for _, c := range cases {
		br := NewBreaker(c.cfg)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = br.Do(c.ctx, ok)
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = br.Do(c.ctx, ok)
				}
			})
		})
	}
}
