package deploytest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ripple-rec/ripple/internal/api"
	"github.com/ripple-rec/ripple/internal/cache"
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/online"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/resilience"
	"github.com/ripple-rec/ripple/internal/store"
)

// family is what the tests know about one metric family Ripple exports.
type family struct {
	typ    dto.MetricType
	labels map[string]bool // variable and constant label names
	// values are the label values seen on real samples (and constant
	// labels); a matcher on a closed label must match one of them.
	values    map[string]map[string]bool
	buckets   []float64 // histogram upper bounds
	quantiles []float64 // summary objectives
}

// inventory is every metric family a serving node exports, built from the
// same constructors cmd/ripple wires (store: redis, the superset), plus the
// route labels the API gives the requests of the HTTP contract.
type inventory struct {
	families map[string]*family
	// routes maps each contract request to the route label it was counted under.
	routes map[contractRequest]string
}

// contractRequest is one request of the HTTP API v1 (ARCHITECTURE.md) and
// the SLO route group it belongs to: ingest and read have availability
// SLOs, recommend has the latency SLO, admin and probe have none.
type contractRequest struct {
	method, path, body string
	group              string
}

var contract = []contractRequest{
	// One valid event and one invalid: "accepted" and "rejected" are both counted.
	{http.MethodPost, "/v1/events", `[{"type":"view","user":"u1","item":"i1"},{"type":"?"}]`, "ingest"},
	{http.MethodPost, "/v1/items", `[{"id":"i1"}]`, "ingest"},
	{http.MethodPut, "/v1/items/i1", `{"categories":["c"]}`, "ingest"},
	{http.MethodGet, "/v1/recommendations/u1", "", "recommend"},
	{http.MethodGet, "/v1/items/i1/similar", "", "read"},
	{http.MethodPost, "/v1/rank", `{"user":"u1","items":["i1"]}`, "read"},
	{http.MethodGet, "/v1/features/user/u1", "", "read"},
	{http.MethodPost, "/v1/admin/train", "", "admin"},
	{http.MethodDelete, "/v1/users/u1", "", "admin"},
	{http.MethodGet, "/healthz", "", "probe"},
	{http.MethodGet, "/readyz", "", "probe"},
	{http.MethodGet, "/metrics", "", "probe"},
}

// openLabels take values from data or configuration (status codes, feature
// and breaker names, broker log partitions): matchers on them are not
// checked against values seen here. Every other label's values are fixed by
// the code and checked.
var openLabels = map[string]bool{"code": true, "feature": true, "breaker": true, "pool": true, "cache": true, "partition": true}

// targetLabels are attached by Prometheus at scrape time.
var targetLabels = map[string]bool{"job": true, "instance": true}

var (
	inventoryOnce sync.Once
	inventoryVal  *inventory
	inventoryErr  error
)

// exported builds the inventory once per test binary.
func exported(t *testing.T) *inventory {
	t.Helper()
	inventoryOnce.Do(func() { inventoryVal, inventoryErr = buildInventory() })
	if inventoryErr != nil {
		t.Fatalf("collecting Ripple's metrics: %v", inventoryErr)
	}
	return inventoryVal
}

func buildInventory() (*inventory, error) {
	m := observe.NewMetrics(func() float64 { return 0 }, func() float64 { return -1 })
	reg := &recordingRegisterer{Registerer: m.Registry}

	// A worker node's (serve --role worker).
	observe.NewWorkerMetrics(reg, func() float64 { return 0 }, 6)

	// The store: redis parts, as cmd/ripple's openOnline wires them.
	rm := resilience.NewMetrics(reg)
	resilience.NewBreaker(resilience.BreakerConfig{Name: "redis-read", Metrics: rm})
	resilience.NewPool(1, time.Millisecond, resilience.WithPoolMetrics(rm, "redis"))
	ro := online.DefaultReaderOptions()
	ro.Metrics = cache.NewMetrics(reg)
	eng := features.NewEngine(features.DefaultConfig(), nil)
	st := unreachableStore{}
	r, err := online.NewReader(st, ro, func(entity string) features.Values {
		v, _ := eng.Values(entity, "\x00unknown")
		return v
	})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	pub := online.NewPublisher(eng, st, r, online.PublisherOptions{Source: "deploytest", Registerer: reg,
		RetryEvery: 10 * time.Millisecond})
	// Started against a store that never answers, the publisher counts a
	// failed write: the result label the alerts use gets a real value.
	pub.Start(context.Background())
	defer pub.Close()

	inv := &inventory{families: map[string]*family{}, routes: map[contractRequest]string{}}
	srv := api.New(nopWriter{}, api.EngineReader{Engine: eng}, recommend.New(eng, recommend.DefaultConfig()), m, nil,
		api.DefaultOptions())
	for _, c := range contract {
		before, err := routeCounts(m.Registry)
		if err != nil {
			return nil, err
		}
		req := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
		req.RemoteAddr = "127.0.0.1:40000"
		if c.body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		srv.Handler().ServeHTTP(httptest.NewRecorder(), req)
		after, err := routeCounts(m.Registry)
		if err != nil {
			return nil, err
		}
		for route, n := range after {
			if n > before[route] {
				inv.routes[c] = route
			}
		}
		if inv.routes[c] == "" {
			return nil, fmt.Errorf("%s %s was not counted in ripple_http_requests_total", c.method, c.path)
		}
	}
	// Every degradation level the pipeline can report (the request above
	// only produced "healthy").
	for _, level := range []string{recommend.Healthy, recommend.Stale, recommend.Degraded} {
		m.Recommendations.WithLabelValues(level)
	}
	// The write path over a broker log (log: kafka|nats) gives its
	// dead-letter counters every reason they count; wiring it contacts no
	// broker.
	ingest.NewPartitioned(nil, eng, nil, m, nil, ingest.Options{})
	if err := waitFor(m.Registry, "ripple_store_publish_writes_total"); err != nil {
		return nil, err
	}

	// Real samples: types, label values.
	if err := inv.gather(m.Registry, true); err != nil {
		return nil, err
	}
	// Descriptions: the names and labels of everything registered (a
	// Registry is a Collector too), including vectors that have no child
	// yet and so are not gathered. Give those a placeholder child, then
	// gather again for their type, buckets and quantiles.
	byName := map[string]prometheus.Collector{}
	for _, c := range append(structCollectors(m), reg.collectors...) {
		for _, d := range describe(c) {
			if name, _, _, err := parseDesc(d.String()); err == nil {
				byName[name] = c
			}
		}
	}
	for _, d := range describe(m.Registry) {
		name, labels, constLabels, err := parseDesc(d.String())
		if err != nil {
			return nil, err
		}
		gathered := inv.families[name] != nil
		f := inv.family(name)
		for _, l := range labels {
			f.labels[l] = true
		}
		for l, v := range constLabels {
			f.labels[l] = true
			f.value(l, v)
		}
		if !gathered {
			placeholder(byName[name], len(labels))
		}
	}
	if err := inv.gather(m.Registry, false); err != nil {
		return nil, err
	}
	return inv, nil
}

func (inv *inventory) family(name string) *family {
	f := inv.families[name]
	if f == nil {
		f = &family{typ: dto.MetricType_UNTYPED, labels: map[string]bool{}, values: map[string]map[string]bool{}}
		inv.families[name] = f
	}
	return f
}

func (f *family) value(label, v string) {
	if f.values[label] == nil {
		f.values[label] = map[string]bool{}
	}
	f.values[label][v] = true
}

// gather reads types, buckets and quantiles; withValues also records the
// label values of the samples (false for the pass with placeholders).
func (inv *inventory) gather(g prometheus.Gatherer, withValues bool) error {
	mfs, err := g.Gather()
	if err != nil {
		return err
	}
	for _, mf := range mfs {
		f := inv.family(mf.GetName())
		f.typ = mf.GetType()
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				f.labels[lp.GetName()] = true
				if withValues {
					f.value(lp.GetName(), lp.GetValue())
				}
			}
			if h := mt.GetHistogram(); h != nil && f.buckets == nil {
				for _, b := range h.GetBucket() {
					f.buckets = append(f.buckets, b.GetUpperBound())
				}
			}
			if s := mt.GetSummary(); s != nil && f.quantiles == nil {
				for _, q := range s.GetQuantile() {
					f.quantiles = append(f.quantiles, q.GetQuantile())
				}
			}
		}
	}
	return nil
}

func routeCounts(g prometheus.Gatherer) (map[string]float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "ripple_http_requests_total" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == "route" {
					out[lp.GetValue()] += mt.GetCounter().GetValue()
				}
			}
		}
	}
	return out, nil
}

// waitFor polls until a family has a sample (a background goroutine sets it).
func waitFor(g prometheus.Gatherer, name string) error {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		mfs, err := g.Gather()
		if err != nil {
			return err
		}
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.GetMetric()) > 0 {
				return nil
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s never got a sample", name)
}

// recordingRegisterer remembers every collector registered through it.
type recordingRegisterer struct {
	prometheus.Registerer
	collectors []prometheus.Collector
}

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registerer.Register(c)
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// structCollectors returns the collectors held in the fields of
// *observe.Metrics, so a vector added there gets a placeholder child
// without editing this test.
func structCollectors(m *observe.Metrics) []prometheus.Collector {
	var out []prometheus.Collector
	v := reflect.ValueOf(m).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanInterface() || (f.Kind() == reflect.Pointer || f.Kind() == reflect.Interface) && f.IsNil() {
			continue
		}
		if _, ok := f.Interface().(*prometheus.Registry); ok {
			continue
		}
		if c, ok := f.Interface().(prometheus.Collector); ok {
			out = append(out, c)
		}
	}
	return out
}

func describe(c prometheus.Collector) []*prometheus.Desc {
	ch := make(chan *prometheus.Desc)
	go func() {
		c.Describe(ch)
		close(ch)
	}()
	var out []*prometheus.Desc
	for d := range ch {
		out = append(out, d)
	}
	return out
}

// placeholder gives a vector without children one child, so it is gathered.
func placeholder(c prometheus.Collector, n int) {
	vals := make([]string, n)
	for i := range vals {
		vals[i] = "deploytest"
	}
	switch v := c.(type) {
	case *prometheus.CounterVec:
		v.WithLabelValues(vals...)
	case *prometheus.GaugeVec:
		v.WithLabelValues(vals...)
	case *prometheus.HistogramVec:
		v.WithLabelValues(vals...)
	case *prometheus.SummaryVec:
		v.WithLabelValues(vals...).Observe(0)
	}
}

// parseDesc reads the name, variable labels and constant labels of a
// Desc from its String form, the only way client_golang shows them:
//
//	Desc{fqName: "x", help: "...", unit: "", constLabels: {a="b"}, variableLabels: {c,d}}
func parseDesc(s string) (name string, labels []string, constLabels map[string]string, err error) {
	fail := func(what string) error { return fmt.Errorf("unexpected Desc format (%s): %s", what, s) }
	rest, ok := strings.CutPrefix(s, "Desc{fqName: ")
	if !ok {
		return "", nil, nil, fail("fqName")
	}
	if name, rest, err = unquotePrefix(rest); err != nil {
		return "", nil, nil, fail("fqName")
	}
	if rest, ok = strings.CutPrefix(rest, ", help: "); !ok {
		return "", nil, nil, fail("help")
	}
	if _, rest, err = unquotePrefix(rest); err != nil {
		return "", nil, nil, fail("help")
	}
	if r, ok := strings.CutPrefix(rest, ", unit: "); ok {
		if _, rest, err = unquotePrefix(r); err != nil {
			return "", nil, nil, fail("unit")
		}
	}
	if rest, ok = strings.CutPrefix(rest, ", constLabels: {"); !ok {
		return "", nil, nil, fail("constLabels")
	}
	constLabels = map[string]string{}
	for !strings.HasPrefix(rest, "}") {
		l, r, ok := strings.Cut(rest, "=")
		if !ok {
			return "", nil, nil, fail("constLabels")
		}
		var v string
		if v, rest, err = unquotePrefix(r); err != nil {
			return "", nil, nil, fail("constLabels")
		}
		constLabels[l] = v
		rest = strings.TrimPrefix(rest, ",")
	}
	if rest, ok = strings.CutPrefix(rest, "}, variableLabels: {"); !ok {
		return "", nil, nil, fail("variableLabels")
	}
	vl, _, ok := strings.Cut(rest, "}")
	if !ok {
		return "", nil, nil, fail("variableLabels")
	}
	for _, l := range strings.Split(vl, ",") {
		if l = strings.TrimSuffix(strings.TrimPrefix(l, "c("), ")"); l != "" {
			labels = append(labels, l)
		}
	}
	return name, labels, constLabels, nil
}

func unquotePrefix(s string) (string, string, error) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", err
	}
	v, err := strconv.Unquote(q)
	return v, s[len(q):], err
}

// unreachableStore is an online store that never answers.
type unreachableStore struct{}

func (unreachableStore) Get(context.Context, []string, []string) ([][][]byte, error) {
	return nil, store.ErrUnavailable
}

func (unreachableStore) GetAll(context.Context, string) (map[string][]byte, error) {
	return nil, store.ErrUnavailable
}

func (unreachableStore) Write(context.Context, *store.Batch) (uint64, error) {
	return 0, store.ErrUnavailable
}

func (unreachableStore) Offset(context.Context, string) (uint64, error) {
	return 0, store.ErrUnavailable
}

var _ store.Online = unreachableStore{}

// nopWriter acknowledges every write without keeping it.
type nopWriter struct{}

func (nopWriter) Events(_ context.Context, events []event.Interaction) (ingest.Result, error) {
	return ingest.Result{Accepted: len(events)}, nil
}
func (nopWriter) Items(context.Context, []event.Item) error { return nil }
func (nopWriter) EraseUser(context.Context, string) error   { return nil }
func (nopWriter) Ready() bool                               { return true }

var _ api.Writer = nopWriter{}
