package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/erasure"
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/recommend"
)

// filesHolding lists the files under dir whose bytes contain s.
func filesHolding(t *testing.T, dir, s string) []string {
	t.Helper()
	out, err := erasure.FilesContaining(dir, []byte(s))
	require.NoError(t, err)
	return out
}

// After DELETE of a user nothing about them is left: not in the log (read
// back or on disk), not in any snapshot, not in the state, not after a
// restart; other users are untouched.
func TestEraseLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	n := openNode(t, dir, 0)
	ctx := context.Background()
	const victim, other = "erase-me-5f2c9a", "keep-me-77d1"
	var evs []event.Interaction
	for i := range 300 {
		evs = append(evs, ev(fmt.Sprint("v", i), victim, fmt.Sprint("i", i%40)), ev(fmt.Sprint("o", i), other, fmt.Sprint("i", (i+3)%40)))
	}
	_, err := n.svc.Events(ctx, evs)
	require.NoError(t, err)
	require.NoError(t, n.svc.SetConsent(ctx, victim, event.Consent{Personalization: true, Storage: true}))
	require.NoError(t, n.svc.Snapshot()) // an older snapshot holds the victim
	require.NotEmpty(t, filesHolding(t, dir, victim), "the test must see the id on disk before erasing")
	otherBefore := n.eng.User(other, 50)

	redacted, err := n.svc.Erase(ctx, victim)
	require.NoError(t, err)
	assert.Equal(t, 300+1+1, redacted, "events, the consent record and the tombstone")

	assert.False(t, n.eng.User(victim, 10).Exists)
	_, found := n.eng.Values(features.EntityUser, victim)
	assert.False(t, found)
	var dec event.Record
	_, err = n.log.Read(ctx, 1, 1<<20, func(off uint64, data []byte) error {
		require.NoError(t, event.DecodeBinary(data, &dec))
		assert.NotEqual(t, victim, dec.Subject(), "offset %d", off)
		return nil
	})
	require.NoError(t, err)
	assert.Empty(t, filesHolding(t, dir, victim), "no file of the log or the snapshots holds the id")
	assert.NotEmpty(t, filesHolding(t, dir, other))

	n.close()
	n = openNode(t, dir, 0)
	defer n.close()
	assert.False(t, n.eng.User(victim, 10).Exists, "a restart does not bring the user back")
	assert.Equal(t, otherBefore, n.eng.User(other, 50))
	assert.Empty(t, filesHolding(t, dir, victim))
}

// Without storage consent a user's events are refused; without
// personalisation consent they feed nobody else's features and the user is
// served as anonymous.
func TestConsent(t *testing.T) {
	n := openNode(t, t.TempDir(), 0)
	defer n.close()
	ctx := context.Background()
	require.NoError(t, n.svc.SetConsent(ctx, "nostore", event.Consent{Personalization: true, Storage: false}))
	res, err := n.svc.Events(ctx, []event.Interaction{ev("a", "nostore", "i1"), ev("b", "u", "i1")})
	require.NoError(t, err)
	assert.Equal(t, 1, res.Accepted)
	assert.Equal(t, []int{0}, res.Refused)
	assert.False(t, n.eng.User("nostore", 10).Exists)

	// Items i1 → i2 co-visited by a consenting user; a non-consenting user
	// doing i1 → i3 changes no item aggregate.
	_, err = n.svc.Events(ctx, []event.Interaction{ev("c", "u", "i2")})
	require.NoError(t, err)
	require.NoError(t, n.svc.SetConsent(ctx, "private", event.Consent{Personalization: false, Storage: true}))
	before, _ := n.eng.Values(features.EntityItem, "i1")
	_, err = n.svc.Events(ctx, []event.Interaction{ev("d", "private", "i1"), ev("e", "private", "i3")})
	require.NoError(t, err)
	after, _ := n.eng.Values(features.EntityItem, "i1")
	assert.Equal(t, before.Features["item_views_24h"], after.Features["item_views_24h"])
	assert.Empty(t, n.eng.Neighbors("i3", 10))
	for _, nb := range n.eng.Neighbors("i1", 10) {
		assert.NotEqual(t, "i3", nb.Item)
	}
	u := n.eng.User("private", 10)
	assert.True(t, u.NoPersonalization)
	assert.Empty(t, u.Recent, "no last_n either: it would pair with later items")
	assert.Equal(t, 2, u.Events, "the user's own seen set is kept (storage consent)")

	p := recommend.New(n.eng, recommend.DefaultConfig())
	got := p.Recommend(ctx, recommend.Request{User: "private", K: 5})
	anon := p.Recommend(ctx, recommend.Request{User: "nobody-at-all", K: 5})
	assert.Equal(t, anon.Items, got.Items, "served exactly as an anonymous user")
	assert.True(t, got.ColdStart)

	assert.False(t, n.svc.Consent("nostore").Storage)

	// Consent back: the next event pairs with nothing from the private period.
	require.NoError(t, n.svc.SetConsent(ctx, "private", event.Consent{Personalization: true, Storage: true}))
	_, err = n.svc.Events(ctx, []event.Interaction{ev("f", "private", "i9")})
	require.NoError(t, err)
	assert.Empty(t, n.eng.Neighbors("i9", 10))
	for _, id := range []string{"i1", "i3"} {
		for _, nb := range n.eng.Neighbors(id, 10) {
			assert.NotEqual(t, "i9", nb.Item)
		}
	}
}

// Events of the same id acknowledged while an erasure runs come after its
// tombstone: they are a new life of the user and must survive the
// redaction and a crash (recovery = the erasure's snapshot + log replay).
func TestEraseKeepsEventsAfterTheTombstone(t *testing.T) {
	n := openNode(t, t.TempDir(), 0)
	defer n.close()
	ctx := context.Background()
	const victim = "victim-x"
	_, err := n.svc.Events(ctx, []event.Interaction{ev("pre", victim, "i1")})
	require.NoError(t, err)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = n.svc.Events(ctx, []event.Interaction{ev(fmt.Sprint("post", i), victim, fmt.Sprint("i", 2+i%5))})
		}
	}()
	time.Sleep(5 * time.Millisecond)
	_, err = n.svc.Erase(ctx, victim)
	require.NoError(t, err)
	close(stop)
	<-done
	require.NoError(t, n.svc.WaitApplied(ctx, n.log.End()-1))

	recovered := features.NewEngine(features.DefaultConfig(), nil)
	_, _, err = n.snaps.Load(recovered.Restore)
	require.NoError(t, err)
	_, err = ingest.Replay(ctx, n.log, recovered, func(uint64, error) error { return nil })
	require.NoError(t, err)
	live, rec := n.eng.User(victim, 100), recovered.User(victim, 100)
	assert.Equal(t, live.Events, rec.Events, "recovery keeps every acknowledged post-erasure event")
	assert.Equal(t, live.Recent, rec.Recent)
}
