package eventlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func openTest(t testing.TB, dir string, opts EmbeddedOptions) *Embedded {
	t.Helper()
	l, err := OpenEmbedded(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

type record struct {
	off  uint64
	data string
}

func readAll(t testing.TB, l *Embedded, from uint64) []record {
	t.Helper()
	var out []record
	next, err := l.Read(context.Background(), from, math.MaxInt, func(off uint64, data []byte) error {
		out = append(out, record{off, string(data)})
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, l.End(), next)
	return out
}

func payloads(prefix string, n int) [][]byte {
	ps := make([][]byte, n)
	for i := range ps {
		ps[i] = fmt.Appendf(nil, "%s-%d", prefix, i)
	}
	return ps
}

// fakeClock is a settable clock for age retention.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestEmbeddedConcurrentAppendsAreConsecutive(t *testing.T) {
	l := openTest(t, t.TempDir(), EmbeddedOptions{MaxBatchRecords: 64})
	const workers, calls = 8, 150
	type ack struct {
		first uint64
		ps    [][]byte
	}
	acks := make(chan ack, workers*calls)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for c := range calls {
				ps := payloads(fmt.Sprintf("w%d/c%d", w, c), 1+rng.IntN(20))
				first, err := l.Append(context.Background(), ps)
				if !assert.NoError(t, err) {
					return
				}
				acks <- ack{first, ps}
			}
		})
	}
	wg.Wait()
	close(acks)

	want := map[uint64]string{}
	for a := range acks {
		for i, p := range a.ps {
			off := a.first + uint64(i)
			_, dup := want[off]
			require.False(t, dup, "offset %d handed out twice", off)
			want[off] = string(p)
		}
	}
	require.Equal(t, uint64(len(want))+1, l.End())
	recs := readAll(t, l, 1)
	require.Len(t, recs, len(want))
	for i, r := range recs {
		require.Equal(t, uint64(i+1), r.off)
		require.Equal(t, want[r.off], r.data)
	}
	st := l.Stats()
	assert.Equal(t, uint64(len(want)), st.Appends)
	assert.LessOrEqual(t, st.Batches, uint64(workers*calls))
	t.Logf("%d records in %d batches", st.Appends, st.Batches)
}

func TestEmbeddedReopenKeepsOffsetsAndData(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{}
	opts := EmbeddedOptions{RetentionBytes: 1 << 40, now: clock.now}

	l, err := OpenEmbedded(dir, opts)
	require.NoError(t, err)
	require.Equal(t, uint64(1), l.Start())
	require.Equal(t, uint64(1), l.End())
	// Enough records to seal several segments and leave one open.
	for i := range 30 {
		_, err := l.Append(context.Background(), payloads(fmt.Sprint(i), 1000))
		require.NoError(t, err)
	}
	before := readAll(t, l, 1)
	retained := l.Stats().RetainedBytes
	require.NoError(t, l.Close())

	l = openTest(t, dir, opts)
	assert.Equal(t, uint64(30001), l.End())
	assert.Equal(t, uint64(1), l.Start())
	assert.Equal(t, before, readAll(t, l, 1))
	assert.Equal(t, retained, l.Stats().RetainedBytes)

	first, err := l.Append(context.Background(), [][]byte{[]byte("after")})
	require.NoError(t, err)
	assert.Equal(t, uint64(30001), first)

	require.NoError(t, l.Close())

	// A retention cut must survive reopening too, with sizes still right.
	opts.RetentionBytes = retained / 3
	l = openTest(t, dir, opts)
	l.SetRetentionFloor(math.MaxUint64)
	require.NoError(t, l.EnforceRetention(context.Background()))
	start, end, retained := l.Start(), l.End(), l.Stats().RetainedBytes
	require.Greater(t, start, uint64(1))
	after := readAll(t, l, 0)
	require.NoError(t, l.Close())

	l = openTest(t, dir, opts)
	assert.Equal(t, start, l.Start())
	assert.Equal(t, end, l.End())
	assert.Equal(t, retained, l.Stats().RetainedBytes)
	assert.Equal(t, after, readAll(t, l, 0))

	// A segment summary that does not fit the chain is rebuilt from records.
	bogus := segment{first: 7, end: start + 10, bytes: 1}
	require.NoError(t, l.db.Set(segmentKey(bogus.end), encodeSegment(bogus), pebble.Sync))
	require.NoError(t, l.Close())
	var logs bytes.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	l = openTest(t, dir, opts)
	assert.Contains(t, logs.String(), "rebuilding")
	assert.Equal(t, start, l.Start())
	assert.Equal(t, retained, l.Stats().RetainedBytes)
	assert.Equal(t, after, readAll(t, l, 0))
}

func TestTailCache(t *testing.T) {
	batch := func(ps ...string) []*appendReq {
		r := &appendReq{}
		for _, p := range ps {
			r.payloads = append(r.payloads, []byte(p))
		}
		return []*appendReq{r}
	}
	for _, tc := range []struct {
		name      string
		records   int
		bytes     int64
		batches   [][]*appendReq
		wantFirst uint64
		wantEnd   uint64
	}{
		{"fits", 4, 100, [][]*appendReq{batch("a", "b"), batch("c")}, 10, 13},
		{"evicts oldest", 4, 100, [][]*appendReq{batch("a", "b", "c"), batch("d", "e", "f")}, 12, 16},
		{"batch larger than ring", 4, 100, [][]*appendReq{batch("a"), batch("b", "c", "d", "e", "f", "g")}, 13, 17},
		{"byte cap", 10, 5, [][]*appendReq{batch("aa", "bb"), batch("cc")}, 11, 13},
		{"record over byte cap", 10, 5, [][]*appendReq{batch("aa"), batch("bbbbbbbb")}, 12, 12},
		{"disabled", -1, 100, [][]*appendReq{batch("a")}, 10, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTailCache(tc.records, tc.bytes, 10)
			next := uint64(10)
			var all []string
			for _, b := range tc.batches {
				c.add(next, b)
				for _, p := range b[0].payloads {
					all = append(all, string(p))
					next++
				}
			}
			if tc.records > 0 {
				assert.Equal(t, tc.wantFirst, c.oldest())
			}
			for off := uint64(9); off <= next; off++ {
				dst := make([][]byte, 3)
				n, ok := c.read(off, dst)
				cached := off >= tc.wantFirst && off < tc.wantEnd
				require.Equal(t, cached, ok, "offset %d", off)
				if !ok {
					continue
				}
				require.Equal(t, int(min(3, tc.wantEnd-off)), n)
				for i := range n {
					assert.Equal(t, all[off-10+uint64(i)], string(dst[i]))
				}
			}
		})
	}
}

func TestEmbeddedRead(t *testing.T) {
	for _, tc := range []struct {
		name      string
		tail      int
		wantTail  bool
		wantStore bool
	}{
		{"tail cache", 0, true, false},
		{"no tail cache", -1, false, true},
		{"small tail cache", 40, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openTest(t, t.TempDir(), EmbeddedOptions{TailCacheRecords: tc.tail})
			for i := range 10 {
				_, err := l.Append(context.Background(), payloads(fmt.Sprint(i), 10))
				require.NoError(t, err)
			}
			data := func(off uint64) string { return fmt.Sprintf("%d-%d", (off-1)/10, (off-1)%10) }

			for _, rc := range []struct {
				name     string
				from     uint64
				max      int
				wantFrom uint64
				wantNext uint64
			}{
				{"all", 1, 1000, 1, 101},
				{"middle", 37, 1000, 37, 101},
				{"max limits", 37, 5, 37, 42},
				{"max across cache edge", 55, 10, 55, 65},
				{"below start", 0, 3, 1, 4},
				{"max zero", 5, 0, 5, 5},
				{"at end", 101, 10, 101, 101},
				{"past end", 500, 10, 500, 500},
			} {
				t.Run(rc.name, func(t *testing.T) {
					want := rc.wantFrom
					next, err := l.Read(context.Background(), rc.from, rc.max, func(off uint64, d []byte) error {
						require.Equal(t, want, off)
						require.Equal(t, data(off), string(d))
						want++
						return nil
					})
					require.NoError(t, err)
					require.Equal(t, rc.wantNext, next)
					require.Equal(t, rc.wantNext, max(want, rc.wantFrom))
				})
			}

			stop := errors.New("stop")
			next, err := l.Read(context.Background(), 20, 50, func(off uint64, _ []byte) error {
				if off == 30 {
					return stop
				}
				return nil
			})
			require.ErrorIs(t, err, stop)
			require.Equal(t, uint64(30), next, "a failing record is read again next time")

			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_, err = l.Read(ctx, 1, 10, func(uint64, []byte) error { return nil })
			require.ErrorIs(t, err, context.Canceled)

			st := l.Stats()
			assert.Equal(t, tc.wantTail, st.TailReads > 0, "tail reads %d", st.TailReads)
			assert.Equal(t, tc.wantStore, st.StoreReads > 0, "store reads %d", st.StoreReads)
		})
	}
}

func TestEmbeddedReadBelowStartAfterRetention(t *testing.T) {
	l := openTest(t, t.TempDir(), EmbeddedOptions{RetentionBytes: 10 * (recordOverhead + 3)})
	_, err := l.Append(context.Background(), payloads("a", 30)) // "a-N": 3 or 4 bytes
	require.NoError(t, err)
	l.SetRetentionFloor(math.MaxUint64)
	require.NoError(t, l.EnforceRetention(context.Background()))
	require.Equal(t, uint64(22), l.Start())
	recs := readAll(t, l, 2)
	require.Len(t, recs, 9)
	assert.Equal(t, record{22, "a-21"}, recs[0])
}

func TestEmbeddedWait(t *testing.T) {
	l := openTest(t, t.TempDir(), EmbeddedOptions{})
	ctx := context.Background()

	t.Run("present", func(t *testing.T) {
		_, err := l.Append(ctx, payloads("x", 1))
		require.NoError(t, err)
		require.NoError(t, l.Wait(ctx, 1))
		require.NoError(t, l.Wait(ctx, 0))
	})
	t.Run("wakes on append", func(t *testing.T) {
		from := l.End()
		woke := make(chan error, 3)
		for range 3 {
			go func() { woke <- l.Wait(ctx, from) }()
		}
		time.Sleep(20 * time.Millisecond)
		select {
		case err := <-woke:
			t.Fatalf("Wait returned %v before the append", err)
		default:
		}
		_, err := l.Append(ctx, payloads("y", 1))
		require.NoError(t, err)
		for range 3 {
			select {
			case err := <-woke:
				require.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("Wait did not wake")
			}
		}
	})
	t.Run("honours ctx", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, l.Wait(tctx, l.End()), context.DeadlineExceeded)
	})
	t.Run("close wakes", func(t *testing.T) {
		woke := make(chan error, 1)
		go func() { woke <- l.Wait(ctx, l.End()+10) }()
		time.Sleep(10 * time.Millisecond)
		require.NoError(t, l.Close())
		select {
		case err := <-woke:
			require.ErrorIs(t, err, ErrClosed)
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not wake Wait")
		}
	})
}

func TestEmbeddedRetention(t *testing.T) {
	// Varied sizes so that byte accounting is exercised, and enough records
	// for several segments.
	const calls, perCall = 12, 1000
	size := func(off uint64) int { return 10 + int(off*7919%200) }
	for _, tc := range []struct {
		name     string
		bytes    int64
		age      time.Duration
		floor    uint64
		setFloor bool
	}{
		{name: "bytes", bytes: 500_000, floor: math.MaxUint64, setFloor: true},
		{name: "bytes within first segment", bytes: 1_500_000, floor: math.MaxUint64, setFloor: true},
		{name: "bytes everything", bytes: 1, floor: math.MaxUint64, setFloor: true},
		{name: "bytes under floor", bytes: 500_000, floor: 5_000, setFloor: true},
		{name: "bytes floor inside segment", bytes: 100, floor: 9_100, setFloor: true},
		{name: "no floor set keeps all", bytes: 1},
		{name: "age", age: 5*time.Minute + 30*time.Second, floor: math.MaxUint64, setFloor: true},
		{name: "age under floor", age: 2 * time.Minute, floor: 4_321, setFloor: true},
		{name: "age and bytes", age: 10 * time.Minute, bytes: 300_000, floor: math.MaxUint64, setFloor: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			clock := &fakeClock{}
			clock.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
			opts := EmbeddedOptions{RetentionBytes: tc.bytes, RetentionAge: tc.age, now: clock.now}
			l := openTest(t, dir, opts)

			var total int64
			times := map[uint64]time.Time{}
			for range calls {
				ps := make([][]byte, perCall)
				for i := range ps {
					off := l.End() + uint64(i)
					ps[i] = bytes.Repeat([]byte{byte(off)}, size(off))
					total += int64(size(off) + recordOverhead)
					times[off] = clock.now()
				}
				_, err := l.Append(context.Background(), ps)
				require.NoError(t, err)
				clock.advance(time.Minute)
			}
			require.Equal(t, total, l.Stats().RetainedBytes)
			if tc.setFloor {
				l.SetRetentionFloor(tc.floor)
			}

			// Expected start: drop oldest while over a limit, but not past the floor.
			want, rest := uint64(1), total
			cutoff := clock.now().Add(-tc.age)
			for want < l.End() {
				over := tc.bytes > 0 && rest > tc.bytes
				old := tc.age > 0 && times[want].Before(cutoff)
				if !(over || old) || !tc.setFloor || want > tc.floor {
					break
				}
				rest -= int64(size(want) + recordOverhead)
				want++
			}

			require.NoError(t, l.EnforceRetention(context.Background()))
			require.Equal(t, want, l.Start())
			require.Equal(t, rest, l.Stats().RetainedBytes)
			require.Equal(t, want-1, l.Stats().Deleted)
			// Idempotent: nothing more to delete.
			require.NoError(t, l.EnforceRetention(context.Background()))
			require.Equal(t, want, l.Start())

			recs := readAll(t, l, 0)
			require.Len(t, recs, int(l.End()-want))
			if len(recs) > 0 {
				require.Equal(t, want, recs[0].off)
				require.Len(t, recs[0].data, size(want))
			}

			require.NoError(t, l.Close())
			l = openTest(t, dir, opts)
			require.Equal(t, want, l.Start())
			require.Equal(t, uint64(calls*perCall+1), l.End())
			require.Equal(t, rest, l.Stats().RetainedBytes)
		})
	}
}

func TestEmbeddedRetentionRunsInBackground(t *testing.T) {
	l := openTest(t, t.TempDir(), EmbeddedOptions{RetentionBytes: 100, RetentionInterval: 5 * time.Millisecond})
	_, err := l.Append(context.Background(), payloads("a", 100))
	require.NoError(t, err)
	l.SetRetentionFloor(50)
	require.Eventually(t, func() bool { return l.Start() == 51 }, 5*time.Second, 5*time.Millisecond)
}

func TestEmbeddedClosed(t *testing.T) {
	l, err := OpenEmbedded(t.TempDir(), EmbeddedOptions{})
	require.NoError(t, err)
	_, err = l.Append(context.Background(), payloads("a", 3))
	require.NoError(t, err)
	require.NoError(t, l.Close())
	require.NoError(t, l.Close(), "Close is idempotent")

	_, err = l.Append(context.Background(), payloads("b", 1))
	require.ErrorIs(t, err, ErrClosed)
	_, err = l.Append(context.Background(), nil)
	require.ErrorIs(t, err, ErrClosed)
	_, err = l.Read(context.Background(), 1, 10, func(uint64, []byte) error { return nil })
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, l.Wait(context.Background(), 100), ErrClosed)
	require.NoError(t, l.Wait(context.Background(), 2), "records already durable need no wait")
	require.ErrorIs(t, l.EnforceRetention(context.Background()), ErrClosed)
	assert.Equal(t, uint64(4), l.End())
}

func TestEmbeddedEmptyAppend(t *testing.T) {
	l := openTest(t, t.TempDir(), EmbeddedOptions{})
	_, err := l.Append(context.Background(), payloads("a", 3))
	require.NoError(t, err)
	first, err := l.Append(context.Background(), nil)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), first)
	assert.Equal(t, uint64(1), l.Stats().Batches)
}

// blockCommits makes the committer wait inside its next batch until release
// is closed, so tests can queue appends behind it.
func blockCommits() (opts EmbeddedOptions, entered <-chan struct{}, release chan struct{}) {
	in := make(chan struct{}, 1)
	release = make(chan struct{})
	var once sync.Once
	opts.beforeApply = func() error {
		once.Do(func() {
			in <- struct{}{}
			<-release
		})
		return nil
	}
	return opts, in, release
}

func TestEmbeddedAppendContext(t *testing.T) {
	t.Run("cancelled before append", func(t *testing.T) {
		l := openTest(t, t.TempDir(), EmbeddedOptions{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := l.Append(ctx, payloads("a", 1))
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, uint64(1), l.End())
	})
	t.Run("cancelled while queued", func(t *testing.T) {
		opts, entered, release := blockCommits()
		l := openTest(t, t.TempDir(), opts)
		blocked := make(chan error, 1)
		go func() {
			_, err := l.Append(context.Background(), payloads("first", 1))
			blocked <- err
		}()
		<-entered
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := l.Append(ctx, payloads("withdrawn", 1))
		require.ErrorIs(t, err, context.DeadlineExceeded)
		close(release)
		require.NoError(t, <-blocked)
		first, err := l.Append(context.Background(), payloads("next", 1))
		require.NoError(t, err)
		assert.Equal(t, uint64(2), first, "the withdrawn record was not written")
		assert.Equal(t, []record{{1, "first-0"}, {2, "next-0"}}, readAll(t, l, 1))
	})
	t.Run("cancelled while committing", func(t *testing.T) {
		opts, entered, release := blockCommits()
		l := openTest(t, t.TempDir(), opts)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := l.Append(ctx, payloads("a", 1))
			done <- err
		}()
		<-entered
		cancel()
		close(release)
		require.NoError(t, <-done, "once taken, the outcome is the batch's")
		assert.Equal(t, uint64(2), l.End())
	})
}

func TestEmbeddedAppendFailureKeepsOffsets(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	injected := errors.New("disk on fire")
	opts := EmbeddedOptions{beforeApply: func() error {
		if fail.Load() {
			return injected
		}
		return nil
	}}
	l := openTest(t, dir, opts)
	_, err := l.Append(context.Background(), payloads("ok", 4000))
	require.NoError(t, err)
	retained := l.Stats().RetainedBytes

	fail.Store(true)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			// 200 records each: with the 4000 above, this batch seals a segment.
			_, err := l.Append(context.Background(), payloads("lost", 200))
			assert.ErrorIs(t, err, injected)
		})
	}
	wg.Wait()
	assert.Equal(t, uint64(4001), l.End())
	assert.Equal(t, retained, l.Stats().RetainedBytes)
	assert.NotZero(t, l.Stats().FailedBatches)

	fail.Store(false)
	first, err := l.Append(context.Background(), payloads("again", 200))
	require.NoError(t, err)
	assert.Equal(t, uint64(4001), first)
	want := readAll(t, l, 1)
	require.NoError(t, l.Close())

	l = openTest(t, dir, EmbeddedOptions{})
	assert.Equal(t, want, readAll(t, l, 1))
	assert.Equal(t, uint64(4201), l.End())
}

func TestEmbeddedCloseCommitsQueuedAppends(t *testing.T) {
	dir := t.TempDir()
	opts, entered, release := blockCommits()
	l, err := OpenEmbedded(dir, opts)
	require.NoError(t, err)

	type result struct {
		first uint64
		err   error
		ps    [][]byte
	}
	results := make(chan result, 20)
	for i := range 20 {
		go func() {
			ps := payloads(fmt.Sprint(i), 3)
			first, err := l.Append(context.Background(), ps)
			results <- result{first, err, ps}
		}()
		if i == 0 {
			<-entered
		}
	}
	time.Sleep(20 * time.Millisecond) // let most of them queue
	closed := make(chan error)
	go func() { closed <- l.Close() }()
	time.Sleep(10 * time.Millisecond)
	close(release)
	require.NoError(t, <-closed)

	want := map[uint64]string{}
	for range 20 {
		r := <-results
		if r.err != nil {
			require.ErrorIs(t, r.err, ErrClosed)
			continue
		}
		for i, p := range r.ps {
			want[r.first+uint64(i)] = string(p)
		}
	}
	require.NotEmpty(t, want)
	l = openTest(t, dir, EmbeddedOptions{})
	recs := readAll(t, l, 1)
	require.Len(t, recs, len(want), "exactly the acknowledged appends are in the log")
	for _, r := range recs {
		require.Equal(t, want[r.off], r.data)
	}
}

// TestEmbeddedSurvivesPowerLoss clones the filesystem as a power cut would
// leave it (unsynced data partly or wholly lost) while appends run, and
// checks every append acknowledged before the cut is in the clone.
func TestEmbeddedSurvivesPowerLoss(t *testing.T) {
	fs := vfs.NewCrashableMem()
	l := openTest(t, "/log", EmbeddedOptions{fs: fs})

	var mu sync.Mutex
	acked := map[uint64]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for c := 0; ; c++ {
				select {
				case <-stop:
					return
				default:
				}
				ps := payloads(fmt.Sprintf("w%d/c%d", w, c), 1+c%17)
				first, err := l.Append(context.Background(), ps)
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				for i, p := range ps {
					acked[first+uint64(i)] = string(p)
				}
				mu.Unlock()
			}
		})
	}
	type cut struct {
		fs    *vfs.MemFS
		acked map[uint64]string
	}
	var cuts []cut
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 4 {
		time.Sleep(30 * time.Millisecond)
		mu.Lock()
		snapshot := make(map[uint64]string, len(acked))
		for k, v := range acked {
			snapshot[k] = v
		}
		mu.Unlock()
		cfg := vfs.CrashCloneCfg{UnsyncedDataPercent: 50 * (i % 2), RNG: rand.New(rand.NewPCG(rng.Uint64(), 0))}
		if cfg.UnsyncedDataPercent == 0 {
			cfg.RNG = nil
		}
		cuts = append(cuts, cut{fs.CrashClone(cfg), snapshot})
	}
	close(stop)
	wg.Wait()

	for i, c := range cuts {
		require.NotEmpty(t, c.acked)
		cl, err := OpenEmbedded("/log", EmbeddedOptions{fs: c.fs})
		require.NoError(t, err, "cut %d", i)
		recs := readAll(t, cl, 1)
		require.NoError(t, cl.Close())
		for j, r := range recs {
			require.Equal(t, uint64(j+1), r.off, "cut %d: offsets contiguous", i)
		}
		for off, want := range c.acked {
			require.Less(t, off, uint64(len(recs))+1, "cut %d: acknowledged offset %d lost", i, off)
			require.Equal(t, want, recs[off-1].data, "cut %d: offset %d", i, off)
		}
		t.Logf("cut %d: %d acknowledged, %d recovered", i, len(c.acked), len(recs))
	}
}

func TestEmbeddedCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	l, err := OpenEmbedded(t.TempDir(), EmbeddedOptions{RetentionBytes: 1 << 20, RetentionInterval: time.Millisecond})
	require.NoError(t, err)
	_, err = l.Append(context.Background(), payloads("a", 100))
	require.NoError(t, err)
	waiting := make(chan error)
	go func() { waiting <- l.Wait(context.Background(), 1000) }()
	time.Sleep(5 * time.Millisecond)
	require.NoError(t, l.Close())
	require.ErrorIs(t, <-waiting, ErrClosed)
	// Polled by hand: assert.Eventually runs goroutines of its own.
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines before Open, %d after Close:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}
