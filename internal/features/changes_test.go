package features

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
)

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Every entity whose published record changes is reported: the user, the
// event's item, the earlier items whose co-visitation gained the new item,
// items whose metadata changed, erased users.
func TestTakeChanges(t *testing.T) {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	e := NewEngine(DefaultConfig(), func() time.Time { return time.UnixMilli(base) })
	view := func(u, i string, ts int64) event.Record {
		return event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{User: u, Item: i, Type: "view", TS: ts}}
	}
	e.Apply(1, ptr(view("u0", "before", base))) // before tracking: not reported
	e.TrackChanges()
	ch := e.TakeChanges()
	assert.True(t, ch.Empty())

	e.Apply(2, ptr(view("u1", "a", base)))
	e.Apply(3, ptr(view("u1", "b", base+1000))) // a gains b as a neighbour
	e.Apply(4, ptr(event.Record{Kind: event.KindItem, Item: event.Item{ID: "m", Categories: []string{"c"}}}))
	ch = e.TakeChanges()
	assert.Equal(t, []string{"u1"}, ch.Users)
	assert.Equal(t, []string{"a", "b", "m"}, sorted(ch.Items))
	assert.True(t, ch.Global)
	assert.True(t, e.TakeChanges().Empty(), "taking clears")

	e.Apply(5, ptr(view("u2", "c", base)))
	e.Apply(6, ptr(event.Record{Kind: event.KindErase, User: event.User{ID: "u2"}}))
	ch = e.TakeChanges()
	assert.Empty(t, ch.Users, "an erased user is only reported erased")
	assert.Equal(t, []string{"u2"}, ch.Erased)
	assert.Equal(t, []string{"c"}, ch.Items)
}

func ptr[T any](v T) *T { return &v }

// ApplyBatch (two goroutines) reports the same changes as Apply.
func TestTakeChangesBatchEqualsApply(t *testing.T) {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	var recs []event.Record
	for i := range 2000 {
		recs = append(recs, event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{
			User: string(rune('a' + i%50)), Item: string(rune('A' + (i*7)%60)), Type: "view", TS: base + int64(i)*1000}})
	}
	offs := make([]uint64, len(recs))
	for i := range offs {
		offs[i] = uint64(i + 1)
	}
	seq, bat := NewEngine(DefaultConfig(), nil), NewEngine(DefaultConfig(), nil)
	seq.TrackChanges()
	bat.TrackChanges()
	for i := range recs {
		seq.Apply(offs[i], &recs[i])
	}
	bat.ApplyBatch(offs, recs)
	a, b := seq.TakeChanges(), bat.TakeChanges()
	require.NotEmpty(t, a.Users)
	assert.Equal(t, sorted(a.Users), sorted(b.Users))
	assert.Equal(t, sorted(a.Items), sorted(b.Items))
}

func TestSeenItemsNewestFirst(t *testing.T) {
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	e := NewEngine(DefaultConfig(), nil)
	for i, it := range []string{"x", "y", "z", "x"} {
		e.Apply(uint64(i+1), ptr(event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{
			User: "u", Item: it, Type: "view", TS: base + int64(i)*1000}}))
	}
	assert.Equal(t, []string{"x", "z", "y"}, e.SeenItems("u", 10))
	assert.Equal(t, []string{"x", "z"}, e.SeenItems("u", 2))
	assert.Nil(t, e.SeenItems("nobody", 10))
}

// A fresh engine given Catalogue's records knows the same item metadata;
// items known only from interactions are not in it.
func TestCatalogueReplaysItemMetadata(t *testing.T) {
	e := NewEngine(DefaultConfig(), nil)
	applyAll(e,
		itemRecord("b", true, "toys"),
		itemRecord("a", false, "books", "kids"),
		interaction("u", "plain", "view", 1),
		itemRecord("a", false, "books"), // the latest record wins
	)
	cat := e.Catalogue()
	require.Len(t, cat, 2)
	assert.Equal(t, event.Item{ID: "a", Categories: []string{"books"}, Attributes: map[string]string{"id": "a"}}, cat[0])
	assert.Equal(t, event.Item{ID: "b", Categories: []string{"toys"}, Attributes: map[string]string{"id": "b"}, Hidden: true}, cat[1])

	fresh := NewEngine(DefaultConfig(), nil)
	recs := make([]event.Record, len(cat))
	for i := range cat {
		recs[i] = event.Record{Kind: event.KindItem, Item: cat[i]}
	}
	fresh.ApplyBatch(make([]uint64, len(recs)), recs)
	want, got := make([]ItemInfo, 2), make([]ItemInfo, 2)
	e.Items([]string{"a", "b"}, want)
	fresh.Items([]string{"a", "b"}, got)
	for i := range want {
		assert.Equal(t, want[i].Categories, got[i].Categories)
		assert.Equal(t, want[i].Hidden, got[i].Hidden)
	}
}
