package online

import (
	"math"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/features"
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
	got := valuesField(v)
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

	empty := valuesField(features.Values{})
	require.Equal(t, "{}", string(empty))
}
