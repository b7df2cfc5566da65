package wire

import (
	"bytes"
	"math"
	"reflect"
	"testing"
)

// FuzzRoundTrip: whatever the Append functions write, the Decoder reads
// back exactly, consuming exactly what was written. FuzzDecoder covers
// corrupt input; this covers the contract between the two halves.
func FuzzRoundTrip(f *testing.F) {
	f.Add("", []byte(nil), uint64(0), int64(0), 0.0, false, "", "", []byte(nil))
	f.Add("ü\x00\xff", []byte{0}, uint64(math.MaxUint64), int64(math.MinInt64), math.Inf(-1), true, "k", "v", []byte{0xff})
	f.Add("x", []byte("y"), uint64(1<<63), int64(math.MaxInt64), math.NaN(), true, "", "empty key", []byte{0x80, 0x80})
	f.Add("a", []byte{}, uint64(127), int64(-64), -0.0, false, "k", "", []byte{})
	f.Fuzz(func(t *testing.T, s string, b []byte, u uint64, i int64, fl float64, bo bool, k, v string, tail []byte) {
		m := map[string]string{k: v, k + "2": v + v}
		var enc []byte
		enc = AppendString(enc, s)
		enc = AppendBytes(enc, b)
		enc = AppendUvarint(enc, u)
		enc = AppendVarint(enc, i)
		enc = AppendFloat(enc, fl)
		enc = AppendBool(enc, bo)
		enc = AppendStringMap(enc, m)
		enc = AppendUvarint(enc, uint64(len(m)))
		n := len(enc)
		enc = append(enc, tail...)

		d := Decoder{B: enc}
		gs, gb, gu, gi, gf, gbo, gm := d.String(), d.Bytes(), d.Uvarint(), d.Varint(), d.Float(), d.Bool(), d.StringMap(2)
		if d.Err {
			t.Fatal("decoding what was just encoded failed")
		}
		if gs != s || !bytes.Equal(gb, b) || (len(b) == 0) != (gb == nil) || gu != u || gi != i || gbo != bo {
			t.Fatalf("scalars changed: %q %x %d %d %v", gs, gb, gu, gi, gbo)
		}
		if math.Float64bits(gf) != math.Float64bits(fl) {
			t.Fatalf("float %v came back as %v", fl, gf)
		}
		if !reflect.DeepEqual(gm, m) {
			t.Fatalf("map %q came back as %q", m, gm)
		}
		// Count checks against what is left, so only a count with that many
		// bytes behind it passes.
		count := d.Count(len(m))
		if left := len(enc) - n; (left >= len(m)) != (count == len(m) && !d.Err) {
			t.Fatalf("Count = %d (err %v) with %d bytes left", count, d.Err, left)
		}
		if !d.Err && !bytes.Equal(d.B, enc[n:]) {
			t.Fatalf("decoder consumed %d bytes, encoder wrote %d", len(enc)-len(d.B), n)
		}
		// Equal maps encode to equal bytes, whatever the insertion order.
		if !bytes.Equal(AppendStringMap(nil, m), AppendStringMap(nil, map[string]string{k + "2": v + v, k: v})) {
			t.Fatal("map encoding depends on insertion order")
		}
	})
}
