package ingest_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/observe"
)

// TestKafkaConsumerLagExported: while the applier is held, records appended
// to a 6-partition kfake topic show as lag, in records and seconds, on every
// partition they went to; once it is released the lag returns to 0.
func TestKafkaConsumerLagExported(t *testing.T) { testConsumerLagExported(t, kafkaLog(newKafka(t))) }

// TestNATSConsumerLagExported: the same on a real nats-server.
func TestNATSConsumerLagExported(t *testing.T) { testConsumerLagExported(t, natsLog(startNATS(t))) }

func testConsumerLagExported(t *testing.T, open brokerLog) {
	m := observe.NewMetrics(func() float64 { return 0 }, func() float64 { return 0 })
	var hold atomic.Bool
	held, release := make(chan struct{}, 1), make(chan struct{})
	n := openBrokerNodeWith(t, open, "", nodeOptions{
		metrics: m,
		opts:    ingest.Options{LagEvery: 20 * time.Millisecond},
		// The hook runs under the apply lock: holding it stops every
		// partition's applier, not the lag sampler.
		setup: func(s *ingest.Service) {
			s.AfterApply(func(uint64) {
				if hold.Load() {
					select {
					case held <- struct{}{}:
					default:
					}
					<-release
				}
			})
		},
	})
	defer n.kill()
	var once sync.Once
	unhold := func() { once.Do(func() { hold.Store(false); close(release) }) }
	defer unhold()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	batches := partitionedEvents(600)
	hold.Store(true)
	_, err := n.log.Append(ctx, keyed(batches[0]))
	require.NoError(t, err)
	select {
	case <-held:
	case <-ctx.Done():
		t.Fatal("the applier never applied the first batch")
	}
	at := map[int]uint64{} // partition: last offset appended while held
	for _, b := range batches[1:] {
		bat, err := n.log.Append(ctx, keyed(b))
		require.NoError(t, err)
		for p, off := range bat {
			at[p] = max(at[p], off)
		}
	}
	require.Len(t, at, 6, "every partition got records while the applier was held")

	lag := func(p int) (records, seconds float64) {
		l := strconv.Itoa(p)
		return testutil.ToFloat64(m.ConsumerLag.WithLabelValues(l)), testutil.ToFloat64(m.ConsumerLagSec.WithLabelValues(l))
	}
	require.Eventually(t, func() bool {
		for p := range at {
			if r, s := lag(p); r == 0 || s == 0 {
				return false
			}
		}
		return n.svc.ConsumerLag() > 0
	}, 10*time.Second, 10*time.Millisecond, "lag of a held applier not exported")
	for p := range at {
		require.Less(t, n.eng.AppliedPartition(p), at[p], "partition %d applied while held", p)
	}

	unhold()
	require.Eventually(t, func() bool {
		for p := range 6 {
			if r, s := lag(p); r != 0 || s != 0 {
				return false
			}
		}
		return n.svc.ConsumerLag() == 0
	}, 10*time.Second, 10*time.Millisecond, "lag did not return to 0 after catch-up")
	for p, off := range at {
		require.GreaterOrEqual(t, n.eng.AppliedPartition(p), off, "partition %d", p)
	}
}

// keyed encodes events as the write path does, keyed by user.
func keyed(events []event.Interaction) []ingest.Keyed {
	out := make([]ingest.Keyed, len(events))
	for i := range events {
		rec := event.Record{Kind: event.KindInteraction, Interaction: events[i]}
		out[i] = ingest.Keyed{Key: []byte(events[i].User), Value: event.AppendBinary(nil, &rec), ID: events[i].ID}
	}
	return out
}
