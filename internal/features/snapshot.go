package features

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ripple-rec/ripple/internal/wire"
)

// Snapshot keys: one entry per user and item row, plus the engine's clock
// and the global row. The feature spec fingerprint guards against restoring
// state into an engine whose rings have a different shape.
const (
	snapUser   = 'u'
	snapItem   = 'i'
	snapGlobal = 'g'
	snapMeta   = '0' // sorts before every other key: checked first on restore
)

const snapVersion = 2

var errSnapshot = errors.New("features: corrupt snapshot entry")

// Snapshot writes the whole state through put. The caller must not run
// Apply concurrently: the snapshot has to be a cut at Applied().
func (e *Engine) Snapshot(put func(key, val []byte) error) error {
	var buf []byte
	meta := wire.AppendUvarint(nil, snapVersion)
	meta = wire.AppendString(meta, e.fingerprint())
	meta = wire.AppendVarint(meta, e.Clock())
	meta = wire.AppendUvarint(meta, e.Applied())
	if err := put([]byte{snapMeta}, meta); err != nil {
		return err
	}
	e.global.mu.Lock()
	buf = appendRings(buf[:0], e.global.windows)
	buf = wire.AppendVarint(buf, e.global.updated)
	e.global.mu.Unlock()
	if err := put([]byte{snapGlobal}, buf); err != nil {
		return err
	}
	var err error
	key := make([]byte, 0, 64)
	e.users.Range(func(id string, u *userRow) bool {
		u.mu.Lock()
		buf = encodeUser(buf[:0], u)
		u.mu.Unlock()
		key = append(append(key[:0], snapUser), id...)
		err = put(key, buf)
		return err == nil
	})
	if err != nil {
		return err
	}
	e.items.Range(func(id string, it *itemRow) bool {
		it.mu.Lock()
		buf = encodeItem(buf[:0], it)
		it.mu.Unlock()
		key = append(append(key[:0], snapItem), id...)
		err = put(key, buf)
		return err == nil
	})
	return err
}

// Restore loads one snapshot entry into an empty engine.
func (e *Engine) Restore(key, val []byte) error {
	if len(key) == 0 {
		return errSnapshot
	}
	d := wire.Decoder{B: val}
	switch key[0] {
	case snapMeta:
		if v := d.Uvarint(); v != snapVersion {
			return fmt.Errorf("features: snapshot version %d, want %d", v, snapVersion)
		}
		if fp := d.String(); fp != e.fingerprint() {
			return ErrSpecChanged
		}
		e.clock.Store(d.Varint())
		e.applied.Store(d.Uvarint())
	case snapGlobal:
		decodeRings(&d, e.global.windows)
		e.global.updated = d.Varint()
	case snapUser:
		u := e.newUser()
		e.decodeUser(&d, u)
		e.users.Put(string(key[1:]), u)
	case snapItem:
		it := e.newItem()
		it.id = string(key[1:])
		e.decodeItem(&d, it)
		e.items.Put(it.id, it)
	default:
		return errSnapshot
	}
	if d.Err {
		return errSnapshot
	}
	return nil
}

// ErrSpecChanged means the snapshot was written with other feature specs;
// the state must be rebuilt by replaying the log from its start.
var ErrSpecChanged = errors.New("features: snapshot was written for a different feature configuration")

// fingerprint names the state layout: kinds, scopes, buckets and sizes in order.
func (e *Engine) fingerprint() string {
	s := ""
	for _, f := range e.cfg.Features {
		s += fmt.Sprintf("%s/%s/%s/%d/%d/%d/%v/%d;", f.Name, f.Kind, f.Scope, f.Buckets, int64(f.Window), f.N, f.Events, int64(f.HalfLife))
	}
	return s
}

func appendRings(buf []byte, rings []ring) []byte {
	buf = wire.AppendUvarint(buf, uint64(len(rings)))
	for _, r := range rings {
		buf = wire.AppendUvarint(buf, uint64(len(r.b)))
		for _, b := range r.b {
			buf = wire.AppendVarint(buf, b.idx)
			buf = wire.AppendFloat(buf, b.v)
		}
	}
	return buf
}

func decodeRings(d *wire.Decoder, rings []ring) {
	if n := d.Count(1 << 16); n != len(rings) {
		d.Err = true
		return
	}
	for i := range rings {
		n := d.Count(int(rings[i].n))
		rings[i].b = make([]bucket, 0, n)
		for j := 0; j < n && !d.Err; j++ {
			idx := d.Varint()
			if j > 0 && idx <= rings[i].b[j-1].idx {
				d.Err = true // buckets are stored strictly ascending
				return
			}
			rings[i].b = append(rings[i].b, bucket{idx, d.Float()})
		}
	}
}

func appendDecayedMap(buf []byte, m map[string]*decayed) []byte {
	buf = wire.AppendUvarint(buf, uint64(len(m)))
	for _, k := range sortedKeys(m) {
		v := m[k]
		buf = wire.AppendString(buf, k)
		buf = wire.AppendFloat(buf, v.W)
		buf = wire.AppendVarint(buf, v.T)
	}
	return buf
}

func decodeDecayedMap(d *wire.Decoder) map[string]*decayed {
	n := d.Count(1 << 30)
	if n == 0 {
		return nil
	}
	m := make(map[string]*decayed, n)
	for i := 0; i < n && !d.Err; i++ {
		k := d.String()
		m[k] = &decayed{W: d.Float(), T: d.Varint()}
	}
	return m
}

// sortedKeys makes snapshot bytes canonical: equal state, equal bytes.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func appendInts(buf []byte, v []int64) []byte {
	buf = wire.AppendUvarint(buf, uint64(len(v)))
	for _, x := range v {
		buf = wire.AppendVarint(buf, x)
	}
	return buf
}

func decodeInts(d *wire.Decoder, v []int64) {
	if n := d.Count(1 << 16); n != len(v) {
		d.Err = true
		return
	}
	for i := range v {
		v[i] = d.Varint()
	}
}

func encodeUser(buf []byte, u *userRow) []byte {
	buf = wire.AppendVarint(buf, u.updated)
	buf = wire.AppendVarint(buf, u.lastTS)
	buf = appendRings(buf, u.windows)
	buf = appendInts(buf, u.recency)
	s := &u.session
	buf = wire.AppendString(buf, s.ID)
	buf = wire.AppendVarint(buf, s.Start)
	buf = wire.AppendVarint(buf, s.Last)
	buf = wire.AppendUvarint(buf, uint64(s.Count))
	buf = wire.AppendUvarint(buf, uint64(len(s.Items)))
	for _, it := range s.Items {
		buf = wire.AppendString(buf, it)
	}
	// last_n in read order, so restore needs no ring position.
	list := u.last.list()
	buf = wire.AppendUvarint(buf, uint64(len(list)))
	for _, it := range list {
		buf = wire.AppendString(buf, it.Item)
		buf = wire.AppendVarint(buf, it.TS)
		buf = wire.AppendString(buf, it.Type)
	}
	buf = appendDecayedMap(buf, u.items)
	return appendDecayedMap(buf, u.cats)
}

func (e *Engine) decodeUser(d *wire.Decoder, u *userRow) {
	u.updated = d.Varint()
	u.lastTS = d.Varint()
	decodeRings(d, u.windows)
	decodeInts(d, u.recency)
	s := &u.session
	s.ID = d.String()
	s.Start = d.Varint()
	s.Last = d.Varint()
	s.Count = int(d.Uvarint())
	n := d.Count(1 << 16)
	for i := 0; i < n; i++ {
		s.Items = append(s.Items, d.String())
	}
	n = d.Count(1 << 16)
	for i := 0; i < n; i++ {
		// Items sort before users, so their rows are usually restored already.
		it := ItemAt{Item: d.String(), TS: d.Varint(), Type: d.String()}
		row := e.items.Get(it.Item)
		if row != nil {
			it.Item = row.id
		}
		u.last.push(it, row, e.c.lastN.N)
	}
	u.items = decodeDecayedMap(d)
	u.cats = decodeDecayedMap(d)
}

func encodeItem(buf []byte, it *itemRow) []byte {
	buf = wire.AppendVarint(buf, it.updated)
	buf = wire.AppendBool(buf, it.meta != nil)
	if m := it.meta; m != nil {
		buf = wire.AppendUvarint(buf, uint64(len(m.categories)))
		for _, c := range m.categories {
			buf = wire.AppendString(buf, c)
		}
		buf = wire.AppendStringMap(buf, m.attributes)
		buf = wire.AppendBool(buf, m.hidden)
	}
	buf = appendRings(buf, it.windows)
	buf = appendInts(buf, it.recency)
	buf = wire.AppendFloat(buf, it.trend.W)
	buf = wire.AppendVarint(buf, it.trend.T)
	buf = wire.AppendUvarint(buf, uint64(len(it.covis.w)))
	for _, k := range sortedKeys(it.covis.w) {
		buf = wire.AppendString(buf, k)
		buf = wire.AppendFloat(buf, it.covis.w[k])
	}
	return buf
}

func (e *Engine) decodeItem(d *wire.Decoder, it *itemRow) {
	it.updated = d.Varint()
	if d.Bool() {
		m := &itemMeta{}
		n := d.Count(1 << 10)
		for i := 0; i < n; i++ {
			m.categories = append(m.categories, d.String())
		}
		m.categories = e.categories(m.categories)
		m.attributes = d.StringMap(1 << 10)
		m.hidden = d.Bool()
		it.meta = m
	}
	decodeRings(d, it.windows)
	decodeInts(d, it.recency)
	it.trend.W = d.Float()
	it.trend.T = d.Varint()
	if n := d.Count(1 << 24); n > 0 {
		it.covis.w = make(map[string]float64, n)
		for i := 0; i < n && !d.Err; i++ {
			k := d.String()
			it.covis.w[k] = d.Float()
		}
		it.covis.dirty = true
	}
}
