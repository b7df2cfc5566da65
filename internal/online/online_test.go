package online

import (
	"context"
	"fmt"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/cache"
	"github.com/ripple-rec/ripple/internal/demo"
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/redistest"
	"github.com/ripple-rec/ripple/internal/resilience"
	"github.com/ripple-rec/ripple/internal/store"
	"github.com/ripple-rec/ripple/internal/store/redis"
)

// node is one serving node on a shared Redis: its own engine (the writer),
// publisher and tiers.
type node struct {
	eng  *features.Engine
	st   *redis.Store
	bus  *cache.RedisBus
	r    *Reader
	pub  *Publisher
	read *resilience.Breaker
	off  uint64
}

func newNode(t testing.TB, addrs []string, source string, ro ReaderOptions) *node {
	return newNodeReadTimeout(t, addrs, source, ro, 50*time.Millisecond)
}

// patientNode is newNode with a read deadline no loaded test machine
// misses: for tests of what is served, not of how fast (a read that timed
// out would serve defaults, and the comparison would fail for that).
func patientNode(t testing.TB, addrs []string, source string, ro ReaderOptions) *node {
	return newNodeReadTimeout(t, addrs, source, ro, 5*time.Second)
}

func newNodeReadTimeout(t testing.TB, addrs []string, source string, ro ReaderOptions, timeout time.Duration) *node {
	t.Helper()
	n := &node{eng: features.NewEngine(features.DefaultConfig(), nil)}
	n.read = resilience.NewBreaker(resilience.BreakerConfig{Name: "read-" + source, Timeout: timeout,
		MaxFailures: 3, CoolDown: 100 * time.Millisecond})
	write := resilience.NewBreaker(resilience.BreakerConfig{Name: "write-" + source, Timeout: time.Second,
		MaxFailures: 3, CoolDown: 100 * time.Millisecond})
	var err error
	n.st, err = redis.Open(context.Background(), redis.Options{Addrs: addrs, Read: n.read, Write: write})
	require.NoError(t, err)
	n.bus = cache.NewRedisBus(n.st.Client(), "v1:invalidate")
	ro.Bus = n.bus
	n.r, err = NewReader(n.st, ro, func(entity string) features.Values {
		v, _ := n.eng.Values(entity, "\x00none")
		return v
	})
	require.NoError(t, err)
	n.pub = NewPublisher(n.eng, n.st, n.r, PublisherOptions{Source: source, CheckEvery: 50 * time.Millisecond,
		RetryEvery: 20 * time.Millisecond, GlobalEvery: 50 * time.Millisecond})
	n.pub.Start(context.Background())
	t.Cleanup(func() {
		n.pub.Close()
		n.r.Close()
		n.bus.Close()
		n.st.Close()
	})
	return n
}

// apply feeds records to the engine as the ingest applier does.
func (n *node) apply(recs []event.Record) {
	for lo := 0; lo < len(recs); lo += 1000 {
		chunk := recs[lo:min(len(recs), lo+1000)]
		offs := make([]uint64, len(chunk))
		for i := range offs {
			n.off++
			offs[i] = n.off
		}
		n.eng.ApplyBatch(offs, chunk)
		n.pub.AfterApply(n.eng.Applied())
	}
}

func (n *node) waitPublished(t testing.TB) {
	t.Helper()
	require.Eventually(t, func() bool { return n.pub.Published() >= n.eng.Applied() }, 10*time.Second, 5*time.Millisecond)
}

func fastReader() ReaderOptions {
	ro := DefaultReaderOptions()
	ro.Capacity = 10_000
	return ro
}

func smallDemo() demo.Dataset {
	o := demo.DefaultOptions(time.Now())
	o.Users, o.Items = 300, 600
	return demo.Generate(o)
}

// The store round trip changes nothing: a node reading only Redis answers
// exactly what the engine that wrote it answers, score for score.
func TestRedisServesWhatTheEngineServes(t *testing.T) {
	t.Run("single", func(t *testing.T) { testRoundTrip(t, []string{redistest.Start(t).Addr()}) })
	t.Run("cluster", func(t *testing.T) { testRoundTrip(t, redistest.StartCluster(t, 3).Addrs()) })
}

func testRoundTrip(t *testing.T, addrs []string) {
	writer := newNode(t, addrs, "w", fastReader())
	ds := smallDemo()
	writer.apply(ds.Records())
	writer.waitPublished(t)
	writer.eng.RefreshTrending()
	writer.pub.AfterApply(writer.eng.Applied()) // nothing changed: no-op
	// Trending lists are published from the index at flush time; republish
	// from the refreshed index so both sides use the same one.
	writer.pub.resync.Store(true)
	writer.pub.kick()
	require.Eventually(t, func() bool { return !writer.pub.resync.Load() }, 10*time.Second, 5*time.Millisecond)

	reader := patientNode(t, addrs, "r", fastReader()) // another node: nothing of its own in L1
	cfg := recommend.DefaultConfig()
	local := recommend.New(writer.eng, cfg)
	remote := recommend.NewBound(func(ctx context.Context) recommend.Features { return reader.r.Bind(ctx) }, cfg)
	ctx := context.Background()
	users := map[string]bool{"nobody": true}
	for _, ev := range ds.Events {
		users[ev.User] = true
	}
	for u := range users {
		want := local.Recommend(ctx, recommend.Request{User: u, K: 10})
		got := remote.Recommend(ctx, recommend.Request{User: u, K: 10})
		require.Equal(t, want.Items, got.Items, "user %s", u)
		require.Equal(t, want.ColdStart, got.ColdStart)
		require.Equal(t, recommend.Healthy, got.Degradation)
	}
	for _, it := range []string{ds.Events[0].Item, ds.Events[100].Item} {
		want := local.Similar(ctx, it, 10, false)
		got := remote.Similar(ctx, it, 10, false)
		require.Equal(t, want.Items, got.Items, "similar %s", it)
	}
	// Feature values with their computed_at, as GET /v1/features serves them.
	for _, c := range []struct{ entity, id string }{{features.EntityUser, ds.Events[0].User},
		{features.EntityItem, ds.Events[0].Item}, {features.EntityGlobal, ""}} {
		want, _ := writer.eng.Values(c.entity, c.id)
		got, found, lvl := reader.r.Values(ctx, c.entity, c.id)
		require.True(t, found, c.entity)
		require.Equal(t, resilience.Healthy, lvl)
		require.Equal(t, len(want.Features), len(got.Features))
		for name, w := range want.Features {
			g := got.Features[name]
			wj, _ := json.Marshal(w.Value)
			gj, _ := json.Marshal(g.Value)
			if c.entity == features.EntityGlobal || name == "item_since_last_event" || name == "user_since_last_purchase" {
				// Recency is relative to the clock at publish time.
				continue
			}
			assert.JSONEq(t, string(wj), string(gj), "%s %s", c.entity, name)
			assert.Equal(t, w.ComputedAt, g.ComputedAt, name)
			assert.Equal(t, w.Default, g.Default, name)
		}
	}
}

func interaction(user, item string, ts time.Time) event.Record {
	return event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{
		Type: "view", User: user, Item: item, TS: ts.UnixMilli()}}
}

// A user's own new event is in this node's tier at once, before (and even
// without) the store acknowledging it; other nodes see it after the write
// and its invalidation.
func TestReadYourWritesAndInvalidationAcrossNodes(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		srv := redistest.Start(t)
		testReadYourWrites(t, []string{srv.Addr()}, srv.Freeze, srv.Thaw)
	})
	t.Run("cluster", func(t *testing.T) {
		cl := redistest.StartCluster(t, 3)
		freeze := func() {
			for _, n := range cl.Nodes {
				n.Freeze()
			}
		}
		thaw := func() {
			for _, n := range cl.Nodes {
				n.Thaw()
			}
		}
		testReadYourWrites(t, cl.Addrs(), freeze, thaw)
	})
}

func testReadYourWrites(t *testing.T, addrs []string, freeze, thaw func()) {
	a := newNode(t, addrs, "a", fastReader())
	b := newNode(t, addrs, "b", fastReader())
	ctx := context.Background()
	now := time.Now()
	a.apply([]event.Record{interaction("alice", "i1", now.Add(-time.Minute)), interaction("alice", "i2", now.Add(-30*time.Second))})
	a.waitPublished(t)
	recent := func(n *node) []string {
		var out []string
		for _, it := range n.r.Bind(ctx).User("alice", 10).Recent {
			out = append(out, it.Item)
		}
		return out
	}
	require.Equal(t, []string{"i2", "i1"}, recent(b))
	// a's invalidation for that first write may reach b just after b read
	// alice; let it land, then b caches alice for good.
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, []string{"i2", "i1"}, recent(b)) // b caches alice now

	freeze() // the store cannot take the next write
	a.apply([]event.Record{interaction("alice", "i3", now)})
	assert.Equal(t, []string{"i3", "i2", "i1"}, recent(a), "read-your-writes on the node that applied")
	assert.Equal(t, []string{"i2", "i1"}, recent(b), "b has not been told yet")
	thaw()
	a.waitPublished(t)
	require.Eventually(t, func() bool { return fmt.Sprint(recent(b)) == "[i3 i2 i1]" }, 2*time.Second, 5*time.Millisecond,
		"the invalidation reaches b well before its TTL")

	// Erase: gone from the store and from both tiers.
	a.apply([]event.Record{{Kind: event.KindErase, User: event.User{ID: "alice"}}})
	assert.False(t, a.r.Bind(ctx).User("alice", 10).Exists)
	a.waitPublished(t)
	var rows [][][]byte
	require.Eventually(t, func() bool { // the read breaker may still be open from the freeze
		var err error
		rows, err = a.st.Get(ctx, []string{userKey("alice")}, []string{fieldView, fieldSeen})
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	assert.Equal(t, [][]byte{nil, nil}, rows[0])
	require.Eventually(t, func() bool { return !b.r.Bind(ctx).User("alice", 10).Exists }, 2*time.Second, 5*time.Millisecond)
}

// Redis down: reads fall back (L1, last trending, defaults) and say so;
// writes queue; Redis back empty: the publisher resyncs and fresh values
// return.
func TestRedisOutageAndRestartEmpty(t *testing.T) {
	srv := redistest.Start(t)
	ro := fastReader()
	w := newNode(t, []string{srv.Addr()}, "w", ro)
	ds := smallDemo()
	w.apply(ds.Records())
	w.waitPublished(t)
	r := newNode(t, []string{srv.Addr()}, "r", ro)
	cfg := recommend.DefaultConfig()
	remote := recommend.NewBound(func(ctx context.Context) recommend.Features { return r.r.Bind(ctx) }, cfg)
	ctx := context.Background()
	warm := ds.Events[0].User
	before := remote.Recommend(ctx, recommend.Request{User: warm, K: 10})
	require.Equal(t, recommend.Healthy, before.Degradation)
	require.NotEmpty(t, before.Items)

	srv.Stop()
	cold := ds.Events[len(ds.Events)-1].User
	if cold == warm {
		cold = ds.Events[len(ds.Events)-2].User
	}
	for range 20 {
		start := time.Now()
		got := remote.Recommend(ctx, recommend.Request{User: cold, K: 10})
		assert.Less(t, time.Since(start), 200*time.Millisecond, "an outage costs a request its read budget at most")
		assert.Equal(t, recommend.Degraded, got.Degradation, "defaults served: degraded")
		assert.NotEmpty(t, got.Items, "popularity fallback from the last trending list")
	}
	assert.Equal(t, resilience.StateOpen, r.read.State(), "repeated failures open the breaker")
	// The warm user is still served from L1 (within its TTL): no error.
	assert.Equal(t, before.Items, remote.Recommend(ctx, recommend.Request{User: warm, K: 10}).Items)

	// Writes keep arriving during the outage; they queue.
	w.apply([]event.Record{interaction(cold, ds.Events[0].Item, time.Now())})
	time.Sleep(100 * time.Millisecond)
	assert.Less(t, w.pub.Published(), w.eng.Applied())

	srv.Restart() // empty
	w.waitPublished(t)
	require.Eventually(t, func() bool {
		got := remote.Recommend(ctx, recommend.Request{User: cold, K: 10})
		return got.Degradation == recommend.Healthy && !got.ColdStart
	}, 10*time.Second, 20*time.Millisecond, "breaker closes, resync restores the data")
	n, err := w.st.Client().Do(ctx, w.st.Client().B().Dbsize().Build()).AsInt64()
	require.NoError(t, err)
	assert.Greater(t, n, int64(len(ds.Items)), "every entity was rewritten")
}

// A store that holds a user the engine no longer has (the erasure's delete
// never reached it: a replica that was behind took over) loses that user
// at the next resync; other sources' users are left alone.
func TestResyncDeletesUsersTheEngineNoLongerHas(t *testing.T) {
	srv := redistest.Start(t)
	w := newNode(t, []string{srv.Addr()}, "w", fastReader())
	now := time.Now()
	w.apply([]event.Record{interaction("alice", "i1", now), interaction("carol", "i2", now)})
	w.apply([]event.Record{{Kind: event.KindErase, User: event.User{ID: "carol"}}})
	w.waitPublished(t)
	ctx := context.Background()
	// carol comes back in the store, as if from a stale replica; dave is
	// another node's user.
	_, err := w.st.Write(ctx, &store.Batch{Source: "w", Offset: 1, Put: []store.Entity{{Key: userKey("carol"),
		Fields: []store.Field{{Name: fieldView, Value: []byte(`{"at":1,"recent":[],"events":1}`)}}}}})
	require.NoError(t, err)
	_, err = w.st.Write(ctx, &store.Batch{Source: "other", Offset: 1, Put: []store.Entity{{Key: userKey("dave"),
		Fields: []store.Field{{Name: fieldView, Value: []byte(`{"at":1,"recent":[],"events":1}`)}}}}})
	require.NoError(t, err)

	w.pub.resync.Store(true)
	w.pub.kick()
	require.Eventually(t, func() bool { return !w.pub.resync.Load() }, 5*time.Second, 5*time.Millisecond)
	rows, err := w.st.Get(ctx, []string{userKey("alice"), userKey("carol"), userKey("dave")}, []string{fieldView})
	require.NoError(t, err)
	assert.NotNil(t, rows[0][0], "alice stays")
	assert.Nil(t, rows[1][0], "carol, erased in the engine, is deleted")
	assert.NotNil(t, rows[2][0], "another source's user is not touched")
}
