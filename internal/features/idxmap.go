package features

import "iter"

// idxMap is a hash table keyed by an interned index (item or category), for
// the tables every event touches. Slots hold key and value side by side with
// linear probing, so a lookup in a cold table costs about one cache miss
// (a Go map adds a header, directory and control words), a missing key is
// inserted by the same probe, and slots hold no pointers for the GC to scan.
// Iteration order is arbitrary: callers sort what they expose.
type idxMap[V any] struct {
	slots []idxSlot[V] // power-of-two length, or nil
	n     int
	shift uint8 // 32 - log2(len(slots))
}

type idxSlot[V any] struct {
	key uint32 // index+1; 0 marks an empty slot
	v   V
}

const minIdxSlots = 4

func (m *idxMap[V]) len() int { return m.n }

// find returns the slot holding key, or the empty slot where it belongs.
func (m *idxMap[V]) find(key uint32) *idxSlot[V] {
	mask := uint32(len(m.slots) - 1)
	i := (key * 0x9E3779B1) >> m.shift
	for {
		s := &m.slots[i]
		if s.key == key || s.key == 0 {
			return s
		}
		i = (i + 1) & mask
	}
}

func (m *idxMap[V]) get(k uint32) (V, bool) {
	if m.n == 0 {
		var zero V
		return zero, false
	}
	s := m.find(k + 1)
	return s.v, s.key != 0
}

// at returns k's value for update, inserting the zero value if absent.
func (m *idxMap[V]) at(k uint32) *V {
	if m.slots == nil {
		m.resize(minIdxSlots)
	}
	s := m.find(k + 1)
	if s.key != 0 {
		return &s.v
	}
	if (m.n+1)*16 > len(m.slots)*13 {
		m.resize(2 * len(m.slots))
		s = m.find(k + 1)
	}
	s.key = k + 1
	m.n++
	return &s.v
}

func (m *idxMap[V]) resize(n int) {
	old := m.slots
	m.slots = make([]idxSlot[V], n)
	m.shift = 32
	for n > 1 {
		n >>= 1
		m.shift--
	}
	for _, s := range old {
		if s.key != 0 {
			*m.find(s.key) = s
		}
	}
}

// all yields every entry, in no particular order.
func (m *idxMap[V]) all() iter.Seq2[uint32, V] {
	return func(yield func(uint32, V) bool) {
		for _, s := range m.slots {
			if s.key != 0 && !yield(s.key-1, s.v) {
				return
			}
		}
	}
}

// keep drops the entries keep rejects, rebuilding the table in place with
// buf as scratch; it returns buf for reuse.
func (m *idxMap[V]) keep(keep func(uint32, V) bool, buf []idxSlot[V]) []idxSlot[V] {
	buf = buf[:0]
	for _, s := range m.slots {
		if s.key != 0 && keep(s.key-1, s.v) {
			buf = append(buf, s)
		}
	}
	clear(m.slots)
	for _, s := range buf {
		*m.find(s.key) = s
	}
	m.n = len(buf)
	return buf
}
