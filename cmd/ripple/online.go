package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ripple-rec/ripple/internal/api"
	"github.com/ripple-rec/ripple/internal/cache"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/online"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/resilience"
	"github.com/ripple-rec/ripple/internal/store/redis"
)

// redisConfig is the `redis:` section, used when `store: redis`.
type redisConfig struct {
	Addrs    []string `yaml:"addrs"`    // one node, or any nodes of a Cluster
	Username string   `yaml:"username"` // the password comes from RIPPLE_REDIS_PASSWORD
	Prefix   string   `yaml:"prefix"`   // key version prefix
	TTL      string   `yaml:"ttl"`      // on every entity record
	// Every call has a deadline; a read that misses it is not retried.
	ReadTimeout  string `yaml:"read_timeout"`
	WriteTimeout string `yaml:"write_timeout"`
	// Calls in flight are bounded by peak_rps × expected_latency × safety
	// (Little's law); a call waits at most pool_wait for a slot.
	PeakRPS         float64 `yaml:"peak_rps"`
	ExpectedLatency string  `yaml:"expected_latency"`
	PoolSafety      float64 `yaml:"pool_safety"`
	PoolWait        string  `yaml:"pool_wait"`
	// The breaker opens after breaker_failures failures within
	// breaker_window and probes again after breaker_cooldown.
	BreakerFailures int         `yaml:"breaker_failures"`
	BreakerWindow   string      `yaml:"breaker_window"`
	BreakerCooldown string      `yaml:"breaker_cooldown"`
	Cache           cacheConfig `yaml:"cache"`
}

// cacheConfig sizes the in-process tier in front of Redis.
type cacheConfig struct {
	Capacity     int     `yaml:"capacity"` // entries per feature group
	UserTTL      string  `yaml:"user_ttl"`
	ItemTTL      string  `yaml:"item_ttl"`
	NeighborsTTL string  `yaml:"neighbors_ttl"`
	TrendingTTL  string  `yaml:"trending_ttl"`
	ValuesTTL    string  `yaml:"values_ttl"`
	StaleFor     string  `yaml:"stale_for"` // served past TTL while Redis fails
	FreshFor     string  `yaml:"fresh_for"` // older values mark a response stale
	Jitter       float64 `yaml:"jitter"`
	EarlyRefresh float64 `yaml:"early_refresh"` // XFetch beta; 0 turns early refresh off
}

func defaultRedisConfig() redisConfig {
	ro := online.DefaultReaderOptions()
	return redisConfig{Addrs: []string{"127.0.0.1:6379"}, Prefix: "v1", TTL: "7d", ReadTimeout: "50ms", WriteTimeout: "1s",
		PeakRPS: 5000, ExpectedLatency: "2ms", PoolSafety: 4, PoolWait: "5ms",
		BreakerFailures: 5, BreakerWindow: "10s", BreakerCooldown: "2s",
		Cache: cacheConfig{Capacity: ro.Capacity, UserTTL: ro.UserTTL.String(), ItemTTL: ro.ItemTTL.String(),
			NeighborsTTL: ro.NeighborsTTL.String(), TrendingTTL: ro.TrendingTTL.String(), ValuesTTL: ro.ValuesTTL.String(),
			StaleFor: ro.StaleFor.String(), FreshFor: ro.FreshFor.String(), Jitter: ro.Jitter, EarlyRefresh: ro.Beta}}
}

// durations parses name=value pairs into their targets, all or nothing.
func durations(pairs ...any) error {
	for i := 0; i < len(pairs); i += 3 {
		d, err := parseDur(pairs[i].(string), pairs[i+1].(string))
		if err != nil {
			return err
		}
		*pairs[i+2].(*time.Duration) = d
	}
	return nil
}

// onlineParts is what `store: redis` adds to a node.
type onlineParts struct {
	store     *redis.Store
	busMu     sync.Mutex
	bus       *cache.RedisBus
	closed    chan struct{}
	reader    *online.Reader
	publisher *online.Publisher
	read      *resilience.Breaker
	write     *resilience.Breaker
	pool      *resilience.Pool
}

// attachBus starts cross-node invalidation once Redis is connected.
func (o *onlineParts) attachBus(prefix string, logger *slog.Logger) {
	o.busMu.Lock()
	defer o.busMu.Unlock()
	select {
	case <-o.closed:
		return
	default:
	}
	o.bus = cache.NewRedisBus(o.store.Client(), prefix+":invalidate")
	if err := o.reader.AttachBus(o.bus); err != nil {
		logger.Error("invalidation bus", "err", err)
	}
}

func (o *onlineParts) close() {
	o.busMu.Lock()
	close(o.closed)
	bus := o.bus
	o.busMu.Unlock()
	if o.publisher != nil {
		o.publisher.Close()
	}
	if o.reader != nil {
		o.reader.Close()
	}
	if bus != nil {
		bus.Close()
	}
	if o.store != nil {
		o.store.Close()
	}
}

// status is the store detail /readyz reports.
func (o *onlineParts) status(applied func() uint64) map[string]any {
	return map[string]any{"store": map[string]any{
		"kind": "redis", "read_breaker": o.read.State().String(), "write_breaker": o.write.State().String(),
		"pool_in_use": o.pool.InUse(), "pool_size": o.pool.Size(),
		"published_offset": o.publisher.Published(), "applied_offset": applied(), "connected": o.store.Client() != nil,
	}}
}

// openOnline connects the Redis store and builds the tiers and the
// publisher. The engine's state reaches Redis through the publisher; every
// read of this node goes through the tiers to Redis, so several nodes on
// one Redis serve the same state.
//
// parts, when not 0, is how many parts item and global records have (role
// api and worker: one per log partition), which every read merges.
func openOnline(ctx context.Context, n *node, cfg redisConfig, dataDir string, parts int, logger *slog.Logger) (*onlineParts, error) {
	var ttl, readT, writeT, lat, wait, window, cool time.Duration
	if err := durations("redis.ttl", cfg.TTL, &ttl, "redis.read_timeout", cfg.ReadTimeout, &readT,
		"redis.write_timeout", cfg.WriteTimeout, &writeT, "redis.expected_latency", cfg.ExpectedLatency, &lat,
		"redis.pool_wait", cfg.PoolWait, &wait, "redis.breaker_window", cfg.BreakerWindow, &window,
		"redis.breaker_cooldown", cfg.BreakerCooldown, &cool); err != nil {
		return nil, err
	}
	ro := online.DefaultReaderOptions()
	c := cfg.Cache
	if err := durations("redis.cache.user_ttl", c.UserTTL, &ro.UserTTL, "redis.cache.item_ttl", c.ItemTTL, &ro.ItemTTL,
		"redis.cache.neighbors_ttl", c.NeighborsTTL, &ro.NeighborsTTL, "redis.cache.trending_ttl", c.TrendingTTL, &ro.TrendingTTL,
		"redis.cache.values_ttl", c.ValuesTTL, &ro.ValuesTTL, "redis.cache.stale_for", c.StaleFor, &ro.StaleFor,
		"redis.cache.fresh_for", c.FreshFor, &ro.FreshFor); err != nil {
		return nil, err
	}
	ro.Capacity, ro.Jitter, ro.Beta, ro.Timeout = c.Capacity, c.Jitter, c.EarlyRefresh, readT
	ro.Tracing = n.tracer
	if parts > 0 {
		ro.Parts, ro.Features = parts, n.engine.Config()
	}
	source, err := sourceID(dataDir)
	if err != nil {
		return nil, err
	}
	rm := resilience.NewMetrics(n.metrics.Registry)
	o := &onlineParts{
		closed: make(chan struct{}),
		read: resilience.NewBreaker(resilience.BreakerConfig{Name: "redis-read", Timeout: readT, Window: window,
			MaxFailures: cfg.BreakerFailures, CoolDown: cool, Metrics: rm,
			OnStateChange: func(name string, from, to resilience.State) {
				logger.Warn("circuit breaker", "breaker", name, "from", from.String(), "to", to.String())
			}}),
		write: resilience.NewBreaker(resilience.BreakerConfig{Name: "redis-write", Timeout: writeT, Window: window,
			MaxFailures: cfg.BreakerFailures, CoolDown: cool, Metrics: rm,
			OnStateChange: func(name string, from, to resilience.State) {
				logger.Warn("circuit breaker", "breaker", name, "from", from.String(), "to", to.String())
			}}),
		pool: resilience.NewPool(resilience.PoolSize(cfg.PeakRPS, lat, cfg.PoolSafety), wait,
			resilience.WithPoolMetrics(rm, "redis")),
	}
	// A Redis that is down at start is an outage like any other: the node
	// starts, serves fallbacks and connects when Redis answers.
	o.store, err = redis.OpenLazy(redis.Options{Addrs: cfg.Addrs, Prefix: cfg.Prefix, Username: cfg.Username,
		Password: os.Getenv("RIPPLE_REDIS_PASSWORD"), Read: o.read, Write: o.write, Pool: o.pool}, time.Second,
		func(err error) { logger.Debug("redis still unreachable", "err", err) })
	if err != nil {
		return nil, err
	}
	ro.Metrics = cache.NewMetrics(n.metrics.Registry)
	o.reader, err = online.NewReader(o.store, ro, func(entity string) features.Values {
		v, _ := n.engine.Values(entity, "\x00unknown") // every feature's typed default
		return v
	})
	if err != nil {
		o.close()
		return nil, err
	}
	o.publisher = online.NewPublisher(n.engine, o.store, o.reader, online.PublisherOptions{Source: source, TTL: ttl,
		Registerer: n.metrics.Registry, Logger: logger})
	select {
	case <-o.store.Connected():
		o.attachBus(cfg.Prefix, logger)
	default:
		logger.Warn("redis unreachable at start: serving fallbacks until it answers", "addrs", cfg.Addrs)
		go func() {
			select {
			case <-o.store.Connected():
				logger.Info("redis connected", "addrs", cfg.Addrs)
				o.attachBus(cfg.Prefix, logger)
			case <-o.closed:
			}
		}()
	}
	return o, nil
}

// sourceID names this node's event log in the shared store: random on the
// first start, kept in the data dir so a restart continues its offsets.
func sourceID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "source-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("source id: %w", err)
	}
	return id, nil
}

// onlineFeatures serves the API's feature reads from the tiers.
type onlineFeatures struct{ r *online.Reader }

func (f onlineFeatures) Values(ctx context.Context, entity, id string) (features.Values, bool, string) {
	v, ok, lvl := f.r.Values(ctx, entity, id)
	return v, ok, lvl.String()
}

func (f onlineFeatures) Items(ctx context.Context, ids []string, out []features.ItemInfo) string {
	return f.r.Items(ctx, ids, out).String()
}

var _ api.FeatureReader = onlineFeatures{}

// bindPipeline makes the pipeline read each request through its own view.
func bindPipeline(r *online.Reader, cfg recommend.Config) *recommend.Pipeline {
	return recommend.NewBound(func(ctx context.Context) recommend.Features { return r.Bind(ctx) }, cfg)
}
