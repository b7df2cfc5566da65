package ingest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/store"
)

const crashChildEnv = "RIPPLE_CRASH_CHILD_DIR"

type node struct {
	log   *eventlog.Embedded
	snaps *store.Snapshots
	eng   *features.Engine
	svc   *ingest.Service
}

func openNode(t testing.TB, dir string, snapEvery time.Duration) *node {
	lg, err := eventlog.OpenEmbedded(filepath.Join(dir, "log"), eventlog.EmbeddedOptions{})
	require.NoError(t, err)
	snaps, err := store.OpenSnapshots(filepath.Join(dir, "snaps"))
	require.NoError(t, err)
	eng := features.NewEngine(features.DefaultConfig(), nil)
	svc := ingest.New(lg, eng, snaps, nil, nil, ingest.Options{SnapshotEvery: snapEvery, RetentionFloor: lg.SetRetentionFloor})
	require.NoError(t, svc.Recover(context.Background()))
	svc.Start()
	return &node{lg, snaps, eng, svc}
}

// crashEvents is deterministic per (round, batch) so the parent can tell
// which events a child had acknowledged.
func crashEvents(round, batch int) []event.Interaction {
	rng := rand.New(rand.NewPCG(uint64(round), uint64(batch)))
	n := 1 + rng.IntN(200)
	out := make([]event.Interaction, n)
	types := []string{"view", "click", "cart", "purchase", "rating"}
	base := time.Now().Add(-2 * time.Hour).UnixMilli()
	for i := range out {
		out[i] = event.Interaction{
			ID:   fmt.Sprintf("r%d-b%d-%d", round, batch, i),
			Type: types[rng.IntN(len(types))], User: fmt.Sprintf("u%d", rng.IntN(300)),
			Item: fmt.Sprintf("i%d", int(rng.ExpFloat64()*40)%500), TS: base + int64(batch*1000+i)*10 + rng.Int64N(5000),
			Value: float64(rng.IntN(5) + 1),
		}
	}
	return out
}

// TestCrashChild is the child process: it ingests until killed, printing
// each acknowledged batch number.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashChildEnv)
	if dir == "" {
		t.Skip("helper process for TestKill9RecoveryEqualsCleanReplay")
	}
	round, _ := strconv.Atoi(os.Getenv("RIPPLE_CRASH_ROUND"))
	n := openNode(t, dir, 20*time.Millisecond)
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(out, "ready")
	out.Flush()
	for b := 0; ; b++ {
		if _, err := n.svc.Events(context.Background(), crashEvents(round, b)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(out, "acked", b)
		out.Flush()
	}
}

// TestKill9RecoveryEqualsCleanReplay kills a real child process mid-stream,
// several times, then checks that the recovered state equals a clean replay
// of the log and that every acknowledged event is in it exactly once.
func TestKill9RecoveryEqualsCleanReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	dir := t.TempDir()
	acked := map[string]bool{}
	for round := 0; round < 4; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, "RIPPLE_CRASH_ROUND="+strconv.Itoa(round))
		stdout, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		sc := bufio.NewScanner(stdout)
		// The kill deadline starts at the first acknowledgement, so a slow
		// child start (race detector, busy machine) still gets killed
		// mid-stream rather than before it wrote anything.
		var killAt time.Time
		lastAcked := -1
		for sc.Scan() {
			var b int
			if _, err := fmt.Sscanf(sc.Text(), "acked %d", &b); err == nil {
				lastAcked = b
				if killAt.IsZero() {
					killAt = time.Now().Add(time.Duration(200+round*170) * time.Millisecond)
				}
			}
			if !killAt.IsZero() && time.Now().After(killAt) {
				require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
				break
			}
		}
		_ = cmd.Wait()
		require.Greater(t, lastAcked, 0, "child acknowledged nothing in round %d", round)
		for b := 0; b <= lastAcked; b++ {
			for _, e := range crashEvents(round, b) {
				acked[e.ID] = true
			}
		}
	}

	// Recover the way a restarted server does.
	rec := openNode(t, dir, 0)
	defer func() {
		rec.svc.Close()
		rec.snaps.Close()
		rec.lg().Close()
	}()
	require.Equal(t, rec.lg().End()-1, rec.eng.Applied(), "recovery must apply every durable record")

	// Every acknowledged event is in the log exactly once.
	clean := features.NewEngine(features.DefaultConfig(), nil)
	seen := map[string]int{}
	var r event.Record
	for from := uint64(1); from < rec.lg().End(); {
		next, err := rec.lg().Read(context.Background(), from, 10_000, func(off uint64, data []byte) error {
			require.NoError(t, event.DecodeBinary(data, &r))
			seen[r.Interaction.ID]++
			clean.Apply(off, &r)
			return nil
		})
		require.NoError(t, err)
		from = next
	}
	for id := range acked {
		require.Equal(t, 1, seen[id], "acknowledged event %s must be in the log exactly once", id)
	}
	for id, c := range seen {
		require.Equal(t, 1, c, "event %s appended %d times", id, c)
	}

	// The recovered state equals the clean replay, entity by entity.
	require.Equal(t, clean.UserCount(), rec.eng.UserCount())
	require.Equal(t, clean.ItemCount(), rec.eng.ItemCount())
	require.Equal(t, dump(t, clean), dump(t, rec.eng))
	t.Logf("%d acknowledged events over 4 kill -9 rounds; %d users, %d items", len(acked), clean.UserCount(), clean.ItemCount())
}

func (n *node) lg() *eventlog.Embedded { return n.log }

// dump renders every feature of every entity, plus full neighbour lists.
func dump(t *testing.T, e *features.Engine) map[string]string {
	out := map[string]string{}
	var ids []string
	for u := 0; u < 300; u++ {
		ids = append(ids, fmt.Sprintf("u%d", u))
	}
	sort.Strings(ids)
	for _, id := range ids {
		v, _ := e.Values(features.EntityUser, id)
		b, err := json.Marshal(v)
		require.NoError(t, err)
		out["u/"+id] = string(b)
	}
	for i := 0; i < 500; i++ {
		id := fmt.Sprintf("i%d", i)
		v, _ := e.Values(features.EntityItem, id)
		b, err := json.Marshal(v)
		require.NoError(t, err)
		nb, err := json.Marshal(e.Neighbors(id, 1000))
		require.NoError(t, err)
		out["i/"+id] = string(b) + string(nb)
	}
	g, _ := e.Values(features.EntityGlobal, "")
	b, _ := json.Marshal(g)
	out["g"] = string(b)
	return out
}
