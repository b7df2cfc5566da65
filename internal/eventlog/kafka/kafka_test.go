package kafka

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	topic         = "events"
	single        = "single" // one partition: tests that need to know where a record went
	numPartitions = 6
)

// newCluster starts an in-process kfake cluster of 3 brokers on loopback with
// "events" (6 partitions), its dead-letter topic, and "single" (1 partition).
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(3),
		kfake.SeedTopics(numPartitions, topic, DeadLetterTopic(topic)),
		kfake.SeedTopics(1, single),
	}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(c.Close) // Close is idempotent
	return c
}

func newProducer(t testing.TB, c *kfake.Cluster, topic string, maxBuffered int) *Producer {
	t.Helper()
	p, err := NewProducer(ProducerOptions{Brokers: c.ListenAddrs(), Topic: topic, MaxBufferedRecords: maxBuffered})
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

func newReader(t testing.TB, c *kfake.Cluster, topic string, partition int32, from uint64) *PartitionReader {
	t.Helper()
	r, err := NewPartitionReader(ReaderOptions{Brokers: c.ListenAddrs(), Topic: topic, Partition: partition, From: from})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

type delivered struct {
	offset uint64
	value  string
}

// readAll reads r from `from` up to its current end.
func readAll(t testing.TB, ctx context.Context, r *PartitionReader, from uint64) ([]delivered, uint64) {
	t.Helper()
	_, end, err := r.Refresh(ctx)
	require.NoError(t, err)
	var out []delivered
	next := from
	for next < end {
		n, err := r.Read(ctx, next, 1000, func(off uint64, data []byte) error {
			out = append(out, delivered{off, string(data)})
			return nil
		})
		require.NoError(t, err)
		if n == next { // nothing but gaps up to end
			break
		}
		next = n
	}
	return out, next
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// 10,000 records from 500 users through 6 partitions on 3 brokers: every
// record read back exactly once, each user in one partition, in produced
// order, offsets dense from 1.
func TestProduceReadEveryPartition(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t, 30*time.Second)
	p := newProducer(t, c, topic, 0)
	n, err := p.Partitions(ctx)
	require.NoError(t, err)
	require.Equal(t, numPartitions, n)

	const users, total, batch = 500, 10000, 1000
	seq := make(map[string]int) // next sequence number per user
	for i := 0; i < total; i += batch {
		recs := make([]Record, batch)
		for j := range recs {
			u := fmt.Sprintf("u%d", (i+j)%users)
			recs[j] = Record{Key: []byte(u), Value: fmt.Appendf(nil, "%s:%d", u, seq[u])}
			seq[u]++
		}
		require.NoError(t, p.Append(ctx, recs))
	}

	userPart := make(map[string]int32)
	got := make(map[string]int) // next expected sequence number per user
	count := 0
	for part := range int32(numPartitions) {
		recs, next := readAll(t, ctx, newReader(t, c, topic, part, 1), 1)
		require.NotEmpty(t, recs, "partition %d got no users", part)
		for i, d := range recs {
			require.Equal(t, uint64(i+1), d.offset, "partition %d offsets not dense", part)
			u, s, ok := strings.Cut(d.value, ":")
			require.True(t, ok)
			if q, seen := userPart[u]; seen {
				require.Equal(t, q, part, "user %s in two partitions", u)
			}
			userPart[u] = part
			require.Equal(t, strconv.Itoa(got[u]), s, "user %s out of order or duplicated", u)
			got[u]++
			count++
		}
		require.Equal(t, uint64(len(recs)+1), next)
	}
	require.Equal(t, total, count)
	require.Len(t, got, users)
	for u, n := range seq {
		require.Equal(t, n, got[u], "user %s", u)
	}
}

// A pinned record is stored in the partition it names, whatever its key;
// the records around it still go by key.
func TestPinnedRecords(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t, 30*time.Second)
	p := newProducer(t, c, topic, 0)
	var recs []Record
	for part := range numPartitions {
		recs = append(recs, Record{Key: []byte("u1"), Value: []byte("keyed")},
			Record{Key: []byte("item"), Value: []byte("pinned:" + strconv.Itoa(part)), Pinned: true, Partition: part})
	}
	at, err := p.AppendAt(ctx, recs)
	require.NoError(t, err)
	require.Len(t, at, numPartitions, "every partition was written")
	keyed := 0
	for part := range int32(numPartitions) {
		got, _ := readAll(t, ctx, newReader(t, c, topic, part, 1), 1)
		var pinned []string
		for _, d := range got {
			if d.value == "keyed" {
				keyed++
				continue
			}
			pinned = append(pinned, d.value)
		}
		require.Equal(t, []string{"pinned:" + strconv.Itoa(int(part))}, pinned, "partition %d", part)
	}
	require.Equal(t, numPartitions, keyed)
}

// When Append returns nil the records are on the broker: a Read right after
// finds them, every time.
func TestAppendIsReadableWhenItReturns(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t, 30*time.Second)
	p := newProducer(t, c, single, 0)
	r := newReader(t, c, single, 0, 1)
	next := uint64(1)
	for i := range 100 {
		want := fmt.Sprintf("v%d", i)
		at, err := p.AppendAt(ctx, []Record{{Key: []byte("u1"), Value: []byte(want)}})
		require.NoError(t, err)
		require.Equal(t, map[int32]uint64{0: next}, at, "AppendAt names the offset the record is read at")
		var got []string
		n, err := r.Read(ctx, next, 10, func(off uint64, data []byte) error {
			require.Equal(t, next, off)
			got = append(got, string(data))
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, []string{want}, got, "append %d not readable right after it returned", i)
		next = n
	}
}

// Brokers gone: Append fails within its deadline with ErrUnavailable, whether
// its records fit the buffer or it has to wait for space.
func TestAppendBrokerDown(t *testing.T) {
	for _, tc := range []struct {
		name        string
		maxBuffered int
		records     int
	}{
		{"buffered", 1000, 10},
		{"buffer full", 10, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			p := newProducer(t, c, topic, tc.maxBuffered)
			require.NoError(t, p.Append(testCtx(t, 10*time.Second), []Record{{Key: []byte("u"), Value: []byte("ok")}}))
			c.Close()

			recs := make([]Record, tc.records)
			for i := range recs {
				recs[i] = Record{Key: fmt.Appendf(nil, "u%d", i), Value: []byte("lost")}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := p.Append(ctx, recs)
			took := time.Since(start)
			require.ErrorIs(t, err, ErrUnavailable)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Less(t, took, time.Second, "Append hung past its deadline")
			t.Logf("failed after %v", took)

			closed := make(chan struct{})
			go func() { p.Close(); close(closed) }()
			select {
			case <-closed:
			case <-time.After(10 * time.Second):
				t.Fatal("Producer.Close hung with brokers down")
			}
		})
	}
}

// A broker that refuses the write: Append reports ErrUnavailable and the
// record is not in the log; the next Append after recovery succeeds alone.
func TestAppendRejectedIsNotStored(t *testing.T) {
	c := newCluster(t)
	p := newProducer(t, c, single, 0)
	var refuse atomic.Bool
	refuse.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		if !refuse.Load() {
			c.DropControl()
			return nil, nil, false
		}
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := p.Append(ctx, []Record{{Key: []byte("u"), Value: []byte("refused")}})
	require.ErrorIs(t, err, ErrUnavailable)

	ctx = testCtx(t, 30*time.Second)
	r := newReader(t, c, single, 0, 1)
	_, end, err := r.Refresh(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(1), end, "a refused record was stored")
	refuse.Store(false)

	// The client keeps retrying the refused record after Append gave up
	// (idempotence forbids dropping a record that may be in flight), so it
	// may land later: an error means "not acknowledged", not "not stored";
	// event ids deduplicate the client's retry. What must hold is that the
	// acknowledged record is there, after it.
	require.NoError(t, p.Append(ctx, []Record{{Key: []byte("u"), Value: []byte("accepted")}}))
	recs, _ := readAll(t, ctx, r, 1)
	require.NotEmpty(t, recs)
	require.Equal(t, "accepted", recs[len(recs)-1].value)
	t.Logf("after recovery the partition holds %v", recs)
}

func TestWait(t *testing.T) {
	c := newCluster(t)
	p := newProducer(t, c, single, 0)
	r := newReader(t, c, single, 0, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, r.Wait(ctx, 1), context.DeadlineExceeded, "Wait on an empty partition must end with ctx")

	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = p.Append(context.Background(), []Record{{Key: []byte("u"), Value: []byte("late")}})
	}()
	ctx = testCtx(t, 10*time.Second)
	start := time.Now()
	require.NoError(t, r.Wait(ctx, 1))
	t.Logf("Wait returned %v after the wait began (append after 100ms)", time.Since(start))
	var got []delivered
	next, err := r.Read(ctx, 1, 10, func(off uint64, data []byte) error {
		got = append(got, delivered{off, string(data)})
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []delivered{{1, "late"}}, got)
	require.Equal(t, uint64(2), next)
	require.Equal(t, uint64(2), r.End())
	require.Equal(t, uint64(1), r.Start())
}

// Transactions leave markers (and aborted records) in the offsets: Read
// skips them, next is last delivered + 1, and seeking works both ways.
func TestReadGapsAndSeek(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t, 30*time.Second)
	txn, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(single), kgo.TransactionalID("gaps"))
	require.NoError(t, err)
	defer txn.Close()
	for _, v := range []struct {
		value  string
		commit kgo.TransactionEndTry
	}{{"a", kgo.TryCommit}, {"aborted", kgo.TryAbort}, {"c", kgo.TryCommit}} {
		require.NoError(t, txn.BeginTransaction())
		require.NoError(t, txn.ProduceSync(ctx, &kgo.Record{Value: []byte(v.value)}).FirstErr())
		require.NoError(t, txn.EndTransaction(ctx, v.commit))
	}
	// Kafka offsets: a=0 marker=1 aborted=2 marker=3 c=4 marker=5.
	r := newReader(t, c, single, 0, 1)
	recs, next := readAll(t, ctx, r, 1)
	require.Equal(t, []delivered{{1, "a"}, {5, "c"}}, recs)
	require.Equal(t, uint64(6), next)
	require.Equal(t, uint64(7), r.End())
	require.Equal(t, uint64(1), Lag(r.End(), 5), "the trailing marker counts as lag")

	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, r.Wait(wctx, next), context.DeadlineExceeded, "a marker is not a record")

	for _, tc := range []struct {
		from uint64
		want []delivered
	}{
		{2, []delivered{{5, "c"}}},
		{1, []delivered{{1, "a"}, {5, "c"}}},
		{5, []delivered{{5, "c"}}},
		{0, []delivered{{1, "a"}, {5, "c"}}},
	} {
		recs, _ := readAll(t, ctx, r, tc.from)
		require.Equal(t, tc.want, recs, "from %d", tc.from)
	}
}

func TestLag(t *testing.T) {
	for _, tc := range []struct{ end, applied, want uint64 }{
		{1, 0, 0},   // empty partition
		{11, 0, 10}, // nothing applied
		{11, 10, 0}, // caught up
		{11, 4, 6},
		{11, 12, 0}, // End not refreshed yet
	} {
		require.Equal(t, tc.want, Lag(tc.end, tc.applied), "Lag(%d, %d)", tc.end, tc.applied)
	}
}

// TestEnds: one round of Ends says, for every partition, what each
// partition's reader reports as its end, and Lag against it counts the
// records a worker has left.
func TestEnds(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t, 30*time.Second)
	p := newProducer(t, c, topic, 0)
	var recs []Record
	for i := range 40 {
		recs = append(recs, Record{Key: []byte(fmt.Sprint("u", i%9)), Value: []byte("v")})
	}
	at, err := p.AppendAt(ctx, recs)
	require.NoError(t, err)
	ends, err := p.Ends(ctx)
	require.NoError(t, err)
	require.Len(t, ends, numPartitions)
	for part := range int32(numPartitions) {
		_, end, err := newReader(t, c, topic, part, 1).Refresh(ctx)
		require.NoError(t, err)
		require.Equal(t, end, ends[part], "partition %d", part)
		require.Equal(t, at[part], Lag(ends[part], 0), "partition %d: records after none applied", part)
	}
}

func TestDeadLetters(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t, 30*time.Second)
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "dead_letters_total"})
	d, err := NewDeadLetters(DeadLetterOptions{Brokers: c.ListenAddrs(), Topic: topic, Counter: counter})
	require.NoError(t, err)
	defer d.Close()
	require.NoError(t, d.Send(ctx, "invalid event: missing user", 3, 42, Record{Key: []byte("u7"), Value: []byte("{bad")}))
	require.Equal(t, uint64(1), d.Count())
	var m dto.Metric
	require.NoError(t, counter.Write(&m))
	require.Equal(t, 1.0, m.GetCounter().GetValue())

	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(DeadLetterTopic(topic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	require.NoError(t, err)
	defer cl.Close()
	fs := cl.PollFetches(ctx)
	require.NoError(t, fs.Err0())
	recs := fs.Records()
	require.Len(t, recs, 1)
	headers := make(map[string]string)
	for _, h := range recs[0].Headers {
		headers[h.Key] = string(h.Value)
	}
	require.Equal(t, map[string]string{
		HeaderReason: "invalid event: missing user", HeaderPartition: "3", HeaderOffset: "42",
	}, headers)
	require.Equal(t, "u7", string(recs[0].Key))
	require.Equal(t, "{bad", string(recs[0].Value))
}

// ownership records who owns which partition as the callbacks report it, and
// every moment two members owned one partition at once.
type ownership struct {
	mu         sync.Mutex
	owner      map[int32]string
	revoked    map[string][]int32
	violations []string
}

func (o *ownership) options(c *kfake.Cluster, name string) GroupOptions {
	return GroupOptions{
		Brokers: c.ListenAddrs(), Topic: topic, Group: "workers",
		OnAssigned: func(_ context.Context, ps []int32) {
			o.mu.Lock()
			defer o.mu.Unlock()
			for _, p := range ps {
				if prev, ok := o.owner[p]; ok && prev != name {
					o.violations = append(o.violations, fmt.Sprintf("%d assigned to %s before %s released it", p, name, prev))
				}
				o.owner[p] = name
			}
		},
		OnRevoked: func(_ context.Context, ps []int32) {
			time.Sleep(200 * time.Millisecond) // a worker flushing its state
			o.mu.Lock()
			defer o.mu.Unlock()
			for _, p := range ps {
				if o.owner[p] == name {
					delete(o.owner, p)
				}
			}
			o.revoked[name] = append(o.revoked[name], ps...)
		},
		SessionTimeout:    3 * time.Second,
		RebalanceTimeout:  3 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
	}
}

func (o *ownership) owned(name string) []int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ps []int32
	for p, n := range o.owner {
		if n == name {
			ps = append(ps, p)
		}
	}
	slices.Sort(ps)
	return ps
}

func TestGroupOwnership(t *testing.T) {
	c := newCluster(t, kfake.GroupMinSessionTimeout(100*time.Millisecond))
	o := &ownership{owner: make(map[int32]string), revoked: make(map[string][]int32)}
	all := []int32{0, 1, 2, 3, 4, 5}

	a, err := JoinGroup(o.options(c, "a"))
	require.NoError(t, err)
	defer a.Close()
	require.Eventually(t, func() bool { return slices.Equal(o.owned("a"), all) }, 20*time.Second, 20*time.Millisecond)

	b, err := JoinGroup(o.options(c, "b"))
	require.NoError(t, err)
	defer b.Close()
	require.Eventually(t, func() bool {
		pa, pb := o.owned("a"), o.owned("b")
		return len(pa) > 0 && len(pb) > 0 && len(pa)+len(pb) == len(all)
	}, 20*time.Second, 20*time.Millisecond, "partitions never split between two members")
	pa, pb := o.owned("a"), o.owned("b")
	require.Equal(t, all, slices.Sorted(slices.Values(append(slices.Clone(pa), pb...))), "cover all, no overlap")
	require.Equal(t, pa, a.Owned())
	require.Equal(t, pb, b.Owned())
	t.Logf("split: a=%v b=%v", pa, pb)

	start := time.Now()
	a.Close()
	o.mu.Lock()
	revoked := slices.Sorted(slices.Values(o.revoked["a"]))
	o.mu.Unlock()
	require.Subset(t, revoked, pa, "Close must run OnRevoked for a's partitions")
	require.Eventually(t, func() bool { return slices.Equal(o.owned("b"), all) }, 20*time.Second, 20*time.Millisecond,
		"b never took over a's partitions")
	t.Logf("b owns all %v after a left (%v)", all, time.Since(start))

	o.mu.Lock()
	defer o.mu.Unlock()
	require.Empty(t, o.violations)
}

// Keys go where the Java client puts them: murmur2 hashes from Kafka's own
// UtilsTest.testMurmur2, masked and taken modulo 6 partitions.
func TestPartitionerMatchesKafka(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t, 30*time.Second)
	p := newProducer(t, c, topic, 0)
	want := map[string]int32{ // key -> (murmur2(key) & 0x7fffffff) % 6
		"21":                         0, // murmur2 -973932308
		"foobar":                     0, // -790332482
		"a-little-bit-long-string":   2, // -985981536
		"a-little-bit-longer-string": 5, // -1486304829
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": 5, // -58897971
		"abc": 3, // 479470107
	}
	var recs []Record
	for k := range want {
		recs = append(recs, Record{Key: []byte(k), Value: []byte(k)})
	}
	require.NoError(t, p.Append(ctx, recs))
	got := make(map[string]int32)
	for part := range int32(numPartitions) {
		ds, _ := readAll(t, ctx, newReader(t, c, topic, part, 1), 1)
		for _, d := range ds {
			got[d.value] = part
		}
	}
	require.Equal(t, want, got)
}

// Reading below the retained start continues from the start, as
// eventlog.Log's Read does, and Start follows retention.
func TestReadBelowRetainedStart(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t, 30*time.Second)
	p := newProducer(t, c, single, 0)
	for i := range 10 {
		require.NoError(t, p.Append(ctx, []Record{{Key: []byte("u"), Value: fmt.Appendf(nil, "v%d", i+1)}}))
	}
	var del kadm.Offsets
	del.AddOffset(single, 0, 4, -1) // delete Kafka 0..3 = Ripple 1..4
	resps, err := kadm.NewClient(p.cl).DeleteRecords(ctx, del)
	require.NoError(t, err)
	require.NoError(t, resps.Error())

	r := newReader(t, c, single, 0, 1)
	recs, next := readAll(t, ctx, r, 1)
	require.Equal(t, uint64(5), r.Start())
	require.Equal(t, uint64(11), next)
	require.Len(t, recs, 6)
	for i, d := range recs {
		require.Equal(t, delivered{uint64(i + 5), fmt.Sprintf("v%d", i+5)}, d)
	}
}
