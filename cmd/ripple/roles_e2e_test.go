package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/natstest"
	"github.com/ripple-rec/ripple/internal/redistest"
)

// rolesDataset is a few thousand events over one hour; every user's last
// event is at the same time, so every partition's engine clock ends where a
// single engine's does (windows and recencies are computed at that clock).
func rolesDataset() []event.Interaction {
	rng := rand.New(rand.NewPCG(4, 4))
	end := time.Now().Add(-time.Minute).UnixMilli() / 1000 * 1000
	types := []string{"view", "view", "view", "click", "cart", "purchase"}
	var evs []event.Interaction
	for i := range 3000 {
		evs = append(evs, event.Interaction{ID: "e" + strconv.Itoa(i), Type: types[rng.IntN(len(types))],
			User: "u" + strconv.Itoa(rng.IntN(150)), Item: "i" + strconv.Itoa(rng.IntN(80)),
			TS: end - 3_600_000 + int64(i)*1000})
	}
	for u := range 150 {
		evs = append(evs, event.Interaction{ID: "last" + strconv.Itoa(u), Type: "view", User: "u" + strconv.Itoa(u),
			Item: "i" + strconv.Itoa(u%80), TS: end})
	}
	return evs
}

func postBatch(t testing.TB, base string, evs []event.Interaction) {
	t.Helper()
	code, _ := postInteractions(t, base, evs)
	require.Equal(t, http.StatusAccepted, code)
}

// postInteractions posts evs in the API's JSON shape: the status and, on a
// 503, how long to wait (Retry-After, at least 10ms).
func postInteractions(t testing.TB, base string, evs []event.Interaction) (int, time.Duration) {
	t.Helper()
	type wire struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		User string `json:"user"`
		Item string `json:"item"`
		TS   string `json:"ts"`
	}
	ws := make([]wire, len(evs))
	for i, e := range evs {
		ws[i] = wire{e.ID, e.Type, e.User, e.Item, time.UnixMilli(e.TS).UTC().Format(time.RFC3339Nano)}
	}
	b, _ := json.Marshal(ws)
	resp, err := http.Post(base+"/v1/events", "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	resp.Body.Close()
	retry := 10 * time.Millisecond
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retry = time.Duration(s) * time.Second
	}
	return resp.StatusCode, retry
}

// postJSON posts body (events or item metadata) and wants it accepted.
func postJSON(t testing.TB, url string, body any) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
}

// sameValue compares decoded JSON values, numbers within tol (relative).
func sameValue(want, got any, tol float64) bool {
	switch w := want.(type) {
	case float64:
		g, ok := got.(float64)
		return ok && math.Abs(w-g) <= tol*math.Max(1, math.Abs(w))
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !sameValue(w[i], g[i], tol) {
				return false
			}
		}
		return true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k := range w {
			if !sameValue(w[k], g[k], tol) {
				return false
			}
		}
		return true
	}
	return fmt.Sprint(want) == fmt.Sprint(got)
}

// weights is a co-visitation list's weights, strongest first: ties among
// neighbours may order differently once sums are taken over partitions.
func weights(v any) []any {
	l, _ := v.([]any)
	var ws []float64
	for _, x := range l {
		m, _ := x.(map[string]any)
		w, _ := m["weight"].(float64)
		ws = append(ws, w)
	}
	sort.Sort(sort.Reverse(sort.Float64Slice(ws)))
	out := make([]any, len(ws))
	for i, w := range ws {
		out[i] = w
	}
	return out
}

// diffFeatures is where base serves entity/id differently from what the
// engine computed ("" when it serves the same).
func diffFeatures(base string, eng *features.Engine, entity, id string, tol float64) string {
	want, _ := eng.Values(entity, id)
	wb, _ := json.Marshal(want.Features)
	var wm map[string]map[string]any
	_ = json.Unmarshal(wb, &wm)
	resp, err := http.Get(base + "/v1/features/" + entity + "/" + id)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		Features map[string]map[string]any `json:"features"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return err.Error()
	}
	for name, w := range wm {
		g := body.Features[name]
		wv, gv := w["value"], g["value"]
		if name == "item_covisitation" {
			wv, gv = weights(wv), weights(gv)
		}
		if !sameValue(wv, gv, tol) {
			return fmt.Sprintf("%s %s %s: want %v, got %v", entity, id, name, wv, gv)
		}
	}
	return ""
}

// rolesRun is one roles scenario: two api nodes take a dataset's events
// while worker kill is killed -9 in the middle of the load; then the
// features served through the api nodes must equal a single engine's replay
// of the same events: users exactly, items and global within float
// tolerance. The items' co-visitation lists are compared weight for weight
// (ties may order differently once summed over parts): with 80 items no
// engine prunes a list (n: 100), so the parts' sums are exact here; past n
// each partition's engine prunes on its own and the busiest items' tails
// differ (see assertValues in internal/online).
type rolesRun struct {
	cfg     string                       // the config every node runs with
	workers int                          // started before the load
	worker  func(i int) *serveProc       // starts worker i
	before  func(ws []*serveProc)        // after the workers started, before the load
	killed  func(ws []*serveProc, i int) // after worker i was killed mid-load
	after   func(ws []*serveProc)        // after the load
}

const rolesKill = 1 // the worker killed mid-load

func (r rolesRun) run(t *testing.T) {
	workers := make([]*serveProc, r.workers)
	for i := range workers {
		workers[i] = r.worker(i)
	}
	apis := [2]*serveProc{
		startServe(t, "--config", r.cfg, "--role", "api", "--data-dir", t.TempDir()),
		startServe(t, "--config", r.cfg, "--role", "api", "--data-dir", t.TempDir()),
	}
	if r.before != nil {
		r.before(workers)
	}
	// Item metadata through an api node reaches every partition: the
	// users' category affinities need the categories of what they touch.
	var items []event.Item
	var wire []map[string]any
	for i := range 80 {
		items = append(items, event.Item{ID: "i" + strconv.Itoa(i), Categories: []string{"c" + strconv.Itoa(i%7)}})
		wire = append(wire, map[string]any{"item": items[i].ID, "categories": items[i].Categories})
	}
	postJSON(t, apis[0].url+"/v1/items", wire)
	evs := rolesDataset()
	const batch = 100
	killed := false
	for lo, k := 0, 0; lo < len(evs); lo, k = lo+batch, k+1 {
		// The batch holding the middle event (len(evs) need not be a
		// multiple of batch: an equality test on lo may never hold).
		if !killed && lo+batch > len(evs)/2 {
			require.NoError(t, workers[rolesKill].cmd.Process.Signal(syscall.SIGKILL))
			err := workers[rolesKill].cmd.Wait()
			require.Error(t, err, "the worker must die of the kill")
			killed = true
			r.killed(workers, rolesKill)
		}
		postBatch(t, apis[k%2].url, evs[lo:min(len(evs), lo+batch)])
	}
	require.True(t, killed)
	if r.after != nil {
		r.after(workers)
	}

	eng := features.NewEngine(features.DefaultConfig(), nil)
	for i := range items {
		eng.Apply(0, &event.Record{Kind: event.KindItem, Item: items[i]})
	}
	for i := range evs {
		eng.Apply(0, &event.Record{Kind: event.KindInteraction, Interaction: evs[i]})
	}
	check := func() string {
		for u := range 150 {
			if d := diffFeatures(apis[0].url, eng, features.EntityUser, "u"+strconv.Itoa(u), 1e-9); d != "" {
				return d
			}
		}
		for i := range 80 {
			if d := diffFeatures(apis[1].url, eng, features.EntityItem, "i"+strconv.Itoa(i), 1e-6); d != "" {
				return d
			}
		}
		return diffFeatures(apis[0].url, eng, features.EntityGlobal, "all", 1e-6)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		last := check()
		if last == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("features through the api nodes never matched a single engine's replay; last difference: %s", last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// seriesPartitions is the distinct partition labels of metric's series on
// the /metrics of the server at base.
func seriesPartitions(t testing.TB, base, metric string) []string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		if _, rest, ok := strings.Cut(line, `partition="`); ok {
			p, _, _ := strings.Cut(rest, `"`)
			seen[p] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// workerReady is a worker's /readyz: ready, and how many partitions it
// applies.
func workerReady(p *serveProc) (bool, int) {
	resp, err := http.Get(p.url + "/readyz")
	if err != nil {
		return false, 0
	}
	defer resp.Body.Close()
	var body struct {
		Partitions int `json:"partitions"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode == http.StatusOK, body.Partitions
}

// waitOwned waits until the live workers are ready and own all n
// partitions between them, each at least one.
func waitOwned(t testing.TB, ws []*serveProc, n int, why string) {
	t.Helper()
	require.Eventually(t, func() bool {
		sum := 0
		for _, w := range ws {
			ready, k := workerReady(w)
			if !ready || k == 0 {
				return false
			}
			sum += k
		}
		return sum == n
	}, 60*time.Second, 50*time.Millisecond, why)
}

// Three workers share six Kafka partitions through a consumer group; two
// api nodes take the events and serve the reads. One worker is killed -9
// in the middle of the load and not restarted: after the session timeout
// the group gives its partitions to the other two, which replay them from
// the log. After the load a fourth worker joins, so partitions move again,
// this time by a clean revoke (close, final snapshot, last publish, then
// release). The served features must then equal a single engine's replay.
func TestRolesOnKafkaRebalanceAfterAWorkerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six server processes")
	}
	rds := redistest.Start(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "ripple-events"),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	require.NoError(t, err)
	defer c.Close()
	rebalanceRun(t, writeRolesConfig(t, rds.Addr(), fmt.Sprintf(`log: kafka
kafka:
  brokers: [%s]
  partitions: 6
worker:
  assignment: group
  session_timeout: 2s
`, c.ListenAddrs()[0]))).run(t)
}

// The same on NATS JetStream (a real nats-server), the workers sharing the
// partitions through leases in Redis.
func TestRolesOnNATSRebalanceAfterAWorkerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six server processes")
	}
	rds := redistest.Start(t)
	ns := natstest.Start(t)
	rebalanceRun(t, writeRolesConfig(t, rds.Addr(), fmt.Sprintf(`log: nats
nats:
  url: %s
  partitions: 6
worker:
  assignment: lease
  session_timeout: 2s
`, ns.URL()))).run(t)
}

// rebalanceRun is the kill-and-rebalance scenario on cfgPath: three
// workers, one killed mid-load and not restarted, a fourth joining after.
func rebalanceRun(t *testing.T, cfgPath string) rolesRun {
	live := func(ws []*serveProc) []*serveProc {
		var out []*serveProc
		for i, w := range ws {
			if i != rolesKill {
				out = append(out, w)
			}
		}
		return out
	}
	var killedAt time.Time
	return rolesRun{
		cfg: cfgPath, workers: 3,
		worker: func(int) *serveProc {
			return startServe(t, "--config", cfgPath, "--role", "worker", "--data-dir", t.TempDir())
		},
		before: func(ws []*serveProc) { waitOwned(t, ws, 6, "three workers never split six partitions") },
		killed: func([]*serveProc, int) { killedAt = time.Now() },
		after: func(ws []*serveProc) {
			waitOwned(t, live(ws), 6, "the live workers never took over the killed worker's partitions")
			t.Logf("the two live workers own all six partitions %v after the kill", time.Since(killedAt).Round(time.Millisecond))
			joined := startServe(t, "--config", cfgPath, "--role", "worker", "--data-dir", t.TempDir())
			waitOwned(t, append(live(ws), joined), 6, "a joining worker was never given partitions")
			revoked := 0.0
			for _, w := range live(ws) {
				revoked += metricValue(t, w.url, `ripple_worker_partition_changes_total{change="revoked"}`)
			}
			require.Positive(t, revoked, "the joining worker's partitions must come from clean revokes")
			// Each partition's consumer lag and publishes are exported by
			// its owner, once: a released partition leaves no series.
			for _, metric := range []string{"ripple_eventlog_consumer_lag_records", "ripple_store_publish_writes_total"} {
				require.Eventually(t, func() bool {
					var all []string
					for _, w := range append(live(ws), joined) {
						all = append(all, seriesPartitions(t, w.url, metric)...)
					}
					slices.Sort(all)
					return slices.Equal(all, []string{"0", "1", "2", "3", "4", "5"})
				}, 10*time.Second, 100*time.Millisecond, "%s: want one series per partition across the workers", metric)
			}
		},
	}
}

// Static assignment (on NATS): the killed worker is restarted with its
// index on its data dir and continues from its last snapshot.
func TestRolesStaticSurviveAWorkerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts six server processes")
	}
	rds := redistest.Start(t)
	ns := natstest.Start(t)
	cfgPath := writeRolesConfig(t, rds.Addr(), fmt.Sprintf(`log: nats
nats:
  url: %s
  partitions: 6
worker:
  assignment: static
  count: 3
`, ns.URL()))
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	start := func(i int) *serveProc {
		return startServe(t, "--config", withIndex(t, cfgPath, i), "--role", "worker", "--data-dir", dirs[i])
	}
	rolesRun{
		cfg: cfgPath, workers: 3, worker: start,
		killed: func(ws []*serveProc, i int) { ws[i] = start(i) },
	}.run(t)
}

// writeRolesConfig is writeConfig with short cache TTLs: the test reads
// until the served state converges.
func writeRolesConfig(t testing.TB, redisAddr, extra string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ripple.yaml")
	cfg := fmt.Sprintf(`store: redis
redis:
  addrs: [%s]
  cache:
    user_ttl: 100ms
    item_ttl: 100ms
    neighbors_ttl: 100ms
    values_ttl: 100ms
    trending_ttl: 100ms
%s`, redisAddr, extra)
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
	return path
}

// withIndex is the config at path with worker.index set.
func withIndex(t *testing.T, path string, i int) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	out := filepath.Join(t.TempDir(), "worker.yaml")
	require.NoError(t, os.WriteFile(out, bytes.Replace(b, []byte("worker:\n"), []byte("worker:\n  index: "+strconv.Itoa(i)+"\n"), 1), 0o644))
	return out
}
