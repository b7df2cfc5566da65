package event

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// testNow is the validator clock used throughout the package's tests.
var testNow = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

func testValidator(extra ...string) *Validator {
	v := NewValidator(extra...)
	v.Now = func() time.Time { return testNow }
	return v
}

func TestValidatorInteraction(t *testing.T) {
	now := testNow.UnixMilli()
	valid := func() Interaction {
		return Interaction{ID: "e1", Type: "view", User: "u1", Item: "i1", TS: now - 1000, Session: "s1", Context: []byte(`{"page":"home"}`)}
	}
	tests := []struct {
		name    string
		mod     func(e *Interaction)
		extra   []string
		wantErr string // substring; "" means valid
	}{
		{name: "valid", mod: func(e *Interaction) {}},
		{name: "every default type", mod: func(e *Interaction) { e.Type = "rating"; e.Value = 4.5 }},
		{name: "missing user", mod: func(e *Interaction) { e.User = "" }, wantErr: `missing field "user"`},
		{name: "missing item", mod: func(e *Interaction) { e.Item = "" }, wantErr: `missing field "item"`},
		{name: "missing type", mod: func(e *Interaction) { e.Type = "" }, wantErr: `missing field "type"`},
		{name: "unknown type", mod: func(e *Interaction) { e.Type = "like" }, wantErr: `unknown type "like"`},
		{name: "unknown type lists accepted", mod: func(e *Interaction) { e.Type = "like" }, wantErr: "view,click,cart,purchase,rating"},
		{name: "unknown type is clipped", mod: func(e *Interaction) { e.Type = strings.Repeat("x", 500) }, wantErr: strings.Repeat("x", 64) + "…"},
		{name: "extra type accepted", mod: func(e *Interaction) { e.Type = "like" }, extra: []string{"like"}},
		{name: "type is case sensitive", mod: func(e *Interaction) { e.Type = "View" }, wantErr: "unknown type"},
		{name: "id optional", mod: func(e *Interaction) { e.ID = "" }},
		{name: "session optional", mod: func(e *Interaction) { e.Session = "" }},
		{name: "context optional", mod: func(e *Interaction) { e.Context = nil }},
		{name: "ts 1990 exactly", mod: func(e *Interaction) { e.TS = minTS }},
		{name: "ts before 1990", mod: func(e *Interaction) { e.TS = minTS - 1 }, wantErr: "before 1990-01-01"},
		{name: "ts in seconds", mod: func(e *Interaction) { e.TS = now / 1000 }, wantErr: "seconds vs milliseconds"},
		{name: "ts negative", mod: func(e *Interaction) { e.TS = -5 }, wantErr: "before 1990-01-01"},
		{name: "ts 1h in the future", mod: func(e *Interaction) { e.TS = now + time.Hour.Milliseconds() }},
		{name: "ts more than 1h in the future", mod: func(e *Interaction) { e.TS = now + time.Hour.Milliseconds() + 1 }, wantErr: "more than 1h0m0s in the future"},
		{name: "user at limit", mod: func(e *Interaction) { e.User = strings.Repeat("u", MaxIDLen) }},
		{name: "user oversize", mod: func(e *Interaction) { e.User = strings.Repeat("u", MaxIDLen+1) }, wantErr: "user is 257 bytes, limit 256"},
		{name: "item oversize", mod: func(e *Interaction) { e.Item = strings.Repeat("i", MaxIDLen+1) }, wantErr: "item is 257 bytes"},
		{name: "id oversize", mod: func(e *Interaction) { e.ID = strings.Repeat("e", MaxIDLen+1) }, wantErr: "id is 257 bytes"},
		{name: "session oversize", mod: func(e *Interaction) { e.Session = strings.Repeat("s", MaxIDLen+1) }, wantErr: "session is 257 bytes"},
		{name: "context at limit", mod: func(e *Interaction) { e.Context = make([]byte, MaxContextLen) }},
		{name: "context oversize", mod: func(e *Interaction) { e.Context = make([]byte, MaxContextLen+1) }, wantErr: "context is 4097 bytes, limit 4096"},
		{name: "user NUL", mod: func(e *Interaction) { e.User = "u\x00" }, wantErr: "user contains a control character"},
		{name: "user newline", mod: func(e *Interaction) { e.User = "u\n1" }, wantErr: "user contains a control character"},
		{name: "item tab", mod: func(e *Interaction) { e.Item = "\ti" }, wantErr: "item contains a control character"},
		{name: "id DEL", mod: func(e *Interaction) { e.ID = "e\x7f" }, wantErr: "id contains a control character"},
		{name: "session escape", mod: func(e *Interaction) { e.Session = "\x1b[31m" }, wantErr: "session contains a control character"},
		{name: "utf-8 ids allowed", mod: func(e *Interaction) { e.User = "üser-日本"; e.Item = "ítem" }},
		{name: "spaces allowed", mod: func(e *Interaction) { e.User = "a user" }},
		{name: "NaN value", mod: func(e *Interaction) { e.Value = math.NaN() }, wantErr: "value must be a finite number"},
		{name: "+Inf value", mod: func(e *Interaction) { e.Value = math.Inf(1) }, wantErr: "value must be a finite number"},
		{name: "-Inf value", mod: func(e *Interaction) { e.Value = math.Inf(-1) }, wantErr: "value must be a finite number"},
		{name: "negative value", mod: func(e *Interaction) { e.Value = -3 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := valid()
			tc.mod(&e)
			err := testValidator(tc.extra...).Interaction(&e)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q, got nil", tc.wantErr)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidatorStampsZeroTS(t *testing.T) {
	e := Interaction{Type: "view", User: "u", Item: "i"}
	if err := testValidator().Interaction(&e); err != nil {
		t.Fatal(err)
	}
	if e.TS != testNow.UnixMilli() {
		t.Fatalf("TS = %d, want validator clock %d", e.TS, testNow.UnixMilli())
	}

	// A validator whose clock is far from the real one must still use its own.
	v := NewValidator()
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	v.Now = func() time.Time { return past }
	e = Interaction{Type: "view", User: "u", Item: "i"}
	if err := v.Interaction(&e); err != nil {
		t.Fatal(err)
	}
	if e.TS != past.UnixMilli() {
		t.Fatalf("TS = %d, want %d", e.TS, past.UnixMilli())
	}
	// A time that is "now" for the real clock is in the future for this one.
	e = Interaction{Type: "view", User: "u", Item: "i", TS: testNow.UnixMilli()}
	if err := v.Interaction(&e); err == nil {
		t.Fatal("event two decades ahead of the validator clock was accepted")
	}
}

func TestValidatorDefaultClock(t *testing.T) {
	e := Interaction{Type: "view", User: "u", Item: "i"}
	before := time.Now().UnixMilli()
	if err := NewValidator().Interaction(&e); err != nil {
		t.Fatal(err)
	}
	if after := time.Now().UnixMilli(); e.TS < before || e.TS > after {
		t.Fatalf("TS %d not within [%d, %d]", e.TS, before, after)
	}
}

func TestValidatorItem(t *testing.T) {
	many := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = "c" + strings.Repeat("x", i)
		}
		return s
	}
	attrs := func(n int) map[string]string {
		m := map[string]string{}
		for i := 0; i < n; i++ {
			m["a"+strings.Repeat("x", i)] = "v"
		}
		return m
	}
	tests := []struct {
		name    string
		it      Item
		wantErr string
	}{
		{name: "valid", it: Item{ID: "i1", Categories: []string{"shoes", "sale"}, Attributes: map[string]string{"color": "red"}, TS: 1}},
		{name: "missing id", it: Item{}, wantErr: `missing field "item"`},
		{name: "id control char", it: Item{ID: "i\n"}, wantErr: "item contains a control character"},
		{name: "id oversize", it: Item{ID: strings.Repeat("i", MaxIDLen+1)}, wantErr: "item is 257 bytes"},
		{name: "categories at limit", it: Item{ID: "i", Categories: many(MaxCategories)}},
		{name: "too many categories", it: Item{ID: "i", Categories: many(MaxCategories + 1)}, wantErr: "65 categories, limit 64"},
		{name: "empty category", it: Item{ID: "i", Categories: []string{"a", ""}}, wantErr: `missing field "category"`},
		{name: "category control char", it: Item{ID: "i", Categories: []string{"a\x01"}}, wantErr: "category contains a control character"},
		{name: "attributes at limit", it: Item{ID: "i", Attributes: attrs(MaxAttributes)}},
		{name: "too many attributes", it: Item{ID: "i", Attributes: attrs(MaxAttributes + 1)}, wantErr: "65 attributes, limit 64"},
		{name: "empty attribute name", it: Item{ID: "i", Attributes: map[string]string{"": "v"}}, wantErr: "attribute name must be 1..64 bytes"},
		{name: "long attribute name", it: Item{ID: "i", Attributes: map[string]string{strings.Repeat("k", MaxTypeLen+1): "v"}}, wantErr: "attribute name must be 1..64 bytes"},
		{name: "attribute value at limit", it: Item{ID: "i", Attributes: map[string]string{"k": strings.Repeat("v", MaxAttrLen)}}},
		{name: "attribute value oversize", it: Item{ID: "i", Attributes: map[string]string{"k": strings.Repeat("v", MaxAttrLen+1)}}, wantErr: `attribute "k" is 1025 bytes, limit 1024`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			it := tc.it
			err := testValidator().Item(&it)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want ErrInvalid containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestValidatorItemStampsZeroTS(t *testing.T) {
	it := Item{ID: "i"}
	if err := testValidator().Item(&it); err != nil {
		t.Fatal(err)
	}
	if it.TS != testNow.UnixMilli() {
		t.Fatalf("TS = %d, want %d", it.TS, testNow.UnixMilli())
	}
	it = Item{ID: "i", TS: 42}
	if err := testValidator().Item(&it); err != nil {
		t.Fatal(err)
	}
	if it.TS != 42 {
		t.Fatalf("explicit TS overwritten: %d", it.TS)
	}
}

// TestRecordCheck: what a record read back from a log must satisfy, with no
// configuration and no clock: the same record always gets the same verdict.
func TestRecordCheck(t *testing.T) {
	now := testNow.UnixMilli()
	interaction := func(mod func(e *Interaction)) Record {
		r := Record{Kind: KindInteraction, Interaction: Interaction{ID: "e1", Type: "view", User: "u1", Item: "i1", TS: now}}
		mod(&r.Interaction)
		return r
	}
	tests := []struct {
		name    string
		rec     Record
		wantErr string // substring; "" means valid
	}{
		{"interaction", interaction(func(*Interaction) {}), ""},
		{"type no validator accepts", interaction(func(e *Interaction) { e.Type = "like" }), ""},
		{"ts far in the future", interaction(func(e *Interaction) { e.TS = now + 365*24*time.Hour.Milliseconds() }), ""},
		{"missing user", interaction(func(e *Interaction) { e.User = "" }), `missing field "user"`},
		{"user with a control character", interaction(func(e *Interaction) { e.User = "u\n" }), "control character"},
		{"missing type", interaction(func(e *Interaction) { e.Type = "" }), `missing field "type"`},
		{"type oversize", interaction(func(e *Interaction) { e.Type = strings.Repeat("t", MaxTypeLen+1) }), "type is 65 bytes"},
		{"zero ts", interaction(func(e *Interaction) { e.TS = 0 }), "before 1990-01-01"},
		{"NaN value", interaction(func(e *Interaction) { e.Value = math.NaN() }), "finite"},
		{"absurd value", interaction(func(e *Interaction) { e.Value = -2 * MaxValue }), "out of range"},
		{"context oversize", interaction(func(e *Interaction) { e.Context = make([]byte, MaxContextLen+1) }), "context is"},
		{"item", Record{Kind: KindItem, Item: Item{ID: "i1", Categories: []string{"c"}}}, ""},
		{"item without id", Record{Kind: KindItem, Item: Item{Categories: []string{"c"}}}, `missing field "item"`},
		{"item with an empty category", Record{Kind: KindItem, Item: Item{ID: "i1", Categories: []string{""}}}, `missing field "category"`},
		{"consent", Record{Kind: KindUser, User: User{ID: "u1", Attributes: FullConsent.Attributes()}}, ""},
		{"consent without user", Record{Kind: KindUser}, "user id must be"},
		{"erasure of any user id the API takes", Record{Kind: KindErase, User: User{ID: "u\x00\n"}}, ""},
		{"erasure without user", Record{Kind: KindErase}, "user id must be"},
		{"redacted", Record{Kind: KindRedacted}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.rec.Check()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Check() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Check() = %v, want an error containing %q", err, tc.wantErr)
			case err != nil && !errors.Is(err, ErrInvalid):
				t.Fatalf("Check() = %v, not ErrInvalid", err)
			}
		})
	}
}
