package event

import (
	"bytes"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func ms(s string) int64 {
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return tm.UnixMilli()
}

func TestParseTime(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{in: "2024-06-01T11:00:00Z", want: ms("2024-06-01T11:00:00Z")},
		{in: "2024-06-01T11:00:00.123Z", want: ms("2024-06-01T11:00:00Z") + 123},
		{in: "2024-06-01T11:00:00.123456789Z", want: ms("2024-06-01T11:00:00Z") + 123},
		{in: "2024-06-01T13:00:00+02:00", want: ms("2024-06-01T11:00:00Z")},
		{in: "1717239600", want: 1717239600000},
		{in: "1717239600.5", want: 1717239600500},
		{in: "1717239600.0004", want: 1717239600000},
		{in: "1717239600.0006", want: 1717239600001},
		{in: "0", want: 0},
		{in: "1717239600000", wantErr: true}, // milliseconds
		{in: "2024-06-01", wantErr: true},
		{in: "2024-06-01 11:00:00", wantErr: true},
		{in: "yesterday", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "Inf", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTime(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseTime(%q) = %d, want error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseTime(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestDecodeInteraction(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Interaction
		wantErr string
	}{
		{
			name: "all fields",
			in:   `{"id":"e1","type":"click","user":"u1","item":"i1","ts":"2024-06-01T11:00:00Z","value":2.5,"session":"s1","context":{"page":"home"}}`,
			want: Interaction{ID: "e1", Type: "click", User: "u1", Item: "i1", TS: ms("2024-06-01T11:00:00Z"), Value: 2.5, Session: "s1", Context: []byte(`{"page":"home"}`)},
		},
		{name: "numeric ids", in: `{"type":"view","user":42,"item":7,"id":-3,"session":99}`, want: Interaction{ID: "-3", Type: "view", User: "42", Item: "7", Session: "99"}},
		{name: "null ids", in: `{"type":"view","user":null,"item":null}`, want: Interaction{Type: "view"}},
		{name: "float id rejected", in: `{"type":"view","user":4.2,"item":"i"}`, wantErr: "expected a string or integer id"},
		{name: "bool id rejected", in: `{"type":"view","user":true,"item":"i"}`, wantErr: "expected a string or integer id"},
		{name: "object id rejected", in: `{"type":"view","user":{"a":1},"item":"i"}`, wantErr: "invalid event"},
		{name: "ts unix seconds", in: `{"ts":1717239600}`, want: Interaction{TS: 1717239600000}},
		{name: "ts fractional seconds", in: `{"ts":1717239600.25}`, want: Interaction{TS: 1717239600250}},
		{name: "ts seconds as string", in: `{"ts":"1717239600"}`, want: Interaction{TS: 1717239600000}},
		{name: "ts RFC3339 fractional", in: `{"ts":"2024-06-01T11:00:00.5Z"}`, want: Interaction{TS: ms("2024-06-01T11:00:00Z") + 500}},
		{name: "ts milliseconds rejected", in: `{"ts":1717239600000}`, wantErr: "milliseconds"},
		{name: "ts negative milliseconds rejected", in: `{"ts":-1717239600000}`, wantErr: "milliseconds"},
		{name: "ts garbage string", in: `{"ts":"soon"}`, wantErr: "neither RFC3339 nor unix seconds"},
		{name: "ts bool", in: `{"ts":true}`, wantErr: "ts must be RFC3339 or unix seconds"},
		{name: "ts null", in: `{"ts":null}`, want: Interaction{}},
		{name: "value absent is zero", in: `{"user":"u"}`, want: Interaction{User: "u"}},
		{name: "value string rejected", in: `{"value":"3"}`, wantErr: "value"},
		{name: "context null", in: `{"context":null}`, want: Interaction{}},
		{name: "context array rejected", in: `{"context":[1,2]}`, wantErr: "context must be a JSON object"},
		{name: "context string rejected", in: `{"context":"x"}`, wantErr: "context must be a JSON object"},
		{name: "unknown fields ignored", in: `{"user":"u","extra":{"deep":[1,2,3]}}`, want: Interaction{User: "u"}},
		{name: "surrounding whitespace", in: " \t{\"user\":\"u\"}\r\n", want: Interaction{User: "u"}},
		{name: "type number rejected", in: `{"type":5}`, wantErr: "type"},
		{name: "array is not an object", in: `[{"user":"u"}]`, wantErr: "expected a JSON object"},
		{name: "empty", in: ``, wantErr: "expected a JSON object"},
		{name: "truncated", in: `{"user":"u"`, wantErr: "invalid event"},
		{name: "trailing garbage", in: `{"user":"u"} x`, wantErr: "invalid event"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e Interaction
			err := DecodeInteraction([]byte(tc.in), &e)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("want error containing %q, got %+v", tc.wantErr, e)
				}
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %q: want ErrInvalid containing %q", err, tc.wantErr)
				}
				checkNoGoNames(t, err)
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(e, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", e, tc.want)
			}
		})
	}
}

// The context is copied out of the request body, which the server reuses.
func TestDecodeInteractionContextIsCopied(t *testing.T) {
	body := []byte(`{"context":{"a":1}}`)
	var e Interaction
	if err := DecodeInteraction(body, &e); err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'X'
	}
	if string(e.Context) != `{"a":1}` {
		t.Fatalf("context aliases the body: %q", e.Context)
	}
}

// checkNoGoNames fails when a client-facing error names Go types.
func checkNoGoNames(t *testing.T, err error) {
	t.Helper()
	for _, leak := range []string{"flexID", "flexTS", "wireInteraction", "wireItem", "Go struct", "json.RawMessage", "float64", "json: "} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q leaks %q", err, leak)
		}
	}
}

func TestParseJSONArray(t *testing.T) {
	v := testValidator()
	now := testNow.UnixMilli()
	ok := func(id string) string {
		return `{"id":"` + id + `","type":"view","user":"u","item":"i","ts":"2024-06-01T11:00:00Z"}`
	}
	tests := []struct {
		name       string
		body       string
		max        int
		wantErr    string
		wantIDs    []string
		wantIndex  []int
		wantErrors []IndexError // Error is matched as a substring
		wantTotal  int
	}{
		{name: "array", body: "[" + ok("a") + "," + ok("b") + "]", wantIDs: []string{"a", "b"}, wantIndex: []int{0, 1}, wantTotal: 2},
		{name: "single object", body: ok("a"), wantIDs: []string{"a"}, wantIndex: []int{0}, wantTotal: 1},
		{name: "single object with whitespace", body: "\n  " + ok("a") + "\n", wantIDs: []string{"a"}, wantIndex: []int{0}, wantTotal: 1},
		{
			name:    "bad elements rejected by index, rest accepted",
			body:    "[" + ok("a") + `,{"type":"view","item":"i"},` + ok("c") + `,42,{"type":"like","user":"u","item":"i"},` + ok("f") + "]",
			wantIDs: []string{"a", "c", "f"}, wantIndex: []int{0, 2, 5},
			wantErrors: []IndexError{{1, `missing field "user"`}, {3, "expected a JSON object"}, {4, `unknown type "like"`}},
			wantTotal:  6,
		},
		{
			name:    "malformed element field rejected by index",
			body:    "[" + ok("a") + `,{"type":"view","user":"u","item":"i","ts":1717239600000}]`,
			wantIDs: []string{"a"}, wantIndex: []int{0},
			wantErrors: []IndexError{{1, "milliseconds"}},
			wantTotal:  2,
		},
		{
			name:    "validation runs on every element",
			body:    `[{"type":"view","user":"u","item":"i","ts":1}, {"type":"view","user":"u","item":"i","value":1}]`,
			wantIDs: []string{""}, wantIndex: []int{1},
			wantErrors: []IndexError{{0, "before 1990"}},
			wantTotal:  2,
		},
		{name: "empty array", body: "[]", wantErr: "empty array"},
		{name: "null", body: "null", wantErr: "empty array"},
		{name: "at maxEvents", body: "[" + ok("a") + "," + ok("b") + "]", max: 2, wantIDs: []string{"a", "b"}, wantIndex: []int{0, 1}, wantTotal: 2},
		{name: "over maxEvents", body: "[" + ok("a") + "," + ok("b") + "," + ok("c") + "]", max: 2, wantErr: "3 events in one request, limit 2"},
		{name: "maxEvents 0 is unlimited", body: "[" + ok("a") + "," + ok("b") + "," + ok("c") + "]", wantIDs: []string{"a", "b", "c"}, wantIndex: []int{0, 1, 2}, wantTotal: 3},
		{name: "empty body", body: "", wantErr: "empty body"},
		{name: "blank body", body: " \n\t", wantErr: "empty body"},
		{name: "not JSON", body: "hello", wantErr: "body must be a JSON array"},
		{name: "JSON string", body: `"x"`, wantErr: "body must be a JSON array"},
		{name: "JSON number", body: `12`, wantErr: "body must be a JSON array"},
		{name: "truncated array", body: "[" + ok("a") + ",", wantErr: "body must be a JSON array"},
		{name: "array of garbage", body: "[nope]", wantErr: "body must be a JSON array"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseJSONArray([]byte(tc.body), v, tc.max)
			checkBatch(t, b, err, tc.wantErr, tc.wantIDs, tc.wantIndex, tc.wantErrors, tc.wantTotal)
		})
	}

	t.Run("fields", func(t *testing.T) {
		b, err := ParseJSONArray([]byte(`[{"type":"rating","user":17,"item":"m1","value":4.5,"session":"s","context":{"k":"v"}}]`), v, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := Interaction{Type: "rating", User: "17", Item: "m1", Value: 4.5, Session: "s", TS: now, Context: []byte(`{"k":"v"}`)}
		if len(b.Events) != 1 || !reflect.DeepEqual(b.Events[0], want) {
			t.Fatalf("got %+v, want %+v (ts stamped with the validator clock)", b.Events, want)
		}
	})
}

func checkBatch(t *testing.T, b *Batch, err error, wantErr string, wantIDs []string, wantIndex []int, wantErrors []IndexError, wantTotal int) {
	t.Helper()
	if wantErr != "" {
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error = %v, want ErrInvalid containing %q", err, wantErr)
		}
		if b != nil {
			t.Fatalf("batch returned with a request error: %+v", b)
		}
		return
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	var ids []string
	for _, e := range b.Events {
		ids = append(ids, e.ID)
	}
	if !reflect.DeepEqual(ids, wantIDs) {
		t.Errorf("event ids = %q, want %q", ids, wantIDs)
	}
	if len(b.Index) != len(b.Events) || (len(wantIndex) > 0 && !reflect.DeepEqual(b.Index, wantIndex)) {
		t.Errorf("Index = %v, want %v", b.Index, wantIndex)
	}
	if len(b.Errors) != len(wantErrors) {
		t.Fatalf("errors = %+v, want %+v", b.Errors, wantErrors)
	}
	for i, e := range b.Errors {
		w := wantErrors[i]
		if e.Index != w.Index || !strings.Contains(e.Error, w.Error) {
			t.Errorf("errors[%d] = %+v, want index %d containing %q", i, e, w.Index, w.Error)
		}
		if strings.HasPrefix(e.Error, ErrInvalid.Error()) {
			t.Errorf("errors[%d] = %q keeps the %q prefix", i, e.Error, ErrInvalid)
		}
	}
	if b.Total != wantTotal {
		t.Errorf("Total = %d, want %d", b.Total, wantTotal)
	}
	if len(b.Events)+len(b.Errors) != b.Total {
		t.Errorf("%d events + %d errors != total %d", len(b.Events), len(b.Errors), b.Total)
	}
}

func TestParseNDJSON(t *testing.T) {
	v := testValidator()
	ok := func(id string) string {
		return `{"id":"` + id + `","type":"view","user":"u","item":"i","ts":1717239600}`
	}
	tests := []struct {
		name       string
		body       string
		max        int
		wantErr    string
		wantIDs    []string
		wantIndex  []int
		wantErrors []IndexError
		wantTotal  int
	}{
		{name: "two lines", body: ok("a") + "\n" + ok("b") + "\n", wantIDs: []string{"a", "b"}, wantIndex: []int{0, 1}, wantTotal: 2},
		{name: "no trailing newline", body: ok("a") + "\n" + ok("b"), wantIDs: []string{"a", "b"}, wantIndex: []int{0, 1}, wantTotal: 2},
		{name: "blank lines keep line index", body: "\n" + ok("a") + "\n\n   \n" + ok("b") + "\n\n", wantIDs: []string{"a", "b"}, wantIndex: []int{1, 4}, wantTotal: 2},
		{name: "CRLF", body: ok("a") + "\r\n" + ok("b") + "\r\n", wantIDs: []string{"a", "b"}, wantIndex: []int{0, 1}, wantTotal: 2},
		{
			name:    "bad line index is line number minus one",
			body:    ok("a") + "\n\n" + `{"type":"view","user":"u"}` + "\n" + "not json\n" + ok("e"),
			wantIDs: []string{"a", "e"}, wantIndex: []int{0, 4},
			wantErrors: []IndexError{{2, `missing field "item"`}, {3, "expected a JSON object"}},
			wantTotal:  4,
		},
		{name: "array line is an element error", body: "[" + ok("a") + "]", wantErrors: []IndexError{{0, "expected a JSON object"}}, wantTotal: 1},
		{name: "at maxEvents, blank lines free", body: ok("a") + "\n\n\n" + ok("b") + "\n\n", max: 2, wantIDs: []string{"a", "b"}, wantIndex: []int{0, 3}, wantTotal: 2},
		{name: "over maxEvents", body: ok("a") + "\n" + ok("b") + "\n" + ok("c"), max: 2, wantErr: "more than 2 events in one request"},
		{name: "bad lines count toward maxEvents", body: "x\ny\nz", max: 2, wantErr: "more than 2 events"},
		{name: "empty body", body: "", wantErr: "empty body"},
		{name: "only blank lines", body: "\n \n\t\n", wantErr: "empty body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseNDJSON([]byte(tc.body), v, tc.max)
			checkBatch(t, b, err, tc.wantErr, tc.wantIDs, tc.wantIndex, tc.wantErrors, tc.wantTotal)
		})
	}
}

func TestDecodeItem(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		pathID  string
		want    Item
		wantErr string
	}{
		{name: "body id", body: `{"item":"i1","categories":["a","b"],"hidden":true,"ts":1717239600}`, want: Item{ID: "i1", Categories: []string{"a", "b"}, Hidden: true, TS: 1717239600000}},
		{name: "path id only", body: `{"categories":["a"]}`, pathID: "p1", want: Item{ID: "p1", Categories: []string{"a"}}},
		{name: "path id matches body", body: `{"item":"p1"}`, pathID: "p1", want: Item{ID: "p1"}},
		{name: "numeric body id matches path", body: `{"item":42}`, pathID: "42", want: Item{ID: "42"}},
		{name: "path id vs body id mismatch", body: `{"item":"other"}`, pathID: "p1", wantErr: `item "other" in body does not match "p1" in path`},
		{name: "no id anywhere is left to validation", body: `{}`, want: Item{}},
		{name: "ts RFC3339", body: `{"item":"i","ts":"2024-06-01T11:00:00Z"}`, want: Item{ID: "i", TS: ms("2024-06-01T11:00:00Z")}},
		{name: "ts milliseconds rejected", body: `{"item":"i","ts":1717239600000}`, wantErr: "milliseconds"},
		{
			name: "attributes keep non-strings as JSON text",
			body: `{"item":"i","attributes":{"color":"red","size":42,"price":9.5,"tags":["a","b"],"dims":{"w":1},"new":true,"gone":null,"quote":"a\"b","empty":""}}`,
			want: Item{ID: "i", Attributes: map[string]string{
				"color": "red", "size": "42", "price": "9.5", "tags": `["a","b"]`, "dims": `{"w":1}`,
				"new": "true", "gone": "null", "quote": `a"b`, "empty": "",
			}},
		},
		{name: "empty attributes stay nil", body: `{"item":"i","attributes":{}}`, want: Item{ID: "i"}},
		{name: "category not a string", body: `{"item":"i","categories":[1]}`, wantErr: "invalid event"},
		{name: "hidden not a bool", body: `{"item":"i","hidden":"yes"}`, wantErr: "hidden"},
		{name: "attributes not an object", body: `{"item":"i","attributes":[1]}`, wantErr: "attributes"},
		{name: "not an object", body: `["i"]`, wantErr: "expected a JSON object"},
		{name: "not JSON", body: `{"item":`, wantErr: "invalid event"},
		{name: "empty", body: ``, pathID: "p", wantErr: "expected a JSON object"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var it Item
			err := DecodeItem([]byte(tc.body), tc.pathID, &it)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want ErrInvalid containing %q", err, tc.wantErr)
				}
				checkNoGoNames(t, err)
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(it, tc.want) {
				t.Fatalf("got  %#v\nwant %#v", it, tc.want)
			}
		})
	}
}

func FuzzParseNDJSON(f *testing.F) {
	seeds := []string{
		"",
		"\n\n",
		`{"id":"a","type":"view","user":"u","item":"i","ts":1717239600}`,
		`{"type":"view","user":42,"item":7,"ts":"2024-06-01T11:00:00Z","value":1.5,"session":"s","context":{"a":[1,2]}}` + "\n" + `{"type":"click","user":"u","item":"i"}`,
		"\r\n{\"user\":\"u\"}\r\n\r\n[1,2]\nnull\n",
		`{"ts":1717239600000}`,
		`{"user":"\u0000","item":"i","type":"view"}`,
		`{"user":{"a":1},"item":[],"ts":{},"context":"x","value":"NaN"}`,
		"{\"user\":\"u\",\"item\":\"i\",\"type\":\"view\",\"ts\":1e300}\n{\"ts\":-1e300}",
		"\xff\xfe{\"user\":\"u\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s), 0)
		f.Add([]byte(s), 1)
	}
	v := testValidator()
	f.Fuzz(func(t *testing.T, body []byte, max int) {
		max %= 8
		b, err := ParseNDJSON(body, v, max)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("request error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		if b.Total == 0 || len(b.Events)+len(b.Errors) != b.Total || len(b.Index) != len(b.Events) {
			t.Fatalf("inconsistent batch: total %d, %d events, %d index, %d errors", b.Total, len(b.Events), len(b.Index), len(b.Errors))
		}
		if max > 0 && b.Total > max {
			t.Fatalf("%d events accepted, limit %d", b.Total, max)
		}
		lines := strings.Count(string(body), "\n") + 1
		seen := map[int]bool{}
		for _, i := range b.Index {
			seen[i] = true
		}
		for _, e := range b.Errors {
			seen[e.Index] = true
		}
		for i := range seen {
			if i < 0 || i >= lines {
				t.Fatalf("index %d outside %d lines", i, lines)
			}
		}
		if len(seen) != b.Total {
			t.Fatalf("indices repeat: %d distinct for %d events", len(seen), b.Total)
		}
		// Every accepted event is valid: re-validating it changes nothing.
		for i := range b.Events {
			e := b.Events[i]
			if err := v.Interaction(&e); err != nil {
				t.Fatalf("accepted event fails validation: %v", err)
			}
			if !reflect.DeepEqual(e, b.Events[i]) {
				t.Fatalf("re-validation changed an accepted event")
			}
		}
	})
}

// A body of blank lines must not make the parser reserve an event slot per
// line: with a limit, the batch never needs more than the limit.
func TestParseNDJSONBlankLinesDoNotAmplifyMemory(t *testing.T) {
	body := append(bytes.Repeat([]byte{'\n'}, 1<<20), `{"type":"view","user":"u","item":"i"}`...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b, err := ParseNDJSON(body, testValidator(), 1000)
	runtime.ReadMemStats(&after)
	if err != nil || len(b.Events) != 1 || b.Index[0] != 1<<20 {
		t.Fatalf("batch %+v, err %v", b, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Fatalf("parsing a %d-byte body allocated %d bytes", len(body), alloc)
	}
}
