package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sync/errgroup"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/eventlog/kafka"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/store"
)

const kafkaTopic = "events"

var fixedClock = func() time.Time { return time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC) }

// partitionedEvents is n events in batches of up to 100, over 300 users and
// 150 items (fewer than co-visitation's pruning bound, whose choice of
// survivors depends on the order partitions interleave), some late.
func partitionedEvents(n int) [][]event.Interaction {
	rng := rand.New(rand.NewPCG(11, 12))
	types := []string{"view", "click", "cart", "purchase", "rating"}
	base := fixedClock().Add(-3 * time.Hour).UnixMilli()
	var batches [][]event.Interaction
	for i := 0; i < n; {
		b := make([]event.Interaction, min(n-i, 1+rng.IntN(100)))
		for j := range b {
			b[j] = event.Interaction{
				ID: fmt.Sprint("e", i), Type: types[rng.IntN(len(types))], User: fmt.Sprint("u", rng.IntN(300)),
				Item: fmt.Sprint("i", int(rng.ExpFloat64()*30)%150), TS: base + int64(i)*2000 - rng.Int64N(2*3600*1000),
				Value: float64(1 + rng.IntN(5)), Session: fmt.Sprint("s", i/40),
			}
			i++
		}
		batches = append(batches, b)
	}
	return batches
}

// embeddedReference is what one embedded-mode node builds from batches.
func embeddedReference(t *testing.T, batches [][]event.Interaction) *features.Engine {
	t.Helper()
	lg, err := eventlog.OpenEmbedded(filepath.Join(t.TempDir(), "log"), eventlog.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { lg.Close() })
	eng := features.NewEngine(features.DefaultConfig(), fixedClock)
	svc := ingest.New(lg, eng, nil, nil, nil, ingest.Options{})
	require.NoError(t, svc.Recover(context.Background()))
	svc.Start()
	for _, b := range batches {
		_, err := svc.Events(context.Background(), b)
		require.NoError(t, err)
	}
	require.NoError(t, svc.Close())
	return eng
}

func newKafka(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(6, kafkaTopic), kfake.SeedTopics(1, kafka.DeadLetterTopic(kafkaTopic)))
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c
}

// brokerLog opens a connection to the partitioned log under test.
type brokerLog func(ctx context.Context) (interface {
	ingest.PartitionedLog
	io.Closer
}, error)

func kafkaLog(c *kfake.Cluster) brokerLog {
	return func(ctx context.Context) (interface {
		ingest.PartitionedLog
		io.Closer
	}, error) {
		return ingest.OpenKafka(ctx, ingest.KafkaOptions{Brokers: c.ListenAddrs(), Topic: kafkaTopic, Partitions: 6})
	}
}

type brokerNode struct {
	log interface {
		ingest.PartitionedLog
		io.Closer
	}
	snaps *store.Snapshots
	eng   *features.Engine
	svc   *ingest.Service
}

// openKafkaNode starts a node on c whose snapshots live in dir.
func openKafkaNode(t *testing.T, c *kfake.Cluster, dir string) *brokerNode {
	t.Helper()
	return openBrokerNode(t, kafkaLog(c), dir)
}

// openBrokerNode starts a node on the log open connects to, whose snapshots
// live in dir ("": none).
func openBrokerNode(t *testing.T, open brokerLog, dir string) *brokerNode {
	t.Helper()
	return openBrokerNodeWith(t, open, dir, nodeOptions{})
}

// nodeOptions are what some tests set on a node beyond the defaults.
type nodeOptions struct {
	metrics *observe.Metrics
	opts    ingest.Options
	setup   func(*ingest.Service) // before Recover and Start
}

func openBrokerNodeWith(t *testing.T, open brokerLog, dir string, no nodeOptions) *brokerNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lg, err := open(ctx)
	require.NoError(t, err)
	var snaps *store.Snapshots
	if dir != "" {
		snaps, err = store.OpenSnapshots(dir)
		require.NoError(t, err)
	}
	eng := features.NewEngine(features.DefaultConfig(), fixedClock)
	svc := ingest.NewPartitioned(lg, eng, snaps, no.metrics, nil, no.opts)
	if no.setup != nil {
		no.setup(svc)
	}
	require.NoError(t, svc.Recover(ctx))
	svc.Start()
	return &brokerNode{lg, snaps, eng, svc}
}

// kill stops n like a crash: no drain, no final snapshot.
func (n *brokerNode) kill() {
	n.svc.Kill()
	n.log.Close()
	if n.snaps != nil {
		n.snaps.Close()
	}
}

func requireSameState(t *testing.T, want, got *features.Engine) {
	t.Helper()
	if d := features.Diff(want, got, 1e-9, 10); len(d) != 0 {
		t.Fatalf("state differs from the embedded node's:\n%v", d)
	}
}

// TestKafkaNodeEqualsEmbedded: 5,000 events through Service.Events on a
// 6-partition kfake topic build the state a single embedded-mode node
// builds (user state exactly, item and global within 1e-9 relative), and
// each Events call returns with its events applied (read-your-writes from
// the broker's acknowledged offsets).
func TestKafkaNodeEqualsEmbedded(t *testing.T) { testNodeEqualsEmbedded(t, kafkaLog(newKafka(t))) }

func testNodeEqualsEmbedded(t *testing.T, open brokerLog) {
	batches := partitionedEvents(5000)
	ref := embeddedReference(t, batches)
	n := openBrokerNode(t, open, "")
	defer n.kill()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	seen := map[string]bool{}
	for _, b := range batches {
		res, err := n.svc.Events(ctx, b)
		require.NoError(t, err)
		require.Equal(t, len(b), res.Accepted)
		// Applied when Events returns: every user of the batch has a row.
		for _, ev := range b {
			seen[ev.User] = true
		}
		require.Equal(t, len(seen), n.eng.UserCount(), "Events returned before its events were applied")
	}
	requireSameState(t, ref, n.eng)
	vec := n.eng.AppliedVector()
	require.Len(t, vec, 6, "every partition got events: %v", vec)
}

// TestKafkaNodeKilledResumesFromSnapshot: a node killed mid-stream (no final
// snapshot, events durable but not yet applied) restarts from its snapshot's
// vector, replays each partition from there, and ends with the embedded
// node's state: no event lost, none counted twice, and a client's retry of
// an acknowledged event is still recognised as a duplicate.
func TestKafkaNodeKilledResumesFromSnapshot(t *testing.T) {
	testNodeKilledResumes(t, kafkaLog(newKafka(t)))
}

func testNodeKilledResumes(t *testing.T, open brokerLog) {
	batches := partitionedEvents(5000)
	ref := embeddedReference(t, batches)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	a := openBrokerNode(t, open, dir)
	third := len(batches) / 3
	for i, b := range batches[:2*third] {
		_, err := a.svc.Events(ctx, b)
		require.NoError(t, err)
		if i == third {
			require.NoError(t, a.svc.Snapshot())
		}
	}
	snapVec := a.eng.AppliedVector()
	a.svc.Kill()
	// Acknowledged as durable, never applied by this node.
	pending := batches[2*third : 2*third+5]
	for _, b := range pending {
		actx, acancel := context.WithTimeout(ctx, 200*time.Millisecond)
		res, err := a.svc.Events(actx, b)
		acancel()
		require.ErrorIs(t, err, ingest.ErrApplyPending)
		require.Equal(t, len(b), res.Accepted)
	}
	a.log.Close()
	a.snaps.Close()

	b := openBrokerNode(t, open, dir)
	defer b.kill()
	// A retry of events acknowledged before the kill is a duplicate.
	res, err := b.svc.Events(ctx, batches[2*third-1])
	require.NoError(t, err)
	require.Equal(t, len(batches[2*third-1]), res.Duplicates)
	require.Zero(t, res.Accepted)
	restored := b.eng.AppliedVector()
	for p, off := range restored {
		require.GreaterOrEqual(t, off, snapVec[p], "partition %d went back", p)
	}
	require.NotEqual(t, snapVec, restored)
	for _, bt := range batches[2*third+5:] {
		_, err := b.svc.Events(ctx, bt)
		require.NoError(t, err)
	}
	requireSameState(t, ref, b.eng)
}

// TestKafkaDownRefusesEvents: with the brokers gone, Events fails within its
// deadline with ErrUnavailable and acknowledges nothing; the ids stay free
// for the client's retry.
func TestKafkaDownRefusesEvents(t *testing.T) {
	c := newKafka(t)
	testDownRefusesEvents(t, kafkaLog(c), c.Close)
}

func testDownRefusesEvents(t *testing.T, open brokerLog, down func()) {
	n := openBrokerNode(t, open, "")
	defer n.kill()
	batch := partitionedEvents(50)[0]
	_, err := n.svc.Events(context.Background(), batch[:1])
	require.NoError(t, err)
	down()
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		start := time.Now()
		res, err := n.svc.Events(ctx, batch[1:])
		cancel()
		require.ErrorIs(t, err, ingest.ErrUnavailable)
		require.NotErrorIs(t, err, ingest.ErrApplyPending)
		require.Less(t, time.Since(start), 2*time.Second)
		require.Zero(t, res.Accepted)
		require.Zero(t, res.Duplicates, "a refused event's id must not count as seen")
	}
}

// TestKafkaNodeConcurrentWriters: four clients writing at once (each its own
// users, so every user's events keep their order) build the embedded node's
// state; every call returns with its own events applied.
func TestKafkaNodeConcurrentWriters(t *testing.T) {
	batches := partitionedEvents(5000)
	ref := embeddedReference(t, batches)
	n := openKafkaNode(t, newKafka(t), "")
	defer n.kill()
	const writers = 4
	var perWriter [writers][][]event.Interaction
	for _, b := range batches {
		var split [writers][]event.Interaction
		for _, ev := range b {
			w := int(ev.User[len(ev.User)-1]) % writers
			split[w] = append(split[w], ev)
		}
		for w := range writers {
			if len(split[w]) > 0 {
				perWriter[w] = append(perWriter[w], split[w])
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var g errgroup.Group
	for w := range writers {
		g.Go(func() error {
			for _, b := range perWriter[w] {
				if _, err := n.svc.Events(ctx, b); err != nil {
					return err
				}
				// The batch's last event is in its user's recent items.
				ev := b[len(b)-1]
				if !slices.Contains(n.eng.User(ev.User, 1000).Recent, features.ItemAt{Item: ev.Item, TS: ev.TS, Type: ev.Type}) {
					return fmt.Errorf("event %s not applied when Events returned", ev.ID)
				}
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
	requireSameState(t, ref, n.eng)
}

// Item metadata appended by a node that applies nothing (role api) reaches
// every partition: each is applied by an engine of its own, which needs the
// categories of the items its users touch.
func TestAppenderSendsItemsToEveryPartition(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plog, err := kafkaLog(newKafka(t))(ctx)
	require.NoError(t, err)
	defer plog.Close()
	svc := ingest.NewAppender(plog, ingest.Remote{}, nil, slog.New(slog.DiscardHandler), ingest.Options{})
	require.NoError(t, svc.Items(ctx, []event.Item{{ID: "i1", Categories: []string{"shoes"}}}))
	for p := range plog.Partitions() {
		r, err := plog.Reader(p, 1)
		require.NoError(t, err)
		var items []string
		_, err = r.Read(ctx, 1, 100, func(_ uint64, data []byte) error {
			var rec event.Record
			require.NoError(t, event.DecodeBinary(data, &rec))
			items = append(items, rec.Item.ID+":"+strings.Join(rec.Item.Categories, ","))
			return nil
		})
		require.NoError(t, err)
		require.Equal(t, []string{"i1:shoes"}, items, "partition %d", p)
	}
}
