package event

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The fuzz targets here go beyond "no panic": whatever a parser accepts must
// survive the validator unchanged, the log codec unchanged and, where the
// fields can be written as JSON at all, its own JSON encoding unchanged.

// sameFloat is == except that NaN equals NaN: a file reader may pass NaN on
// to the validator, and the codec must carry it, not compare it.
func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func sameInteraction(a, b *Interaction) bool {
	return a.ID == b.ID && a.Type == b.Type && a.User == b.User && a.Item == b.Item && a.TS == b.TS &&
		sameFloat(a.Value, b.Value) && a.Session == b.Session && bytes.Equal(a.Context, b.Context)
}

// sameItem treats nil and empty as equal: the codec decodes an empty list or
// map as nil.
func sameItem(a, b *Item) bool {
	if len(a.Categories) != len(b.Categories) || len(a.Attributes) != len(b.Attributes) {
		return false
	}
	if len(a.Categories) > 0 && !reflect.DeepEqual(a.Categories, b.Categories) {
		return false
	}
	if len(a.Attributes) > 0 && !reflect.DeepEqual(a.Attributes, b.Attributes) {
		return false
	}
	return a.ID == b.ID && a.Hidden == b.Hidden && a.TS == b.TS
}

// checkInteractionCodec: the log encoding carries any interaction exactly.
func checkInteractionCodec(t *testing.T, e *Interaction) {
	t.Helper()
	rec := Record{Kind: KindInteraction, Interaction: *e}
	var got Record
	if err := DecodeBinary(AppendBinary(nil, &rec), &got); err != nil {
		t.Fatalf("encoded interaction does not decode: %v\n%+v", err, *e)
	}
	if got.Kind != KindInteraction || !sameInteraction(&got.Interaction, e) {
		t.Fatalf("binary round trip changed the interaction:\n got %+v\nwant %+v", got.Interaction, *e)
	}
}

// checkAccepted asserts what every event a parser hands on as valid must
// satisfy.
func checkAccepted(t *testing.T, v *Validator, e *Interaction) {
	t.Helper()
	again := *e
	if err := v.Interaction(&again); err != nil {
		t.Fatalf("accepted event fails validation: %v\n%+v", err, *e)
	}
	if !sameInteraction(&again, e) {
		t.Fatalf("re-validation changed an accepted event:\n got %+v\nwant %+v", again, *e)
	}
	checkInteractionCodec(t, e)
	checkInteractionJSON(t, e)
}

// checkInteractionJSON: re-parsing the JSON encoding of e gives e back.
func checkInteractionJSON(t *testing.T, e *Interaction) {
	t.Helper()
	b, ok := interactionJSON(e)
	if !ok {
		return
	}
	var got Interaction
	if err := DecodeInteraction(b, &got); err != nil {
		t.Fatalf("JSON encoding of a decoded event does not decode: %v\n%s", err, b)
	}
	if !sameInteraction(&got, e) {
		t.Fatalf("JSON round trip changed the event:\n got %+v\nwant %+v\njson %s", got, *e, b)
	}
}

// interactionJSON writes e the way a client would. ok is false when e cannot
// be written as JSON (strings that are not UTF-8, a non-finite value, a
// timestamp no accepted form spells).
func interactionJSON(e *Interaction) (b []byte, ok bool) {
	if !math.IsInf(e.Value, 0) && !math.IsNaN(e.Value) {
		b = []byte(`{"value":`)
		b = strconv.AppendFloat(b, e.Value, 'g', -1, 64)
	} else {
		return nil, false
	}
	for _, f := range []struct{ name, val string }{{"id", e.ID}, {"type", e.Type}, {"user", e.User}, {"item", e.Item}, {"session", e.Session}} {
		if b, ok = appendJSONField(b, f.name, f.val); !ok {
			return nil, false
		}
	}
	if b, ok = appendTS(append(b, `,"ts":`...), e.TS); !ok {
		return nil, false
	}
	if e.Context != nil {
		b = append(append(b, `,"context":`...), e.Context...)
	}
	return append(b, '}'), true
}

func appendJSONField(b []byte, name, val string) ([]byte, bool) {
	if !utf8.ValidString(val) {
		return nil, false
	}
	s, err := stdjson.Marshal(val)
	if err != nil {
		return nil, false
	}
	return append(append(append(b, `,"`...), name+`":`...), s...), true
}

// appendTS spells a millisecond timestamp so that flexTS, ParseTime and the
// CSV reader read it back exactly: exact decimal unix seconds inside their
// ±1e11 s range, RFC3339 beyond it (years 0–9999 only).
func appendTS(b []byte, ms int64) ([]byte, bool) {
	if ms > -1e14 && ms < 1e14 {
		return append(b, tsSeconds(ms)...), true
	}
	tm := time.UnixMilli(ms).UTC()
	if tm.Year() < 0 || tm.Year() > 9999 {
		return nil, false
	}
	return strconv.AppendQuote(b, tm.Format(time.RFC3339Nano)), true
}

// tsSeconds writes ms as decimal seconds with exactly three decimals.
func tsSeconds(ms int64) string {
	sign := ""
	u := uint64(ms)
	if ms < 0 {
		sign, u = "-", uint64(-ms)
	}
	frac := strconv.FormatUint(u%1000, 10)
	return sign + strconv.FormatUint(u/1000, 10) + "." + strings.Repeat("0", 3-len(frac)) + frac
}

// checkInvalid: request errors are ErrInvalid and speak the client's terms.
func checkInvalid(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("error does not wrap ErrInvalid: %v", err)
	}
	checkNoGoNames(t, err)
}

// eventSeeds are bodies every event target starts from: good, borderline
// and broken.
var eventSeeds = []string{
	`{"id":"a","type":"view","user":"u","item":"i","ts":1717239600}`,
	`{"type":"rating","user":42,"item":7,"ts":"2024-06-01T11:00:00.123+02:00","value":4.5,"session":"s","context":{"a":[1,2]}}`,
	`{"type":"click","user":"u","item":"i"}`,
	`{"type":"cart","user":"u","item":"i","ts":"1717239600.5","value":-0,"context":null,"session":null,"id":null}`,
	`{"type":"view","user":"ü\u2028\ud83d\ude00","item":"i\\\"","ts":1717239600.0005}`,
	`{"type":"view","user":"u","item":"i","ts":1717239600000}`,
	`{"type":"view","user":"u","item":"i","ts":1e300,"value":1e308}`,
	`{"type":"view","user":"u","item":"i","ts":-1e11}`,
	`{"type":"view","user":"u","item":"i","ts":"9999-12-31T23:59:59-23:59"}`,
	`{"type":"teleport","user":"u","item":"i"}`,
	`{"type":"view","user":"\u0000","item":"i"}`,
	`{"type":"view","user":"u","item":"i","context":"x"}`,
	`{"type":"view","user":"u","item":"i","context":{"k":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`,
	`{"user":{"a":1},"item":[],"ts":{},"value":"NaN"}`,
	`{"user":007,"item":1.5,"type":"view"}`,
	`{"user":"u","user":"v","item":"i","type":"view"}`,
	`{"type":"view","user":"a` + "\xff" + `","item":"i"}`,
	`{"type":"view","user":"u","item":"i","ts":"2024-06-01T11:00:00Z","unknown":[1,{"x":null}]}`,
	`{"type":"view","user":"u","item":"i"} trailing`,
	`{"type":`,
	`null`,
	``,
}

func FuzzParseJSONArray(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(s), 0)
		f.Add([]byte("["+s+"]"), 0)
	}
	f.Add([]byte(`[`+eventSeeds[0]+`,`+eventSeeds[1]+`,`+eventSeeds[9]+`,1,"x",null,[]]`), 0)
	f.Add([]byte(`[`+eventSeeds[0]+`,`+eventSeeds[0]+`,`+eventSeeds[0]+`]`), 2)
	f.Add([]byte(`[]`), 0)
	f.Add([]byte(" \n\t[ ] "), 1)
	f.Add([]byte(`{"a":1}{"b":2}`), 0)
	v := testValidator()
	f.Fuzz(func(t *testing.T, body []byte, max int) {
		max %= 8
		b, err := ParseJSONArray(body, v, max)
		if err != nil {
			checkInvalid(t, err)
			return
		}
		if b.Total == 0 || len(b.Events)+len(b.Errors) != b.Total || len(b.Index) != len(b.Events) {
			t.Fatalf("inconsistent batch: total %d, %d events, %d index, %d errors", b.Total, len(b.Events), len(b.Index), len(b.Errors))
		}
		if max > 0 && b.Total > max {
			t.Fatalf("%d events accepted, limit %d", b.Total, max)
		}
		// Every element has exactly one outcome, in order.
		seen := make([]bool, b.Total)
		for _, i := range b.Index {
			seen[i] = true
		}
		for _, e := range b.Errors {
			if seen[e.Index] {
				t.Fatalf("index %d both accepted and rejected", e.Index)
			}
			seen[e.Index] = true
			checkNoGoNames(t, errors.New(e.Error))
		}
		for i := 1; i < len(b.Index); i++ {
			if b.Index[i] <= b.Index[i-1] {
				t.Fatalf("accepted indices out of order: %v", b.Index)
			}
		}
		for i := range b.Events {
			checkAccepted(t, v, &b.Events[i])
		}
		// A bare object is a batch of one: the same as the array around it.
		if trimmed := bytes.TrimSpace(body); trimmed[0] == '{' {
			wrapped, err := ParseJSONArray(append(append([]byte{'['}, trimmed...), ']'), v, max)
			if err == nil && len(wrapped.Events) == 1 && (len(b.Events) != 1 || !sameInteraction(&b.Events[0], &wrapped.Events[0])) {
				t.Fatalf("object and [object] differ: %+v vs %+v", b.Events, wrapped.Events)
			}
		}
	})
}

func FuzzDecodeInteraction(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(s))
	}
	v := testValidator()
	f.Fuzz(func(t *testing.T, body []byte) {
		var e Interaction
		if err := DecodeInteraction(body, &e); err != nil {
			checkInvalid(t, err)
			return
		}
		if e.Context != nil && (len(e.Context) == 0 || e.Context[0] != '{') {
			t.Fatalf("context %q is not an object", e.Context)
		}
		// Decoding alone (no validation) must already round-trip.
		checkInteractionCodec(t, &e)
		checkInteractionJSON(t, &e)
		if err := v.Interaction(&e); err != nil {
			checkInvalid(t, err)
			return
		}
		checkAccepted(t, v, &e)
	})
}

// itemJSON writes it as a client would; ok is false when it cannot be.
func itemJSON(it *Item) (b []byte, ok bool) {
	b = []byte(`{"hidden":` + strconv.FormatBool(it.Hidden))
	if b, ok = appendJSONField(b, "item", it.ID); !ok {
		return nil, false
	}
	if b, ok = appendTS(append(b, `,"ts":`...), it.TS); !ok {
		return nil, false
	}
	for _, c := range it.Categories {
		if !utf8.ValidString(c) {
			return nil, false
		}
	}
	for k, val := range it.Attributes {
		if !utf8.ValidString(k) || !utf8.ValidString(val) {
			return nil, false
		}
	}
	rest, err := stdjson.Marshal(struct {
		Categories []string          `json:"categories"`
		Attributes map[string]string `json:"attributes"`
	}{it.Categories, it.Attributes})
	if err != nil {
		return nil, false
	}
	return append(append(b, ','), rest[1:]...), true
}

func FuzzDecodeItem(f *testing.F) {
	seeds := []string{
		`{"item":"i1","categories":["shoes","sale"],"attributes":{"color":"red","size":42,"tags":["a"],"x":null},"hidden":true,"ts":1717239600}`,
		`{"item":42,"categories":[],"attributes":{}}`,
		`{"categories":["a",null,""],"ts":"2024-06-01T11:00:00Z"}`,
		`{"item":"i","attributes":{"":"empty key","k":"\u0000","k":"dup"}}`,
		`{"item":"i","categories":[1]}`,
		`{"item":"i","hidden":"yes"}`,
		`{"item":"i","attributes":[1]}`,
		`{"item":"i","ts":"9999-12-31T23:59:59-23:59"}`,
		`{"item":"i","ts":99999999999.999}`,
		`{"item":"i","attributes":{"k":"\ud800"}}`,
		`{"item":"` + "\xff" + `"}`,
		`["i"]`,
		`{"item":`,
		``,
	}
	for _, s := range seeds {
		f.Add([]byte(s), "")
		f.Add([]byte(s), "i1")
	}
	v := testValidator()
	f.Fuzz(func(t *testing.T, body []byte, pathID string) {
		var it Item
		if err := DecodeItem(body, pathID, &it); err != nil {
			checkInvalid(t, err)
			return
		}
		if pathID != "" && it.ID != pathID {
			t.Fatalf("item %q, path says %q", it.ID, pathID)
		}
		if b, ok := itemJSON(&it); ok {
			var got Item
			if err := DecodeItem(b, "", &got); err != nil {
				t.Fatalf("JSON encoding of a decoded item does not decode: %v\n%s", err, b)
			}
			if !sameItem(&got, &it) {
				t.Fatalf("JSON round trip changed the item:\n got %+v\nwant %+v\njson %s", got, it, b)
			}
		}
		if err := v.Item(&it); err != nil {
			checkInvalid(t, err)
			return
		}
		again := it
		if err := v.Item(&again); err != nil || !sameItem(&again, &it) {
			t.Fatalf("re-validation of an accepted item: %v, %+v -> %+v", err, it, again)
		}
		rec := Record{Kind: KindItem, Item: it}
		var got Record
		if err := DecodeBinary(AppendBinary(nil, &rec), &got); err != nil {
			t.Fatalf("accepted item does not survive the codec: %v\n%+v", err, it)
		}
		if got.Kind != KindItem || !sameItem(&got.Item, &it) {
			t.Fatalf("binary round trip changed the item:\n got %+v\nwant %+v", got.Item, it)
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{
		"2024-06-01T11:00:00Z", "2024-06-01T11:00:00.123456789+05:30", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59",
		"1717239600", "1717239600.5", "-1.5", "1e10", "1e11", "0x1p30", "NaN", "Inf", "1_000", " 1", "", "noon",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseTime(s)
		if err != nil {
			return
		}
		b, ok := appendTS(nil, ms)
		if !ok {
			return
		}
		spelled := strings.Trim(string(b), `"`)
		again, err := ParseTime(spelled)
		if err != nil || again != ms {
			t.Fatalf("ParseTime(%q) = %d; its spelling %q reads as %d, %v", s, ms, spelled, again, err)
		}
		var ts flexTS
		if err := ts.UnmarshalJSON(b); err != nil || int64(ts) != ms {
			t.Fatalf("ParseTime(%q) = %d; as JSON %s it reads as %d, %v", s, ms, b, ts, err)
		}
	})
}
