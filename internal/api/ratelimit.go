package api

import (
	"container/list"
	"context"
	"hash/maphash"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ripple-rec/ripple/internal/auth"
)

// RateLimit configures the token buckets. A rate of 0 turns that limit off.
type RateLimit struct {
	PerKeyRPS      float64 // sustained requests per second per key
	PerKeyBurst    int     // bucket size per key (0: one second's worth)
	PerTenantRPS   float64 // shared by every key of a tenant
	PerTenantBurst int
	// MaxBuckets bounds the in-process buckets (LRU), so key churn cannot
	// grow memory without bound.
	MaxBuckets int
}

// DefaultRateLimit: 1,000 req/s per key with a 2 s burst is about a third of
// what one 2-core node serves (BENCHMARKS.md, ~3,100 recommendations/s), so
// one runaway client cannot take a node while an ordinary backend never
// meets the limit; heavier keys get an override (ripple keys create --rps).
// Tenant limits depend on the contract and are off by default.
func DefaultRateLimit() RateLimit {
	return RateLimit{PerKeyRPS: 1000, PerKeyBurst: 2000, MaxBuckets: 1 << 16}
}

// Limit is one bucket's rate and size.
type Limit struct {
	RPS   float64
	Burst int
}

func (l Limit) on() bool { return l.RPS > 0 && !math.IsInf(l.RPS, 1) }

func newLimit(rps float64, burst int) Limit {
	if rps <= 0 {
		return Limit{}
	}
	if burst <= 0 {
		burst = max(1, int(math.Ceil(rps)))
	}
	return Limit{RPS: rps, Burst: burst}
}

// keyLimit is k's override, or the default.
func (o RateLimit) keyLimit(k *auth.Key) Limit {
	switch {
	case k.RPS < 0:
		return Limit{}
	case k.RPS > 0:
		return newLimit(k.RPS, k.Burst)
	case k.Burst > 0:
		return newLimit(o.PerKeyRPS, k.Burst)
	}
	return newLimit(o.PerKeyRPS, o.PerKeyBurst)
}

// Bucket names one token bucket.
type Bucket struct {
	Scope string // "key" or "tenant"
	ID    string // key id or tenant name
}

// The bucket scopes, also the label of ripple_rate_limited_total.
const (
	BucketKey    = "key"
	BucketTenant = "tenant"
)

// Decision is a limiter's answer for one request.
type Decision struct {
	Allowed    bool
	Limit      int           // the bucket size
	Remaining  int           // whole tokens left after this request
	RetryAfter time.Duration // when denied: until one token is back
	Reset      time.Duration // until the bucket is full again
}

// RateLimiter takes one token from a bucket. LocalLimiter keeps buckets in
// this process; RedisLimiter shares them across nodes. An error means the
// limiter could not decide: the server then asks the in-process buckets.
type RateLimiter interface {
	Take(ctx context.Context, b Bucket, l Limit) (Decision, error)
}

// rateLimit spends a token of the caller's key bucket and of its tenant's,
// answering 429 when either is empty. Both buckets' headers describe the
// tighter one.
func (s *Server) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := KeyFrom(r.Context())
		if k == nil { // protected mode: no identity to limit
			next.ServeHTTP(w, r)
			return
		}
		var shown Decision
		limited := false
		if l := s.opts.RateLimit.keyLimit(k); l.on() {
			d := s.take(r.Context(), Bucket{Scope: BucketKey, ID: k.ID}, l)
			if !d.Allowed {
				s.tooMany(w, r, BucketKey, d)
				return
			}
			shown, limited = d, true
		}
		if l := newLimit(s.opts.RateLimit.PerTenantRPS, s.opts.RateLimit.PerTenantBurst); k.Tenant != "" && l.on() {
			d := s.take(r.Context(), Bucket{Scope: BucketTenant, ID: k.Tenant}, l)
			if !d.Allowed {
				s.tooMany(w, r, BucketTenant, d)
				return
			}
			if !limited || d.Remaining < shown.Remaining {
				shown, limited = d, true
			}
		}
		if limited {
			setRateLimitHeaders(w.Header(), shown)
		}
		next.ServeHTTP(w, r)
	})
}

// take asks the configured limiter, falling back to the in-process buckets
// when it fails: a limiter whose store is down never fails a request.
func (s *Server) take(ctx context.Context, b Bucket, l Limit) Decision {
	if s.opts.Limiter != nil {
		d, err := s.opts.Limiter.Take(ctx, b, l)
		if err == nil {
			return d
		}
		s.gm.limiterFallback.Inc()
	}
	d, _ := s.local.Take(ctx, b, l)
	return d
}

func (s *Server) tooMany(w http.ResponseWriter, r *http.Request, scope string, d Decision) {
	s.gm.rateLimited[scope].Inc()
	h := w.Header()
	setRateLimitHeaders(h, d)
	h.Set("Retry-After", strconv.FormatInt(ceilSeconds(d.RetryAfter, 1), 10))
	writeError(w, r, http.StatusTooManyRequests, "rate_limited", "rate limit of this API "+scope+" exceeded; retry after the Retry-After seconds")
}

// setRateLimitHeaders writes the RateLimit-* fields of the IETF draft
// (draft-ietf-httpapi-ratelimit-headers): limit is the bucket size,
// remaining the whole tokens left, reset the seconds until it is full.
func setRateLimitHeaders(h http.Header, d Decision) {
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(d.Remaining, 0)))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.Reset, 0), 10))
}

func ceilSeconds(d time.Duration, least int64) int64 {
	return max(least, int64(math.Ceil(d.Seconds())))
}

// limiterShards spreads bucket lookups over locks.
const limiterShards = 16

// LocalLimiter keeps token buckets (x/time/rate) in this process, at most
// MaxBuckets of them: the least recently used is dropped first, and a
// bucket idle long enough to have refilled is dropped whenever a new one
// is made, which loses nothing since a new bucket starts full too.
type LocalLimiter struct {
	seed     maphash.Seed
	perShard int
	now      func() time.Time
	shards   [limiterShards]limiterShard
}

type limiterShard struct {
	mu  sync.Mutex
	m   map[Bucket]*list.Element // of *localBucket
	lru list.List                // front: most recently used
}

type localBucket struct {
	b      Bucket
	lim    *rate.Limiter
	limit  Limit
	fullAt time.Time // when it is full again if nobody takes a token
}

// NewLocalLimiter keeps at most maxBuckets buckets (at least one per
// shard; 0: 65,536).
func NewLocalLimiter(maxBuckets int) *LocalLimiter {
	if maxBuckets <= 0 {
		maxBuckets = 1 << 16
	}
	l := &LocalLimiter{seed: maphash.MakeSeed(), perShard: max(1, maxBuckets/limiterShards), now: time.Now}
	for i := range l.shards {
		l.shards[i].m = make(map[Bucket]*list.Element)
	}
	return l
}

// Len is the number of buckets held.
func (l *LocalLimiter) Len() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.m)
		sh.mu.Unlock()
	}
	return n
}

// Take never fails.
func (l *LocalLimiter) Take(_ context.Context, b Bucket, lim Limit) (Decision, error) {
	if !lim.on() {
		return Decision{Allowed: true}, nil
	}
	now := l.now()
	sh := &l.shards[maphash.String(l.seed, b.ID)%limiterShards]
	sh.mu.Lock()
	lb := sh.bucket(b, lim, now, l.perShard)
	ok := lb.lim.AllowN(now, 1)
	tokens := lb.lim.TokensAt(now)
	reset := seconds((float64(lim.Burst) - tokens) / lim.RPS)
	lb.fullAt = now.Add(reset)
	sh.mu.Unlock()
	d := Decision{Allowed: ok, Limit: lim.Burst, Remaining: int(math.Floor(tokens)), Reset: reset}
	if !ok {
		d.RetryAfter = seconds((1 - tokens) / lim.RPS)
	}
	return d, nil
}

func seconds(s float64) time.Duration { return time.Duration(max(s, 0) * float64(time.Second)) }

// bucket finds or makes b's bucket; the caller holds sh.mu.
func (sh *limiterShard) bucket(b Bucket, lim Limit, now time.Time, capacity int) *localBucket {
	if el, ok := sh.m[b]; ok {
		sh.lru.MoveToFront(el)
		lb := el.Value.(*localBucket)
		if lb.limit != lim { // a reloaded key file or config changed it
			lb.lim.SetLimitAt(now, rate.Limit(lim.RPS))
			lb.lim.SetBurstAt(now, lim.Burst)
			lb.limit = lim
		}
		return lb
	}
	for back := sh.lru.Back(); back != nil; back = sh.lru.Back() {
		old := back.Value.(*localBucket)
		if len(sh.m) < capacity && now.Before(old.fullAt) {
			break
		}
		sh.lru.Remove(back)
		delete(sh.m, old.b)
	}
	lb := &localBucket{b: b, lim: rate.NewLimiter(rate.Limit(lim.RPS), lim.Burst), limit: lim, fullAt: now}
	sh.m[b] = sh.lru.PushFront(lb)
	return lb
}
