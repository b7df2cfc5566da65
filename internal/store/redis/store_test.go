package redis

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/redistest"
	"github.com/ripple-rec/ripple/internal/resilience"
	"github.com/ripple-rec/ripple/internal/store"
)

func open(t *testing.T, srv *redistest.Server, opts Options) *Store {
	t.Helper()
	opts.Addrs = []string{srv.Addr()}
	s, err := Open(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func ent(key string, kv ...string) store.Entity {
	e := store.Entity{Key: key}
	for i := 0; i < len(kv); i += 2 {
		e.Fields = append(e.Fields, store.Field{Name: kv[i], Value: []byte(kv[i+1])})
	}
	return e
}

func TestWriteGetAndOffsets(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, Options{})
	ctx := context.Background()

	prev, err := s.Write(ctx, &store.Batch{Source: "a", Offset: 10, TTL: time.Hour, Commit: true,
		Put: []store.Entity{ent("u:1", "x", "1", "y", "2"), ent("u:2", "x", "3")}})
	require.NoError(t, err)
	assert.Zero(t, prev, "first write: the store held no offset")

	rows, err := s.Get(ctx, []string{"u:1", "u:2", "u:missing"}, []string{"x", "y"})
	require.NoError(t, err)
	assert.Equal(t, [][][]byte{{[]byte("1"), []byte("2")}, {[]byte("3"), nil}, {nil, nil}}, rows)
	all, err := s.GetAll(ctx, "u:1")
	require.NoError(t, err)
	assert.Equal(t, []byte("2"), all["y"])
	assert.Equal(t, []byte("10"), all["_off"], "records carry the offset their state includes")
	none, err := s.GetAll(ctx, "u:missing")
	require.NoError(t, err)
	assert.Nil(t, none)

	// An older flush from the same source never overwrites newer state.
	_, err = s.Write(ctx, &store.Batch{Source: "a", Offset: 5, Commit: true, Put: []store.Entity{ent("u:1", "x", "old")}})
	require.NoError(t, err)
	rows, _ = s.Get(ctx, []string{"u:1"}, []string{"x"})
	assert.Equal(t, "1", string(rows[0][0]))
	off, err := s.Offset(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, uint64(10), off, "the offset never moves backwards")

	// A replay of the same offset rewrites the same record: idempotent.
	// A newer one replaces the whole record (fields it lacks are gone).
	prev, err = s.Write(ctx, &store.Batch{Source: "a", Offset: 12, Commit: true, Put: []store.Entity{ent("u:1", "x", "new")}})
	require.NoError(t, err)
	assert.Equal(t, uint64(10), prev)
	rows, _ = s.Get(ctx, []string{"u:1"}, []string{"x", "y"})
	assert.Equal(t, [][]byte{[]byte("new"), nil}, rows[0])

	// Another source's state is not ordered against this one's: it wins.
	_, err = s.Write(ctx, &store.Batch{Source: "b", Offset: 1, Commit: true, Put: []store.Entity{ent("u:1", "x", "from-b")}})
	require.NoError(t, err)
	rows, _ = s.Get(ctx, []string{"u:1"}, []string{"x"})
	assert.Equal(t, "from-b", string(rows[0][0]))

	// A writer that expects more than the store holds (the store lost
	// data) gets the truth back and the offset does not move: a later
	// restart must still see the store as behind and resync.
	prev, err = s.Write(ctx, &store.Batch{Source: "a", Offset: 30, Commit: true, Expect: 20, Put: []store.Entity{ent("u:9", "x", "1")}})
	require.NoError(t, err)
	assert.Equal(t, uint64(12), prev)
	off, _ = s.Offset(ctx, "a")
	assert.Equal(t, uint64(12), off)

	// Uncommitted batches (resync chunks) leave the offset alone; deletes work.
	_, err = s.Write(ctx, &store.Batch{Source: "a", Offset: 99, Put: []store.Entity{ent("u:3", "x", "9")}, Delete: []string{"u:2"}})
	require.NoError(t, err)
	off, _ = s.Offset(ctx, "a")
	assert.Equal(t, uint64(12), off)
	rows, _ = s.Get(ctx, []string{"u:2", "u:3"}, []string{"x"})
	assert.Nil(t, rows[0][0])
	assert.Equal(t, "9", string(rows[1][0]))
}

func TestKeysAreVersionedAndSlotTagged(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, Options{Prefix: "v2"})
	assert.Equal(t, "v2:{u:alice}", s.Key("u:alice"))
	_, err := s.Write(context.Background(), &store.Batch{Source: "a", Offset: 1, TTL: time.Minute, Commit: true,
		Put: []store.Entity{ent("u:alice", "x", "1")}})
	require.NoError(t, err)
	ttl, err := s.Client().Do(context.Background(), s.Client().B().Pttl().Key("v2:{u:alice}").Build()).AsInt64()
	require.NoError(t, err)
	assert.Greater(t, ttl, int64(50_000), "every record has a TTL")
	assert.LessOrEqual(t, ttl, int64(60_000))
}

func TestWriteChunksLargeBatches(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, Options{WriteChunk: 7})
	var b store.Batch
	b.Source, b.Offset, b.Commit = "a", 3, true
	keys := []string{}
	for i := range 50 {
		k := "i:" + string(rune('A'+i))
		keys = append(keys, k)
		b.Put = append(b.Put, ent(k, "n", k))
	}
	_, err := s.Write(context.Background(), &b)
	require.NoError(t, err)
	rows, err := s.Get(context.Background(), keys, []string{"n"})
	require.NoError(t, err)
	for i, k := range keys {
		assert.Equal(t, k, string(rows[i][0]))
	}
}

func TestScriptsReloadAfterRestart(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, Options{})
	ctx := context.Background()
	_, err := s.Write(ctx, &store.Batch{Source: "a", Offset: 5, Commit: true, Put: []store.Entity{ent("u:1", "x", "1")}})
	require.NoError(t, err)
	srv.Restart() // empty, and without the scripts' SHA1s
	require.Eventually(t, func() bool {
		_, err := s.Offset(ctx, "a")
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	// Connections that saw the restart fail once (no retries: the caller
	// decides); the write then succeeds through NOSCRIPT → EVAL.
	var prev uint64
	require.Eventually(t, func() bool {
		prev, err = s.Write(ctx, &store.Batch{Source: "a", Offset: 6, Commit: true, Put: []store.Entity{ent("u:1", "x", "2")}})
		return err == nil
	}, 5*time.Second, 20*time.Millisecond)
	assert.Zero(t, prev, "the store lost its data: the writer must resync")
	rows, err := s.Get(ctx, []string{"u:1"}, []string{"x"})
	require.NoError(t, err)
	assert.Equal(t, "2", string(rows[0][0]))
}

// A hung Redis (accepts, never answers) costs a read its deadline and no
// more; after enough failures the breaker answers at once.
func TestHungRedisFailsFastThenBreakerOpens(t *testing.T) {
	srv := redistest.Start(t)
	read := resilience.NewBreaker(resilience.BreakerConfig{Name: "r", Timeout: 30 * time.Millisecond, MaxFailures: 3, CoolDown: time.Hour})
	s := open(t, srv, Options{Read: read})
	ctx := context.Background()
	_, err := s.Get(ctx, []string{"u:1"}, []string{"x"})
	require.NoError(t, err)

	srv.Freeze()
	defer srv.Thaw()
	for range 3 {
		start := time.Now()
		_, err := s.Get(ctx, []string{"u:1"}, []string{"x"})
		require.ErrorIs(t, err, store.ErrUnavailable)
		assert.Less(t, time.Since(start), 500*time.Millisecond, "bounded by the read deadline")
	}
	assert.Equal(t, resilience.StateOpen, read.State())
	_, err = s.Get(ctx, []string{"u:1"}, []string{"x"})
	require.ErrorIs(t, err, resilience.ErrOpen, "an open breaker answers without calling Redis")
}

// A read that gates a write (store.OnWritePath: the consent check before
// events are appended) goes through the write guard: an open read breaker
// does not refuse it, and its failures do not count against the read path.
func TestWritePathReadsUseTheWriteGuard(t *testing.T) {
	srv := redistest.Start(t)
	read := resilience.NewBreaker(resilience.BreakerConfig{Name: "r", Timeout: time.Second, MaxFailures: 1, CoolDown: time.Hour})
	// Tolerant: the reads below fail while the client reconnects.
	write := resilience.NewBreaker(resilience.BreakerConfig{Name: "w", Timeout: time.Second, MaxFailures: 1000, CoolDown: time.Hour})
	s := open(t, srv, Options{Read: read, Write: write})
	ctx := context.Background()
	srv.Stop()
	_, err := s.Get(ctx, []string{"u:1"}, []string{"x"})
	require.ErrorIs(t, err, store.ErrUnavailable)
	require.Equal(t, resilience.StateOpen, read.State(), "a failed serving read opens the read breaker")
	require.Equal(t, resilience.StateClosed, write.State())
	srv.Restart()
	require.Eventually(t, func() bool {
		_, err := s.Get(store.OnWritePath(ctx), []string{"u:1"}, []string{"x"})
		return err == nil
	}, 5*time.Second, 20*time.Millisecond, "a write-path read must not be refused by the open read breaker")
	_, err = s.Get(ctx, []string{"u:1"}, []string{"x"})
	require.ErrorIs(t, err, resilience.ErrOpen, "the read breaker is still open for serving reads")
}

// With every slot taken, a call waits the bounded pool wait and fails: it
// never queues behind a slow Redis.
func TestPoolExhaustionIsBounded(t *testing.T) {
	srv := redistest.Start(t)
	pool := resilience.NewPool(1, 20*time.Millisecond)
	s := open(t, srv, Options{Pool: pool})
	release, err := pool.Acquire(context.Background())
	require.NoError(t, err)
	start := time.Now()
	_, err = s.Get(context.Background(), []string{"u:1"}, []string{"x"})
	assert.True(t, errors.Is(err, resilience.ErrPoolExhausted) && errors.Is(err, store.ErrUnavailable), "%v", err)
	assert.Less(t, time.Since(start), 300*time.Millisecond)
	release()
	_, err = s.Get(context.Background(), []string{"u:1"}, []string{"x"})
	assert.NoError(t, err)
}

// A node whose Redis is down at start still starts: calls fail fast as
// unavailable until the background connect succeeds.
func TestOpenLazyConnectsWhenRedisComesUp(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	s, err := OpenLazy(Options{Addrs: []string{srv.Addr()}}, 20*time.Millisecond, nil)
	require.NoError(t, err)
	defer s.Close()
	_, err = s.Get(context.Background(), []string{"u:1"}, []string{"x"})
	require.ErrorIs(t, err, store.ErrUnavailable)
	assert.Nil(t, s.Client())
	srv.Restart()
	select {
	case <-s.Connected():
	case <-time.After(5 * time.Second):
		t.Fatal("never connected")
	}
	_, err = s.Write(context.Background(), &store.Batch{Source: "a", Offset: 1, Commit: true, Put: []store.Entity{ent("u:1", "x", "1")}})
	require.NoError(t, err)
	rows, err := s.Get(context.Background(), []string{"u:1"}, []string{"x"})
	require.NoError(t, err)
	assert.Equal(t, "1", string(rows[0][0]))
}

func TestOpenFailsWithoutAnyAddress(t *testing.T) {
	_, err := Open(context.Background(), Options{})
	assert.Error(t, err)
	_, err = Open(context.Background(), Options{Addrs: []string{"127.0.0.1:1"}})
	assert.Error(t, err, "a Redis that does not answer at start is a configuration error")
}

// BenchmarkGet100x50 is the serving shape: 100 entities × 50
// features in one pipelined read through the store's guards (admission
// pool and breaker). p99 is reported per batch.
func BenchmarkGet100x50(b *testing.B) {
	b.Run("field-per-feature", func(b *testing.B) { benchGet(b, false) })
	b.Run("field-per-group", func(b *testing.B) { benchGet(b, true) })
}

func benchGet(b *testing.B, grouped bool) {
	srv := redistest.Start(b)
	s, err := Open(context.Background(), Options{Addrs: []string{srv.Addr()},
		Read: resilience.NewBreaker(resilience.BreakerConfig{Name: "bench", Timeout: time.Second}),
		Pool: resilience.NewPool(64, time.Second)})
	require.NoError(b, err)
	defer s.Close()
	keys := make([]string, 100)
	fields := make([]string, 50)
	for j := range fields {
		fields[j] = "f:feature_" + strconv.Itoa(j)
	}
	batch := store.Batch{Source: "bench", Offset: 1, Commit: true}
	for i := range keys {
		keys[i] = "u:user" + strconv.Itoa(i)
		e := store.Entity{Key: keys[i]}
		var group []byte
		for _, f := range fields {
			v := []byte(`{"v":12.5,"t":1763769600000}`)
			e.Fields = append(e.Fields, store.Field{Name: f, Value: v})
			group = append(append(append(group, f...), ':'), v...)
		}
		e.Fields = append(e.Fields, store.Field{Name: "_features", Value: group})
		batch.Put = append(batch.Put, e)
	}
	last := len(fields) - 1
	if grouped {
		// All 50 values in one field: one lookup and one bulk string per
		// entity instead of 50.
		fields, last = []string{"_features"}, 0
	}
	_, err = s.Write(context.Background(), &batch)
	require.NoError(b, err)
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		rows, err := s.Get(ctx, keys, fields)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatalf("read %d: %v", len(lat), err)
		}
		if rows[99][last] == nil {
			b.Fatal("value missing")
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
}

// Every command is single-key under a hash tag and the scripts touch one
// key each, so the store works on a Redis Cluster unchanged: entities land
// on every node and read back in one batch.
func TestClusterRoundTrip(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	s, err := Open(context.Background(), Options{Addrs: cl.Addrs()[:1]}) // one seed finds the rest
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	var b store.Batch
	b.Source, b.Offset, b.Commit, b.TTL = "a", 7, true, time.Hour
	var keys []string
	for i := range 300 {
		k := "u:user-" + strconv.Itoa(i)
		keys = append(keys, k)
		b.Put = append(b.Put, ent(k, "_f", strconv.Itoa(i), "_at", "1"))
	}
	prev, err := s.Write(ctx, &b)
	require.NoError(t, err)
	assert.Zero(t, prev)
	rows, err := s.Get(ctx, keys, []string{"_f", "missing"})
	require.NoError(t, err)
	for i := range keys {
		assert.Equal(t, strconv.Itoa(i), string(rows[i][0]))
		assert.Nil(t, rows[i][1])
	}
	off, err := s.Offset(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, uint64(7), off)
	// The keys really are spread: every master holds some.
	for _, addr := range cl.Addrs() {
		_, port, _ := strings.Cut(addr, ":")
		out, err := exec.Command("redis-cli", "-p", port, "dbsize").Output()
		require.NoError(t, err)
		size, _ := strconv.Atoi(strings.TrimSpace(string(out)))
		assert.Greater(t, size, 50, addr)
	}
}

// TestPartsAreStampedApart: each part of an entity (one per log partition)
// is replaced on its own and guarded by its own offset.
func TestPartsAreStampedApart(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv, Options{})
	ctx := context.Background()
	part := func(src string, off uint64, p, v string) *store.Batch {
		e := ent("i:1", "x", v)
		e.Part = p
		return &store.Batch{Source: src, Offset: off, Put: []store.Entity{e}}
	}
	for _, b := range []*store.Batch{part("p0", 10, "0", "a"), part("p1", 3, "1", "b"),
		part("p0", 9, "0", "stale"), part("p1", 4, "1", "c")} {
		_, err := s.Write(ctx, b)
		require.NoError(t, err)
	}
	rows, err := s.Get(ctx, []string{"i:1"}, []string{store.PartField("x", "0"), store.PartField("x", "1")})
	require.NoError(t, err)
	assert.Equal(t, [][][]byte{{[]byte("a"), []byte("c")}}, rows, "an older write of a part never replaces it; parts never replace each other")
	all, err := s.GetAll(ctx, "i:1")
	require.NoError(t, err)
	assert.Equal(t, []byte("10"), all["_off@0"])
	assert.Equal(t, []byte("4"), all["_off@1"])
}
