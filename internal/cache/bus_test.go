package cache

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// redisServer is a redis-server of the test's own, on a free port.
type redisServer struct {
	bin  string
	addr string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed: skipping the Redis pub/sub tests")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	s := &redisServer{bin: bin, addr: addr}
	s.start(t)
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) start(t *testing.T) {
	t.Helper()
	_, port, _ := net.SplitHostPort(s.addr)
	s.cmd = exec.Command(s.bin, "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	require.NoError(t, s.cmd.Start())
	deadline := time.Now().Add(5 * time.Second)
	for !s.ping() {
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not answer PING", s.addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *redisServer) ping() bool {
	conn, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && line == "+PONG\r\n"
}

func (s *redisServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

// instance is one server process' cache with its own Redis client and bus.
type instance struct {
	c     *Tiered[int]
	store *fakeStore
	m     *Metrics
	bus   *RedisBus
	name  string
}

func newInstance(t *testing.T, addr, name string, data map[string]int) *instance {
	t.Helper()
	return newInstanceWith(t, rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true}, name, data)
}

func newInstanceWith(t *testing.T, opt rueidis.ClientOption, name string, data map[string]int) *instance {
	t.Helper()
	client, err := rueidis.NewClient(opt)
	require.NoError(t, err)
	in := &instance{store: newFakeStore(data), m: NewMetrics(prometheus.NewRegistry()), name: name}
	in.bus = NewRedisBus(client, "ripple:test:invalidate")
	in.c, err = New(Options[int]{
		Name:     name,
		Capacity: 100,
		Load:     in.store.Load,
		TTL:      constTTL(time.Hour),
		Bus:      in.bus,
		Metrics:  in.m,
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		in.c.Close()
		in.bus.Close()
		client.Close()
	})
	return in
}

func (in *instance) flushes() int       { return counterValue(in.m.flushes, in.name) }
func (in *instance) invalidations() int { return counterValue(in.m.invalidations, in.name) }

func (in *instance) cached(key string) (int, bool) {
	e, ok := in.c.l1.GetEntryQuietly(key)
	return e.Value.value, ok
}

// waitSubscribed waits for the n-th subscription confirmation; every one
// after the first flushes L1.
func (in *instance) waitSubscribed(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for in.bus.confirms.Load() < int64(n) || in.flushes() < n-1 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: subscription %d not established", in.name, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRedisBusInvalidatesOtherInstances(t *testing.T) {
	srv := startRedis(t)
	data := map[string]int{"k1": 1, "k2": 2}
	a := newInstance(t, srv.addr, "a", data)
	b := newInstance(t, srv.addr, "b", map[string]int{"k1": 1, "k2": 2})
	a.waitSubscribed(t, 1)
	b.waitSubscribed(t, 1)
	getBatch(t, a.c, "k1", "k2")
	getBatch(t, b.c, "k1", "k2")

	start := time.Now()
	require.NoError(t, a.c.Invalidate(t.Context(), "k1"))
	eventually(t, "b drops k1", func() bool { _, ok := b.cached("k1"); return !ok })
	latency := time.Since(start)
	t.Logf("invalidation reached the other instance in %v", latency)
	assert.Less(t, latency, 500*time.Millisecond)
	_, ok := b.cached("k2")
	assert.True(t, ok, "only k1 is dropped")
	_, ok = a.cached("k1")
	assert.False(t, ok, "the sender drops it too")

	// Writer flow: invalidate everywhere, then Set locally. A must ignore its own message.
	require.NoError(t, a.c.Invalidate(t.Context(), "k2"))
	a.c.Set("k2", 42)
	eventually(t, "b drops k2", func() bool { _, ok := b.cached("k2"); return !ok })
	// Messages arrive in order: once A has B's next message, it has handled its own.
	require.NoError(t, b.c.Invalidate(t.Context(), "other"))
	eventually(t, "a receives b's message", func() bool { return a.invalidations() == 1 })
	v, ok := a.cached("k2")
	assert.True(t, ok)
	assert.Equal(t, 42, v)
	assert.Equal(t, 1, a.invalidations(), "a never counts its own messages")
	assert.Equal(t, 2, b.invalidations())
}

func TestRedisBusResubscribesAfterRestart(t *testing.T) {
	// rueidis resubscribes by itself after a reconnection unless retries are disabled; then
	// Receive returns and the bus resubscribes with backoff. Both must flush L1.
	for _, disableRetry := range []bool{false, true} {
		t.Run(fmt.Sprintf("DisableRetry=%v", disableRetry), func(t *testing.T) {
			testResubscribe(t, disableRetry)
		})
	}
}

func testResubscribe(t *testing.T, disableRetry bool) {
	srv := startRedis(t)
	opt := rueidis.ClientOption{InitAddress: []string{srv.addr}, DisableCache: true, DisableRetry: disableRetry}
	a := newInstanceWith(t, opt, "a", map[string]int{"k": 1})
	b := newInstanceWith(t, opt, "b", map[string]int{"k": 1, "x": 2})
	a.waitSubscribed(t, 1)
	b.waitSubscribed(t, 1)
	getBatch(t, b.c, "k", "x")

	srv.stop()
	srv.start(t)

	// Invalidations sent while Redis was away are lost, so B drops everything once back.
	b.waitSubscribed(t, 2)
	eventually(t, "b's L1 flushed", func() bool {
		_, k := b.cached("k")
		_, x := b.cached("x")
		return !k && !x
	})

	// And invalidations flow again.
	getBatch(t, b.c, "k")
	a.waitSubscribed(t, 2)
	eventually(t, "publish after restart", func() bool { return a.c.Invalidate(t.Context(), "k") == nil })
	eventually(t, "b drops k", func() bool { _, ok := b.cached("k"); return !ok })
}

func TestRedisBusDeliver(t *testing.T) {
	b := &RedisBus{sender: "me"}
	tests := []struct {
		msg  string
		want []string
	}{
		{"other\na\nb", []string{"a", "b"}},
		{"other\na", []string{"a"}},
		{"me\na\nb", nil}, // own message
		{"other", nil},    // no keys
		{"other\n", nil},  // no keys
		{"", nil},         // malformed
		{"other\n\na", []string{"", "a"}},
	}
	for _, tt := range tests {
		t.Run(strconv.Quote(tt.msg), func(t *testing.T) {
			var got []string
			b.deliver(tt.msg, func(keys []string) { got = keys })
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRedisBusPublishRejectsNewlines(t *testing.T) {
	b := NewRedisBus(nil, "ch")
	defer b.Close()
	err := b.Publish(context.Background(), []string{"ok", "bad\nkey"})
	assert.ErrorContains(t, err, "newline")
	assert.NoError(t, b.Publish(context.Background(), nil))
}

func TestRedisBusClosed(t *testing.T) {
	b := NewRedisBus(nil, "ch")
	b.Close()
	assert.ErrorIs(t, b.Subscribe(context.Background(), func([]string) {}), errBusClosed)
}
