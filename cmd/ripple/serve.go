package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/otel/trace"
	"go.yaml.in/yaml/v3"

	"github.com/ripple-rec/ripple/internal/api"
	"github.com/ripple-rec/ripple/internal/audit"
	"github.com/ripple-rec/ripple/internal/auth"
	"github.com/ripple-rec/ripple/internal/demo"
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog"
	ripplenats "github.com/ripple-rec/ripple/internal/eventlog/nats"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/feedback"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/resilience"
	"github.com/ripple-rec/ripple/internal/store"
	"github.com/ripple-rec/ripple/internal/train"
)

// serveConfig is the whole serve configuration; every flag has a key here.
type serveConfig struct {
	Addr             string           `yaml:"addr"`
	DataDir          string           `yaml:"data_dir"`
	Demo             bool             `yaml:"demo"`
	DemoData         string           `yaml:"demo_data"`
	DemoFormat       string           `yaml:"demo_format"`
	Features         string           `yaml:"features"` // YAML feature file; empty: built-in defaults
	SnapshotInterval string           `yaml:"snapshot_interval"`
	RetentionBytes   int64            `yaml:"retention_bytes"`
	RetentionAge     string           `yaml:"retention_age"`
	LogLevel         string           `yaml:"log_level"`
	EventTypes       []string         `yaml:"event_types"` // accepted beyond view, click, cart, purchase, rating
	MaxBodyBytes     int64            `yaml:"max_body_bytes"`
	MaxBatchEvents   int              `yaml:"max_batch_events"`
	ReadTimeout      string           `yaml:"read_timeout"`
	IngestTimeout    string           `yaml:"ingest_timeout"`
	StaleAfter       int              `yaml:"stale_after_records"` // apply (or consumer) lag that marks responses stale
	GCPercent        int              `yaml:"gc_percent"`          // Go GC target; the GOGC env var wins when set
	Recommend        recommend.Config `yaml:"recommend"`
	// Store is where served features live: embedded (this process) or
	// redis (shared by every node on the same Redis).
	Store string      `yaml:"store"`
	Redis redisConfig `yaml:"redis"`
	// Log is where events are stored: embedded (Pebble in data_dir), kafka
	// or nats (a partitioned broker log; this node applies every partition).
	Log   string      `yaml:"log"`
	Kafka kafkaConfig `yaml:"kafka"`
	NATS  natsConfig  `yaml:"nats"`
	// MaxInFlight bounds requests being served; beyond it they get 503
	// overloaded (0: api.DefaultMaxInFlight, 256 × GOMAXPROCS).
	MaxInFlight int             `yaml:"max_in_flight"`
	Auth        authConfig      `yaml:"auth"`
	RateLimit   rateLimitConfig `yaml:"rate_limit"`

	// Tracing exports OpenTelemetry traces: every failed and slow trace and
	// sample_ratio of the rest (exporter off by default).
	Tracing observe.Tracing `yaml:"tracing"`
	// LogUserIDs is how logs carry user ids: keep, hash (keyed by
	// log_user_id_key; empty: a random key per process) or drop.
	LogUserIDs   string `yaml:"log_user_ids"`
	LogUserIDKey string `yaml:"log_user_id_key"`
	// Train rebuilds the trained models from the log on a schedule and on
	// POST /v1/admin/train; versions live in <data_dir>/models.
	Train trainConfig `yaml:"train"`
	// Feedback attributes clicks, carts and purchases to the recommendation
	// lists, models and positions that showed the items (GET
	// /v1/admin/feedback, ripple_feedback_* metrics).
	Feedback feedbackConfig `yaml:"feedback"`
	// Role splits the node (see roles.go): all (one process does
	// everything), api (appends to the broker log, reads the shared store)
	// or worker (applies the partitions it owns into the shared store).
	Role           string       `yaml:"role"`
	Worker         workerConfig `yaml:"worker"`
	ReadYourWrites bool         `yaml:"read_your_writes"` // role api: answer once the owners published the events
}

// feedbackConfig is the `feedback:` section.
type feedbackConfig struct {
	Enabled     bool     `yaml:"enabled"`
	Window      string   `yaml:"window"`   // attribution window after a list is served
	PerUser     int      `yaml:"per_user"` // lists remembered per user
	MaxUsers    int      `yaml:"max_users"`
	Engagements []string `yaml:"engagements"` // event types attributed
	// Examples keeps every engaged list with the feature vectors it was
	// served with in <data_dir>/feedback, for training's learned ranker,
	// bounded by ExamplesMaxMB (oldest dropped).
	Examples      bool  `yaml:"examples"`
	ExamplesMaxMB int64 `yaml:"examples_max_mb"`
}

// trainConfig is the `train:` section.
type trainConfig struct {
	// Interval between scheduled runs ("0": only on request).
	Interval string `yaml:"interval"`
	// Keep is how many model versions stay on disk (the serving one among them).
	Keep         int `yaml:"keep"`
	train.Config `yaml:",inline"`
}

// kafkaConfig is the `kafka:` section, used with log: kafka.
type kafkaConfig struct {
	Brokers []string `yaml:"brokers"`
	Topic   string   `yaml:"topic"`
	// Partitions, when not 0, must equal the topic's partition count.
	Partitions int `yaml:"partitions"`
	// Group is the consumer group workers join to share the partitions
	// (worker.assignment: group).
	Group string `yaml:"group"`
}

// natsConfig is the `nats:` section, used with log: nats.
type natsConfig struct {
	URL        string `yaml:"url"`
	Stream     string `yaml:"stream"`
	Partitions int    `yaml:"partitions"` // fixed when the stream is created
}

// authConfig is the `auth:` section. With no key in keys or the key file,
// Ripple runs in protected mode: no authentication, loopback only.
type authConfig struct {
	KeyFile        string     `yaml:"key_file"`        // managed by `ripple keys`; "": <data_dir>/keys.json
	ReloadInterval string     `yaml:"reload_interval"` // key file poll; SIGHUP reloads at once
	Keys           []auth.Key `yaml:"keys"`            // static keys: {id, name, scopes, hash, tenant, rps, burst}
}

// rateLimitConfig is the `rate_limit:` section: token buckets per key and
// per tenant, in Redis when store: redis (so they hold across nodes), in
// process otherwise and whenever Redis fails. A rate of 0 is no limit; a
// key's own rps/burst override the per-key default.
type rateLimitConfig struct {
	PerKeyRPS      float64 `yaml:"per_key_rps"`
	PerKeyBurst    int     `yaml:"per_key_burst"`
	PerTenantRPS   float64 `yaml:"per_tenant_rps"`
	PerTenantBurst int     `yaml:"per_tenant_burst"`
	MaxBuckets     int     `yaml:"max_buckets"`   // in-process buckets kept (LRU)
	RedisTimeout   string  `yaml:"redis_timeout"` // per Redis call, then the in-process bucket decides
}

// keyFilePath is the key file serve reads and `ripple keys` writes.
func keyFilePath(cfg serveConfig) string {
	if cfg.Auth.KeyFile != "" {
		return cfg.Auth.KeyFile
	}
	return filepath.Join(cfg.DataDir, "keys.json")
}

func defaultServeConfig() serveConfig {
	o := api.DefaultOptions()
	fb := feedback.DefaultOptions()
	rl := o.RateLimit
	return serveConfig{Addr: "127.0.0.1:8080", DataDir: "./ripple-data", SnapshotInterval: "1m", LogLevel: "info",
		MaxBodyBytes: o.MaxBodyBytes, MaxBatchEvents: o.MaxBatchEvents, ReadTimeout: o.ReadTimeout.String(),
		IngestTimeout: o.IngestTimeout.String(), StaleAfter: 10_000, GCPercent: 400, Recommend: recommend.DefaultConfig(),
		Store: "embedded", Redis: defaultRedisConfig(),
		Log: "embedded", Kafka: kafkaConfig{Brokers: []string{"127.0.0.1:9092"}, Topic: "ripple-events", Group: "ripple-workers"},
		NATS: natsConfig{URL: "nats://127.0.0.1:4222", Stream: ripplenats.DefaultStream, Partitions: ripplenats.DefaultPartitions}, Tracing: observe.DefaultTracing(), LogUserIDs: observe.UserIDsHash,
		Train: trainConfig{Interval: "1h", Keep: 3, Config: train.DefaultConfig()}, Role: roleAll, Worker: workerConfig{Count: 1, SessionTimeout: "10s"},
		Feedback: feedbackConfig{Enabled: true, Window: fb.Window.String(), PerUser: fb.PerUser, MaxUsers: fb.MaxUsers,
			Engagements: fb.Engagements, Examples: true, ExamplesMaxMB: 256},
		Auth: authConfig{ReloadInterval: "5s"},
		RateLimit: rateLimitConfig{PerKeyRPS: rl.PerKeyRPS, PerKeyBurst: rl.PerKeyBurst, PerTenantRPS: rl.PerTenantRPS,
			PerTenantBurst: rl.PerTenantBurst, MaxBuckets: rl.MaxBuckets, RedisTimeout: "20ms"}}
}

// readServeConfig reads a config file over the defaults; unknown keys are
// errors.
func readServeConfig(path string) (serveConfig, error) {
	cfg := defaultServeConfig()
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

func init() {
	subcommands = append(subcommands, newServeCmd)
}

func newServeCmd() *cobra.Command {
	cfg := defaultServeConfig()
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Ripple server (embedded event log, features and store)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			final := defaultServeConfig()
			if configFile != "" {
				var err error
				if final, err = readServeConfig(configFile); err != nil {
					return err
				}
			}
			// Flags given on the command line win over the file.
			cmd.Flags().Visit(func(f *pflag.Flag) { overrideFromFlag(&final, &cfg, f.Name) })
			return runServe(cmd.Context(), final)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML config file (every flag has a key of the same name, dashes as underscores)")
	f.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address")
	f.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the event log and snapshots")
	f.BoolVar(&cfg.Demo, "demo", false, "load the synthetic demo dataset into an empty data dir")
	f.StringVar(&cfg.DemoData, "demo-data", "", "load this file into an empty data dir instead of the synthetic demo")
	f.StringVar(&cfg.DemoFormat, "demo-format", "", "format of --demo-data: "+strings.Join(event.Formats, "|")+" (default: from the file name)")
	f.StringVar(&cfg.Features, "features", "", "feature spec YAML (default: built-in)")
	f.StringVar(&cfg.SnapshotInterval, "snapshot-interval", cfg.SnapshotInterval, "how often feature state is snapshotted")
	f.Int64Var(&cfg.RetentionBytes, "retention-bytes", 0, "event log size bound (0: unlimited)")
	f.StringVar(&cfg.RetentionAge, "retention-age", "", "event log age bound, e.g. 30d (empty: unlimited)")
	f.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug|info|warn|error")
	f.StringVar(&cfg.Store, "store", cfg.Store, "where served features live: embedded|redis")
	f.StringVar(&cfg.Log, "log", cfg.Log, "where events are stored: embedded|kafka|nats (see the kafka and nats config sections)")
	f.StringVar(&cfg.Role, "role", cfg.Role, "what this node does: all|api|worker")
	f.StringSliceVar(&cfg.Redis.Addrs, "redis-addr", cfg.Redis.Addrs, "Redis address(es) for --store redis (any Cluster nodes)")
	return cmd
}

func overrideFromFlag(dst, src *serveConfig, name string) {
	switch name {
	case "addr":
		dst.Addr = src.Addr
	case "data-dir":
		dst.DataDir = src.DataDir
	case "demo":
		dst.Demo = src.Demo
	case "demo-data":
		dst.DemoData = src.DemoData
	case "demo-format":
		dst.DemoFormat = src.DemoFormat
	case "features":
		dst.Features = src.Features
	case "snapshot-interval":
		dst.SnapshotInterval = src.SnapshotInterval
	case "retention-bytes":
		dst.RetentionBytes = src.RetentionBytes
	case "retention-age":
		dst.RetentionAge = src.RetentionAge
	case "log-level":
		dst.LogLevel = src.LogLevel
	case "store":
		dst.Store = src.Store
	case "log":
		dst.Log = src.Log
	case "redis-addr":
		dst.Redis.Addrs = src.Redis.Addrs
	case "role":
		dst.Role = src.Role
	}
}

func parseDur(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := features.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return d, nil
}

// node is one running Ripple process's parts, shared by serve and bench.
type node struct {
	log     *eventlog.Embedded // nil with a broker log
	broker  io.Closer          // the partitioned log (log: kafka|nats); nil when embedded
	snaps   *store.Snapshots
	engine  *features.Engine
	ingest  *ingest.Service
	pipe    *recommend.Pipeline
	metrics *observe.Metrics
	api     *api.Server
	logger  *slog.Logger
	online  *onlineParts // store: redis
	models  *model.Registry
	trainer *train.Job
	// feedback and its example log close after the api: its open lists
	// are written out.
	feedback *feedback.Tracker
	examples *feedback.ExampleLog
	// itemStats is where the feedback loop's per-item impressions and
	// engagements are saved (periodically and at close) and loaded from.
	itemStats string
	audit     *audit.Log
	keys      *auth.Store
	// tracer is the node's tracer provider (a no-op one with tracing
	// off); stopTracing flushes it.
	tracer      trace.TracerProvider
	stopTracing func(context.Context) error
}

// tuneGC applies the configured GC target. The serving path allocates per
// request while the live heap is mostly long-lived feature state, so the
// default 100 spends a large share of CPU re-marking that state: measured in
// BENCHMARKS.md, 400 lifts recommendation throughput by about a third and
// cuts p99 several-fold. Set memory limits with GOMEMLIMIT.
func tuneGC(percent int) {
	if os.Getenv("GOGC") == "" && percent != 0 {
		debug.SetGCPercent(percent)
	}
}

func openNode(ctx context.Context, cfg serveConfig, logger *slog.Logger) (*node, error) {
	return openNodeWithKeys(ctx, cfg, logger, nil)
}

// validate checks the settings whose bad values would not fail elsewhere
// at start but would break requests later (a zero body limit refuses
// every POST, a negative candidate count panics in the pipeline).
func (c serveConfig) validate() error {
	if c.MaxBodyBytes <= 0 {
		return fmt.Errorf("max_body_bytes must be > 0, got %d", c.MaxBodyBytes)
	}
	if c.MaxBatchEvents <= 0 {
		return fmt.Errorf("max_batch_events must be > 0, got %d", c.MaxBatchEvents)
	}
	if c.Train.Keep < 1 {
		return fmt.Errorf("train.keep must be at least 1, got %d", c.Train.Keep)
	}
	if _, err := parseDur("train.interval", c.Train.Interval); err != nil {
		return err
	}
	if w, err := parseDur("feedback.window", c.Feedback.Window); err != nil || (c.Feedback.Enabled && w <= 0) {
		return fmt.Errorf("feedback.window must be a positive duration, got %q", c.Feedback.Window)
	}
	if c.Feedback.PerUser < 0 || c.Feedback.MaxUsers < 0 || c.Feedback.ExamplesMaxMB < 0 {
		return fmt.Errorf("feedback.per_user, feedback.max_users and feedback.examples_max_mb must not be negative")
	}
	if err := c.Train.Config.Validate(); err != nil {
		return err
	}
	if err := c.validateRole(); err != nil {
		return err
	}
	return c.Recommend.Validate()
}

// openKeys loads the configured keys and the key file.
func openKeys(cfg serveConfig, logger *slog.Logger) (*auth.Store, error) {
	return auth.NewStore(auth.StoreOptions{Static: cfg.Auth.Keys, File: keyFilePath(cfg), Logger: logger})
}

// openNodeWithKeys opens a node authenticating against keys (nil: load
// them from cfg).
func openNodeWithKeys(ctx context.Context, cfg serveConfig, logger *slog.Logger, keys *auth.Store) (*node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	tuneGC(cfg.GCPercent)
	snapEvery, err := parseDur("snapshot_interval", cfg.SnapshotInterval)
	if err != nil {
		return nil, err
	}
	retAge, err := parseDur("retention_age", cfg.RetentionAge)
	if err != nil {
		return nil, err
	}
	readTimeout, err := parseDur("read_timeout", cfg.ReadTimeout)
	if err != nil {
		return nil, err
	}
	ingestTimeout, err := parseDur("ingest_timeout", cfg.IngestTimeout)
	if err != nil {
		return nil, err
	}
	if cfg.Store != "embedded" && cfg.Store != "redis" {
		return nil, fmt.Errorf("store: want embedded or redis, got %q", cfg.Store)
	}
	if cfg.Log != "embedded" && cfg.Log != "kafka" && cfg.Log != "nats" {
		return nil, fmt.Errorf("log: want embedded, kafka or nats, got %q", cfg.Log)
	}
	if cfg.Log != "embedded" && cfg.Store == "redis" && cfg.Role == roleAll {
		// The publisher marks the Redis store's progress with one log
		// offset; a partitioned log needs a vector there: roles api and
		// worker keep one per partition.
		return nil, fmt.Errorf("log: %s works with store: embedded only with role: all (split the node into roles api and worker)", cfg.Log)
	}
	limiterTimeout, err := parseDur("rate_limit.redis_timeout", cfg.RateLimit.RedisTimeout)
	if err != nil {
		return nil, err
	}
	if keys == nil {
		if keys, err = openKeys(cfg, logger); err != nil {
			return nil, err
		}
	}
	fcfg := features.DefaultConfig()
	if cfg.Features != "" {
		if fcfg, err = features.LoadConfig(cfg.Features); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	n := &node{logger: logger, keys: keys}
	plog, broker, err := openBroker(ctx, cfg)
	if err != nil {
		return nil, err
	}
	n.broker = broker
	if plog == nil {
		n.log, err = eventlog.OpenEmbedded(filepath.Join(cfg.DataDir, "log"), eventlog.EmbeddedOptions{
			RetentionBytes: cfg.RetentionBytes, RetentionAge: retAge, Logger: logger})
		if err != nil {
			return nil, err
		}
	}
	if cfg.Role != roleAPI {
		if n.snaps, err = store.OpenSnapshots(filepath.Join(cfg.DataDir, snapshotDir(cfg))); err != nil {
			n.close()
			return nil, err
		}
	}
	n.engine = features.NewEngine(fcfg, nil)
	var svc *ingest.Service
	n.metrics = observe.NewMetrics(func() float64 { return float64(n.engine.Late()) },
		func() float64 { return svc.SnapshotAge() })
	if n.tracer, n.stopTracing, err = observe.NewTracerProvider(ctx, cfg.Tracing, n.metrics.Registry, logger); err != nil {
		n.close()
		return nil, err
	}
	if cfg.Role == roleAPI {
		svc = ingest.NewAppender(plog, ingest.Remote{}, n.metrics, logger, ingest.Options{Tracing: n.tracer})
	} else if plog != nil {
		svc = ingest.NewPartitioned(plog, n.engine, n.snaps, n.metrics, logger, ingest.Options{
			SnapshotEvery: snapEvery, Tracing: n.tracer})
	} else {
		// Snapshots are taken from the first one on, so retention may only
		// drop records a snapshot covers.
		n.log.SetRetentionFloor(0)
		svc = ingest.New(n.log, n.engine, n.snaps, n.metrics, logger, ingest.Options{
			SnapshotEvery: snapEvery, RetentionFloor: n.log.SetRetentionFloor, Tracing: n.tracer})
	}
	n.ingest = svc
	if err := svc.Recover(ctx); err != nil {
		n.close()
		return nil, err
	}
	var reader api.FeatureReader = api.EngineReader{Engine: n.engine}
	n.pipe = recommend.New(n.engine, cfg.Recommend)
	if cfg.Store == "redis" {
		// After recovery: the publisher resyncs whatever the store lacks.
		if n.online, err = openOnline(ctx, n, cfg.Redis, cfg.DataDir, readParts(cfg, plog), logger); err != nil {
			n.close()
			return nil, err
		}
		if cfg.Role == roleAPI {
			bindAppender(svc, n.online, cfg)
		} else {
			svc.AfterApply(n.online.publisher.AfterApply)
			n.online.publisher.StartResync(ctx, svc.SpecChanged())
		}
		reader = onlineFeatures{n.online.reader}
		n.pipe = bindPipeline(n.online.reader, cfg.Recommend)
	}
	svc.Start()
	staleAfter := uint64(max(cfg.StaleAfter, 1))
	n.pipe.Health = func() string {
		var lag uint64
		if n.log == nil {
			lag = svc.ConsumerLag() // a broker log's, measured every second
		} else if end, applied := n.log.End(), n.engine.Applied(); end > applied+1 {
			lag = end - applied - 1
		}
		if lag > staleAfter {
			return recommend.Stale
		}
		return recommend.Healthy
	}
	n.pipe.Tracer = observe.Tracer(n.tracer, "github.com/ripple-rec/ripple/internal/recommend")
	opts := api.DefaultOptions()
	opts.MaxBodyBytes, opts.MaxBatchEvents, opts.ExtraEventTypes = cfg.MaxBodyBytes, cfg.MaxBatchEvents, cfg.EventTypes
	if readTimeout > 0 {
		opts.ReadTimeout = readTimeout
	}
	if ingestTimeout > 0 {
		opts.IngestTimeout = ingestTimeout
	}
	opts.MaxK = cfg.Recommend.MaxK
	if n.online != nil {
		opts.Status = func() map[string]any { return n.online.status(n.engine.Applied) }
	}
	opts.Keys, opts.MaxInFlight = keys, cfg.MaxInFlight
	opts.Tracing = n.tracer
	rl := cfg.RateLimit
	opts.RateLimit = api.RateLimit{PerKeyRPS: rl.PerKeyRPS, PerKeyBurst: rl.PerKeyBurst, PerTenantRPS: rl.PerTenantRPS,
		PerTenantBurst: rl.PerTenantBurst, MaxBuckets: rl.MaxBuckets}
	if n.online != nil {
		// Buckets in Redis hold across nodes. The limiter's own breaker
		// skips a failing Redis at once; the in-process buckets decide then.
		var window, cool time.Duration
		if err := durations("redis.breaker_window", cfg.Redis.BreakerWindow, &window,
			"redis.breaker_cooldown", cfg.Redis.BreakerCooldown, &cool); err != nil {
			n.close()
			return nil, err
		}
		breaker := resilience.NewBreaker(resilience.BreakerConfig{Name: "redis-ratelimit", Timeout: limiterTimeout,
			Window: window, MaxFailures: cfg.Redis.BreakerFailures, CoolDown: cool,
			OnStateChange: func(name string, from, to resilience.State) {
				logger.Warn("circuit breaker", "breaker", name, "from", from.String(), "to", to.String())
			}})
		opts.Limiter = api.NewRedisLimiter(n.online.store.Client(), cfg.Redis.Prefix, breaker, limiterTimeout)
	}
	if n.audit, err = audit.Open(cfg.DataDir); err != nil {
		n.close()
		return nil, err
	}
	opts.Audit = n.audit
	if cfg.Role == roleAPI {
		// Models are trained and served by role all nodes for now.
		n.api = api.New(svc, reader, n.pipe, n.metrics, logger, opts)
		return n, nil
	}
	if err := openModels(n, cfg, logger); err != nil {
		n.close()
		return nil, err
	}
	opts.Trainer, opts.Models = n.trainer, n.models
	if fc := cfg.Feedback; fc.Enabled {
		window, _ := parseDur("feedback.window", fc.Window)
		fo := feedback.Options{Window: window, PerUser: fc.PerUser, MaxUsers: fc.MaxUsers, Engagements: fc.Engagements}
		dir := filepath.Join(cfg.DataDir, "feedback")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			n.close()
			return nil, fmt.Errorf("feedback: %w", err)
		}
		if fc.Examples {
			if n.examples, err = feedback.OpenExampleLog(dir, max(fc.ExamplesMaxMB, 1)<<20); err != nil {
				n.close()
				return nil, fmt.Errorf("feedback examples: %w", err)
			}
			fo.Examples = n.examples
			if n.trainer != nil {
				n.trainer.Examples = dir
			}
		}
		opts.Feedback = feedback.New(fo, n.metrics.Registry)
		opts.Feedback.OnExampleError(func(err error) { logger.Warn("feedback examples dropped", "err", err) })
		n.itemStats = filepath.Join(dir, "items.ndjson")
		if skipped, err := opts.Feedback.LoadItems(n.itemStats); err != nil || skipped > 0 {
			// Counts are evidence, not state: start without what is unreadable.
			logger.Warn("feedback item statistics", "err", err, "skipped_lines", skipped)
		}
		n.pipe.Explorer = opts.Feedback
		n.feedback = opts.Feedback
	}
	n.api = api.New(svc, reader, n.pipe, n.metrics, logger, opts)
	return n, nil
}

// openModels opens the model registry in <data_dir>/models, serves its
// current version, and wires the training job. An unreadable version is
// logged and an older one (or none: the streaming model) serves.
func openModels(n *node, cfg serveConfig, logger *slog.Logger) error {
	reg, err := model.OpenRegistry(filepath.Join(cfg.DataDir, "models"), cfg.Train.Keep)
	if reg == nil {
		return err
	}
	if err != nil {
		logger.Error("model registry", "err", err)
	}
	n.models = reg
	n.pipe.Models = reg.Current
	stream := &train.Stream{Features: n.engine.Config(), Recommend: cfg.Recommend, Items: n.engine.Catalogue}
	if n.trainer, err = train.NewJob(n.ingest.Interactions, reg, cfg.Train.Config, stream, logger, n.metrics.Registry); err != nil {
		return err
	}
	if m := reg.CurrentManifest(); m != nil {
		n.trainer.SetServing(m.Version)
		logger.Info("serving trained model", "model", m.Name, "created", m.Created)
	}
	return nil
}

// snapshotDir names the snapshot directory after the log the state was
// built from: a snapshot's offsets mean nothing in another log, so switching
// a data dir between logs starts from that log's own snapshots.
func snapshotDir(cfg serveConfig) string {
	switch cfg.Log {
	case "kafka":
		return "snapshots-kafka-" + filepath.Base(cfg.Kafka.Topic)
	case "nats":
		return "snapshots-nats-" + filepath.Base(cfg.NATS.Stream)
	}
	return "snapshots"
}

// saveItemStats saves the feedback loop's item statistics every interval
// until ctx ends, so a crash loses at most that much of them.
func (n *node) saveItemStats(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := n.feedback.SaveItems(n.itemStats); err != nil {
				n.logger.Warn("saving feedback item statistics", "err", err)
			}
		}
	}
}

// close flushes: the applier drains the log, a final snapshot is written,
// then the log closes.
func (n *node) close() {
	if n.trainer != nil {
		n.trainer.Close() // it reads the log: stop it first
	}
	if n.ingest != nil {
		if err := n.ingest.Close(); err != nil {
			n.logger.Error("final snapshot failed", "err", err)
		}
	}
	if n.online != nil {
		n.online.close() // the publisher's last flush follows the applier's
	}
	if n.snaps != nil {
		n.snaps.Close()
	}
	if n.log != nil {
		n.log.Close()
	}
	if n.broker != nil {
		n.broker.Close()
	}
	if n.feedback != nil {
		n.feedback.Close()
		if err := n.feedback.SaveItems(n.itemStats); err != nil {
			n.logger.Warn("saving feedback item statistics", "err", err)
		}
	}
	if n.examples != nil {
		if err := n.examples.Close(); err != nil {
			n.logger.Warn("closing the feedback example log", "err", err)
		}
	}
	if n.audit != nil {
		n.audit.Close()
	}
	if n.stopTracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := n.stopTracing(ctx); err != nil {
			n.logger.Warn("flushing traces at shutdown", "err", err)
		}
		cancel()
	}
}

func runServe(ctx context.Context, cfg serveConfig) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("log_level: %w", err)
	}
	logger, err := observe.NewJSONLogger(os.Stderr, level, observe.LogConfig{UserIDs: cfg.LogUserIDs, UserIDKey: cfg.LogUserIDKey})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Protected mode is decided before anything slow is opened.
	keys, err := openKeys(cfg, logger)
	if err != nil {
		return err
	}
	reloadEvery, err := parseDur("auth.reload_interval", cfg.Auth.ReloadInterval)
	if err != nil {
		return err
	}
	if err := checkExposure(ctx, cfg.Addr, keys.Enforcing(), keyFilePath(cfg)); err != nil {
		return err
	}
	if cfg.Role == roleWorker {
		return runWorker(ctx, cfg, logger)
	}
	n, err := openNodeWithKeys(ctx, cfg, logger, keys)
	if err != nil {
		return err
	}
	defer n.close()
	if cfg.Demo || cfg.DemoData != "" {
		if err := loadDemo(ctx, n, cfg, logger); err != nil {
			return err
		}
		if n.models.Current() == nil {
			n.trainer.Start() // in the background: the streaming model serves until it is done
		}
	}
	if every, _ := parseDur("train.interval", cfg.Train.Interval); every > 0 && n.trainer != nil {
		go n.trainer.Every(ctx, every)
	}
	if n.feedback != nil {
		go n.saveItemStats(ctx, time.Minute)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !keys.Enforcing() && !tcp.IP.IsLoopback() {
		ln.Close() // the name resolved differently at bind time
		return protectedModeError(ln.Addr().String(), keyFilePath(cfg))
	}
	if keys.Enforcing() {
		active, revoked := keys.Counts()
		logger.Info("API keys required", "active", active, "revoked", revoked, "key_file", keys.File())
	} else {
		logger.Warn("PROTECTED MODE: no API keys are configured, so every request is served without authentication, "+
			"admin routes included, and Ripple refuses any listen address but loopback. Create a key with "+
			"`ripple keys create --name NAME --scopes read,ingest` (or set auth.keys) to require keys: this server picks "+
			"the key file up while running; listening on other addresses takes a restart.",
			"addr", ln.Addr().String(), "key_file", keys.File())
	}
	// The key file is polled, and reread at once on SIGHUP, so a revoke
	// takes effect without a restart.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go keys.Watch(ctx, reloadEvery, hup)
	logger.Info("ripple serving", "addr", ln.Addr().String(), "data_dir", cfg.DataDir, "applied", n.engine.Applied(),
		"users", n.engine.UserCount(), "items", n.engine.ItemCount())
	return serveHTTP(ctx, ln, api.NewHTTPServer(cfg.Addr, n.api.Handler()), logger)
}

// serveHTTP serves on ln until the server fails or ctx ends, then drains.
func serveHTTP(ctx context.Context, ln net.Listener, srv *http.Server, logger *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Error("shutdown", "err", err)
	}
	return nil
}

// checkExposure enforces protected mode: without API keys Ripple serves
// loopback addresses only, like Redis. An empty host, 0.0.0.0 and [::]
// listen everywhere and are refused; a name must resolve to loopback only.
func checkExposure(ctx context.Context, addr string, haveKeys bool, keyFile string) error {
	if haveKeys {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("addr %q: %w", addr, err)
	}
	if !loopbackHost(ctx, host) {
		return protectedModeError(addr, keyFile)
	}
	return nil
}

func loopbackHost(ctx context.Context, host string) bool {
	if host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil || len(addrs) == 0 {
		return false
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return false
		}
	}
	return true
}

func protectedModeError(addr, keyFile string) error {
	return fmt.Errorf("refusing to serve on %s without API keys (protected mode): with no keys configured Ripple "+
		"serves only loopback addresses. Bind one (--addr 127.0.0.1:8080), or create a key first: "+
		"ripple keys create --name NAME --scopes read,ingest --file %s (or add auth.keys to the config)", addr, keyFile)
}

// loadDemo fills an empty data dir with the synthetic demo or a real file.
func loadDemo(ctx context.Context, n *node, cfg serveConfig, logger *slog.Logger) error {
	if n.log == nil {
		return errors.New("demo data loads into the embedded log only (log: embedded)")
	}
	if n.log.End() > 1 {
		logger.Info("data dir already holds events; demo data not loaded again", "records", n.log.End()-1)
		return nil
	}
	var items []event.Item
	var events []event.Interaction
	if cfg.DemoData != "" {
		format := cfg.DemoFormat
		if format == "" {
			format = event.FormatFromName(cfg.DemoData)
		}
		f, err := os.Open(cfg.DemoData)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := event.ReadFile(f, format, func(e *event.Interaction) error {
			events = append(events, *e)
			return nil
		}); err != nil {
			return fmt.Errorf("%s: %w", cfg.DemoData, err)
		}
	} else {
		ds := demo.Generate(demo.DefaultOptions(time.Now()))
		items, events = ds.Items, ds.Events
	}
	start := time.Now()
	if len(items) > 0 {
		if err := n.ingest.Items(ctx, items); err != nil {
			return err
		}
	}
	v := event.NewValidator(cfg.EventTypes...)
	rejected := 0
	for len(events) > 0 {
		batch := events[:min(len(events), 5000)]
		events = events[len(batch):]
		valid := batch[:0]
		for i := range batch {
			if v.Interaction(&batch[i]) == nil {
				valid = append(valid, batch[i])
			} else {
				rejected++
			}
		}
		if _, err := n.ingest.Events(ctx, valid); err != nil {
			return err
		}
	}
	logger.Info("demo data loaded", "records", n.log.End()-1, "rejected", rejected, "items", n.engine.ItemCount(),
		"users", n.engine.UserCount(), "seconds", time.Since(start).Seconds())
	return nil
}
