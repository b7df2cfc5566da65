package features

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/event"
)

// t0 is 2024-06-01T00:00:00Z: a multiple of every bucket width the tests use,
// so "exactly at the bucket boundary" is easy to write.
const (
	t0     = int64(1717200000000)
	second = int64(1000)
	minute = 60 * second
	hour   = 60 * minute
	day    = 24 * hour
)

// wallClock is an injectable wall clock for computed_at and TTL.
type wallClock struct{ ms atomic.Int64 }

func (c *wallClock) now() time.Time { return time.UnixMilli(c.ms.Load()) }
func (c *wallClock) set(ms int64)   { c.ms.Store(ms) }

// newTestEngine parses yaml (which must declare everything it needs) and
// builds an engine whose wall clock starts at t0 + 1 day.
func newTestEngine(t testing.TB, yaml string) (*Engine, *wallClock) {
	t.Helper()
	cfg, err := ParseConfig([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	clk := &wallClock{}
	clk.set(t0 + day)
	return NewEngine(cfg, clk.now), clk
}

func interaction(user, item, typ string, ts int64) *event.Record {
	return &event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{User: user, Item: item, Type: typ, TS: ts}}
}

func withValue(r *event.Record, v float64) *event.Record {
	r.Interaction.Value = v
	return r
}

func withSession(r *event.Record, s string) *event.Record {
	r.Interaction.Session = s
	return r
}

func itemRecord(id string, hidden bool, cats ...string) *event.Record {
	return &event.Record{Kind: event.KindItem, Item: event.Item{ID: id, Categories: cats, Hidden: hidden, Attributes: map[string]string{"id": id}}}
}

func eraseRecord(user string) *event.Record {
	return &event.Record{Kind: event.KindErase, User: event.User{ID: user}}
}

func applyAll(e *Engine, recs ...*event.Record) {
	for _, r := range recs {
		e.Apply(0, r)
	}
}

// feature reads one feature of one entity, failing if it is not served.
func feature(t testing.TB, e *Engine, entity, id, name string) Value {
	t.Helper()
	v, _ := e.Values(entity, id)
	f, ok := v.Features[name]
	if !ok {
		t.Fatalf("%s %q: feature %q not served (have %v)", entity, id, name, keys(v.Features))
	}
	return f
}

// number reads a numeric feature.
func number(t testing.TB, e *Engine, entity, id, name string) float64 {
	t.Helper()
	f := feature(t, e, entity, id, name)
	x, ok := f.Value.(float64)
	if !ok {
		t.Fatalf("%s %q: %s = %#v, not a number", entity, id, name, f.Value)
	}
	return x
}

func keys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func relClose(a, b, tol float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= tol*math.Max(math.Abs(a), math.Abs(b))
}
