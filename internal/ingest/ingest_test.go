package ingest_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/store"
)

func (n *node) close() {
	n.svc.Close()
	n.snaps.Close()
	n.log.Close()
}

func ev(id, user, item string) event.Interaction {
	return event.Interaction{ID: id, User: user, Item: item, Type: "view", TS: time.Now().Add(-time.Minute).UnixMilli()}
}

func TestDedupSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir, 0)
	res, err := n.svc.Events(context.Background(), []event.Interaction{ev("a", "u", "i1"), ev("b", "u", "i2"), ev("a", "u", "i1"), ev("", "u", "i3")})
	require.NoError(t, err)
	assert.Equal(t, ingest.Result{Accepted: 3, Duplicates: 1}, res, "a repeated id inside one batch is a duplicate too")
	n.close()

	n = openNode(t, dir, 0)
	defer n.close()
	res, err = n.svc.Events(context.Background(), []event.Interaction{ev("a", "u", "i1"), ev("c", "u", "i4")})
	require.NoError(t, err)
	assert.Equal(t, ingest.Result{Accepted: 1, Duplicates: 1}, res, "ids acknowledged before the restart are still known")
}

func TestAppendFailureIsNotAcknowledged(t *testing.T) {
	n := openNode(t, t.TempDir(), 0)
	defer n.snaps.Close()
	require.NoError(t, n.log.Close())
	_, err := n.svc.Events(context.Background(), []event.Interaction{ev("x", "u", "i")})
	require.ErrorIs(t, err, eventlog.ErrClosed)
	assert.NotErrorIs(t, err, ingest.ErrApplyPending)
}

func TestSpecChangeRebuildsFromLog(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir, 0)
	_, err := n.svc.Events(context.Background(), []event.Interaction{ev("a", "u1", "i1"), ev("b", "u1", "i2")})
	require.NoError(t, err)
	assert.False(t, n.svc.SpecChanged())
	n.close() // writes a snapshot with the default specs

	cfg := features.DefaultConfig()
	cfg.Features[0].Buckets = 30 // a different ring shape
	lg, err := eventlog.OpenEmbedded(filepath.Join(dir, "log"), eventlog.EmbeddedOptions{})
	require.NoError(t, err)
	defer lg.Close()
	snaps, err := store.OpenSnapshots(filepath.Join(dir, "snaps"))
	require.NoError(t, err)
	defer snaps.Close()
	eng := features.NewEngine(cfg, nil)
	svc := ingest.New(lg, eng, snaps, nil, nil, ingest.Options{})
	require.NoError(t, svc.Recover(context.Background()))
	assert.True(t, svc.SpecChanged(), "a publisher must rewrite the online store")
	assert.Equal(t, uint64(2), eng.Applied())
	seen := make([]bool, 2)
	eng.Seen("u1", []string{"i1", "i2"}, seen)
	assert.Equal(t, []bool{true, true}, seen)
}

func TestRecoverRefusesWhenLogLostRecords(t *testing.T) {
	dir := t.TempDir()
	lg, err := eventlog.OpenEmbedded(filepath.Join(dir, "log"), eventlog.EmbeddedOptions{RetentionBytes: 1})
	require.NoError(t, err)
	defer lg.Close()
	payload := event.AppendBinary(nil, &event.Record{Kind: event.KindInteraction, Interaction: ev("", "u", "i")})
	for i := 0; i < 5; i++ {
		_, err := lg.Append(context.Background(), [][]byte{payload})
		require.NoError(t, err)
	}
	lg.SetRetentionFloor(4) // as if a snapshot covered offset 4, since lost
	require.NoError(t, lg.EnforceRetention(context.Background()))
	require.Greater(t, lg.Start(), uint64(1))
	eng := features.NewEngine(features.DefaultConfig(), nil)
	svc := ingest.New(lg, eng, nil, nil, nil, ingest.Options{})
	err = svc.Recover(context.Background())
	require.Error(t, err, "state without the dropped records must not be served silently")
	assert.False(t, svc.Ready())
	closed := make(chan error, 1)
	go func() { closed <- svc.Close() }()
	select {
	case err := <-closed:
		assert.NoError(t, err, "a service that never started closes at once, without a snapshot")
	case <-time.After(5 * time.Second):
		t.Fatal("Close of a never-started service hangs")
	}
}

// TestSnapshotsUnderSustainedIngest: the applier keeps taking snapshots
// while records never stop arriving, and never two at once.
func TestSnapshotsUnderSustainedIngest(t *testing.T) {
	n := openNode(t, t.TempDir(), 20*time.Millisecond)
	defer n.close()
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				if _, err := n.svc.Events(context.Background(), []event.Interaction{ev("", "u", "i"), ev("", "v", "j")}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	age := n.svc.SnapshotAge()
	close(stop)
	for w := 0; w < 4; w++ {
		require.NoError(t, <-errs)
	}
	assert.GreaterOrEqual(t, age, 0.0, "no snapshot was taken under sustained ingest")
	assert.Less(t, age, 0.25, "snapshots starve under sustained ingest")
	info, ok, err := n.snaps.Info()
	require.NoError(t, err)
	require.True(t, ok)
	assert.LessOrEqual(t, info.Offset, n.eng.Applied())
}

// TestCorruptRecordIsSkippedNotWedged: a record that does not decode is
// skipped (loudly), including as the last record of a read batch.
func TestCorruptRecordIsSkippedNotWedged(t *testing.T) {
	n := openNode(t, t.TempDir(), 0)
	defer n.close()
	_, err := n.svc.Events(context.Background(), []event.Interaction{ev("a", "u1", "i1")})
	require.NoError(t, err)
	_, err = n.log.Append(context.Background(), [][]byte{[]byte("not a record")})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, n.svc.WaitApplied(ctx, n.log.End()-1), "the applier must move past the corrupt record")
	_, err = n.svc.Events(ctx, []event.Interaction{ev("b", "u1", "i2")})
	require.NoError(t, err)
	seen := make([]bool, 2)
	n.eng.Seen("u1", []string{"i1", "i2"}, seen)
	assert.Equal(t, []bool{true, true}, seen)

	res, err := ingest.Replay(context.Background(), n.log, features.NewEngine(features.DefaultConfig(), nil),
		func(off uint64, err error) error { return err })
	assert.Error(t, err, "Replay reports a corrupt record when asked to")
	assert.Equal(t, 1, res, "records applied before the corrupt one")
}
