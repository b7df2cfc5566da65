package online

import (
	"context"
	"hash/fnv"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/redistest"
)

// TestPartsMergeToTheWhole: engines that each apply one partition's users
// (item metadata goes to every partition) publish item and global records
// as parts; a reader merging the parts serves what one engine applying
// everything serves.
func TestPartsMergeToTheWhole(t *testing.T) {
	addrs := []string{redistest.Start(t).Addr()}
	const parts = 3
	ds := smallDemo()
	recs := ds.Records()
	var last int64
	for _, r := range recs {
		if r.Kind == event.KindInteraction {
			last = max(last, r.Interaction.TS)
		}
	}
	partOf := func(user string) int {
		h := fnv.New32a()
		h.Write([]byte(user))
		return int(h.Sum32() % parts)
	}
	// Every partition ends at the same event time, so the parts' clocks
	// agree with the whole engine's.
	ends := map[int]string{}
	for i := 0; len(ends) < parts; i++ {
		u := "clock" + strconv.Itoa(i)
		if _, ok := ends[partOf(u)]; !ok {
			ends[partOf(u)] = u
			recs = append(recs, event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{
				Type: "view", User: u, Item: ds.Events[0].Item, TS: last + 1}})
		}
	}
	split := make([][]event.Record, parts)
	for _, r := range recs {
		if r.Kind == event.KindItem {
			for p := range split {
				split[p] = append(split[p], r)
			}
			continue
		}
		p := partOf(r.Subject())
		split[p] = append(split[p], r)
	}
	whole := features.NewEngine(features.DefaultConfig(), nil)
	offs := make([]uint64, len(recs))
	for i := range offs {
		offs[i] = uint64(i + 1)
	}
	whole.ApplyBatch(offs, recs)
	whole.RefreshTrending()

	nodes := make([]*node, parts)
	for p := range parts {
		n := newNode(t, addrs, "p"+strconv.Itoa(p), fastReader())
		nodes[p] = n
		n.pub.opts.Part = strconv.Itoa(p)
		n.apply(split[p])
		n.eng.RefreshTrending()
		n.pub.resync.Store(true) // republish from the refreshed trending index
		n.pub.kick()
		require.Eventually(t, func() bool { return !n.pub.resync.Load() }, 10*time.Second, 5*time.Millisecond)
	}
	ro := fastReader()
	ro.Parts, ro.Features = parts, features.DefaultConfig()
	reader := patientNode(t, addrs, "reader", ro)
	ctx := context.Background()

	items := map[string]bool{}
	for _, ev := range ds.Events {
		items[ev.Item] = true
	}
	for id := range items {
		want, _ := whole.Values(features.EntityItem, id)
		got, found, _ := reader.r.Values(ctx, features.EntityItem, id)
		require.True(t, found, id)
		assertValues(t, want, got, "item "+id)
		wantInfo, gotInfo := make([]features.ItemInfo, 1), make([]features.ItemInfo, 1)
		whole.Items([]string{id}, wantInfo)
		reader.r.Items(ctx, []string{id}, gotInfo)
		assert.Equal(t, wantInfo[0].Categories, gotInfo[0].Categories, id)
		assert.InDelta(t, wantInfo[0].Trend, gotInfo[0].Trend, 1e-9, id)
	}
	want, _ := whole.Values(features.EntityGlobal, "")
	got, _, _ := reader.r.Values(ctx, features.EntityGlobal, "")
	assertValues(t, want, got, "global")
	assertTrending(t, whole, reader)

	// Half an hour later one partition sees one more view of the item
	// busiest in the last hour: only its part is rewritten, at the later
	// clock, and the other parts (written at the earlier one) must no
	// longer count what has left the item's windows since.
	busiest, views := "", map[string]int{}
	for _, ev := range ds.Events {
		if ev.Type == "view" && ev.TS > last-time.Hour.Milliseconds() {
			views[ev.Item]++
			if views[ev.Item] > views[busiest] || (views[ev.Item] == views[busiest] && ev.Item < busiest) {
				busiest = ev.Item
			}
		}
	}
	later := []event.Record{{Kind: event.KindInteraction, Interaction: event.Interaction{
		Type: "view", User: ends[0], Item: busiest, TS: last + 30*time.Minute.Milliseconds()}}}
	whole.ApplyBatch([]uint64{uint64(len(recs) + 1)}, later)
	nodes[0].apply(later)
	nodes[0].waitPublished(t)
	stale := 0
	for _, n := range nodes[1:] {
		vals, _ := n.eng.Values(features.EntityItem, busiest)
		now, _ := whole.Values(features.EntityItem, busiest)
		if vals.Features["item_views_1h"].Value != now.Features["item_views_1h"].Value {
			stale++
		}
	}
	require.NotZero(t, stale, "a part written earlier must count views the later clock has dropped")
	for _, x := range []struct{ entity, id, window string }{
		{features.EntityItem, busiest, "item_views_1h"},
		{features.EntityGlobal, "", "global_events_1h"}, // rewritten on the publisher's global tick
	} {
		want, _ := whole.Values(x.entity, x.id)
		require.Eventually(t, func() bool {
			got, _, _ := reader.r.Values(ctx, x.entity, x.id)
			return want.Features[x.window].Value == got.Features[x.window].Value
		}, 10*time.Second, 10*time.Millisecond, "%s %s %s at the later clock", x.entity, x.id, x.window)
		got, _, _ := reader.r.Values(ctx, x.entity, x.id)
		assertValues(t, want, got, x.entity+" "+x.id+" at the later clock")
	}
}

// assertTrending compares the global trending list the reader merges with
// the whole engine's.
func assertTrending(t *testing.T, whole *features.Engine, reader *node) {
	t.Helper()
	v := reader.r.Bind(context.Background())
	wantTrend := whole.Trending("", 50)
	gotTrend := v.Trending("", 50)
	require.Len(t, gotTrend, len(wantTrend))
	for i := range wantTrend {
		assert.Equal(t, wantTrend[i].ID, gotTrend[i].ID, "trending rank %d", i)
		assert.InDelta(t, wantTrend[i].Score, gotTrend[i].Score, 1e-9)
	}
}

// assertValues compares feature values: numbers within float tolerance,
// neighbour lists by item and weight.
func assertValues(t *testing.T, want, got features.Values, what string) {
	t.Helper()
	for name, w := range want.Features {
		g, ok := got.Features[name]
		require.True(t, ok, "%s: %s missing", what, name)
		assert.Equal(t, w.Default, g.Default, "%s: %s default", what, name)
		switch wv := w.Value.(type) {
		case float64:
			gv, _ := g.Value.(float64)
			assert.InDelta(t, wv, gv, 1e-6*max(1, wv), "%s: %s", what, name)
		case []features.Neighbor:
			// Each engine prunes its co-visitation lists at n on its own,
			// so the heaviest items' tails differ by what was pruned.
			gn := neighborsOf(g.Value)
			require.Len(t, gn, len(wv), "%s: %s", what, name)
			for i := range wv {
				assert.InEpsilon(t, wv[i].Weight, gn[i].Weight, 0.1, "%s: %s[%d]", what, name, i)
			}
		}
	}
}
