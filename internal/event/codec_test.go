package event

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/ripple-rec/ripple/internal/wire"
)

func codecRecords() map[string]Record {
	return map[string]Record{
		"interaction full": {Kind: KindInteraction, Interaction: Interaction{
			ID: "e-1", Type: "purchase", User: "üser", Item: "item/42", TS: 1717239600123, Value: -12.75,
			Session: "s", Context: []byte(`{"page":"home","pos":[1,2]}`),
		}},
		"interaction minimal": {Kind: KindInteraction, Interaction: Interaction{Type: "view", User: "u", Item: "i"}},
		"interaction extremes": {Kind: KindInteraction, Interaction: Interaction{
			Type: "rating", User: strings.Repeat("u", MaxIDLen), Item: "\x00\xff", TS: math.MinInt64, Value: math.MaxFloat64,
			Context: bytes.Repeat([]byte{'x'}, MaxContextLen),
		}},
		"interaction max ts": {Kind: KindInteraction, Interaction: Interaction{Type: "view", User: "u", Item: "i", TS: math.MaxInt64, Value: math.SmallestNonzeroFloat64}},
		"item full": {Kind: KindItem, Item: Item{
			ID: "i1", Categories: []string{"shoes", "sale", ""}, Attributes: map[string]string{"color": "red", "size": "42", "": "empty key"},
			Hidden: true, TS: 1717239600000,
		}},
		"item minimal":           {Kind: KindItem, Item: Item{ID: "i2"}},
		"item max categories":    {Kind: KindItem, Item: Item{ID: "i3", Categories: strings.Split(strings.Repeat("c,", MaxCategories-1)+"c", ",")}},
		"user with attributes":   {Kind: KindUser, User: User{ID: "u1", Attributes: map[string]string{"consent": "false"}, TS: 1}},
		"user minimal":           {Kind: KindUser, User: User{ID: "u2"}},
		"erase":                  {Kind: KindErase, User: User{ID: "u3", TS: 1717239600000}},
		"erase with attributes":  {Kind: KindErase, User: User{ID: "u4", Attributes: map[string]string{"reason": "gdpr"}}},
		"interaction empty user": {Kind: KindInteraction},
	}
}

func TestBinaryRoundTrip(t *testing.T) {
	for name, rec := range codecRecords() {
		t.Run(name, func(t *testing.T) {
			b := AppendBinary(nil, &rec)
			var got Record
			if err := DecodeBinary(b, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, rec) {
				t.Fatalf("round trip:\n got  %#v\n want %#v", got, rec)
			}
			// Appending to a non-empty buffer leaves the prefix alone.
			b2 := AppendBinary([]byte("prefix"), &rec)
			if !bytes.Equal(b2[:6], []byte("prefix")) || !bytes.Equal(b2[6:], b) {
				t.Fatal("AppendBinary does not append")
			}
			// The decoded record must not alias the input buffer.
			for i := range b {
				b[i] = 0xAA
			}
			if !reflect.DeepEqual(got, rec) {
				t.Fatal("decoded record aliases the input")
			}
		})
	}
}

func TestBinaryNaNValue(t *testing.T) {
	rec := Record{Kind: KindInteraction, Interaction: Interaction{Type: "view", User: "u", Item: "i", Value: math.NaN()}}
	var got Record
	if err := DecodeBinary(AppendBinary(nil, &rec), &got); err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(got.Interaction.Value) {
		t.Fatalf("value = %v, want NaN", got.Interaction.Value)
	}
}

// Decoding into a reused record must not leave fields of the previous one.
func TestBinaryDecodeIntoReusedRecord(t *testing.T) {
	var r Record
	full := codecRecords()["item full"]
	if err := DecodeBinary(AppendBinary(nil, &full), &r); err != nil {
		t.Fatal(err)
	}
	min := codecRecords()["item minimal"]
	if err := DecodeBinary(AppendBinary(nil, &min), &r); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Item, min.Item) {
		t.Fatalf("reused record kept old item fields: %#v", r.Item)
	}
	in := codecRecords()["interaction full"]
	if err := DecodeBinary(AppendBinary(nil, &in), &r); err != nil {
		t.Fatal(err)
	}
	inMin := codecRecords()["interaction minimal"]
	if err := DecodeBinary(AppendBinary(nil, &inMin), &r); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Interaction, inMin.Interaction) {
		t.Fatalf("reused record kept old interaction fields: %#v", r.Interaction)
	}
}

// Equal maps must encode to equal bytes whatever their iteration order.
func TestBinaryCanonicalMaps(t *testing.T) {
	attrs := map[string]string{}
	for i := 0; i < 50; i++ {
		attrs[strings.Repeat("k", i+1)] = "v"
	}
	rec := Record{Kind: KindItem, Item: Item{ID: "i", Attributes: attrs}}
	want := AppendBinary(nil, &rec)
	for i := 0; i < 20; i++ {
		if got := AppendBinary(nil, &rec); !bytes.Equal(got, want) {
			t.Fatal("encoding depends on map iteration order")
		}
	}
}

func TestBinaryCorrupt(t *testing.T) {
	over := func(kind Kind, fields func(b []byte) []byte) []byte {
		return fields([]byte{codecVersion, byte(kind)})
	}
	tests := map[string][]byte{
		"empty":           nil,
		"version only":    {codecVersion},
		"wrong version":   {2, byte(KindInteraction), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		"version zero":    {0, byte(KindUser), 0, 0, 0},
		"kind zero":       {codecVersion, 0, 0, 0, 0},
		"kind unknown":    {codecVersion, 6, 0, 0, 0},
		"redacted, body":  {codecVersion, byte(KindRedacted), 0},
		"kind 255":        {codecVersion, 255},
		"string too long": {codecVersion, byte(KindUser), 10, 'a', 'b'},
		"huge length": over(KindInteraction, func(b []byte) []byte {
			return wire.AppendUvarint(b, math.MaxUint64)
		}),
		"varint overflow": over(KindUser, func(b []byte) []byte {
			b = wire.AppendString(b, "u")
			return append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0)
		}),
		"too many categories": over(KindItem, func(b []byte) []byte {
			b = wire.AppendString(b, "i")
			b = wire.AppendVarint(b, 0)
			b = wire.AppendBool(b, false)
			b = wire.AppendUvarint(b, MaxCategories+1)
			for i := 0; i <= MaxCategories; i++ {
				b = wire.AppendString(b, "c")
			}
			return wire.AppendUvarint(b, 0)
		}),
		"category count beyond input": over(KindItem, func(b []byte) []byte {
			b = wire.AppendString(b, "i")
			b = wire.AppendVarint(b, 0)
			b = wire.AppendBool(b, false)
			return wire.AppendUvarint(b, 3)
		}),
		"too many attributes": over(KindUser, func(b []byte) []byte {
			b = wire.AppendString(b, "u")
			b = wire.AppendVarint(b, 0)
			b = wire.AppendUvarint(b, MaxAttributes+1)
			for i := 0; i <= MaxAttributes; i++ {
				b = wire.AppendString(b, strings.Repeat("k", i+1))
				b = wire.AppendString(b, "v")
			}
			return b
		}),
		"attribute count beyond input": over(KindUser, func(b []byte) []byte {
			b = wire.AppendString(b, "u")
			b = wire.AppendVarint(b, 0)
			return wire.AppendUvarint(b, 40)
		}),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			var r Record
			if err := DecodeBinary(b, &r); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeBinary(%x) = %v, want ErrCorrupt", b, err)
			}
		})
	}
}

// Every strict prefix of a valid record is a torn write and must be rejected.
func TestBinaryTruncated(t *testing.T) {
	for name, rec := range codecRecords() {
		b := AppendBinary(nil, &rec)
		for n := 0; n < len(b); n++ {
			var r Record
			if err := DecodeBinary(b[:n], &r); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: prefix of %d/%d bytes: err = %v, want ErrCorrupt", name, n, len(b), err)
			}
		}
	}
}

// Flipping any single byte must never panic; it may decode to another record.
func TestBinaryBitFlips(t *testing.T) {
	for name, rec := range codecRecords() {
		b := AppendBinary(nil, &rec)
		for i := range b {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				c := append([]byte(nil), b...)
				c[i] ^= x
				var r Record
				func() {
					defer func() {
						if p := recover(); p != nil {
							t.Fatalf("%s: flipping byte %d by %#x panics: %v", name, i, x, p)
						}
					}()
					_ = DecodeBinary(c, &r)
				}()
			}
		}
	}
}

func FuzzDecodeBinary(f *testing.F) {
	for _, rec := range codecRecords() {
		b := AppendBinary(nil, &rec)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{codecVersion, byte(KindItem), 1, 'i', 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{codecVersion, byte(KindUser), 1, 'u', 0, 2, 1, 'a', 1, 'b', 1, 'a', 1, 'c'}) // duplicate key
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if err := DecodeBinary(b, &r); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v is not ErrCorrupt", err)
			}
			return
		}
		// Whatever decodes re-encodes canonically: encode∘decode is idempotent.
		enc := AppendBinary(nil, &r)
		var r2 Record
		if err := DecodeBinary(enc, &r2); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if enc2 := AppendBinary(nil, &r2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
		if len(enc) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(enc))
		}
	})
}
