package api

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"
)

// gcraScript is a GCRA token bucket (the algorithm of redis-cell and
// redis_rate): one key per bucket holds its theoretical arrival time in
// microseconds of Redis' own clock, so every node agrees whatever its
// clock says. The key expires when the bucket would be full, which is the
// same as not existing.
//
// KEYS[1] bucket; ARGV[1] emission interval in µs (1e6 / rps); ARGV[2] burst.
// Returns {allowed 0|1, remaining, retry_after µs, reset µs}.
const gcraScript = `
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - interval * burst
if now < allow_at then
  return {0, 0, math.ceil(allow_at - now), math.ceil(tat - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((now - allow_at) / interval), 0, math.ceil(new_tat - now)}
`

// Guard runs one call under a circuit breaker and a deadline;
// resilience.Breaker implements it.
type Guard interface {
	Do(ctx context.Context, fn func(context.Context) error) error
}

// RedisLimiter keeps the token buckets in Redis, so a key's limit holds
// across every node sharing that Redis. Keys are <prefix>:{rl:<key id>}
// and <prefix>:{rlt:<tenant>}: one slot each, Cluster-ready.
type RedisLimiter struct {
	c       rueidis.Client
	prefix  string
	guard   Guard
	timeout time.Duration
	script  *rueidis.Lua
}

// NewRedisLimiter uses c. guard (a breaker, so a failing Redis is skipped
// at once instead of timing out on every request) may be nil; then each
// call gets timeout (default 20ms).
func NewRedisLimiter(c rueidis.Client, prefix string, guard Guard, timeout time.Duration) *RedisLimiter {
	if prefix == "" {
		prefix = "v1"
	}
	if timeout <= 0 {
		timeout = 20 * time.Millisecond
	}
	return &RedisLimiter{c: c, prefix: prefix, guard: guard, timeout: timeout, script: rueidis.NewLuaScript(gcraScript)}
}

// Key is the Redis key of a bucket.
func (l *RedisLimiter) Key(b Bucket) string {
	if b.Scope == BucketTenant {
		return l.prefix + ":{rlt:" + b.ID + "}"
	}
	return l.prefix + ":{rl:" + b.ID + "}"
}

// Take spends one token in Redis. Any failure is returned: the server
// then decides with its in-process buckets.
func (l *RedisLimiter) Take(ctx context.Context, b Bucket, lim Limit) (Decision, error) {
	if !lim.on() {
		return Decision{Allowed: true}, nil
	}
	args := []string{strconv.FormatFloat(1e6/lim.RPS, 'f', -1, 64), strconv.Itoa(lim.Burst)}
	var vals []int64
	call := func(ctx context.Context) error {
		arr, err := l.script.Exec(ctx, l.c, []string{l.Key(b)}, args).ToArray()
		if err != nil {
			return err
		}
		if len(arr) != 4 {
			return fmt.Errorf("rate limit script: %d values, want 4", len(arr))
		}
		vals = make([]int64, 4)
		for i := range arr {
			if vals[i], err = arr[i].AsInt64(); err != nil {
				return err
			}
		}
		return nil
	}
	var err error
	if l.guard != nil {
		err = l.guard.Do(ctx, call)
	} else {
		cctx, cancel := context.WithTimeout(ctx, l.timeout)
		err = call(cctx)
		cancel()
	}
	if err != nil {
		return Decision{}, fmt.Errorf("redis rate limiter: %w", err)
	}
	if vals == nil {
		return Decision{}, errors.New("redis rate limiter: no answer")
	}
	return Decision{Allowed: vals[0] == 1, Limit: lim.Burst, Remaining: int(vals[1]),
		RetryAfter: time.Duration(vals[2]) * time.Microsecond, Reset: time.Duration(vals[3]) * time.Microsecond}, nil
}
