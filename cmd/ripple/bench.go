package main

import (
	"bytes"
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
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ripple-rec/ripple/internal/api"
	"github.com/ripple-rec/ripple/internal/demo"
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/observe"
)

func init() {
	subcommands = append(subcommands, newBenchCmd)
}

// benchOptions size one bench run.
type benchOptions struct {
	IngestEvents  int           // a: events posted, in NDJSON batches of IngestBatch
	IngestBatch   int           // a: events per request
	IngestClients int           // a: concurrent clients
	LoadDuration  time.Duration // c: length of each load phase
	Rate          float64       // c: open-loop rate, req/s
	ClosedWorkers int           // c: closed-loop clients
	Zipf          float64       // c: user mix exponent
	K             int           // c, d: items per response
	Trials        int           // d: POST+GET sequences
	ProfileDir    string        // CPU profile per Ripple phase when set
	Dir           string        // data dir; "": a temp dir, removed after
	Log           io.Writer     // progress lines
}

func defaultBenchOptions(quick bool) benchOptions {
	if quick {
		return benchOptions{IngestEvents: 20_000, IngestBatch: 1000, IngestClients: 4, LoadDuration: time.Second,
			Rate: 2000, ClosedWorkers: 16, Zipf: 1.1, K: 10, Trials: 200}
	}
	return benchOptions{IngestEvents: 500_000, IngestBatch: 1000, IngestClients: 8, LoadDuration: 10 * time.Second,
		Rate: 2000, ClosedWorkers: 16, Zipf: 1.1, K: 10, Trials: 2000}
}

// Targets, from the project brief.
const (
	targetIngest     = 100_000 // events/s
	targetReplay     = 500_000 // records/s
	targetP99        = 5 * time.Millisecond
	targetThroughput = 0.30 // of the bare handler's
	targetVisibleP99 = 10 * time.Millisecond
)

func newBenchCmd() *cobra.Command {
	var quick bool
	set := defaultBenchOptions(false)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure ingest, replay, recommendation latency and read-your-writes against baselines",
		Long: `Bench runs a self-contained benchmark in this process: an embedded node on a temp
data dir, served over loopback HTTP on a random port, and each figure beside a
baseline measured in the same run:

  a. durable HTTP ingest: NDJSON batches of 1,000 events from several clients,
     events/s; baseline: a bare net/http handler reading the same bodies.
  b. replay: re-open that log and apply every record to a fresh feature engine,
     records/s; baseline: reading and decoding the records only.
  c. recommendations after loading the demo dataset, Zipf user mix: closed-loop
     maximum req/s, and latency at a fixed open-loop rate; baseline: a bare
     handler answering a fixed JSON body of the same size, same load generator.
  d. event -> visible: POST one event, then GET the user's recommendations; the
     item must be gone (seen) and its co-visited neighbours should surface.

The load generator and the server share this machine's cores, so every figure
is lower than a server with the machine to itself would reach; the baselines
pay the same tax. --quick runs a small version in a few seconds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := defaultBenchOptions(quick)
			// Flags given on the command line win over --quick's sizes.
			cmd.Flags().Visit(func(f *pflag.Flag) {
				switch f.Name {
				case "ingest-events":
					o.IngestEvents = set.IngestEvents
				case "clients":
					o.IngestClients = set.IngestClients
				case "duration":
					o.LoadDuration = set.LoadDuration
				case "rate":
					o.Rate = set.Rate
				case "workers":
					o.ClosedWorkers = set.ClosedWorkers
				case "trials":
					o.Trials = set.Trials
				}
			})
			o.ProfileDir, o.Dir = set.ProfileDir, set.Dir
			o.Log = cmd.ErrOrStderr()
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			rep, err := runBench(ctx, o)
			if err != nil {
				return err
			}
			rep.print(cmd.OutOrStdout())
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&quick, "quick", false, "small and fast: a smoke test, not a measurement")
	f.IntVar(&set.IngestEvents, "ingest-events", set.IngestEvents, "a: events to ingest")
	f.IntVar(&set.IngestClients, "clients", set.IngestClients, "a: concurrent ingest clients")
	f.DurationVar(&set.LoadDuration, "duration", set.LoadDuration, "c: length of each recommendation load phase")
	f.Float64Var(&set.Rate, "rate", set.Rate, "c: open-loop request rate")
	f.IntVar(&set.ClosedWorkers, "workers", set.ClosedWorkers, "c: closed-loop clients")
	f.IntVar(&set.Trials, "trials", set.Trials, "d: event -> visible trials")
	f.StringVar(&set.ProfileDir, "profile-dir", "", "write a CPU profile of each Ripple phase here (ingest, replay, recommend, visible)")
	f.StringVar(&set.Dir, "data-dir", "", "data dir (default: a temp dir, removed afterwards)")
	return cmd
}

// benchReport is everything one run measured.
type benchReport struct {
	Opts    benchOptions
	Machine string
	// LoadBefore and LoadAfter are /proc/loadavg's 1-minute figure: other
	// processes' work makes every figure here lower.
	LoadBefore, LoadAfter string

	IngestEvents       int
	Ingest, IngestBare loadResult

	ReplayRecords         int
	Replay, ReplayBare    time.Duration
	DemoEvents, DemoUsers int
	BodyBytes             int
	Closed, ClosedBare    loadResult
	Open, OpenBare        loadResult
	// Sustainable is an open loop at half Ripple's closed-loop maximum, run
	// only when Rate is beyond that maximum: latency when not overloaded.
	Sustainable            loadResult
	SustainableRate        float64
	Visible                latencySummary
	Invisible              int // trials whose write was not visible: must be 0
	CovisApplicable, Covis int // trials whose item had neighbours; of those, a neighbour surfaced
	VisibleFirstFailure    string
}

func (r *benchReport) logf(format string, args ...any) {
	if r.Opts.Log != nil {
		fmt.Fprintf(r.Opts.Log, "bench: "+format+"\n", args...)
	}
}

// runBench runs phases a–d; see the command's help.
func runBench(ctx context.Context, o benchOptions) (*benchReport, error) {
	rep := &benchReport{Opts: o, Machine: machine(), LoadBefore: loadAverage()}
	defer func() { rep.LoadAfter = loadAverage() }()
	dir := o.Dir
	if dir != "" {
		if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
			return nil, fmt.Errorf("--data-dir %s is not empty: bench needs fresh logs", dir)
		}
	} else {
		tmp, err := os.MkdirTemp("", "ripple-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	logger := observe.NewLogger(os.Stderr, slog.LevelWarn)
	if err := rep.benchIngest(ctx, filepath.Join(dir, "ingest"), logger); err != nil {
		return rep, fmt.Errorf("a. ingest: %w", err)
	}
	if err := rep.benchReplay(ctx, filepath.Join(dir, "ingest", "log")); err != nil {
		return rep, fmt.Errorf("b. replay: %w", err)
	}
	if err := rep.benchServing(ctx, filepath.Join(dir, "demo"), logger); err != nil {
		return rep, err
	}
	return rep, nil
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores (GOMAXPROCS %d), %s %s/%s", model, runtime.NumCPU(), runtime.GOMAXPROCS(0),
		runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// loadAverage is the 1-minute load average, or "unknown" off Linux.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// benchNode opens a node on dir with snapshots only at close, so no
// snapshot lands inside a measurement.
func benchNode(ctx context.Context, dir string, logger *slog.Logger) (*node, serveConfig, error) {
	cfg := defaultServeConfig()
	cfg.DataDir = dir
	cfg.SnapshotInterval = ""
	n, err := openNode(ctx, cfg, logger)
	return n, cfg, err
}

// serveLoopback serves h on a random loopback port with the server settings
// of ripple serve.
func serveLoopback(h http.Handler) (base string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := api.NewHTTPServer(ln.Addr().String(), h)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// bareHandler is the baseline server: it reads the body and answers a fixed
// body, which is the least any HTTP service of the same shape must do.
func bareHandler(status int, body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		_, _ = w.Write(body)
	})
}

// profile runs fn under a CPU profile named name when a profile dir is set.
func (r *benchReport) profile(name string, fn func()) error {
	runtime.GC()
	if r.Opts.ProfileDir == "" {
		fn()
		return nil
	}
	if err := os.MkdirAll(r.Opts.ProfileDir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(r.Opts.ProfileDir, name+".pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	fn()
	pprof.StopCPUProfile()
	return nil
}

// benchIngest is phase a.
func (r *benchReport) benchIngest(ctx context.Context, dir string, logger *slog.Logger) error {
	o := r.Opts
	// Demo-shaped events (sessions, power-law users and items) sized to the
	// run: about 34 events per demo user.
	dopt := demo.DefaultOptions(time.Now())
	dopt.Users, dopt.Items, dopt.Seed = max(o.IngestEvents/30, 10), 10_000, 7
	ds := demo.Generate(dopt)
	events := ds.Events[:min(len(ds.Events), o.IngestEvents)]
	r.IngestEvents = len(events)
	// Bodies are encoded before the clock starts: the clients' CPU is the
	// server's CPU on this machine.
	var bodies [][]byte
	for len(events) > 0 {
		batch := events[:min(len(events), o.IngestBatch)]
		events = events[len(batch):]
		var body []byte
		for i := range batch {
			var err error
			if body, err = appendNDJSON(body, &batch[i]); err != nil {
				return err
			}
		}
		bodies = append(bodies, body)
	}
	run := func(base string) loadResult {
		c := newLoadClient(o.IngestClients, 60*time.Second)
		defer c.CloseIdleConnections()
		return runLoad(ctx, loadSpec{Duration: time.Hour, Workers: o.IngestClients, Requests: len(bodies)},
			func(ctx context.Context, i int) (int, int, error) {
				res, _, err := postEvents(ctx, c, base+"/v1/events", bodies[i], retryPolicy{Attempts: 1})
				if err != nil {
					return statusOf(err), 0, err
				}
				if res.Rejected > 0 {
					return http.StatusAccepted, res.Accepted, fmt.Errorf("%d events rejected: %v", res.Rejected, res.Errors[0].Error)
				}
				return http.StatusAccepted, res.Accepted, nil
			})
	}

	r.logf("a. ingest: bare handler, %d events in %d bodies, %d clients", r.IngestEvents, len(bodies), o.IngestClients)
	reply := fmt.Appendf(nil, `{"accepted":%d,"duplicates":0,"rejected":0,"errors":[],"request_id":"0123456789abcdef"}`+"\n", o.IngestBatch)
	base, stop, err := serveLoopback(bareHandler(http.StatusAccepted, reply))
	if err != nil {
		return err
	}
	r.IngestBare = run(base)
	stop()
	if err := loadFailed("bare ingest", r.IngestBare); err != nil {
		return err
	}

	r.logf("a. ingest: ripple, durable and applied before each 202")
	n, _, err := benchNode(ctx, dir, logger)
	if err != nil {
		return err
	}
	base, stop, err = serveLoopback(n.api.Handler())
	if err != nil {
		n.close()
		return err
	}
	err = r.profile("ingest", func() { r.Ingest = run(base) })
	stop()
	applied := n.engine.Applied()
	n.close()
	if err != nil {
		return err
	}
	if err := loadFailed("ripple ingest", r.Ingest); err != nil {
		return err
	}
	if r.Ingest.Units != r.IngestEvents || applied != uint64(r.IngestEvents) {
		return fmt.Errorf("%d events sent, %d accepted, %d applied", r.IngestEvents, r.Ingest.Units, applied)
	}
	return nil
}

func loadFailed(what string, res loadResult) error {
	if n := res.ErrorCount(); n > 0 {
		return fmt.Errorf("%s: %d of %d requests failed (%s): %s", what, n, res.Sent, res.ErrorList(), res.FirstError)
	}
	return nil
}

// benchReplay is phase b: the log phase a wrote, re-opened.
func (r *benchReport) benchReplay(ctx context.Context, dir string) error {
	pass := func(apply bool) (int, time.Duration, error) {
		l, err := eventlog.OpenEmbedded(dir, eventlog.EmbeddedOptions{})
		if err != nil {
			return 0, 0, err
		}
		defer l.Close()
		engine := features.NewEngine(features.DefaultConfig(), nil)
		start := time.Now()
		if apply {
			// The loop of ingest's applier and of recovery.
			records, err := ingest.Replay(ctx, l, engine, func(off uint64, err error) error {
				return fmt.Errorf("record %d: %w", off, err)
			})
			took := time.Since(start)
			if err == nil && engine.Applied() != l.End()-1 {
				err = fmt.Errorf("applied up to %d of %d", engine.Applied(), l.End()-1)
			}
			return records, took, err
		}
		var rec event.Record
		records := 0
		// The baseline: read and decode only.
		for from := l.Start(); from < l.End(); {
			next, err := l.Read(ctx, from, 4096, func(off uint64, data []byte) error {
				if err := event.DecodeBinary(data, &rec); err != nil {
					return fmt.Errorf("record %d: %w", off, err)
				}
				records++
				return nil
			})
			if err != nil {
				return records, 0, err
			}
			from = next
		}
		return records, time.Since(start), nil
	}
	r.logf("b. replay: read + decode only")
	n, took, err := pass(false)
	if err != nil {
		return err
	}
	r.ReplayBare = took
	r.logf("b. replay: read + decode + apply to a fresh engine")
	err2 := r.profile("replay", func() { r.ReplayRecords, r.Replay, err = pass(true) })
	if err = errors.Join(err, err2); err != nil {
		return err
	}
	if r.ReplayRecords != n || n == 0 {
		return fmt.Errorf("%d records read, %d applied", n, r.ReplayRecords)
	}
	return nil
}

// recommendReply is the part of GET /v1/recommendations the bench checks.
type recommendReply struct {
	Items []struct {
		Item string `json:"item"`
	} `json:"items"`
	Degradation string `json:"degradation"`
}

// benchServing is phases c and d, on a node loaded with the demo dataset.
func (r *benchReport) benchServing(ctx context.Context, dir string, logger *slog.Logger) error {
	o := r.Opts
	n, cfg, err := benchNode(ctx, dir, logger)
	if err != nil {
		return err
	}
	defer n.close()
	r.logf("c. loading the demo dataset")
	cfg.Demo = true
	if err := loadDemo(ctx, n, cfg, logger); err != nil {
		return err
	}
	r.DemoEvents, r.DemoUsers = int(n.engine.Applied()), n.engine.UserCount()
	base, stop, err := serveLoopback(n.api.Handler())
	if err != nil {
		return err
	}
	defer stop()

	// The baseline answers a real response of the same size.
	c := newLoadClient(256, 30*time.Second)
	defer c.CloseIdleConnections()
	sample, err := getBody(ctx, c, base+"/v1/recommendations/u0?k="+strconv.Itoa(o.K))
	if err != nil {
		return fmt.Errorf("c. sample response: %w", err)
	}
	r.BodyBytes = len(sample)
	bareBase, bareStop, err := serveLoopback(bareHandler(http.StatusOK, sample))
	if err != nil {
		return err
	}
	defer bareStop()

	users, err := newZipfPicker(demo.DefaultOptions(time.Now()).Users, o.Zipf)
	if err != nil {
		return err
	}
	load := func(b string, spec loadSpec) loadResult {
		return runLoad(ctx, spec, recommendShot(c, b, users, o.K))
	}
	closed := loadSpec{Duration: o.LoadDuration, Workers: o.ClosedWorkers}
	open := loadSpec{Rate: o.Rate, Duration: o.LoadDuration, Workers: 256}
	warm := loadSpec{Duration: max(o.LoadDuration/10, 100*time.Millisecond), Workers: o.ClosedWorkers}
	load(bareBase, warm)
	load(base, warm)
	r.logf("c. recommendations: closed loop, %d clients, %s each", o.ClosedWorkers, o.LoadDuration)
	runtime.GC()
	r.ClosedBare = load(bareBase, closed)
	if err := r.profile("recommend-closed", func() { r.Closed = load(base, closed) }); err != nil {
		return err
	}
	r.logf("c. recommendations: open loop at %.0f req/s, %s each", o.Rate, o.LoadDuration)
	runtime.GC()
	r.OpenBare = load(bareBase, open)
	if err := r.profile("recommend-open", func() { r.Open = load(base, open) }); err != nil {
		return err
	}
	if half := r.Closed.Rate() / 2; r.Closed.Rate() < o.Rate && half >= 1 {
		r.SustainableRate = half
		r.logf("c. recommendations: open loop at %.0f req/s, half Ripple's maximum", half)
		runtime.GC()
		r.Sustainable = load(base, loadSpec{Rate: half, Duration: o.LoadDuration, Workers: 256})
	}
	for what, res := range map[string]loadResult{"bare closed": r.ClosedBare, "ripple closed": r.Closed,
		"bare open": r.OpenBare, "ripple open": r.Open, "ripple at half its maximum": r.Sustainable} {
		if err := loadFailed("c. "+what, res); err != nil {
			return err
		}
	}

	r.logf("d. event -> visible: %d trials", o.Trials)
	perr := r.profile("visible", func() { err = r.benchVisible(ctx, n, c, base) })
	return errors.Join(err, perr)
}

// benchVisible is phase d. Each trial picks the user's current top
// recommendation (untimed), then times POST of an event on it followed by
// GET: read-your-writes means the item must be gone, excluded as seen.
func (r *benchReport) benchVisible(ctx context.Context, n *node, c *http.Client, base string) error {
	o := r.Opts
	samples := make([]time.Duration, 0, o.Trials)
	recURL := func(u string) string { return base + "/v1/recommendations/" + u + "?k=" + strconv.Itoa(o.K) }
	users := r.DemoUsers
	for i := range o.Trials {
		if err := ctx.Err(); err != nil {
			return err
		}
		user := "u" + strconv.Itoa(i%users)
		var before recommendReply
		if err := getJSON(ctx, c, recURL(user), &before); err != nil {
			return err
		}
		if len(before.Items) == 0 {
			return fmt.Errorf("no recommendations for %s", user)
		}
		item := before.Items[0].Item
		body := fmt.Appendf(nil, `{"id":"bench-visible-%d","type":"click","user":%q,"item":%q}`+"\n", i, user, item)

		start := time.Now()
		res, _, err := postEvents(ctx, c, base+"/v1/events", body, retryPolicy{Attempts: 1})
		if err != nil {
			return err
		}
		var after recommendReply
		err = getJSON(ctx, c, recURL(user), &after)
		samples = append(samples, time.Since(start))
		if err != nil {
			return err
		}

		if res.Accepted != 1 || after.Degradation != "healthy" || containsItem(after, item) {
			r.Invisible++
			if r.VisibleFirstFailure == "" {
				r.VisibleFirstFailure = fmt.Sprintf("trial %d: %s clicked %s (accepted %d), then got %s with it still recommended: %v",
					i, user, item, res.Accepted, after.Degradation, containsItem(after, item))
			}
		}
		// Where the item has co-visited neighbours the user has not seen,
		// the freshest anchor should bring at least one into the top k.
		if ns := unseenNeighbors(n, user, item); len(ns) > 0 {
			r.CovisApplicable++
			for _, x := range after.Items {
				if ns[x.Item] {
					r.Covis++
					break
				}
			}
		}
	}
	r.Visible = summarize(samples)
	return nil
}

func containsItem(r recommendReply, item string) bool {
	for _, x := range r.Items {
		if x.Item == item {
			return true
		}
	}
	return false
}

func unseenNeighbors(n *node, user, item string) map[string]bool {
	ns := n.engine.Neighbors(item, n.pipe.Config().NeighborsPerItem)
	ids := make([]string, len(ns))
	for i, x := range ns {
		ids[i] = x.Item
	}
	seen := make([]bool, len(ids))
	n.engine.Seen(user, ids, seen)
	out := map[string]bool{}
	for i, id := range ids {
		if !seen[i] && id != item {
			out[id] = true
		}
	}
	return out
}

// getBody fetches url's body, requiring a 200.
func getBody(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = readAPIError(resp, b)
	}
	return b, err
}

// verdicts of the report, by phase.
func (r *benchReport) ingestMet() bool { return r.Ingest.UnitRate() >= targetIngest }
func (r *benchReport) replayMet() bool { return r.replayRate() >= targetReplay }
func (r *benchReport) ratio() float64  { return r.Closed.Rate() / r.ClosedBare.Rate() }
func (r *benchReport) p99Met() bool {
	return r.Open.Latency.P99 <= targetP99 && r.Open.Rate() >= 0.98*r.Opts.Rate
}
func (r *benchReport) visibleMet() bool { return r.Visible.P99 <= targetVisibleP99 && r.Invisible == 0 }
func (r *benchReport) replayRate() float64 {
	return float64(r.ReplayRecords) / r.Replay.Seconds()
}

func yesNo(ok bool) string {
	if ok {
		return "**yes**"
	}
	return "**no**"
}

// count formats n with thousands separators.
func count(n float64) string {
	s := strconv.FormatFloat(n, 'f', 0, 64)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r *benchReport) print(w io.Writer) {
	o := r.Opts
	var b bytes.Buffer
	fmt.Fprintf(&b, "## ripple bench\n\n")
	fmt.Fprintf(&b, "Machine: %s; load average %s before the run, %s after. Load generator and server run in this one process "+
		"and share all %d cores; the baselines pay the same tax.\n\n", r.Machine, r.LoadBefore, r.LoadAfter, runtime.NumCPU())
	fmt.Fprintf(&b, "| | measurement | Ripple | baseline (same run) | Ripple / baseline | target | met |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| a | durable HTTP ingest, NDJSON × %d, %d clients | %s events/s | %s events/s (bare handler, 202) | %.1f%% | ≥ %s events/s | %s |\n",
		o.IngestBatch, o.IngestClients, count(r.Ingest.UnitRate()), count(r.IngestBare.UnitRate()),
		100*r.Ingest.UnitRate()/r.IngestBare.UnitRate(), count(targetIngest), yesNo(r.ingestMet()))
	bareReplay := float64(r.ReplayRecords) / r.ReplayBare.Seconds()
	fmt.Fprintf(&b, "| b | replay log → fresh feature engine (%s records) | %s records/s | %s records/s (read + decode) | %.1f%% | ≥ %s records/s | %s |\n",
		count(float64(r.ReplayRecords)), count(r.replayRate()), count(bareReplay), 100*r.replayRate()/bareReplay,
		count(targetReplay), yesNo(r.replayMet()))
	fmt.Fprintf(&b, "| c | recommendations, closed loop, %d clients, max throughput | %s req/s | %s req/s (bare, fixed %d-byte JSON) | %.1f%% | ≥ %.0f%% of bare | %s |\n",
		o.ClosedWorkers, count(r.Closed.Rate()), count(r.ClosedBare.Rate()), r.BodyBytes, 100*r.ratio(),
		100*targetThroughput, yesNo(r.ratio() >= targetThroughput))
	fmt.Fprintf(&b, "| c | recommendations, open loop %s req/s, p50 / p99 | %s / %s | %s / %s | | p99 ≤ %s | %s |\n",
		count(o.Rate), ms(r.Open.Latency.P50), ms(r.Open.Latency.P99), ms(r.OpenBare.Latency.P50), ms(r.OpenBare.Latency.P99),
		ms(targetP99), yesNo(r.p99Met()))
	fmt.Fprintf(&b, "| d | event → visible (POST 1 event + GET), p50 / p99, %d trials | %s / %s, %d not visible | | | p99 ≤ %s, 0 not visible | %s |\n",
		o.Trials, ms(r.Visible.P50), ms(r.Visible.P99), r.Invisible, ms(targetVisibleP99), yesNo(r.visibleMet()))
	fmt.Fprintf(&b, "\nDetails:\n\n")
	fmt.Fprintf(&b, "- a: %s events in %d requests; Ripple answers 202 only after the batch is fsync'd in the log and applied to the features. "+
		"Latency per request: Ripple %s; bare %s.\n", count(float64(r.IngestEvents)), r.Ingest.Sent, r.Ingest.Latency, r.IngestBare.Latency)
	fmt.Fprintf(&b, "- b: apply %.2f s, read + decode %.2f s (log re-opened for each pass, OS page cache warm).\n",
		r.Replay.Seconds(), r.ReplayBare.Seconds())
	fmt.Fprintf(&b, "- c: demo dataset, %s events, %d users; users drawn Zipf(%g) over u0..u%d; k=%d; %s per phase after a warm-up.\n",
		count(float64(r.DemoEvents)), r.DemoUsers, o.Zipf, demo.DefaultOptions(time.Time{}).Users-1, o.K, o.LoadDuration)
	fmt.Fprintf(&b, "  - closed loop: Ripple %s; bare %s.\n", r.Closed.Latency, r.ClosedBare.Latency)
	fmt.Fprintf(&b, "  - open loop at %s req/s (latency from each request's scheduled send time): Ripple achieved %.0f req/s, errors %s, %s; "+
		"bare achieved %.0f req/s, %s.\n", count(o.Rate), r.Open.Rate(), r.Open.ErrorList(), r.Open.Latency, r.OpenBare.Rate(), r.OpenBare.Latency)
	fmt.Fprintf(&b, "  - the same, from each request's actual send (without the generator's own lateness): Ripple %s; bare %s.\n",
		r.Open.Service, r.OpenBare.Service)
	if r.SustainableRate > 0 {
		fmt.Fprintf(&b, "  - Ripple's maximum is below %s req/s, so the open loop above measures a queue. At %s req/s (half its maximum): "+
			"achieved %.0f req/s, errors %s, %s.\n", count(o.Rate), count(r.SustainableRate), r.Sustainable.Rate(),
			r.Sustainable.ErrorList(), r.Sustainable.Latency)
	}
	fmt.Fprintf(&b, "- d: %s. Each trial clicks the user's current top recommendation; a trial is \"not visible\" if the GET right after the 202 "+
		"still recommends it. Trials whose item has unseen co-visited neighbours: %d; of those, a neighbour was in the top %d: %d.\n",
		r.Visible, r.CovisApplicable, o.K, r.Covis)
	if r.VisibleFirstFailure != "" {
		fmt.Fprintf(&b, "  - first failure: %s\n", r.VisibleFirstFailure)
	}
	_, _ = w.Write(b.Bytes())
}
