package online

import (
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/store"
)

// valuesField is hand-written JSON: it must be valid and decode to what
// the generic encoder of the same documents decodes to, for every kind of
// value the engine produces, non-finite numbers (null), defaults, zero
// stamps and names that need escaping.
func TestValuesFieldMatchesTheGenericEncoder(t *testing.T) {
	v := features.Values{Features: map[string]features.Value{
		"count":         {Value: 3.0, ComputedAt: 1717200000123},
		"tiny":          {Value: 1e-300, ComputedAt: 1},
		"huge":          {Value: 1.5e300},
		"negative":      {Value: -0.25, ComputedAt: 7},
		"inf":           {Value: math.Inf(1), ComputedAt: 5},
		"nan":           {Value: math.NaN()},
		"nil":           {Value: nil, Default: true},
		"default":       {Value: 0.0, Default: true, ComputedAt: 9},
		"last_items":    {Value: []string{"a", "b\"c"}, ComputedAt: 2},
		"neighbours":    {Value: []features.Neighbor{{Item: "x", Weight: 0.5}, {Item: "y\\", Weight: 1e-9}}},
		"no_neighbours": {Value: []features.Neighbor{}},
		"last_n":        {Value: []features.ItemAt{{Item: "i1", TS: 1717200000000, Type: "view"}, {Item: "ï", TS: -1, Type: "a\nb"}}},
		"affinity":      {Value: []features.Scored{{ID: "c1", Score: 0.125}, {ID: "<&>", Score: 3}}},
		"session":       {Value: map[string]any{"id": "s", "count": 2, "items": []string{"a"}, "duration_s": 1.5}},
		"quote\"name":   {Value: 1.0},
		"ünï":           {Value: 2.0},
		"ctl\x01":       {Value: 3.0},
	}}
	var named []features.NamedValue
	for name, fv := range v.Features {
		named = append(named, features.NamedValue{Name: name, Value: fv})
	}
	got := appendValuesField(nil, named)
	require.True(t, json.Valid(got), "%s", got)
	old := make(map[string]valueDoc, len(v.Features))
	for name, fv := range v.Features {
		val := fv.Value
		if f, ok := val.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
			val = nil
		}
		old[name] = valueDoc{V: val, T: fv.ComputedAt, D: fv.Default}
	}
	want, err := decodeValues(encode(old), nil)
	require.NoError(t, err)
	have, err := decodeValues(got, nil)
	require.NoError(t, err)
	require.Equal(t, want, have)

	empty := appendValuesField(nil, nil)
	require.Equal(t, "{}", string(empty))
}

// Every hand-written record field is byte for byte what the generic
// encoder writes for the same document: random documents, with numbers
// of every magnitude and strings that need escaping, nil and empty lists.
func TestHandEncodersMatchTheGenericEncoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	str := func() string {
		const chars = "ab1_-:<>&\"\\\n\x01é€ "
		r := []rune(chars)
		n := rng.IntN(6)
		s := make([]rune, n)
		for i := range s {
			s[i] = r[rng.IntN(len(r))]
		}
		return string(s)
	}
	num := func() float64 {
		switch rng.IntN(6) {
		case 0:
			return 0
		case 1:
			return float64(rng.IntN(2000) - 1000)
		case 2:
			return rng.Float64() * math.Pow(10, float64(rng.IntN(60)-30))
		case 3:
			return -rng.Float64() * math.Pow(10, float64(rng.IntN(600)-300))
		case 4:
			return math.Pow(10, float64(rng.IntN(44)-22))
		}
		return rng.NormFloat64()
	}
	list := func(f func(int)) int {
		n := rng.IntN(5) - 1 // -1: nil
		for i := range n {
			f(i)
		}
		return n
	}
	strs := func() []string {
		var ss []string
		if list(func(int) { ss = append(ss, str()) }) == 0 {
			ss = []string{}
		}
		return ss
	}
	for range 2000 {
		var d userDoc
		d.At, d.Events, d.NoPers = rng.Int64N(1<<50), rng.IntN(100), rng.IntN(2) == 0
		if list(func(int) {
			d.Recent = append(d.Recent, features.ItemAt{Item: str(), TS: rng.Int64N(1<<50) - 1<<40, Type: str()})
		}) == 0 {
			d.Recent = []features.ItemAt{}
		}
		d.Session = strs()
		list(func(int) { d.Categories = append(d.Categories, features.Scored{ID: str(), Score: num()}) })
		require.Equal(t, string(encode(d)), string(appendUserDoc(nil, &d)))

		seen := strs()
		require.Equal(t, string(encode(seen)), string(appendStrings(nil, seen)))

		info := features.ItemInfo{Exists: true, Categories: strs(), Hidden: rng.IntN(2) == 0, Trend: num()}
		if rng.IntN(3) == 0 {
			info.Trend = math.Inf(-1)
		}
		doc := newItemDoc(rng.Int64N(1<<50), info)
		require.Equal(t, string(encode(doc)), string(appendItemDoc(nil, &doc)))

		nbrs := []features.Neighbor{}
		list(func(int) { nbrs = append(nbrs, features.Neighbor{Item: str(), Weight: num()}) })
		require.Equal(t, string(encode(nbrs)), string(appendNeighbors(nil, nbrs)))
		trend := []features.Scored{}
		list(func(int) { trend = append(trend, features.Scored{ID: str(), Score: num()}) })
		require.Equal(t, string(encode(trend)), string(appendScored(nil, trend)))

		var win map[string][]features.Bucket
		if rng.IntN(4) > 0 {
			win = map[string][]features.Bucket{}
			list(func(int) {
				var bs []features.Bucket
				list(func(int) { bs = append(bs, features.Bucket{Idx: rng.Int64N(1 << 30), V: num()}) })
				win[str()] = bs
			})
		}
		rangeWin := func(fn func(string, []features.Bucket)) bool {
			for _, name := range slices.Sorted(maps.Keys(win)) {
				fn(name, win[name])
			}
			return win != nil
		}
		require.Equal(t, string(encode(win)), string(appendWindowBuckets(nil, rangeWin)))

		n := num()
		require.Equal(t, string(encode(n)), string(appendNumber(nil, n)))
	}
}

// The publisher's records, after random sequences of interactions,
// sessions, item metadata, consent changes and erasures, are what the
// generic encoder writes for the same engine state: byte for byte for
// every field but _f, whose values (written in spec order, not map order)
// decode to the same. Erased users' records hold nothing of them.
func TestPublishedRecordsMatchTheGenericEncoder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	clock := time.UnixMilli(1_717_200_000_000)
	eng := features.NewEngine(features.DefaultConfig(), func() time.Time { return clock })
	p := NewPublisher(eng, nil, nil, PublisherOptions{Source: "t", Part: "2", AnnounceOnly: true, RecentItems: 5, Seen: 7})
	users, items := []string{"u0", "u1", "u\"2", "u3", "ü4"}, []string{"i0", "i1", "i<2>", "i3", "i4", "i5"}
	types := []string{"view", "click", "cart", "purchase", "rating"}
	var off uint64
	ts := clock.UnixMilli() - 3_600_000
	for range 300 {
		var rec event.Record
		u, it := users[rng.IntN(len(users))], items[rng.IntN(len(items))]
		ts += rng.Int64N(600_000)
		switch r := rng.IntN(20); {
		case r == 0:
			rec = event.Record{Kind: event.KindErase, User: event.User{ID: u}}
		case r == 1:
			c := event.Consent{Personalization: rng.IntN(2) == 0, Storage: true}
			rec = event.Record{Kind: event.KindUser, User: event.User{ID: u, Attributes: c.Attributes(), TS: ts}}
		case r == 2:
			rec = event.Record{Kind: event.KindItem, Item: event.Item{ID: it, Categories: []string{"c" + strconv.Itoa(rng.IntN(3))},
				Hidden: rng.IntN(4) == 0, TS: ts}}
		default:
			rec = event.Record{Kind: event.KindInteraction, Interaction: event.Interaction{User: u, Item: it,
				Type: types[rng.IntN(len(types))], TS: ts, Value: float64(rng.IntN(5) + 1), Session: []string{"", "s1"}[rng.IntN(2)]}}
		}
		off++
		eng.Apply(off, &rec)
		clock = clock.Add(time.Duration(rng.IntN(100_000)) * time.Millisecond)

		for _, id := range users {
			e, _, _ := p.userRecord(id, false)
			v := eng.User(id, p.opts.RecentItems)
			want := map[string][]byte{
				fieldView: encode(userDoc{At: v.ComputedAt, Recent: v.Recent, Session: v.Session, Categories: v.Categories,
					Events: v.Events, NoPers: v.NoPersonalization}),
				fieldSeen: encode(eng.SeenItems(id, p.opts.Seen)),
				fieldAt:   encode(v.ComputedAt),
			}
			vals, _ := eng.Values(features.EntityUser, id)
			requireRecord(t, e, want, vals)
			if !v.Exists {
				require.Equal(t, "null", string(fieldOf(e, fieldSeen)), "erased user %s", id)
				require.Equal(t, `{"at":0,"recent":null,"events":0`, string(fieldOf(e, fieldView))[:32], "erased user %s", id)
			}
		}
		for _, id := range items {
			e := p.itemRecord(id)
			var info [1]features.ItemInfo
			eng.Items([]string{id}, info[:])
			clk := eng.Clock()
			vals, _ := eng.ValuesAt(features.EntityItem, id, clk)
			nbrs := eng.Neighbors(id, p.opts.Neighbors)
			if nbrs == nil {
				nbrs = []features.Neighbor{}
			}
			requireRecord(t, e, map[string][]byte{
				fieldInfo: encode(newItemDoc(vals.ComputedAt, info[0])),
				fieldNbrs: encode(nbrs),
				fieldAt:   encode(vals.ComputedAt),
				fieldClk:  encode(clk),
				fieldWin:  encode(eng.WindowBuckets(features.EntityItem, id)),
			}, vals)
		}
		e := p.globalRecord()
		vals, _ := eng.ValuesAt(features.EntityGlobal, "", eng.Clock())
		want := map[string][]byte{fieldTrend: encode(scoredOrEmpty(eng.Trending("", p.opts.Trending))),
			fieldAt: encode(vals.ComputedAt), fieldClk: encode(eng.Clock()), fieldWin: encode(eng.WindowBuckets(features.EntityGlobal, ""))}
		for _, c := range eng.TrendingCategories() {
			want[trendCatPfx+c] = encode(scoredOrEmpty(eng.Trending(c, p.opts.Trending)))
		}
		requireRecord(t, e, want, vals)
	}
	require.Empty(t, p.vals[:cap(p.vals)][0].Name, "no values kept after a record")
	p.fields.release()
	require.Nil(t, p.fields.chunk)
	require.Equal(t, make([]byte, cap(p.fields.scratch)), p.fields.scratch[:cap(p.fields.scratch)], "no bytes kept after a flush")
}

// requireRecord: e has exactly the fields of want (and _f, and _consent
// when it is a user's), byte for byte, and its _f decodes to vals.
func requireRecord(t *testing.T, e store.Entity, want map[string][]byte, vals features.Values) {
	t.Helper()
	for _, f := range e.Fields {
		switch f.Name {
		case fieldValues:
			old := make(map[string]valueDoc, len(vals.Features))
			for name, fv := range vals.Features {
				val := fv.Value
				if l, ok := val.([]features.Neighbor); ok && l == nil { // _f has always had these empty
					val = []features.Neighbor{}
				}
				old[name] = valueDoc{V: val, T: fv.ComputedAt, D: fv.Default}
			}
			wantVals, err := decodeValues(encode(old), nil)
			require.NoError(t, err)
			got, err := decodeValues(f.Value, nil)
			require.NoError(t, err, "%s", f.Value)
			require.Equal(t, wantVals, got, e.Key)
		case fieldConsent:
		default:
			w, ok := want[f.Name]
			require.True(t, ok, "%s: unexpected field %s", e.Key, f.Name)
			require.Equal(t, string(w), string(f.Value), "%s %s", e.Key, f.Name)
			delete(want, f.Name)
		}
	}
	require.Empty(t, want, "%s: missing fields", e.Key)
}

func fieldOf(e store.Entity, name string) []byte {
	for _, f := range e.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return nil
}
