package online

import (
	"math"
	"strconv"

	json "github.com/goccy/go-json"

	"github.com/ripple-rec/ripple/internal/features"
)

// Logical entity keys; the store adds its version prefix and hash tag.
func userKey(id string) string { return "u:" + id }
func itemKey(id string) string { return "i:" + id }

const globalKey = "g"

// Fields of an entity record. Feature values are "f:<name>"; the rest is
// what the recommendation pipeline reads, each its own field so a read
// fetches only what it needs.
const (
	fieldView  = "_view"  // user: recent items, session, category affinity
	fieldSeen  = "_seen"  // user: items interacted with, newest first
	fieldInfo  = "_info"  // item: categories, hidden, trend score
	fieldNbrs  = "_nbrs"  // item: co-visited neighbours, strongest first
	fieldTrend = "_trend" // global: trending; "_trend:<category>" per category
	fieldAt    = "_at"    // computed_at (wall ms) of the record
	// fieldConsent is what the user allows, when less than full consent.
	fieldConsent = "_consent"
	// fieldValues holds every feature value of the entity in one field:
	// one lookup and one bulk string per entity on a batch read instead of
	// one per feature (4-5× less time for 100 entities × 50 features, see
	// BENCHMARKS.md), and the group is always read whole anyway.
	fieldValues = "_f"
	trendCatPfx = fieldTrend + ":"
)

// Cache keys of the reader's tiers. They are also what the publisher
// announces on the invalidation bus, so a tier ignores other tiers' keys.
func userCacheKey(id string) string           { return "u:" + id }
func infoCacheKey(id string) string           { return "i:" + id }
func nbrsCacheKey(id string) string           { return "n:" + id }
func trendCacheKey(cat string) string         { return "t:" + cat }
func valuesCacheKey(entity, id string) string { return "v:" + entity + ":" + id }

// userDoc is the _view field.
type userDoc struct {
	At         int64             `json:"at"`
	Recent     []features.ItemAt `json:"recent"`
	Session    []string          `json:"session,omitempty"`
	Categories []features.Scored `json:"categories,omitempty"`
	Events     int               `json:"events"`
	// NoPers: the user withheld personalisation consent.
	NoPers bool `json:"no_personalization,omitempty"`
}

// itemDoc is the _info field. Trend is nil for "no trending score" (the
// engine's -Inf, which JSON cannot carry).
type itemDoc struct {
	At         int64    `json:"at"`
	Categories []string `json:"categories,omitempty"`
	Hidden     bool     `json:"hidden,omitempty"`
	Trend      *float64 `json:"trend,omitempty"`
}

func (d *itemDoc) info() features.ItemInfo {
	info := features.ItemInfo{Exists: true, Categories: d.Categories, Hidden: d.Hidden, Trend: math.Inf(-1)}
	if d.Trend != nil {
		info.Trend = *d.Trend
	}
	return info
}

func newItemDoc(at int64, info features.ItemInfo) itemDoc {
	d := itemDoc{At: at, Categories: info.Categories, Hidden: info.Hidden}
	if !math.IsInf(info.Trend, 0) && !math.IsNaN(info.Trend) {
		t := info.Trend
		d.Trend = &t
	}
	return d
}

// valueDoc is one feature value in the _f field.
type valueDoc struct {
	V any   `json:"v"`
	T int64 `json:"t,omitempty"` // computed_at, wall ms
	D bool  `json:"d,omitempty"` // the typed default
}

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only values the engine produced are encoded; they always marshal
		// (NaN and Inf are kept out above). Fail loudly in tests.
		panic("online: encode: " + err.Error())
	}
	return b
}

// valuesField encodes an entity's feature values as the _f field.
// It is written by hand (a map of valueDoc, numbers and nulls appended
// directly, other values through encode): the generic encoder was a tenth
// of a worker's CPU. decodeValues reads either.
func valuesField(v features.Values) []byte {
	b := make([]byte, 0, 48*len(v.Features))
	b = append(b, '{')
	for name, fv := range v.Features {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = appendJSONKey(b, name)
		b = append(b, `{"v":`...)
		b = appendValue(b, fv.Value)
		if fv.ComputedAt != 0 {
			b = append(b, `,"t":`...)
			b = strconv.AppendInt(b, fv.ComputedAt, 10)
		}
		if fv.Default {
			b = append(b, `,"d":true`...)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendValue appends one feature value: numbers (non-finite ones as
// null) and the engine's lists directly, anything else through encode.
func appendValue(b []byte, v any) []byte {
	switch val := v.(type) {
	case nil:
		return append(b, "null"...)
	case float64:
		return appendNumber(b, val)
	case []features.ItemAt:
		return appendList(b, val, func(b []byte, x features.ItemAt) []byte {
			b = append(b, `{"item":`...)
			b = appendJSONString(b, x.Item)
			b = append(b, `,"ts":`...)
			b = strconv.AppendInt(b, x.TS, 10)
			b = append(b, `,"type":`...)
			return appendJSONString(b, x.Type)
		})
	case []features.Neighbor:
		return appendList(b, val, func(b []byte, x features.Neighbor) []byte {
			b = append(b, `{"item":`...)
			b = appendJSONString(b, x.Item)
			b = append(b, `,"weight":`...)
			return appendNumber(b, x.Weight)
		})
	case []features.Scored:
		return appendList(b, val, func(b []byte, x features.Scored) []byte {
			b = append(b, `{"id":`...)
			b = appendJSONString(b, x.ID)
			b = append(b, `,"score":`...)
			return appendNumber(b, x.Score)
		})
	}
	return append(b, encode(v)...)
}

// appendList appends xs as a JSON array of objects: each opened by
// appendFields and closed here.
func appendList[T any](b []byte, xs []T, appendFields func([]byte, T) []byte) []byte {
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendFields(b, x), '}')
	}
	return append(b, ']')
}

func appendNumber(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendJSONKey appends s as a JSON object key and the colon.
func appendJSONKey(b []byte, s string) []byte {
	return append(appendJSONString(b, s), ':')
}

// appendJSONString appends s quoted; strings that need escaping go
// through the encoder.
func appendJSONString(b []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return append(b, encode(s)...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// decodeValues reads the _f and _at fields back into Values.
func decodeValues(values, at []byte) (features.Values, error) {
	var m map[string]valueDoc
	if err := json.Unmarshal(values, &m); err != nil {
		return features.Values{}, err
	}
	v := features.Values{Features: make(map[string]features.Value, len(m))}
	for name, d := range m {
		v.Features[name] = features.Value{Value: d.V, ComputedAt: d.T, Default: d.D}
	}
	if at != nil {
		_ = json.Unmarshal(at, &v.ComputedAt)
	}
	return v, nil
}
