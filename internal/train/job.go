package train

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/feedback"
	"github.com/ripple-rec/ripple/internal/model"
)

// Source calls fn with every interaction to train on, in log order.
type Source func(ctx context.Context, fn func(*event.Interaction) error) error

// Report is what one training run did; the admin API returns it.
type Report struct {
	Model           string            `json:"model"` // blend@N now serving
	Serving         string            `json:"serving"`
	Events          int               `json:"events"`
	Items           int               `json:"items"`
	ValidationUsers int               `json:"validation_users"`
	Validation      []SourceResult    `json:"validation"`
	Components      []model.Component `json:"components"`
	StreamWeight    float64           `json:"stream_weight"`
	// Tuned is the category signal's settings chosen with the blend (nil:
	// the server's configuration).
	Tuned   *model.StreamTuning `json:"tuned,omitempty"`
	Skipped []string            `json:"skipped,omitempty"`
	// Ranker is what training the learned ranker from logged lists found
	// (nil: no example log); ReplayRanker from replayed validation lists
	// (train.ranker.replay).
	Ranker       *RankerReport `json:"ranker,omitempty"`
	ReplayRanker *RankerReport `json:"replay_ranker,omitempty"`
	ReadSeconds  float64       `json:"read_s"`
	TrainSeconds float64       `json:"train_s"`
	Finished     time.Time     `json:"finished"`
}

// Job trains from a Source and promotes the result in a Registry, one run
// at a time: a request that arrives while a run is going joins it.
type Job struct {
	src    Source
	reg    *model.Registry
	cfg    Config
	stream *Stream
	logger *slog.Logger
	m      *jobMetrics
	// Examples is the directory of the feedback loop's example log
	// (feedback.ExampleLog); when set, each run learns a ranker from it.
	Examples string

	ctx    context.Context // ends at Close: a run in progress stops
	cancel context.CancelFunc

	mu      sync.Mutex
	running *run
	last    *Report
	closed  bool
}

type run struct {
	done chan struct{}
	rep  *Report
	err  error
}

// NewJob wires a job. reg receives every promoted version; stream (nil:
// none) is how the server computes its streaming sources, for Train to weigh
// them; metrics are registered on r when it is not nil.
func NewJob(src Source, reg *model.Registry, cfg Config, stream *Stream, logger *slog.Logger, r prometheus.Registerer) (*Job, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Job{src: src, reg: reg, cfg: cfg, stream: stream, logger: logger, m: newJobMetrics(r), ctx: ctx, cancel: cancel}, nil
}

// ErrClosed is returned for runs asked of a closed job.
var ErrClosed = errors.New("train: job closed")

// Close stops a run in progress (its result is not promoted) and waits for
// it; later runs fail with ErrClosed. Call it before closing the Source.
func (j *Job) Close() {
	j.mu.Lock()
	j.closed = true
	r := j.running
	j.mu.Unlock()
	j.cancel()
	if r != nil {
		<-r.done
	}
}

// Run trains now, or joins the run in progress, and waits for it or ctx.
// When ctx ends first the run goes on and its result is promoted anyway.
func (j *Job) Run(ctx context.Context) (*Report, error) {
	r, _ := j.start()
	select {
	case <-r.done:
		return r.rep, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Start begins a run unless one is going; it reports whether it started one.
func (j *Job) Start() bool {
	_, started := j.start()
	return started
}

// Last is the latest successful run's report (nil before the first).
func (j *Job) Last() *Report {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.last
}

// Running reports whether a run is in progress.
func (j *Job) Running() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.running != nil
}

func (j *Job) start() (*run, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.running != nil {
		return j.running, false
	}
	r := &run{done: make(chan struct{})}
	if j.closed {
		r.err = ErrClosed
		close(r.done)
		return r, false
	}
	j.running = r
	go func() {
		r.rep, r.err = j.once(j.ctx)
		j.mu.Lock()
		j.running = nil
		if r.err == nil {
			j.last = r.rep
		}
		j.mu.Unlock()
		close(r.done)
	}()
	return r, true
}

// once reads the source, trains and promotes.
func (j *Job) once(ctx context.Context) (*Report, error) {
	start := time.Now()
	var evs []event.Interaction
	err := j.src(ctx, func(e *event.Interaction) error {
		// Only what training reads: no context, ids or values kept around.
		evs = append(evs, event.Interaction{User: e.User, Item: e.Item, TS: e.TS, Type: e.Type})
		return nil
	})
	if err != nil {
		j.m.runs.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("train: reading the log: %w", err)
	}
	read := time.Since(start)
	res, err := Train(ctx, evs, j.cfg, j.stream)
	if err != nil {
		result := "error"
		if errors.Is(err, ErrNoData) {
			result = "no_data"
		}
		j.m.runs.WithLabelValues(result).Inc()
		return nil, err
	}
	var ranked *RankerReport
	if j.Examples != "" {
		if ranked, err = j.rank(ctx, res.Set); err != nil {
			j.m.runs.WithLabelValues("error").Inc()
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err // closed while training: nothing is promoted
	}
	man, err := j.reg.Promote(res.Set, res.Summary())
	if err != nil {
		j.m.runs.WithLabelValues("error").Inc()
		return nil, fmt.Errorf("train: promoting: %w", err)
	}
	rep := &Report{Model: man.Name, Serving: res.Serving, Events: res.Events, Items: res.Items,
		ValidationUsers: res.ValidationUsers, Validation: res.Validation, Components: man.Components, StreamWeight: man.StreamWeight, Tuned: man.Tuned,
		Skipped: res.Skipped, Ranker: ranked, ReplayRanker: res.Ranker, ReadSeconds: read.Seconds(), TrainSeconds: res.Took.Seconds(), Finished: time.Now().UTC()}
	j.m.runs.WithLabelValues("ok").Inc()
	j.m.duration.Observe(time.Since(start).Seconds())
	j.m.lastSuccess.SetToCurrentTime()
	j.m.version.Set(float64(man.Version))
	j.logger.Info("trained models", "model", man.Name, "serving", res.Serving, "events", res.Events, "items", res.Items,
		"read_s", read.Seconds(), "train_s", res.Took.Seconds())
	return rep, nil
}

// rank learns the ranker from the example log and gives it to set when it
// earned its place on validation, in place of any ranker Train learnt from
// replayed lists (which otherwise stays). It learns only from lists served the way
// set will serve: by a trained blend when set has components (the model
// feature is 0 in lists the streaming model served, so a ranker learnt
// from them would ignore the blend's score), by the streaming model
// otherwise.
func (j *Job) rank(ctx context.Context, set *model.Set) (*RankerReport, error) {
	var exs []feedback.Example
	blend := len(set.Components) > 0
	other := 0
	skipped, err := feedback.ReadExamples(j.Examples, func(ex *feedback.Example) error {
		if servedByBlend(ex.Model) == blend {
			exs = append(exs, *ex)
		} else {
			other++
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("train: reading ranking examples: %w", err)
	}
	r, rep := TrainRanker(exs, j.cfg.Ranker)
	rep.Skipped, rep.OtherModel = skipped, other
	if r != nil {
		set.Ranker = r // what users did beats what replay suggests
	}
	j.logger.Info("trained ranker", "lists", rep.Lists, "pairs", rep.Pairs, "chosen", rep.Chosen, "reason", rep.Reason)
	return &rep, nil
}

// servedByBlend reports whether a list's model name is a trained set's
// (blend@N, blend+ranker@N; model.Registry names every set blend@N).
func servedByBlend(name string) bool { return strings.HasPrefix(name, "blend") }

// Every runs the job every interval until ctx ends; a failed run is logged
// and counted, and the serving version stays.
func (j *Job) Every(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := j.Run(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrNoData) {
				j.logger.Error("scheduled training failed; the serving model stays", "err", err)
			}
		}
	}
}

type jobMetrics struct {
	runs        *prometheus.CounterVec
	duration    prometheus.Histogram
	lastSuccess prometheus.Gauge
	version     prometheus.Gauge
}

func newJobMetrics(r prometheus.Registerer) *jobMetrics {
	m := &jobMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ripple_train_runs_total",
			Help: "Training runs by result: ok, no_data, error."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ripple_train_duration_seconds",
			Help:    "Wall time of successful training runs (read the log, train, tune, promote).",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14)}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ripple_train_last_success_timestamp_seconds",
			Help: "Unix time of the last successful training run."}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ripple_model_version",
			Help: "Version N of the blend@N this node serves (0: none, the streaming model serves)."}),
	}
	if r != nil {
		r.MustRegister(m.runs, m.duration, m.lastSuccess, m.version)
	}
	return m
}

// SetServing records the version a node started with.
func (j *Job) SetServing(version int) { j.m.version.Set(float64(version)) }
