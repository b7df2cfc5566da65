package resilience

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ErrOpen is returned by Breaker.Do, without calling the function, while the
// breaker is open or while half-open with all its probes in flight. Callers
// serve their typed default and report Degraded.
var ErrOpen = errors.New("resilience: circuit breaker open")

// State is the position of a Breaker. The values are the ones exported by
// the ripple_breaker_state gauge.
type State uint8

const (
	StateClosed   State = iota // calls pass; failures are counted
	StateHalfOpen              // a bounded number of probe calls pass
	StateOpen                  // calls are rejected until the cool-down ends
	numStates
)

func (s State) String() string {
	switch s {
	case StateClosed:
		return "closed"
	case StateHalfOpen:
		return "half-open"
	case StateOpen:
		return "open"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// BreakerConfig configures a Breaker. The zero value of every field selects
// the default written next to it.
type BreakerConfig struct {
	// Name labels metrics and errors, e.g. "redis-features".
	Name string
	// Timeout is the deadline Do puts on each call (default 50ms); a
	// negative value leaves only the caller's deadline. There is no retry:
	// a call that misses its budget fails and the caller serves a default.
	Timeout time.Duration
	// Window is the rolling period over which failures are counted
	// (default 10s), kept as 10 buckets of Window/10.
	Window time.Duration
	// MaxFailures opens the breaker when this many failures fall within
	// Window (default 5). Ignored when FailureRatio is set.
	MaxFailures int
	// FailureRatio, when > 0, opens the breaker instead when
	// failures/calls within Window reaches it and at least MinCalls calls
	// were seen (MinCalls default 20). Suits high, steady call rates where
	// a fixed count would trip on noise.
	FailureRatio float64
	MinCalls     int
	// CoolDown is how long the breaker stays open before it lets probes
	// through (default 5s).
	CoolDown time.Duration
	// Probes is how many calls a half-open breaker admits (default 1). The
	// first probe to succeed closes the breaker; any probe failure reopens it.
	Probes int
	// IsFailure reports whether an error counts against the dependency.
	// Errors it rejects count as successes: the dependency answered (a
	// Redis nil reply is an answer). Timeouts are always failures and a
	// caller's own cancellation never is; IsFailure sees neither.
	// Default: every error is a failure.
	IsFailure func(error) bool
	// OnStateChange is called on every transition, under the breaker's
	// lock: it must be quick and must not call back into the Breaker.
	OnStateChange func(name string, from, to State)
	// Metrics, when set, exports this breaker's state and call results.
	Metrics *Metrics
	// Now is the clock used for windows and cool-downs (default time.Now);
	// tests inject one. Per-call deadlines always use real time.
	Now func() time.Time
}

// Breaker is a circuit breaker with a per-call deadline. It is safe for
// concurrent use. In the closed state a successful call takes no lock.
type Breaker struct {
	name        string
	timeout     time.Duration
	maxFailures uint32
	ratio       float64
	minCalls    uint32
	coolDown    time.Duration
	probes      int
	isFailure   func(error) bool
	onChange    func(name string, from, to State)
	now         func() time.Time
	metrics     *breakerMetrics
	errOpen     error

	// word is generation<<2 | state. Do reads it without the lock to admit
	// calls while closed; the generation lets a result that arrives after a
	// transition be recognised as stale and ignored.
	word atomic.Uint64

	mu       sync.Mutex
	until    time.Time // while open: when probes may start
	inflight int       // while half-open: probes admitted and not yet resolved
	window   window    // while closed: recent calls and failures
}

// NewBreaker returns a closed breaker configured by cfg.
func NewBreaker(cfg BreakerConfig) *Breaker {
	b := &Breaker{
		name:        cfg.Name,
		timeout:     orDefault(cfg.Timeout, 50*time.Millisecond),
		maxFailures: uint32(max(orDefault(cfg.MaxFailures, 5), 1)),
		ratio:       cfg.FailureRatio,
		minCalls:    uint32(max(orDefault(cfg.MinCalls, 20), 1)),
		coolDown:    orDefault(cfg.CoolDown, 5*time.Second),
		probes:      max(orDefault(cfg.Probes, 1), 1),
		isFailure:   cfg.IsFailure,
		onChange:    cfg.OnStateChange,
		now:         cfg.Now,
		metrics:     cfg.Metrics.breaker(cfg.Name),
		errOpen:     fmt.Errorf("breaker %q: %w", cfg.Name, ErrOpen),
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.window.width = orDefault(cfg.Window, 10*time.Second) / windowBuckets
	if b.window.width <= 0 {
		b.window.width = 1
	}
	if b.metrics != nil {
		b.metrics.state.Set(float64(StateClosed))
	}
	return b
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Name returns the name the breaker was configured with.
func (b *Breaker) Name() string { return b.name }

// State returns the breaker's state, moving an open breaker whose cool-down
// has passed to half-open.
func (b *Breaker) State() State {
	if s := State(b.word.Load() & 3); s != StateOpen {
		return s
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.coolDownElapsed()
	return State(b.word.Load() & 3)
}

// Do calls fn unless the breaker is open, with ctx bounded by the
// configured Timeout, and records the result. It returns fn's error
// unchanged, or an error wrapping ErrOpen without calling fn. fn must honour
// its context: the deadline is only as good as fn's respect for it.
func (b *Breaker) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	ticket, ok := b.admit()
	if !ok {
		b.metrics.call(outcomeRejected)
		return b.errOpen
	}
	callCtx, cancel := b.budget(ctx)
	defer cancel()
	finished := false
	defer func() {
		if !finished { // fn panicked: a failure, and the probe slot must be freed
			b.record(ticket, outcomeFailure)
		}
	}()
	err := fn(callCtx)
	finished = true
	b.record(ticket, b.classify(ctx, callCtx, err))
	return err
}

// budget derives the per-call deadline, reusing ctx when its own deadline
// is already the tighter one (which also saves the allocation).
func (b *Breaker) budget(ctx context.Context) (context.Context, context.CancelFunc) {
	if b.timeout < 0 {
		return ctx, func() {}
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= b.timeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.timeout)
}

type outcome uint8

const (
	outcomeSuccess outcome = iota
	outcomeFailure
	outcomeTimeout
	outcomeRejected
	outcomeCanceled
	numOutcomes
)

func (o outcome) String() string {
	return [...]string{"success", "failure", "timeout", "rejected", "canceled"}[o]
}

func (b *Breaker) classify(parent, call context.Context, err error) outcome {
	if err == nil {
		return outcomeSuccess
	}
	if errors.Is(parent.Err(), context.Canceled) {
		return outcomeCanceled // the caller left; says nothing about the dependency
	}
	var t interface{ Timeout() bool } // context.DeadlineExceeded, os.ErrDeadlineExceeded, net.Error
	if (errors.As(err, &t) && t.Timeout()) || errors.Is(call.Err(), context.DeadlineExceeded) {
		return outcomeTimeout
	}
	if b.isFailure != nil && !b.isFailure(err) {
		return outcomeSuccess
	}
	return outcomeFailure
}

// admit decides whether a call may run and returns the state word it was
// admitted under.
func (b *Breaker) admit() (uint64, bool) {
	if w := b.word.Load(); State(w&3) == StateClosed {
		return w, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.coolDownElapsed()
	w := b.word.Load()
	switch State(w & 3) {
	case StateClosed:
		return w, true
	case StateHalfOpen:
		if b.inflight < b.probes {
			b.inflight++
			return w, true
		}
	}
	return w, false
}

// record applies the outcome of a call admitted under ticket.
func (b *Breaker) record(ticket uint64, o outcome) {
	b.metrics.call(o)
	admitted := State(ticket & 3)
	if admitted == StateClosed && (o == outcomeCanceled || (o == outcomeSuccess && b.ratio == 0)) {
		return // nothing the count rule needs: stay off the lock
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.word.Load() != ticket {
		return // admitted before a transition; its result describes the past
	}
	failed := o == outcomeFailure || o == outcomeTimeout
	switch admitted {
	case StateClosed:
		calls, failures := b.window.add(b.now(), failed)
		if !failed {
			return
		}
		if b.ratio > 0 {
			if calls >= b.minCalls && float64(failures) >= b.ratio*float64(calls) {
				b.setState(StateOpen)
			}
		} else if failures >= b.maxFailures {
			b.setState(StateOpen)
		}
	case StateHalfOpen:
		switch {
		case o == outcomeCanceled:
			b.inflight-- // the probe proved nothing; let another try
		case failed:
			b.setState(StateOpen)
		default:
			b.setState(StateClosed)
		}
	}
}

// coolDownElapsed moves an open breaker to half-open once its cool-down has
// passed. Callers hold b.mu.
func (b *Breaker) coolDownElapsed() {
	if State(b.word.Load()&3) == StateOpen && !b.now().Before(b.until) {
		b.setState(StateHalfOpen)
	}
}

// setState starts a new generation in state to. Callers hold b.mu.
func (b *Breaker) setState(to State) {
	w := b.word.Load()
	from := State(w & 3)
	b.word.Store((w>>2+1)<<2 | uint64(to))
	switch to {
	case StateClosed:
		b.window.reset()
	case StateHalfOpen:
		b.inflight = 0
	case StateOpen:
		b.until = b.now().Add(b.coolDown)
	}
	b.metrics.transition(to)
	if b.onChange != nil {
		b.onChange(b.name, from, to)
	}
}

const windowBuckets = 10

// window counts calls and failures over the last windowBuckets bucket
// widths. Buckets are addressed by absolute bucket number, so buckets that
// were not touched for a whole window are recognised as old, not summed.
type window struct {
	width   time.Duration
	buckets [windowBuckets]struct {
		n               int64 // absolute bucket number
		calls, failures uint32
	}
}

func (w *window) add(now time.Time, failed bool) (calls, failures uint32) {
	n := now.UnixNano() / int64(w.width)
	bk := &w.buckets[(n%windowBuckets+windowBuckets)%windowBuckets]
	if bk.n != n {
		bk.n, bk.calls, bk.failures = n, 0, 0
	}
	bk.calls++
	if failed {
		bk.failures++
	}
	for i := range w.buckets {
		if age := n - w.buckets[i].n; age >= 0 && age < windowBuckets {
			calls += w.buckets[i].calls
			failures += w.buckets[i].failures
		}
	}
	return calls, failures
}

func (w *window) reset() {
	for i := range w.buckets {
		w.buckets[i].calls, w.buckets[i].failures = 0, 0
	}
}
