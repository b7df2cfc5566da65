package features

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/wire"
)

// Snapshot keys: one entry per user and item row, plus the engine's clock
// and the global row. The feature spec fingerprint guards against restoring
// state into an engine whose rings have a different shape.
const (
	snapUser    = 'u'
	snapItem    = 'i'
	snapGlobal  = 'g'
	snapConsent = 'c'
	// snapPartition + uvarint partition: that partition's applied offset,
	// for every partition but 0 of a partitioned log (partition 0, the
	// embedded log's only one, stays in the meta entry).
	snapPartition = 'p'
	snapMeta      = '0' // sorts before every other key: checked first on restore
)

// snapVersion 3 added partition entries; version 2 snapshots (no
// partitions) still restore.
const (
	snapVersion    = 3
	snapVersionMin = 2
)

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
	for p, off := range e.AppliedVector() {
		if p == 0 {
			continue
		}
		if err := put(wire.AppendUvarint([]byte{snapPartition}, uint64(p)), wire.AppendUvarint(nil, off)); err != nil {
			return err
		}
	}
	e.global.mu.Lock()
	buf = appendRings(buf[:0], &e.global.windows, e.c.globalWin)
	buf = wire.AppendVarint(buf, e.global.updated)
	e.global.mu.Unlock()
	if err := put([]byte{snapGlobal}, buf); err != nil {
		return err
	}
	var err error
	key := make([]byte, 0, 64)
	e.users.Range(func(id string, u *userRow) bool {
		u.mu.Lock()
		buf = e.encodeUser(buf[:0], u)
		u.mu.Unlock()
		key = append(append(key[:0], snapUser), id...)
		err = put(key, buf)
		return err == nil
	})
	if err != nil {
		return err
	}
	e.consent.Range(func(id, c any) bool {
		key = append(append(key[:0], snapConsent), id.(string)...)
		cs := c.(event.Consent)
		err = put(key, []byte{b2byte(cs.Personalization), b2byte(cs.Storage)})
		return err == nil
	})
	if err != nil {
		return err
	}
	e.items.Range(func(id string, it *itemRow) bool {
		it.mu.Lock()
		buf = e.encodeItem(buf[:0], it)
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
		if v := d.Uvarint(); v < snapVersionMin || v > snapVersion {
			return fmt.Errorf("features: snapshot version %d, want %d to %d", v, snapVersionMin, snapVersion)
		}
		if fp := d.String(); fp != e.fingerprint() {
			return ErrSpecChanged
		}
		e.clock.Store(d.Varint())
		e.applied.Store(d.Uvarint())
	case snapPartition:
		kd := wire.Decoder{B: key[1:]}
		p := kd.Uvarint()
		if kd.Err || len(kd.B) != 0 || p == 0 || p > 1<<20 {
			return errSnapshot
		}
		e.SetAppliedPartition(int(p), d.Uvarint())
	case snapGlobal:
		decodeRings(&d, &e.global.windows, e.c.globalWin)
		e.global.updated = d.Varint()
	case snapUser:
		u := e.newUser()
		e.decodeUser(&d, u)
		e.users.Put(string(key[1:]), u)
	case snapConsent:
		if len(val) != 2 {
			return errSnapshot
		}
		e.setConsent(string(key[1:]), event.Consent{Personalization: val[0] == 1, Storage: val[1] == 1})
		return nil
	case snapItem:
		// Users restored before may have created the row already.
		it := e.item(string(key[1:]))
		it.mu.Lock()
		e.decodeItem(&d, it)
		it.mu.Unlock()
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

func appendRings(buf []byte, w *windows, ws []winSpec) []byte {
	buf = wire.AppendUvarint(buf, uint64(len(ws)))
	for i := range ws {
		lo, hi := w.ring(i, len(ws))
		buf = wire.AppendUvarint(buf, uint64(hi-lo))
		for _, b := range w.b[lo:hi] {
			buf = wire.AppendVarint(buf, b.idx)
			buf = wire.AppendFloat(buf, b.v)
		}
	}
	return buf
}

func decodeRings(d *wire.Decoder, w *windows, ws []winSpec) {
	if n := d.Count(1 << 16); n != len(ws) {
		d.Err = true
		return
	}
	nw := newWindows(len(ws))
	for i := range ws {
		n := d.Count(int(ws[i].n))
		for j := 0; j < n && !d.Err; j++ {
			idx := d.Varint()
			if j > 0 && idx <= nw.b[len(nw.b)-1].idx {
				d.Err = true // buckets are stored strictly ascending
				return
			}
			nw.b = append(nw.b, bucket{idx, d.Float()})
		}
		nw.b[i].idx = int64(len(nw.b))
		for j := i + 1; j < len(ws); j++ {
			nw.b[j].idx = nw.b[i].idx
		}
	}
	*w = nw
}

// appendDecayedMap writes m sorted by name, so snapshot bytes are canonical
// (equal state, equal bytes) whatever order indices were assigned in.
func appendDecayedMap(buf []byte, m *idxMap[decayed], name func(uint32) string) []byte {
	type entry struct {
		name string
		d    decayed
	}
	l := make([]entry, 0, m.len())
	for k, d := range m.all() {
		l = append(l, entry{name(k), d})
	}
	slices.SortFunc(l, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	buf = wire.AppendUvarint(buf, uint64(len(l)))
	for _, x := range l {
		buf = wire.AppendString(buf, x.name)
		buf = wire.AppendFloat(buf, x.d.W)
		buf = wire.AppendVarint(buf, x.d.T)
	}
	return buf
}

func decodeDecayedMap(d *wire.Decoder, m *idxMap[decayed], index func(string) uint32) {
	n := d.Count(1 << 30)
	for i := 0; i < n && !d.Err; i++ {
		k := index(d.String())
		*m.at(k) = decayed{W: d.Float(), T: d.Varint()}
	}
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

func (e *Engine) encodeUser(buf []byte, u *userRow) []byte {
	rows, types := e.itemIdx.load(), e.types.load()
	buf = wire.AppendVarint(buf, u.updated)
	buf = wire.AppendVarint(buf, u.lastTS)
	buf = appendRings(buf, &u.windows, e.c.userWin)
	buf = appendInts(buf, u.recency)
	s := &u.session
	buf = wire.AppendString(buf, s.ID)
	buf = wire.AppendVarint(buf, s.Start)
	buf = wire.AppendVarint(buf, s.Last)
	buf = wire.AppendUvarint(buf, uint64(s.Count))
	buf = wire.AppendUvarint(buf, uint64(len(s.Items)))
	for _, it := range s.Items {
		buf = wire.AppendString(buf, rows[it].id)
	}
	// last_n in read order, so restore needs no ring position.
	list := u.last.list()
	buf = wire.AppendUvarint(buf, uint64(len(list)))
	for _, it := range list {
		buf = wire.AppendString(buf, rows[it.item].id)
		buf = wire.AppendVarint(buf, it.ts)
		buf = wire.AppendString(buf, types[it.typ].name)
	}
	buf = appendDecayedMap(buf, &u.items, e.itemName())
	return appendDecayedMap(buf, &u.cats, e.catName())
}

// itemIndex interns an item id met while restoring.
func (e *Engine) itemIndex(id string) uint32 { return e.item(id).idx }

func (e *Engine) decodeUser(d *wire.Decoder, u *userRow) {
	u.updated = d.Varint()
	u.lastTS = d.Varint()
	decodeRings(d, &u.windows, e.c.userWin)
	decodeInts(d, u.recency)
	s := &u.session
	s.ID = d.String()
	s.Start = d.Varint()
	s.Last = d.Varint()
	s.Count = int(d.Uvarint())
	n := d.Count(1 << 16)
	for i := 0; i < n; i++ {
		s.Items = append(s.Items, e.itemIndex(d.String()))
	}
	n = d.Count(1 << 16)
	for i := 0; i < n; i++ {
		item := e.itemIndex(d.String())
		ts := d.Varint()
		typ, _ := e.typeOf(d.String())
		u.last.push(lastItem{ts: ts, item: item, typ: typ}, e.c.lastN.N)
	}
	decodeDecayedMap(d, &u.items, e.itemIndex)
	decodeDecayedMap(d, &u.cats, e.category)
}

func (e *Engine) encodeItem(buf []byte, it *itemRow) []byte {
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
	buf = appendRings(buf, &it.windows, e.c.itemWin)
	buf = appendInts(buf, it.recency)
	buf = wire.AppendFloat(buf, it.trend.W)
	buf = wire.AppendVarint(buf, it.trend.T)
	rows := e.itemIdx.load()
	ns := make([]Neighbor, 0, it.covis.w.len())
	for k, w := range it.covis.w.all() {
		ns = append(ns, Neighbor{Item: rows[k].id, Weight: w, Ref: k})
	}
	slices.SortFunc(ns, func(a, b Neighbor) int { return strings.Compare(a.Item, b.Item) })
	buf = wire.AppendUvarint(buf, uint64(len(ns)))
	for _, n := range ns {
		buf = wire.AppendString(buf, n.Item)
		buf = wire.AppendFloat(buf, n.Weight)
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
		m.categories, m.catIdx = e.categories(m.categories)
		m.attributes = d.StringMap(1 << 10)
		m.hidden = d.Bool()
		it.meta = m
	}
	decodeRings(d, &it.windows, e.c.itemWin)
	decodeInts(d, it.recency)
	it.trend.W = d.Float()
	it.trend.T = d.Varint()
	if n := d.Count(1 << 24); n > 0 {
		for i := 0; i < n && !d.Err; i++ {
			k := e.itemIndex(d.String())
			*it.covis.w.at(k) = d.Float()
		}
		it.covis.dirty = true
	}
}

func b2byte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
