package ingest_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog/kafka"
	"github.com/ripple-rec/ripple/internal/eventlog/nats"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/observe"
)

// rawBroker reaches a broker behind Ripple's back, as another producer and
// an operator would.
type rawBroker struct {
	open brokerLog
	// produce stores value in partition p and returns its Ripple offset.
	produce func(t *testing.T, p int, value []byte) uint64
	// letters returns every dead letter stored so far.
	letters func(t *testing.T) []storedLetter
	// breakLetters makes every dead-letter write fail from now on.
	breakLetters func(t *testing.T)
}

type storedLetter struct{ reason, partition, offset, value string }

func kafkaRaw(t *testing.T) rawBroker {
	c := newKafka(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(kafkaTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	require.NoError(t, err)
	t.Cleanup(cl.Close)
	dlq := kafka.DeadLetterTopic(kafkaTopic)
	var (
		mu  sync.Mutex
		got []storedLetter
		con *kgo.Client
	)
	return rawBroker{
		open: kafkaLog(c),
		produce: func(t *testing.T, p int, value []byte) uint64 {
			rec := &kgo.Record{Partition: int32(p), Value: value}
			require.NoError(t, cl.ProduceSync(context.Background(), rec).FirstErr())
			return uint64(rec.Offset) + 1
		},
		letters: func(t *testing.T) []storedLetter {
			mu.Lock()
			defer mu.Unlock()
			if con == nil {
				var err error
				con, err = kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(dlq),
					kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
				require.NoError(t, err)
				t.Cleanup(con.Close)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			con.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				h := map[string]string{}
				for _, kv := range r.Headers {
					h[kv.Key] = string(kv.Value)
				}
				got = append(got, storedLetter{h[kafka.HeaderReason], h[kafka.HeaderPartition], h[kafka.HeaderOffset], string(r.Value)})
			})
			return append([]storedLetter(nil), got...)
		},
		breakLetters: func(t *testing.T) {
			_, err := kadm.NewClient(cl).DeleteTopic(context.Background(), dlq)
			require.NoError(t, err)
		},
	}
}

func natsRaw(t *testing.T) rawBroker {
	url := startNATS(t)
	nc, err := natsio.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	dlq := nats.DefaultStream + "_DLQ"
	return rawBroker{
		open: natsLog(url),
		produce: func(t *testing.T, p int, value []byte) uint64 {
			ack, err := js.Publish(context.Background(), nats.DefaultSubjectPrefix+"."+strconv.Itoa(p), value)
			require.NoError(t, err)
			return ack.Sequence
		},
		letters: func(t *testing.T) []storedLetter {
			ctx := context.Background()
			s, err := js.Stream(ctx, dlq)
			require.NoError(t, err)
			info, err := s.Info(ctx)
			require.NoError(t, err)
			var out []storedLetter
			for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
				m, err := s.GetMsg(ctx, seq)
				require.NoError(t, err)
				out = append(out, storedLetter{m.Header.Get(nats.HeaderReason), m.Header.Get(nats.HeaderPartition),
					m.Header.Get(nats.HeaderOffset), string(m.Data)})
			}
			return out
		},
		breakLetters: func(t *testing.T) {
			require.NoError(t, js.DeleteStream(context.Background(), dlq))
		},
	}
}

// badRecords are what another producer might write: bytes that are no
// record, and a record of an event without a user.
func badRecords(t *testing.T) (garbage, invalid []byte) {
	rec := event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{
		ID: "bad-1", Type: "view", Item: "i-bad", TS: fixedClock().UnixMilli()}}
	require.Error(t, rec.Check())
	return []byte("\xffnot a record"), event.AppendBinary(nil, &rec)
}

// TestKafkaBadRecordsAreDeadLettered: undecodable bytes and an invalid event
// produced straight into a partition of a 6-partition kfake topic go to the
// dead-letter topic with their reason, partition and offset, are counted by
// reason, never reach the state, and do not hold up the valid events
// behind them.
func TestKafkaBadRecordsAreDeadLettered(t *testing.T) { testBadRecordsDeadLettered(t, kafkaRaw(t)) }

// TestNATSBadRecordsAreDeadLettered: the same on a real nats-server.
func TestNATSBadRecordsAreDeadLettered(t *testing.T) { testBadRecordsDeadLettered(t, natsRaw(t)) }

func testBadRecordsDeadLettered(t *testing.T, b rawBroker) {
	m := observe.NewMetrics(func() float64 { return 0 }, func() float64 { return 0 })
	n := openBrokerNodeWith(t, b.open, "", nodeOptions{metrics: m})
	defer n.kill()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	const p = 2
	garbage, invalid := badRecords(t)
	garbageAt := b.produce(t, p, garbage)
	invalidAt := b.produce(t, p, invalid)
	// Events returns once every partition it wrote to applied them: with
	// 300 users that is every partition, p behind the bad records too.
	for _, batch := range partitionedEvents(1000) {
		_, err := n.svc.Events(ctx, batch)
		require.NoError(t, err)
	}
	require.Greater(t, n.eng.AppliedPartition(p), invalidAt, "partition %d did not move past its bad records", p)
	_, known := n.eng.ItemRef("i-bad")
	require.False(t, known, "the invalid event reached the state")

	require.Equal(t, 1.0, testutil.ToFloat64(m.DeadLetters.WithLabelValues("undecodable")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.DeadLetters.WithLabelValues("invalid")))
	require.Zero(t, testutil.ToFloat64(m.DeadLetterFailures.WithLabelValues("undecodable")))
	require.Zero(t, testutil.ToFloat64(m.DeadLetterFailures.WithLabelValues("invalid")))

	var letters []storedLetter
	require.Eventually(t, func() bool { letters = b.letters(t); return len(letters) >= 2 }, 10*time.Second, 20*time.Millisecond)
	require.Len(t, letters, 2)
	for i, want := range []struct {
		reason string
		off    uint64
		value  []byte
	}{{"undecodable: ", garbageAt, garbage}, {`invalid: invalid event: missing field "user"`, invalidAt, invalid}} {
		l := letters[i]
		require.True(t, strings.HasPrefix(l.reason, want.reason), "letter %d reason %q, want %q...", i, l.reason, want.reason)
		require.Equal(t, strconv.Itoa(p), l.partition, "letter %d", i)
		require.Equal(t, strconv.FormatUint(want.off, 10), l.offset, "letter %d", i)
		require.Equal(t, string(want.value), l.value, "letter %d", i)
	}
}

// TestKafkaDeadLetterFailureSkips: with the dead-letter topic gone, a bad
// record is tried a bounded number of times, then skipped and counted as a
// failure; once the breaker is open the next one is skipped at once. The
// partition keeps applying either way.
func TestKafkaDeadLetterFailureSkips(t *testing.T) { testDeadLetterFailureSkips(t, kafkaRaw(t)) }

// TestNATSDeadLetterFailureSkips: the same with the dead-letter stream deleted.
func TestNATSDeadLetterFailureSkips(t *testing.T) { testDeadLetterFailureSkips(t, natsRaw(t)) }

func testDeadLetterFailureSkips(t *testing.T, b rawBroker) {
	m := observe.NewMetrics(func() float64 { return 0 }, func() float64 { return 0 })
	n := openBrokerNodeWith(t, b.open, "", nodeOptions{metrics: m, setup: func(s *ingest.Service) {
		s.SetDeadLetterPolicy(100*time.Millisecond, 10*time.Millisecond, time.Minute)
	}})
	defer n.kill()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.breakLetters(t)

	const p = 4
	garbage, invalid := badRecords(t)
	b.produce(t, p, garbage)
	last := b.produce(t, p, invalid)
	for _, batch := range partitionedEvents(1000) {
		_, err := n.svc.Events(ctx, batch)
		require.NoError(t, err)
	}
	require.Greater(t, n.eng.AppliedPartition(p), last, "partition %d is held by a dead letter it cannot store", p)
	require.Equal(t, 1.0, testutil.ToFloat64(m.DeadLetterFailures.WithLabelValues("undecodable")))
	require.Equal(t, 1.0, testutil.ToFloat64(m.DeadLetterFailures.WithLabelValues("invalid")))
	require.Zero(t, testutil.ToFloat64(m.DeadLetters.WithLabelValues("undecodable")))
	require.Zero(t, testutil.ToFloat64(m.DeadLetters.WithLabelValues("invalid")))
}
