package event

import (
	"errors"

	"github.com/ripple-rec/ripple/internal/wire"
)

// The log encoding is a version byte, the kind, then length-prefixed fields.
// It is several times faster to decode than JSON, which is what makes
// replaying the log into features cheap.
const codecVersion = 1

// ErrCorrupt is returned for a log record that cannot be decoded.
var ErrCorrupt = errors.New("event: corrupt record")

// AppendBinary appends the log encoding of r to dst.
func AppendBinary(dst []byte, r *Record) []byte {
	dst = append(dst, codecVersion, byte(r.Kind))
	switch r.Kind {
	case KindInteraction:
		e := &r.Interaction
		dst = wire.AppendString(dst, e.ID)
		dst = wire.AppendString(dst, e.Type)
		dst = wire.AppendString(dst, e.User)
		dst = wire.AppendString(dst, e.Item)
		dst = wire.AppendVarint(dst, e.TS)
		dst = wire.AppendFloat(dst, e.Value)
		dst = wire.AppendString(dst, e.Session)
		dst = wire.AppendBytes(dst, e.Context)
	case KindItem:
		it := &r.Item
		dst = wire.AppendString(dst, it.ID)
		dst = wire.AppendVarint(dst, it.TS)
		dst = wire.AppendBool(dst, it.Hidden)
		dst = wire.AppendUvarint(dst, uint64(len(it.Categories)))
		for _, c := range it.Categories {
			dst = wire.AppendString(dst, c)
		}
		dst = wire.AppendStringMap(dst, it.Attributes)
	case KindUser, KindErase:
		u := &r.User
		dst = wire.AppendString(dst, u.ID)
		dst = wire.AppendVarint(dst, u.TS)
		dst = wire.AppendStringMap(dst, u.Attributes)
	}
	return dst
}

// DecodeBinary decodes b into r.
func DecodeBinary(b []byte, r *Record) error {
	d := wire.Decoder{B: b}
	if d.Byte() != codecVersion {
		return ErrCorrupt
	}
	r.Kind = Kind(d.Byte())
	switch r.Kind {
	case KindInteraction:
		e := &r.Interaction
		e.ID = d.String()
		e.Type = d.String()
		e.User = d.String()
		e.Item = d.String()
		e.TS = d.Varint()
		e.Value = d.Float()
		e.Session = d.String()
		e.Context = d.Bytes()
	case KindItem:
		it := &r.Item
		it.ID = d.String()
		it.TS = d.Varint()
		it.Hidden = d.Bool()
		n := d.Count(MaxCategories)
		it.Categories = nil
		for i := 0; i < n; i++ {
			it.Categories = append(it.Categories, d.String())
		}
		it.Attributes = d.StringMap(MaxAttributes)
	case KindUser, KindErase:
		u := &r.User
		u.ID = d.String()
		u.TS = d.Varint()
		u.Attributes = d.StringMap(MaxAttributes)
	case KindRedacted:
		// Nothing follows: the record's content was erased.
		if len(b) != 2 {
			return ErrCorrupt
		}
	default:
		return ErrCorrupt
	}
	if d.Err {
		return ErrCorrupt
	}
	return nil
}
