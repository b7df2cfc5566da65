package main

// Roles split one Ripple into nodes that scale apart, all from one config
// and one binary (store: redis, log: kafka|nats):
//
//   - api nodes append events to the broker log (202 once the broker acked)
//     and serve every read from the shared Redis store. They hold no feature
//     state. With read_your_writes they answer once the owners of the
//     written partitions published state that includes the events (the
//     store's offset of each partition reached the broker's acked offset);
//     otherwise an accepted event becomes visible when its owner publishes
//     it, normally within a publish flush (see BENCHMARKS.md).
//   - worker nodes own partitions: one feature engine per partition, fed
//     by that partition alone, snapshotted in <data_dir>, published into
//     Redis. Users live in one partition, so user records are whole; item
//     and global records are written as one part per partition and merged
//     when read (internal/online/merge.go).
//
// Consent and erasure on api nodes are records like events: the owner of
// the user's partition applies them (consent is read back from the store
// to refuse events of users who withheld storage; erasure answers once the
// tombstone is published, and the broker log cannot be redacted). Item
// metadata is appended to every partition (one copy each, pinned), so every
// partition's engine knows the categories its users' events need (category
// trending and user category affinity); a partition keeps one item's
// updates in order.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/ripple-rec/ripple/internal/api"
	ripplekafka "github.com/ripple-rec/ripple/internal/eventlog/kafka"
	ripplenats "github.com/ripple-rec/ripple/internal/eventlog/nats"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/online"
	"github.com/ripple-rec/ripple/internal/ownership"
	"github.com/ripple-rec/ripple/internal/store"
)

const (
	roleAll    = "all"
	roleAPI    = "api"
	roleWorker = "worker"
)

// workerConfig is the `worker:` section: how partitions find an owner.
//
//   - assignment: group (the default with log: kafka) makes the workers one
//     Kafka consumer group that only decides ownership.
//   - assignment: lease (the default with log: nats; also works on Kafka)
//     shares the partitions through leases in the Redis store
//     (internal/ownership): balanced, mostly sticky.
//
// With either, a worker that dies (kill -9 included) loses its partitions
// after session_timeout and the others take them over; a worker that joins
// or leaves takes or gives some. A revoked partition is closed first (last
// batch applied, final snapshot, last publish) and only then released.
// Offsets live with the state (the snapshot and the store), never in the
// broker: a new owner starts from its own snapshot of the partition if it
// has one and replays the rest of the log.
//
//   - assignment: static: partition p is owned by the worker whose index is
//     p % count. A worker that dies leaves its partitions unapplied until it
//     (or a replacement with the same index, on any data dir: it replays the
//     log) restarts.
type workerConfig struct {
	Assignment     string `yaml:"assignment"`
	Index          int    `yaml:"index"`
	Count          int    `yaml:"count"`
	SessionTimeout string `yaml:"session_timeout"`
}

const (
	assignGroup  = "group"
	assignLease  = "lease"
	assignStatic = "static"
)

// assignment resolves the default: group on Kafka, lease on NATS.
func (c serveConfig) assignment() string {
	if c.Worker.Assignment != "" {
		return c.Worker.Assignment
	}
	if c.Log == "kafka" {
		return assignGroup
	}
	return assignLease
}

func (c serveConfig) validateRole() error {
	switch c.Role {
	case roleAll:
		return nil
	case roleAPI, roleWorker:
	default:
		return fmt.Errorf("role: want all, api or worker, got %q", c.Role)
	}
	if c.Store != "redis" || (c.Log != "kafka" && c.Log != "nats") {
		return fmt.Errorf("role: %s needs store: redis and log: kafka or nats (got store: %s, log: %s): "+
			"api and worker nodes share state only through those", c.Role, c.Store, c.Log)
	}
	if c.Role != roleWorker {
		return nil
	}
	switch c.assignment() {
	case assignGroup, assignLease:
		if c.assignment() == assignGroup && c.Log != "kafka" {
			return fmt.Errorf("worker.assignment: group needs log: kafka (NATS has no consumer groups that assign partitions); use lease")
		}
		if d, err := time.ParseDuration(c.Worker.SessionTimeout); c.Worker.SessionTimeout != "" && (err != nil || d <= 0) {
			return fmt.Errorf("worker.session_timeout: want a positive duration, got %q", c.Worker.SessionTimeout)
		}
		if c.assignment() == assignGroup && c.Kafka.Group == "" {
			return errors.New("kafka.group: want the consumer group's name")
		}
	case assignStatic:
		if c.Worker.Count < 1 || c.Worker.Index < 0 || c.Worker.Index >= c.Worker.Count {
			return fmt.Errorf("worker: want 0 <= index < count, got index %d, count %d", c.Worker.Index, c.Worker.Count)
		}
	default:
		return fmt.Errorf("worker.assignment: want group, lease or static, got %q", c.Worker.Assignment)
	}
	return nil
}

// openBroker opens the partitioned log of log: kafka|nats (nil, nil with
// the embedded log).
func openBroker(ctx context.Context, cfg serveConfig) (ingest.PartitionedLog, io.Closer, error) {
	switch cfg.Log {
	case "kafka":
		kl, err := ingest.OpenKafka(ctx, ingest.KafkaOptions{Brokers: cfg.Kafka.Brokers, Topic: cfg.Kafka.Topic, Partitions: cfg.Kafka.Partitions})
		if err != nil {
			return nil, nil, fmt.Errorf("log: kafka: %w", err)
		}
		return kl, kl, nil
	case "nats":
		nl, err := ingest.OpenNATS(ctx, ripplenats.Options{URL: cfg.NATS.URL, Stream: cfg.NATS.Stream, Partitions: cfg.NATS.Partitions})
		if err != nil {
			return nil, nil, fmt.Errorf("log: nats: %w", err)
		}
		return nl, nl, nil
	}
	return nil, nil, nil
}

// readParts is how many parts the store's item and global records have: one
// per partition when workers own partitions, none with role all.
func readParts(cfg serveConfig, plog ingest.PartitionedLog) int {
	if cfg.Role == roleAll || plog == nil {
		return 0
	}
	return plog.Partitions()
}

// partSource names partition p in the store: its offset key and the stamp
// of the records its engine wrote. Any worker owning p writes as it, so a
// new owner continues where the last one's published state ends.
func partSource(cfg serveConfig, p int) string { return logName(cfg) + ":" + strconv.Itoa(p) }

// logName names the broker log: "nats:<stream>" or "kafka:<topic>".
func logName(cfg serveConfig) string {
	if cfg.Log == "nats" {
		return "nats:" + cfg.NATS.Stream
	}
	return "kafka:" + cfg.Kafka.Topic
}

// bindAppender gives an api node's write path what it reads back from the
// store: consent, and, for erasure, consent changes and (with
// read_your_writes) every append, the published offsets.
func bindAppender(svc *ingest.Service, o *onlineParts, cfg serveConfig) {
	published := func(ctx context.Context, at map[int]uint64) error {
		for p, off := range at {
			for {
				got, err := o.store.Offset(ctx, partSource(cfg, p))
				if err == nil && got >= off {
					break
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("partition %d not published up to %d: %w", p, off, ctx.Err())
				case <-time.After(2 * time.Millisecond):
				}
			}
		}
		return nil
	}
	svc.SetRemote(ingest.Remote{Consent: o.reader.Consent, Published: published, PublishedAll: cfg.ReadYourWrites})
}

// partUnit is one owned partition: its engine, applier, snapshots and
// publisher.
type partUnit struct {
	svc     *ingest.Service
	snaps   *store.Snapshots
	pub     *online.Publisher
	metrics *prometheus.Registry // the publisher's, labelled with the partition
}

func (u *partUnit) close(logger *slog.Logger) {
	if err := u.svc.Close(); err != nil {
		logger.Error("final snapshot failed", "err", err)
	}
	u.pub.Close() // the last flush follows the applier's last batch
	u.snaps.Close()
}

// worker applies the partitions it owns into the shared store.
type worker struct {
	cfg    serveConfig
	fcfg   *features.Config
	plog   ingest.PartitionedLog
	n      *node // the store connection, bus and metrics
	ttl    time.Duration
	every  time.Duration
	logger *slog.Logger
	m      *observe.WorkerMetrics

	mu      sync.Mutex
	units   map[int]*partUnit
	opening map[int]*opening // group: partitions being recovered
	ready   bool             // static: every partition recovered
	group   membership       // group or lease assignment; nil: static
	fail    func(error)      // stops the worker: it cannot own what it was given
}

// membership is a worker's share of the partitions, decided with the
// others (a Kafka consumer group, or leases in Redis).
type membership interface {
	Joined() bool // its ownership, possibly none, is known
	Close()       // revoke and release everything, then leave
}

// opening is a partition being recovered after an assignment; a revoke
// cancels it and waits.
type opening struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// own opens partition p: its state from its snapshot (if this data dir has
// one) and then the log from the snapshot's offset; the publisher resyncs
// the store when it holds less than the state.
func (w *worker) own(ctx context.Context, p int) error {
	logger := w.logger.With("partition", p)
	dir := filepath.Join(w.cfg.DataDir, snapshotDir(w.cfg), "partition-"+strconv.Itoa(p))
	snaps, err := store.OpenSnapshots(dir)
	for tries := 0; err != nil && errors.Is(err, syscall.EAGAIN) && tries < 100; tries++ {
		// Locked: a previous owner of this data dir is still exiting.
		time.Sleep(100 * time.Millisecond)
		snaps, err = store.OpenSnapshots(dir)
	}
	if errors.Is(err, syscall.EAGAIN) {
		// kill -9 releases the lock: a live process holds it.
		return fmt.Errorf("partition %d: another process still holds %s (a second worker on this data dir?): %w", p, dir, err)
	}
	if err != nil {
		return err
	}
	eng := features.NewEngine(w.fcfg, nil)
	// The partitions share the node's metrics (counters add up; consumer
	// lag is labelled with the partition) and each has its own registry
	// for its publisher's, labelled partition="p": merged when scraped.
	svc := ingest.NewPartitioned(ingest.OnePartition(w.plog, p), eng, snaps, w.n.metrics, logger, ingest.Options{SnapshotEvery: w.every})
	if err := svc.Recover(ctx); err != nil {
		_ = svc.Close() // the readers the recovery opened
		snaps.Close()
		return fmt.Errorf("partition %d: %w", p, err)
	}
	reg := prometheus.NewRegistry()
	pub := online.NewPublisher(eng, w.n.online.store, w.n.online.reader, online.PublisherOptions{
		Source: partSource(w.cfg, p), Part: strconv.Itoa(p), TTL: w.ttl, Logger: logger, AnnounceOnly: true,
		Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"partition": strconv.Itoa(p)}, reg)})
	svc.AfterApply(pub.AfterApply)
	pub.StartResync(ctx, svc.SpecChanged())
	svc.Start()
	u := &partUnit{svc: svc, snaps: snaps, pub: pub, metrics: reg}
	w.mu.Lock()
	closed := w.units == nil
	if !closed {
		w.units[p] = u
	}
	w.mu.Unlock()
	if closed {
		u.close(logger)
		return ctx.Err()
	}
	logger.Info("partition owned", "applied", eng.Applied())
	return nil
}

func (w *worker) close() {
	if w.group != nil {
		// Leaving revokes every partition (closing each) before the
		// others are told: they take over without waiting for a timeout.
		w.group.Close()
	}
	w.mu.Lock()
	units := w.units
	w.units = nil // closed: a partition still being opened closes at once
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range units {
		wg.Go(func() { u.close(w.logger) })
	}
	wg.Wait()
}

// assigned starts recovering partitions the group gave this worker, each
// on its own: a revoke need not wait for the others.
func (w *worker) assigned(ps []int32) {
	w.m.PartitionChanges.WithLabelValues("assigned").Add(float64(len(ps)))
	for _, p32 := range ps {
		p := int(p32)
		ctx, cancel := context.WithCancel(context.Background())
		op := &opening{cancel: cancel, done: make(chan struct{})}
		w.mu.Lock()
		w.opening[p] = op
		w.mu.Unlock()
		go func() {
			defer close(op.done)
			defer cancel()
			start := time.Now()
			err := w.own(ctx, p)
			w.mu.Lock()
			delete(w.opening, p)
			w.mu.Unlock()
			switch {
			case err == nil:
				w.m.RecoverSeconds.Observe(time.Since(start).Seconds())
			case ctx.Err() == nil:
				// Holding a partition it cannot apply would stall it for
				// good; stopping hands it to another worker.
				w.fail(fmt.Errorf("partition %d: %w", p, err))
			}
		}()
	}
}

// revoked closes partitions the group takes away: recovery cancelled, or
// the last batch applied, a final snapshot and a last publish. Only then
// does the group hand them to another worker.
func (w *worker) revoked(ps []int32, how string) {
	w.m.PartitionChanges.WithLabelValues(how).Add(float64(len(ps)))
	var wg sync.WaitGroup
	for _, p32 := range ps {
		p := int(p32)
		w.mu.Lock()
		op := w.opening[p]
		w.mu.Unlock()
		if op != nil {
			op.cancel()
			<-op.done
		}
		w.mu.Lock()
		u := w.units[p]
		delete(w.units, p)
		w.mu.Unlock()
		if u != nil {
			wg.Go(func() {
				u.close(w.logger.With("partition", p))
				w.logger.Info("partition released", "partition", p, "how", how)
			})
		}
	}
	wg.Wait()
}

// Gather is the node's metrics and those of the partitions it owns now.
func (w *worker) Gather() ([]*dto.MetricFamily, error) {
	gs := prometheus.Gatherers{w.n.metrics.Registry}
	w.mu.Lock()
	for _, u := range w.units {
		gs = append(gs, u.metrics)
	}
	w.mu.Unlock()
	return gs.Gather()
}

// isReady: every partition recovered (static), or the group joined and
// nothing it assigned is still recovering.
func (w *worker) isReady() (bool, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.group != nil {
		return w.group.Joined() && len(w.opening) == 0, len(w.units)
	}
	return w.ready, len(w.units)
}

// handler serves /healthz, /readyz (ready once every owned partition
// recovered) and /metrics.
func (w *worker) handler() http.Handler {
	mux := http.NewServeMux()
	json := func(rw http.ResponseWriter, code int, body string) {
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(code)
		_, _ = io.WriteString(rw, body)
	}
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { json(rw, http.StatusOK, `{"status":"ok"}`) })
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		ready, owned := w.isReady()
		if !ready {
			json(rw, http.StatusServiceUnavailable, `{"status":"recovering"}`)
			return
		}
		json(rw, http.StatusOK, fmt.Sprintf(`{"status":"ready","role":"worker","partitions":%d}`, owned))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(w, promhttp.HandlerOpts{}))
	return mux
}

// runWorker runs a worker node until ctx ends or a signal stops it.
func runWorker(ctx context.Context, cfg serveConfig, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cfg.validate(); err != nil {
		return err
	}
	tuneGC(cfg.GCPercent)
	w := &worker{cfg: cfg, logger: logger, units: map[int]*partUnit{}, opening: map[int]*opening{}}
	var err error
	if err := durations("snapshot_interval", cfg.SnapshotInterval, &w.every, "redis.ttl", cfg.Redis.TTL, &w.ttl); err != nil {
		return err
	}
	w.fcfg = features.DefaultConfig()
	if cfg.Features != "" {
		if w.fcfg, err = features.LoadConfig(cfg.Features); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return err
	}
	plog, broker, err := openBroker(ctx, cfg)
	if err != nil {
		return err
	}
	defer broker.Close()
	w.plog = plog
	// The node holds what the partitions share: the store, its
	// invalidation bus (announcing what each flush replaced) and metrics.
	// Its engine is never applied to: it gives the readers' defaults.
	n := &node{logger: logger, engine: features.NewEngine(w.fcfg, nil)}
	n.metrics = observe.NewMetrics(func() float64 { return 0 }, func() float64 { return -1 })
	n.tracer, n.stopTracing, err = observe.NewTracerProvider(ctx, cfg.Tracing, n.metrics.Registry, logger)
	if err != nil {
		return err
	}
	defer n.close()
	if n.online, err = openOnline(ctx, n, cfg.Redis, cfg.DataDir, plog.Partitions(), logger); err != nil {
		return err
	}
	w.n = n
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	w.m = observe.NewWorkerMetrics(n.metrics.Registry, func() float64 {
		_, owned := w.isReady()
		return float64(owned)
	}, plog.Partitions())
	w.fail = func(err error) {
		if ctx.Err() == nil {
			logger.Error("cannot own a partition; stopping", "err", err)
			stop()
		}
	}
	switch cfg.assignment() {
	case assignGroup:
		if err := w.joinGroup(); err != nil {
			return err
		}
	case assignLease:
		if err := w.joinLeases(ctx); err != nil {
			return err
		}
	default:
		go w.ownStatic(ctx)
	}
	defer w.close()
	logger.Info("ripple worker serving", "addr", ln.Addr().String(), "data_dir", cfg.DataDir)
	return serveHTTP(ctx, ln, api.NewHTTPServer(cfg.Addr, w.handler()), logger)
}

// ownStatic owns the partitions p % count == index, one after the other.
func (w *worker) ownStatic(ctx context.Context) {
	for p := range w.plog.Partitions() {
		if p%w.cfg.Worker.Count != w.cfg.Worker.Index {
			continue
		}
		if err := w.own(ctx, p); err != nil {
			w.fail(err)
			return
		}
	}
	w.mu.Lock()
	w.ready = true
	n := len(w.units)
	w.mu.Unlock()
	w.logger.Info("worker ready", "index", w.cfg.Worker.Index, "count", w.cfg.Worker.Count, "partitions", n)
}

// The membership callbacks (group or lease).
func (w *worker) onAssigned(_ context.Context, ps []int32) {
	w.logger.Info("partitions assigned", "partitions", ps)
	w.assigned(ps)
}

func (w *worker) onRevoked(_ context.Context, ps []int32) {
	w.logger.Info("partitions revoked; closing them before release", "partitions", ps)
	w.revoked(ps, "revoked")
}

// onLost: the session expired or the lease could not be renewed in time,
// and another worker may own them now. Closed the same way; the last
// publish cannot undo the new owner's: the store keeps the newer offset
// stamp of a record.
func (w *worker) onLost(_ context.Context, ps []int32) {
	w.logger.Warn("partitions lost without a clean revoke", "partitions", ps)
	w.revoked(ps, "lost")
}

// joinGroup makes this worker a member of the workers' consumer group.
func (w *worker) joinGroup() error {
	session, _ := time.ParseDuration(w.cfg.Worker.SessionTimeout) // validated
	g, err := ripplekafka.JoinGroup(ripplekafka.GroupOptions{
		Brokers: w.cfg.Kafka.Brokers, Topic: w.cfg.Kafka.Topic, Group: w.cfg.Kafka.Group,
		OnAssigned: w.onAssigned, OnRevoked: w.onRevoked, OnLost: w.onLost,
		SessionTimeout:    session,
		RebalanceTimeout:  max(session, 30*time.Second),
		HeartbeatInterval: max(session/10, 100*time.Millisecond),
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.group = g
	w.mu.Unlock()
	return nil
}

// joinLeases shares the partitions with the other workers through leases
// in the Redis store; it waits for the store's first connection.
func (w *worker) joinLeases(ctx context.Context) error {
	select {
	case <-w.n.online.store.Connected():
	case <-ctx.Done():
		return ctx.Err()
	}
	host, _ := os.Hostname()
	session, _ := time.ParseDuration(w.cfg.Worker.SessionTimeout) // validated
	l, err := ownership.Join(ownership.Options{
		Client: w.n.online.store.Client(), Group: w.cfg.Redis.Prefix + ":workers:" + logName(w.cfg),
		Member: fmt.Sprintf("%s-%d-%x", host, os.Getpid(), rand.Uint32()), Partitions: w.plog.Partitions(), TTL: session,
		OnAssigned: w.onAssigned, OnRevoked: w.onRevoked, OnLost: w.onLost,
		Logger: w.logger,
	})
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.group = l
	w.mu.Unlock()
	return nil
}
