package online

import (
	"bytes"
	"math"
	"slices"
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

// The record fields are JSON written by hand: through the generic encoder
// (reflection, an allocation per field and per growth) encoding was most
// of a worker's CPU. Each append* function appends exactly what encode
// appends for the same value (TestHandEncodersMatchTheGenericEncoder), so
// readers decode either. A nil list is null, as encode writes it.

// appendUserDoc appends the _view field.
func appendUserDoc(b []byte, d *userDoc) []byte {
	b = append(b, `{"at":`...)
	b = strconv.AppendInt(b, d.At, 10)
	b = append(b, `,"recent":`...)
	b = appendItemsAt(b, d.Recent)
	if len(d.Session) > 0 {
		b = append(b, `,"session":`...)
		b = appendStrings(b, d.Session)
	}
	if len(d.Categories) > 0 {
		b = append(b, `,"categories":`...)
		b = appendScored(b, d.Categories)
	}
	b = append(b, `,"events":`...)
	b = strconv.AppendInt(b, int64(d.Events), 10)
	if d.NoPers {
		b = append(b, `,"no_personalization":true`...)
	}
	return append(b, '}')
}

// appendItemDoc appends the _info field.
func appendItemDoc(b []byte, d *itemDoc) []byte {
	b = append(b, `{"at":`...)
	b = strconv.AppendInt(b, d.At, 10)
	if len(d.Categories) > 0 {
		b = append(b, `,"categories":`...)
		b = appendStrings(b, d.Categories)
	}
	if d.Hidden {
		b = append(b, `,"hidden":true`...)
	}
	if d.Trend != nil {
		b = append(b, `,"trend":`...)
		b = appendNumber(b, *d.Trend)
	}
	return append(b, '}')
}

// appendWindowBuckets appends the _win field: the buckets by feature
// name, as encode writes the map of WindowBuckets, from rangeBuckets (an
// Engine.RangeWindowBuckets: names in order; false: null).
func appendWindowBuckets(b []byte, rangeBuckets func(fn func(string, []features.Bucket)) bool) []byte {
	start := len(b)
	b = append(b, '{')
	if !rangeBuckets(func(name string, bs []features.Bucket) {
		if len(b) > start+1 {
			b = append(b, ',')
		}
		b = appendJSONKey(b, name)
		b = appendList(b, bs, func(b []byte, x features.Bucket) []byte {
			b = append(b, `{"i":`...)
			b = strconv.AppendInt(b, x.Idx, 10)
			b = append(b, `,"v":`...)
			return append(appendNumber(b, x.V), '}')
		})
	}) {
		return append(b[:start], "null"...)
	}
	return append(b, '}')
}

func appendItemsAt(b []byte, xs []features.ItemAt) []byte {
	return appendList(b, xs, func(b []byte, x features.ItemAt) []byte {
		b = append(b, `{"item":`...)
		b = appendJSONString(b, x.Item)
		b = append(b, `,"ts":`...)
		b = strconv.AppendInt(b, x.TS, 10)
		b = append(b, `,"type":`...)
		return append(appendJSONString(b, x.Type), '}')
	})
}

func appendNeighbors(b []byte, xs []features.Neighbor) []byte {
	return appendNamedNumbers(b, xs, `{"item":`, `,"weight":`, func(x features.Neighbor) (string, float64) { return x.Item, x.Weight })
}

func appendScored(b []byte, xs []features.Scored) []byte {
	return appendNamedNumbers(b, xs, `{"id":`, `,"score":`, func(x features.Scored) (string, float64) { return x.ID, x.Score })
}

// appendNamedNumbers appends xs as a list of two-field objects: a string
// (opened by name, e.g. `{"id":`) and a number (opened by num).
func appendNamedNumbers[T any](b []byte, xs []T, name, num string, fields func(T) (string, float64)) []byte {
	return appendList(b, xs, func(b []byte, x T) []byte {
		s, f := fields(x)
		b = append(b, name...)
		b = appendJSONString(b, s)
		b = append(b, num...)
		return append(appendNumber(b, f), '}')
	})
}

func appendStrings(b []byte, ss []string) []byte {
	return appendList(b, ss, appendJSONString)
}

// appendValuesField appends an entity's feature values as the _f field: a
// map of valueDoc, in the order of vals (readers decode it into a map). Non-finite numbers are null here, where encode
// would fail. decodeValues reads it.
func appendValuesField(b []byte, vals []features.NamedValue) []byte {
	b = append(b, '{')
	for i, fv := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONKey(b, fv.Name)
		b = append(b, `{"v":`...)
		b = appendValue(b, fv.Value.Value)
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

// appendValue appends one feature value: what the engine produces
// directly, anything else through encode. Non-finite numbers are null,
// and so is a nil []string, but nil lists of the engine's types are empty
// arrays (as this field has always had them).
func appendValue(b []byte, v any) []byte {
	switch val := v.(type) {
	case nil:
		return append(b, "null"...)
	case float64:
		return appendNumber(b, val)
	case int:
		return strconv.AppendInt(b, int64(val), 10)
	case string:
		return appendJSONString(b, val)
	case []string:
		return appendStrings(b, val)
	case []features.ItemAt:
		return appendItemsAt(b, orEmpty(val))
	case []features.Neighbor:
		return appendNeighbors(b, orEmpty(val))
	case []features.Scored:
		return appendScored(b, orEmpty(val))
	case map[string]any: // the session
		keys := make([]string, 0, len(val))
		for k := range val {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONKey(b, k)
			b = appendValue(b, val[k])
		}
		return append(b, '}')
	}
	return append(b, encode(v)...)
}

func orEmpty[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

// appendList appends xs as a JSON array, each element by appendElem; nil
// is null.
func appendList[T any](b []byte, xs []T, appendElem func([]byte, T) []byte) []byte {
	if xs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendElem(b, x)
	}
	return append(b, ']')
}

// appendNumber appends f as encode does (encoding/json's format: plain
// decimals, exponents only beyond 1e21 or below 1e-6), and non-finite
// numbers, which encode refuses, as null.
func appendNumber(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, "null"...)
	}
	format := byte('f')
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 as e-9, as encoding/json writes it.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendJSONKey appends s as a JSON object key and the colon.
func appendJSONKey(b []byte, s string) []byte {
	return append(appendJSONString(b, s), ':')
}

// appendJSONString appends s quoted; strings that need escaping (encode
// also escapes <, > and &) go through the encoder.
func appendJSONString(b []byte, s string) []byte {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 || c == '<' || c == '>' || c == '&' {
			return append(b, encode(s)...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// fieldBytes hands out the encoded fields of the records one publisher
// writes: each is appended to a reused scratch buffer and copied into a
// chunk many fields share, one allocation per fieldChunk bytes instead of
// one (and its regrowths) per field. Bytes handed out are never written
// again: the store may still reference them after Write returned (a write
// abandoned at its deadline can still be queued in the client). Only the
// publisher's writer goroutine uses it.
type fieldBytes struct {
	scratch []byte
	chunk   []byte
}

const fieldChunk = 64 << 10

// release forgets every byte handed out and wipes the scratch buffer: the
// publisher keeps nothing of a record once its write is done (a user
// erased since must not linger in a buffer it holds).
func (f *fieldBytes) release() {
	clear(f.scratch[:cap(f.scratch)])
	f.chunk = nil
}

// keep copies b, appended to f.scratch[:0], out of the scratch buffer.
func (f *fieldBytes) keep(b []byte) []byte {
	f.scratch = b[:0]
	if len(b) > cap(f.chunk)-len(f.chunk) {
		if len(b) > fieldChunk/8 {
			return bytes.Clone(b)
		}
		f.chunk = make([]byte, 0, fieldChunk)
	}
	n := len(f.chunk)
	f.chunk = append(f.chunk, b...)
	return f.chunk[n:len(f.chunk):len(f.chunk)]
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
