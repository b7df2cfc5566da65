package model

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// table: a→b 0.5, a→c 0.25; b→c 1; c has no row.
func table(t testing.TB) *ItemItem {
	t.Helper()
	m, err := NewItemItem([]string{"a", "b", "c"}, []uint32{0, 2, 3, 3}, []int32{1, 2, 2}, []float32{0.5, 0.25, 1})
	require.NoError(t, err)
	return m
}

func TestItemItemRejectsBadTables(t *testing.T) {
	for name, tc := range map[string]struct {
		items   []string
		offsets []uint32
		nbrs    []int32
		w       []float32
	}{
		"short offsets":   {[]string{"a"}, []uint32{0}, nil, nil},
		"offsets decline": {[]string{"a", "b"}, []uint32{0, 1, 0}, []int32{1}, []float32{1}},
		"out of range":    {[]string{"a"}, []uint32{0, 1}, []int32{5}, []float32{1}},
		"weights short":   {[]string{"a", "b"}, []uint32{0, 1, 1}, []int32{1}, nil},
		"duplicate ids":   {[]string{"a", "a"}, []uint32{0, 0, 0}, nil, nil},
	} {
		_, err := NewItemItem(tc.items, tc.offsets, tc.nbrs, tc.w)
		assert.Error(t, err, name)
	}
}

func TestCodecRoundTripAndCorruption(t *testing.T) {
	m := table(t)
	var buf bytes.Buffer
	require.NoError(t, m.Encode(&buf))
	back, err := DecodeItemItem(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	assert.Equal(t, m.Items, back.Items)
	assert.Equal(t, m.Offsets, back.Offsets)
	assert.Equal(t, m.Nbrs, back.Nbrs)
	assert.Equal(t, m.Weights, back.Weights)

	b := buf.Bytes()
	for i := range b { // every single-byte flip is caught
		bad := bytes.Clone(b)
		bad[i] ^= 0x40
		_, err := DecodeItemItem(bytes.NewReader(bad))
		require.ErrorIs(t, err, ErrCorrupt, "flip at %d", i)
	}
	for n := range len(b) { // every truncation is caught
		_, err := DecodeItemItem(bytes.NewReader(b[:n]))
		require.ErrorIs(t, err, ErrCorrupt, "cut at %d", n)
	}
}

func FuzzDecodeItemItem(f *testing.F) {
	var buf bytes.Buffer
	_ = table(f).Encode(&buf)
	f.Add(buf.Bytes())
	f.Add([]byte("RPLM\x01\x00\x00\x00\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeItemItem(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error not ErrCorrupt: %v", err)
			}
			return
		}
		for i := range int32(m.Len()) { // a decoded table is safe to read
			nbrs, ws := m.Row(i)
			if len(nbrs) != len(ws) {
				t.Fatal("row lengths differ")
			}
		}
	})
}

func TestSetScoreAndTop(t *testing.T) {
	m := table(t)
	s := NewSet("blend@1", m.Items, []Component{
		{Name: "x", Table: m, History: 2, Decay: 0.5, Weight: 2},
	})
	// History newest first: b then a. b→c: 2·1; a (×0.5): a→b 2·0.5·0.5, a→c 2·0.5·0.25.
	sc := s.Score([]string{"b", "a", "unknown"})
	assert.InDelta(t, 0.5, sc.W[1], 1e-9)
	assert.InDelta(t, 2.25, sc.W[2], 1e-9)
	assert.Equal(t, []int32{2, 1}, sc.Top(5, nil))
	assert.Equal(t, []int32{2}, sc.Top(1, nil))
	assert.Equal(t, []int32{1}, sc.Top(5, func(i int32) bool { return i == 2 }))
	sc.Release()
	sc = s.Score(nil)
	assert.Empty(t, sc.Top(5, nil), "a released row comes back clean")
	sc.Release()
	assert.Equal(t, 2, s.History())
}

func TestTopTiesGoToSmallerID(t *testing.T) {
	m, err := NewItemItem([]string{"z", "b", "a", "c"}, []uint32{0, 3, 3, 3, 3}, []int32{1, 2, 3}, []float32{1, 1, 1})
	require.NoError(t, err)
	s := NewSet("", m.Items, []Component{{Table: m, History: 1, Decay: 1, Weight: 1}})
	sc := s.Score([]string{"z"})
	defer sc.Release()
	assert.Equal(t, []int32{2, 1}, sc.Top(2, nil)) // a, b
}

func TestRegistryPromoteReopenPrune(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRegistry(dir, 2)
	require.NoError(t, err)
	assert.Nil(t, r.Current())
	m := table(t)
	for v := 1; v <= 3; v++ {
		man, err := r.Promote(NewSet("", m.Items, []Component{{Name: "transition", Table: m, History: 5, Decay: 0.5, Weight: 1}}),
			map[string]int{"run": v})
		require.NoError(t, err)
		assert.Equal(t, v, man.Version)
		assert.Equal(t, man.Name, r.Current().Name)
		assert.Equal(t, "transition@"+string(rune('0'+v)), r.Current().Components[0].Version)
	}
	mans, err := r.Manifests()
	require.NoError(t, err)
	require.Len(t, mans, 2, "keep 2")
	assert.Equal(t, "blend@3", mans[0].Name)
	_, err = os.Stat(filepath.Join(dir, "transition@1.rmdl"))
	assert.True(t, os.IsNotExist(err), "pruned artifact removed")

	r2, err := OpenRegistry(dir, 2)
	require.NoError(t, err)
	require.NotNil(t, r2.Current())
	assert.Equal(t, "blend@3", r2.Current().Name)
	sc := r2.Current().Score([]string{"a"})
	assert.InDelta(t, 0.5, sc.W[1], 1e-9)
	sc.Release()

	// A damaged serving artifact: the older readable version serves.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "transition@3.rmdl"), []byte("RPLMjunk"), 0o644))
	r3, err := OpenRegistry(dir, 2)
	require.Error(t, err)
	require.NotNil(t, r3.Current())
	assert.Equal(t, "blend@2", r3.Current().Name)
	// A leftover temporary file from a crash mid-write is ignored.
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".blend@9.json.123"), []byte("{"), 0o644))
	_, err = r3.Promote(NewSet("", m.Items, []Component{{Name: "transition", Table: m, History: 5, Decay: 0.5, Weight: 1}}), nil)
	require.NoError(t, err)
	assert.Equal(t, "blend@4", r3.Current().Name)
}

// TestHugeCountsAllocateNothing: a damaged length (an item id of 4 GB here,
// found by the fuzzer) is rejected before anything is allocated for it.
func TestHugeCountsAllocateNothing(t *testing.T) {
	in := []byte("RPLM\x01\x00\x00\x00\x03\x00\x00\x00\x01\x00\x00\x00a\x01\x00\x00\x00b\xf5\xf5\xf5\xf5rest")
	allocs := testing.AllocsPerRun(5, func() {
		_, err := DecodeItemItem(bytes.NewReader(in))
		require.ErrorIs(t, err, ErrCorrupt)
	})
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	_, _ = DecodeItemItem(bytes.NewReader(in))
	runtime.ReadMemStats(&ms)
	assert.Less(t, ms.TotalAlloc-before, uint64(1<<20), "allocated %d bytes (%v allocs)", ms.TotalAlloc-before, allocs)
}

// The category settings tuned with a set travel with it through the
// registry; a manifest with impossible ones is refused; an old manifest
// without them loads with none.
func TestRegistryKeepsTunedSettings(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRegistry(dir, 3)
	require.NoError(t, err)
	m := table(t)
	comps := []Component{{Name: "transition", Table: m, History: 5, Decay: 0.5, Weight: 1}}
	set := NewSet("", m.Items, comps)
	set.StreamWeight, set.Tuned = 0.3, &StreamTuning{CategoryWeight: 0.05, Diversity: 0}
	man, err := r.Promote(set, nil)
	require.NoError(t, err)
	assert.Equal(t, set.Tuned, man.Tuned)
	assert.Equal(t, set.Tuned, r.Current().Tuned)
	_, err = r.Promote(NewSet("", m.Items, comps), nil)
	require.NoError(t, err)
	assert.Nil(t, r.Current().Tuned)

	r2, err := OpenRegistry(dir, 3)
	require.NoError(t, err)
	assert.Nil(t, r2.Current().Tuned, "blend@2 was not tuned")
	_, err = r2.Activate("blend@1")
	require.NoError(t, err)
	assert.Equal(t, &StreamTuning{CategoryWeight: 0.05, Diversity: 0}, r2.Current().Tuned)

	bad := NewSet("", m.Items, comps)
	bad.Tuned = &StreamTuning{CategoryWeight: 0.2, Diversity: 1.5}
	_, err = r2.Promote(bad, nil)
	assert.Error(t, err, "a diversity above 1 is not promoted")
	js, err := os.ReadFile(filepath.Join(dir, "blend@1.json"))
	require.NoError(t, err)
	js = bytes.Replace(js, []byte(`"diversity": 0`), []byte(`"diversity": 1.5`), 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "blend@1.json"), js, 0o644))
	_, err = r2.Activate("blend@1")
	assert.ErrorIs(t, err, ErrCorrupt, "nor loaded")
}

// A set's learned ranker travels with it through the registry; one this
// build cannot apply (other features, a zero scale) is neither promoted
// nor loaded.
func TestRegistryKeepsTheRanker(t *testing.T) {
	dir := t.TempDir()
	r, err := OpenRegistry(dir, 3)
	require.NoError(t, err)
	m := table(t)
	comps := []Component{{Name: "transition", Table: m, History: 5, Decay: 0.5, Weight: 1}}
	rk := &Ranker{Features: slices.Clone(RankFeatures), Mean: make([]float64, NumRankFeatures),
		Scale: []float64{1, 2, 1, 1, 1, 1}, Weights: []float64{0.5, 1, 0, 0.2, 0, 2}, Source: "pairwise"}
	set := NewSet("", m.Items, comps)
	set.Ranker = rk
	man, err := r.Promote(set, nil)
	require.NoError(t, err)
	assert.Equal(t, rk, man.Ranker)
	x := [NumRankFeatures]float64{1, 2, 0, 1, 0, 0.5}
	assert.InDelta(t, 0.5+1+0.2+1, r.Current().Ranker.Score(&x), 1e-12)

	r2, err := OpenRegistry(dir, 3)
	require.NoError(t, err)
	assert.Equal(t, rk, r2.Current().Ranker)

	for _, bad := range []func(*Ranker){
		func(b *Ranker) { b.Features = []string{"model", "covisitation"} },
		func(b *Ranker) { b.Scale[2] = 0 },
		func(b *Ranker) { b.Weights[1] = math.Inf(1) },
		func(b *Ranker) { b.Mean = b.Mean[:3] },
	} {
		b := *rk
		b.Features, b.Mean, b.Scale, b.Weights = slices.Clone(rk.Features), slices.Clone(rk.Mean), slices.Clone(rk.Scale), slices.Clone(rk.Weights)
		bad(&b)
		s := NewSet("", m.Items, comps)
		s.Ranker = &b
		_, err := r2.Promote(s, nil)
		assert.Error(t, err, "%+v is not promoted", b)
	}
	js, err := os.ReadFile(filepath.Join(dir, "blend@1.json"))
	require.NoError(t, err)
	js = bytes.Replace(js, []byte(`"covisitation"`), []byte(`"dwell_time"`), 1)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "blend@1.json"), js, 0o644))
	_, err = r2.Activate("blend@1")
	assert.ErrorIs(t, err, ErrCorrupt, "nor loaded")
}
