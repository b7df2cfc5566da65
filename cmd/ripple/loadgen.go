package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ripple-rec/ripple/internal/event"
)

func init() {
	subcommands = append(subcommands, newLoadgenCmd)
}

// loadgenOptions configure one loadgen run.
type loadgenOptions struct {
	Addr     string
	Mode     string // recommend | ingest
	Rate     float64
	Duration time.Duration
	Workers  int
	Users    int
	Items    int
	Zipf     float64
	K        int
	Batch    int
}

func newLoadgenCmd() *cobra.Command {
	o := loadgenOptions{Addr: "127.0.0.1:8080", Mode: "recommend", Rate: 2000, Duration: 30 * time.Second, Workers: 256,
		Users: 1000, Items: 2000, Zipf: 1.1, K: 10, Batch: 1000}
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Put a running server under constant-rate load and report latency percentiles",
		Long: `Loadgen sends requests to a running Ripple server and reports the achieved rate,
errors by status and exact latency percentiles (p50, p90, p99, p99.9, max).

With --rate > 0 the load is open loop: request i is sent at start + i/rate whether
or not earlier requests have returned, and its latency counts from that moment,
so a server that stalls cannot hide the stall by slowing the load down. At most
--workers requests are in flight; beyond that, requests wait and count as late.
With --rate 0 the load is closed loop: --workers clients each send their next
request as soon as the last one returns (maximum throughput).

--mode recommend: GET /v1/recommendations/{user}?k=K with users u0..u(N-1) drawn
  from a Zipf (power-law) distribution with exponent --zipf, u0 the most frequent:
  the user ids of ripple serve --demo. --rate is requests per second.
--mode ingest: POST /v1/events with NDJSON batches of --batch synthetic events
  (Zipf users and items i0..i(M-1), unique ids). --rate is batches per second.`,
		Example: `  ripple serve --demo &
  ripple loadgen --rate 2000 --duration 30s --users 1000 --zipf 1.1
  ripple loadgen --mode ingest --rate 50 --duration 10s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runLoadgen(ctx, o, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Addr, "addr", o.Addr, "server address, host:port or URL")
	f.StringVar(&o.Mode, "mode", o.Mode, "recommend|ingest")
	f.Float64Var(&o.Rate, "rate", o.Rate, "requests per second (ingest: batches per second); 0: closed loop")
	f.DurationVar(&o.Duration, "duration", o.Duration, "how long to send")
	f.IntVar(&o.Workers, "workers", o.Workers, "open loop: requests in flight at most; closed loop: clients")
	f.IntVar(&o.Users, "users", o.Users, "users u0..u(N-1)")
	f.IntVar(&o.Items, "items", o.Items, "ingest: items i0..i(M-1)")
	f.Float64Var(&o.Zipf, "zipf", o.Zipf, "Zipf exponent of the user (and item) mix; 0 is uniform")
	f.IntVar(&o.K, "k", o.K, "recommend: items per response")
	f.IntVar(&o.Batch, "batch", o.Batch, "ingest: events per request")
	return cmd
}

func runLoadgen(ctx context.Context, o loadgenOptions, out io.Writer) error {
	users, err := newZipfPicker(o.Users, o.Zipf)
	if err != nil {
		return fmt.Errorf("--users/--zipf: %w", err)
	}
	if o.Rate < 0 || o.Duration <= 0 || o.Workers < 1 {
		return fmt.Errorf("--rate must be >= 0, --duration > 0 and --workers >= 1")
	}
	client := newLoadClient(o.Workers, 30*time.Second)
	defer client.CloseIdleConnections()
	base := baseURL(o.Addr)
	var fire shot
	var what, unit string
	switch o.Mode {
	case "recommend":
		fire = recommendShot(client, base, users, o.K)
		what, unit = fmt.Sprintf("GET /v1/recommendations/{user}?k=%d", o.K), "req"
	case "ingest":
		items, err := newZipfPicker(o.Items, o.Zipf)
		if err != nil {
			return fmt.Errorf("--items/--zipf: %w", err)
		}
		if o.Batch < 1 {
			return fmt.Errorf("--batch must be at least 1")
		}
		g := newEventGen(users, items)
		fire = func(ctx context.Context, _ int) (int, int, error) {
			body, err := g.ndjson(nil, o.Batch, time.Now().UnixMilli())
			if err != nil {
				return 0, 0, err
			}
			r, _, err := postEvents(ctx, client, base+"/v1/events", body, retryPolicy{Attempts: 1})
			if err != nil {
				return statusOf(err), 0, err
			}
			return http.StatusAccepted, r.Accepted + r.Duplicates, nil
		}
		what, unit = fmt.Sprintf("POST /v1/events, NDJSON batches of %d", o.Batch), "batches"
	default:
		return fmt.Errorf("--mode must be recommend or ingest, got %q", o.Mode)
	}
	loop := fmt.Sprintf("%s %s/s for %s (open loop, at most %d in flight)", strconv.FormatFloat(o.Rate, 'f', -1, 64), unit, o.Duration, o.Workers)
	if o.Rate == 0 {
		loop = fmt.Sprintf("closed loop, %d clients, for %s", o.Workers, o.Duration)
	}
	fmt.Fprintf(out, "target      %s\nload        %s\nmix         %d users, Zipf exponent %g\n", base, what, o.Users, o.Zipf)
	fmt.Fprintf(out, "schedule    %s\n", loop)
	res := runLoad(ctx, loadSpec{Rate: o.Rate, Duration: o.Duration, Workers: o.Workers}, fire)
	fmt.Fprintf(out, "achieved    %.1f %s/s (%d ok of %d sent in %.2f s)\n", res.Rate(), unit, res.OK, res.Sent, res.Elapsed.Seconds())
	if o.Mode == "ingest" {
		fmt.Fprintf(out, "events      %.0f events/s\n", res.UnitRate())
	}
	fmt.Fprintf(out, "errors      %s\n", res.ErrorList())
	if res.FirstError != "" {
		fmt.Fprintf(out, "first error %s\n", res.FirstError)
	}
	fmt.Fprintf(out, "latency     %s\n", res.Latency)
	return ctx.Err()
}

// recommendShot reads recommendations for a Zipf-drawn user of base.
func recommendShot(c *http.Client, base string, users *zipfPicker, k int) shot {
	prefix := base + "/v1/recommendations/u"
	suffix := "?k=" + strconv.Itoa(k)
	return func(ctx context.Context, _ int) (int, int, error) {
		status, err := getStatus(ctx, c, prefix+strconv.Itoa(users.next())+suffix)
		if err == nil && status/100 != 2 {
			err = fmt.Errorf("HTTP %d", status)
		}
		return status, 1, err
	}
}

// eventGen makes synthetic interactions: Zipf users and items, demo-like
// type mix, sessions of 30 minutes, ids unique to this process.
type eventGen struct {
	users, items *zipfPicker
	run          string
	seq          atomic.Int64
}

func newEventGen(users, items *zipfPicker) *eventGen {
	return &eventGen{users: users, items: items, run: "lg" + strconv.FormatUint(rand.Uint64()>>16, 36)}
}

var genTypes = []struct {
	name string
	p    float64
}{{"view", 0.62}, {"click", 0.25}, {"cart", 0.09}, {"purchase", 0.04}}

func (g *eventGen) next(ts int64) event.Interaction {
	u := "u" + strconv.Itoa(g.users.next())
	e := event.Interaction{ID: g.run + "-" + strconv.FormatInt(g.seq.Add(1), 36), Type: "view", User: u,
		Item: "i" + strconv.Itoa(g.items.next()), TS: ts, Session: u + "-" + strconv.FormatInt(ts/1_800_000, 36)}
	x := rand.Float64()
	for _, t := range genTypes {
		if x < t.p {
			e.Type = t.name
			break
		}
		x -= t.p
	}
	if e.Type == "purchase" {
		e.Value = 1
	}
	return e
}

// ndjson appends n events stamped ts as NDJSON.
func (g *eventGen) ndjson(dst []byte, n int, ts int64) ([]byte, error) {
	for range n {
		e := g.next(ts)
		var err error
		if dst, err = appendNDJSON(dst, &e); err != nil {
			return dst, err
		}
	}
	return dst, nil
}
