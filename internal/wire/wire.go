// Package wire owns Ripple's compact binary encoding primitives: varints,
// length-prefixed strings and fixed floats, shared by log records and
// feature snapshots. Decoding never panics on corrupt input; it sets Err.
package wire

import (
	"encoding/binary"
	"math"
	"sort"
)

// AppendString appends a length-prefixed string.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendBytes appends a length-prefixed byte slice.
func AppendBytes(dst []byte, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// AppendUvarint appends an unsigned varint.
func AppendUvarint(dst []byte, v uint64) []byte { return binary.AppendUvarint(dst, v) }

// AppendVarint appends a signed varint.
func AppendVarint(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

// AppendFloat appends a float64 as 8 little-endian bytes.
func AppendFloat(dst []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(f))
}

// AppendBool appends one byte.
func AppendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// AppendStringMap appends a map with keys sorted, so equal maps encode to
// equal bytes.
func AppendStringMap(dst []byte, m map[string]string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(m)))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		dst = AppendString(dst, k)
		dst = AppendString(dst, m[k])
	}
	return dst
}

// Decoder reads what the Append functions wrote. After any failure Err is
// true and every further read returns a zero value.
type Decoder struct {
	B   []byte
	Err bool
}

// fail drops the unread input, so every later read fails too.
func (d *Decoder) fail() {
	d.Err = true
	d.B = nil
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if len(d.B) < 1 {
		d.fail()
		return 0
	}
	c := d.B[0]
	d.B = d.B[1:]
	return c
}

// Bool reads one byte as a bool.
func (d *Decoder) Bool() bool { return d.Byte() == 1 }

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Float reads a float64.
func (d *Decoder) Float() float64 {
	if len(d.B) < 8 {
		d.fail()
		return 0
	}
	v := binary.LittleEndian.Uint64(d.B)
	d.B = d.B[8:]
	return math.Float64frombits(v)
}

// Raw reads a length-prefixed slice that aliases the input.
func (d *Decoder) Raw() []byte {
	n := d.Uvarint()
	if d.Err || n > uint64(len(d.B)) {
		d.fail()
		return nil
	}
	v := d.B[:n]
	d.B = d.B[n:]
	return v
}

// String reads a length-prefixed string (copied).
func (d *Decoder) String() string { return string(d.Raw()) }

// Bytes reads a length-prefixed slice (copied; nil when empty).
func (d *Decoder) Bytes() []byte {
	v := d.Raw()
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

// Count reads a length and checks it against limit, so corrupt input cannot
// make the caller allocate without bound.
func (d *Decoder) Count(limit int) int {
	n := d.Uvarint()
	if n > uint64(limit) || n > uint64(len(d.B)) {
		d.fail()
		return 0
	}
	return int(n)
}

// StringMap reads a map written by AppendStringMap (nil when empty).
func (d *Decoder) StringMap(limit int) map[string]string {
	n := d.Count(limit)
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for i := 0; i < n; i++ {
		k := d.String()
		m[k] = d.String()
	}
	return m
}
