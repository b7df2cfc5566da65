package resilience

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// ErrPoolExhausted is returned by Pool.Acquire when no slot freed up within
// the wait budget. The caller sheds the work (default value, or 503 with
// Retry-After) instead of queueing behind a dependency that is not keeping up.
var ErrPoolExhausted = errors.New("resilience: pool exhausted")

// Pool bounds the calls in flight to one dependency. Unlike a connection
// pool's unbounded queue, a caller waits at most maxWait for a slot. It is
// safe for concurrent use.
type Pool struct {
	slots   chan struct{}
	maxWait time.Duration
	metrics *poolMetrics
	errWait error // the common refusal, built once: shedding must be cheap
}

// PoolOption configures a Pool.
type PoolOption func(*Pool)

// WithPoolMetrics exports the pool's occupancy, waits and refusals under
// the label pool=name.
func WithPoolMetrics(m *Metrics, name string) PoolOption {
	return func(p *Pool) { p.metrics = m.pool(name, cap(p.slots)) }
}

// NewPool returns a pool of size slots (at least 1) whose callers wait at
// most maxWait; with maxWait <= 0 a full pool refuses at once.
func NewPool(size int, maxWait time.Duration, opts ...PoolOption) *Pool {
	p := &Pool{
		slots:   make(chan struct{}, max(size, 1)),
		maxWait: maxWait,
		errWait: fmt.Errorf("%w after %v", ErrPoolExhausted, max(maxWait, 0)),
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Size returns the number of slots.
func (p *Pool) Size() int { return cap(p.slots) }

// InUse returns the number of slots held.
func (p *Pool) InUse() int { return len(p.slots) }

func noRelease() {}

// Acquire takes a slot, waiting at most the pool's maxWait or until ctx is
// done. On success release must be called exactly once when the call ends
// (further calls are no-ops). On failure err wraps ErrPoolExhausted, and also
// ctx's error if ctx ended the wait; release is then a no-op, never nil.
func (p *Pool) Acquire(ctx context.Context) (release func(), err error) {
	if err := ctx.Err(); err != nil {
		return noRelease, p.refuse(err)
	}
	select {
	case p.slots <- struct{}{}:
		return p.granted(0), nil
	default:
	}
	if p.maxWait <= 0 {
		return noRelease, p.refuse(nil)
	}
	start := time.Now()
	t := time.NewTimer(p.maxWait)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return p.granted(time.Since(start)), nil
	case <-t.C:
		return noRelease, p.refuse(nil)
	case <-ctx.Done():
		return noRelease, p.refuse(ctx.Err())
	}
}

func (p *Pool) granted(waited time.Duration) func() {
	if p.metrics != nil {
		p.metrics.inUse.Inc()
		p.metrics.wait.Observe(waited.Seconds())
	}
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			<-p.slots
			if p.metrics != nil {
				p.metrics.inUse.Dec()
			}
		}
	}
}

func (p *Pool) refuse(cause error) error {
	if p.metrics != nil {
		p.metrics.exhausted.Inc()
	}
	if cause != nil {
		return fmt.Errorf("%w: %w", ErrPoolExhausted, cause)
	}
	return p.errWait
}

// PoolSize returns how many slots a dependency needs. By Little's law the
// mean number of requests inside a system equals their arrival rate times
// the time each spends there (L = λ·W): at peakRPS calls per second, each
// taking latency, peakRPS × latency seconds are in flight on average.
// safety (typically 1.5–3; values below 1 count as 1) covers bursts above
// the mean rate and the latency tail, which is what actually fills a pool.
// The result is rounded up and at least 1. Example: 4000 rps × 2 ms × 2 = 16.
func PoolSize(peakRPS float64, latency time.Duration, safety float64) int {
	if !(safety >= 1) { // also catches NaN
		safety = 1
	}
	// The epsilon keeps float noise (4000 × 0.002 = 8.000000000000002)
	// from rounding an exact product up by one.
	n := math.Ceil(peakRPS*latency.Seconds()*safety - 1e-9)
	switch {
	case !(n >= 1): // negative, zero or NaN inputs
		return 1
	case n > math.MaxInt32:
		return math.MaxInt32
	}
	return int(n)
}
