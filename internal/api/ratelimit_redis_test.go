package api

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/auth"
	"github.com/ripple-rec/ripple/internal/redistest"
	"github.com/ripple-rec/ripple/internal/resilience"
)

func redisClient(t *testing.T, addr string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true, DisableRetry: true})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// Two nodes (two clients, two limiters) share one bucket in Redis: the
// burst is spent once across both, and the answers count down together.
func TestRedisLimiterSharedAcrossNodes(t *testing.T) {
	srv := redistest.Start(t)
	a := NewRedisLimiter(redisClient(t, srv.Addr()), "v1", nil, time.Second)
	b := NewRedisLimiter(redisClient(t, srv.Addr()), "v1", nil, time.Second)
	ctx := context.Background()
	bucket := Bucket{Scope: BucketKey, ID: "k_1"}
	lim := Limit{RPS: 0.5, Burst: 5}
	for i := 0; i < 5; i++ {
		l := a
		if i%2 == 1 {
			l = b
		}
		d, err := l.Take(ctx, bucket, lim)
		require.NoError(t, err)
		require.True(t, d.Allowed, "token %d", i)
		assert.Equal(t, 4-i, d.Remaining)
		assert.Equal(t, 5, d.Limit)
		assert.InDelta(t, float64(2*(i+1)), d.Reset.Seconds(), 0.1)
	}
	d, err := b.Take(ctx, bucket, lim)
	require.NoError(t, err)
	assert.False(t, d.Allowed, "the burst is shared by both nodes")
	assert.Equal(t, 0, d.Remaining)
	assert.InDelta(t, 2, d.RetryAfter.Seconds(), 0.1, "one token refills in 2 s at 0.5/s")

	// Buckets live at the documented keys and expire once full again.
	c := redisClient(t, srv.Addr())
	ttl, err := c.Do(ctx, c.B().Pttl().Key("v1:{rl:k_1}").Build()).AsInt64()
	require.NoError(t, err)
	assert.InDelta(t, 10_000, ttl, 200, "expires when all 5 tokens are back")
	_, err = a.Take(ctx, Bucket{Scope: BucketTenant, ID: "acme"}, lim)
	require.NoError(t, err)
	n, err := c.Do(ctx, c.B().Exists().Key("v1:{rlt:acme}").Build()).AsInt64()
	require.NoError(t, err)
	assert.EqualValues(t, 1, n)
}

// The same limit in process and in Redis gives the same answers.
func TestRedisLimiterMatchesLocal(t *testing.T) {
	srv := redistest.Start(t)
	r := NewRedisLimiter(redisClient(t, srv.Addr()), "v1", nil, time.Second)
	l := NewLocalLimiter(0)
	lim := Limit{RPS: 1, Burst: 3}
	for i := 0; i < 5; i++ {
		dr, err := r.Take(context.Background(), Bucket{Scope: BucketKey, ID: "x"}, lim)
		require.NoError(t, err)
		dl, _ := l.Take(context.Background(), Bucket{Scope: BucketKey, ID: "x"}, lim)
		assert.Equal(t, dl.Allowed, dr.Allowed, "request %d", i)
		assert.Equal(t, dl.Remaining, dr.Remaining, "request %d", i)
		assert.Equal(t, dl.Limit, dr.Limit)
	}
}

// With Redis down or hung, requests are never failed by the limiter: the
// in-process buckets decide (still limiting), within the breaker's budget,
// and shared limiting resumes when Redis is back.
func TestRedisLimiterFallsBackWhenRedisFails(t *testing.T) {
	srv := redistest.Start(t)
	breaker := resilience.NewBreaker(resilience.BreakerConfig{Name: "redis-ratelimit", Timeout: 50 * time.Millisecond,
		MaxFailures: 2, CoolDown: 200 * time.Millisecond})
	limiter := NewRedisLimiter(redisClient(t, srv.Addr()), "v1", breaker, 0)
	n := newGuardNode(t, []keySpec{{name: "r", scopes: []auth.Scope{auth.ScopeRead}}}, func(o *Options) {
		o.RateLimit.PerKeyRPS, o.RateLimit.PerKeyBurst = 0.01, 3
		o.Limiter = limiter
	})
	key := bearer(n.secrets["r"])
	get := func() reply { return n.do(t, "GET", "/v1/recommendations/u1", "", key) }
	r := get()
	require.Equal(t, 200, r.code)
	assert.Equal(t, "2", r.header.Get("RateLimit-Remaining"), "Redis holds the bucket")

	srv.Freeze()
	start := time.Now()
	for i := 0; i < 3; i++ {
		r := get()
		require.NotEqual(t, 500, r.code)
		require.NotEqual(t, 503, r.code)
	}
	assert.Less(t, time.Since(start), 2*time.Second, "a hung Redis costs at most the breaker's timeout")
	assert.Equal(t, 429, get().code, "the in-process bucket still limits while Redis is out")
	srv.Thaw()

	srv.Stop()
	for i := 0; i < 5; i++ {
		assert.Contains(t, []int{200, 429}, get().code)
	}
	m := n.metrics(t)
	assert.Contains(t, m, "ripple_rate_limit_fallback_total")
	assert.NotContains(t, m, "ripple_rate_limit_fallback_total 0")

	srv.Restart()
	require.Eventually(t, func() bool {
		r := get()
		return r.code == 200 && r.header.Get("RateLimit-Remaining") == strconv.Itoa(2)
	}, 10*time.Second, 50*time.Millisecond, "a fresh Redis bucket answers again once the breaker closes")
}
