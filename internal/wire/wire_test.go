package wire

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	var b []byte
	b = AppendString(b, "")
	b = AppendString(b, "héllo\x00")
	b = AppendBytes(b, nil)
	b = AppendBytes(b, []byte{1, 2, 3})
	for _, v := range []uint64{0, 1, 127, 128, math.MaxUint64} {
		b = AppendUvarint(b, v)
	}
	for _, v := range []int64{0, -1, 1, math.MinInt64, math.MaxInt64} {
		b = AppendVarint(b, v)
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1.5, -math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1)} {
		b = AppendFloat(b, f)
	}
	b = AppendBool(b, true)
	b = AppendBool(b, false)
	b = AppendStringMap(b, map[string]string{"b": "2", "a": "1", "": ""})
	b = AppendStringMap(b, nil)

	d := Decoder{B: b}
	check := func(name string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s = %#v, want %#v", name, got, want)
		}
	}
	check("empty string", d.String(), "")
	check("string", d.String(), "héllo\x00")
	check("nil bytes", d.Bytes(), []byte(nil))
	check("bytes", d.Bytes(), []byte{1, 2, 3})
	for _, v := range []uint64{0, 1, 127, 128, math.MaxUint64} {
		check("uvarint", d.Uvarint(), v)
	}
	for _, v := range []int64{0, -1, 1, math.MinInt64, math.MaxInt64} {
		check("varint", d.Varint(), v)
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1.5, -math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1)} {
		got := d.Float()
		check("float bits", math.Float64bits(got), math.Float64bits(f))
	}
	check("true", d.Bool(), true)
	check("false", d.Bool(), false)
	check("map", d.StringMap(10), map[string]string{"a": "1", "b": "2", "": ""})
	check("nil map", d.StringMap(10), map[string]string(nil))
	if d.Err || len(d.B) != 0 {
		t.Fatalf("Err = %v, %d bytes left", d.Err, len(d.B))
	}
}

func TestFloatNaNBits(t *testing.T) {
	nan := math.Float64frombits(0x7ff8000000000001)
	d := Decoder{B: AppendFloat(nil, nan)}
	if got := math.Float64bits(d.Float()); got != 0x7ff8000000000001 {
		t.Fatalf("NaN payload lost: %#x", got)
	}
}

func TestStringMapCanonical(t *testing.T) {
	m := map[string]string{}
	for i := 0; i < 100; i++ {
		m[strings.Repeat("k", i)] = strings.Repeat("v", 100-i)
	}
	want := AppendStringMap(nil, m)
	for i := 0; i < 20; i++ {
		if !bytes.Equal(AppendStringMap(nil, m), want) {
			t.Fatal("map encoding depends on iteration order")
		}
	}
}

// Decoded strings and byte slices must not alias the input, which callers reuse.
func TestDecodedValuesAreCopies(t *testing.T) {
	b := AppendString(nil, "abc")
	b = AppendBytes(b, []byte("xyz"))
	d := Decoder{B: b}
	s, bs := d.String(), d.Bytes()
	for i := range b {
		b[i] = '!'
	}
	if s != "abc" || string(bs) != "xyz" {
		t.Fatalf("decoded values alias input: %q %q", s, bs)
	}
}

func TestRawAliases(t *testing.T) {
	b := AppendBytes(nil, []byte("xyz"))
	d := Decoder{B: b}
	r := d.Raw()
	b[len(b)-1] = '!'
	if string(r) != "xy!" {
		t.Fatalf("Raw copied: %q", r)
	}
}

func TestDecoderErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		read func(d *Decoder) any
		zero any
	}{
		{"byte empty", nil, func(d *Decoder) any { return d.Byte() }, byte(0)},
		{"bool empty", nil, func(d *Decoder) any { return d.Bool() }, false},
		{"uvarint empty", nil, func(d *Decoder) any { return d.Uvarint() }, uint64(0)},
		{"uvarint truncated", []byte{0x80, 0x80}, func(d *Decoder) any { return d.Uvarint() }, uint64(0)},
		{"uvarint overflow", bytes.Repeat([]byte{0xff}, 11), func(d *Decoder) any { return d.Uvarint() }, uint64(0)},
		{"varint empty", nil, func(d *Decoder) any { return d.Varint() }, int64(0)},
		{"varint overflow", append(bytes.Repeat([]byte{0xff}, 10), 1), func(d *Decoder) any { return d.Varint() }, int64(0)},
		{"float short", []byte{1, 2, 3, 4, 5, 6, 7}, func(d *Decoder) any { return d.Float() }, float64(0)},
		{"string length past end", []byte{5, 'a', 'b'}, func(d *Decoder) any { return d.String() }, ""},
		{"string huge length", AppendUvarint(nil, math.MaxUint64), func(d *Decoder) any { return d.String() }, ""},
		{"bytes length past end", []byte{2, 'a'}, func(d *Decoder) any { return d.Bytes() }, []byte(nil)},
		{"raw no length", nil, func(d *Decoder) any { return d.Raw() }, []byte(nil)},
		{"count over limit", append(AppendUvarint(nil, 11), make([]byte, 20)...), func(d *Decoder) any { return d.Count(10) }, 0},
		{"count past input", AppendUvarint(nil, 5), func(d *Decoder) any { return d.Count(100) }, 0},
		{"count huge", AppendUvarint(nil, math.MaxUint64), func(d *Decoder) any { return d.Count(math.MaxInt) }, 0},
		{"map over limit", AppendStringMap(nil, map[string]string{"a": "1", "b": "2", "c": "3"}), func(d *Decoder) any { return d.StringMap(2) }, map[string]string(nil)},
		{"map truncated value", AppendStringMap(nil, map[string]string{"a": "1"})[:3], func(d *Decoder) any { d.StringMap(5); return nil }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decoder{B: tc.in}
			if got := tc.read(&d); !reflect.DeepEqual(got, tc.zero) {
				t.Errorf("got %#v, want zero value %#v", got, tc.zero)
			}
			if !d.Err {
				t.Fatal("Err not set")
			}
			// The doc promises every further read returns a zero value.
			if v := d.Byte(); v != 0 {
				t.Errorf("Byte after error = %d", v)
			}
			if v := d.Uvarint(); v != 0 {
				t.Errorf("Uvarint after error = %d", v)
			}
			if v := d.String(); v != "" {
				t.Errorf("String after error = %q", v)
			}
			if !d.Err {
				t.Fatal("Err cleared")
			}
		})
	}
}

func TestCountWithinLimits(t *testing.T) {
	d := Decoder{B: append(AppendUvarint(nil, 3), 'a', 'b', 'c')}
	if n := d.Count(3); n != 3 || d.Err {
		t.Fatalf("Count = %d, Err = %v", n, d.Err)
	}
}

func FuzzDecoder(f *testing.F) {
	f.Add(AppendStringMap(AppendString(nil, "x"), map[string]string{"k": "v"}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := Decoder{B: b}
		for !d.Err && len(d.B) > 0 {
			switch d.Byte() % 7 {
			case 0:
				_ = d.String()
			case 1:
				d.Bytes()
			case 2:
				d.Uvarint()
			case 3:
				d.Varint()
			case 4:
				d.Float()
			case 5:
				d.StringMap(16)
			case 6:
				if n := d.Count(16); n > 16 {
					t.Fatalf("Count returned %d over its limit", n)
				}
			}
		}
	})
}
