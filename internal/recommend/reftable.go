package recommend

// refTable maps item handles to candidates for one request. It is an
// open-addressing table whose slots carry a generation stamp, so resetting
// it for the next request is O(1) instead of deleting every entry: the
// per-candidate cost of a Go map insert plus delete was a fifth of a
// recommendation.
type refTable struct {
	slots []refSlot // length is a power of two
	gen   uint32
	n     int
}

type refSlot struct {
	gen uint32
	ref uint32
	x   *candidate
}

func newRefTable(size int) refTable {
	n := 16
	for n < 2*size {
		n *= 2
	}
	return refTable{slots: make([]refSlot, n), gen: 1}
}

// reset forgets every entry.
func (t *refTable) reset() {
	t.gen++
	t.n = 0
	if t.gen == 0 { // wrapped: stale stamps could look current
		clear(t.slots)
		t.gen = 1
	}
}

func (t *refTable) slot(ref uint32) *refSlot {
	mask := uint32(len(t.slots) - 1)
	for i := (ref * 0x9E3779B1) & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.gen != t.gen || s.ref == ref {
			return s
		}
	}
}

// get returns the candidate for ref, or nil.
func (t *refTable) get(ref uint32) *candidate {
	if s := t.slot(ref); s.gen == t.gen {
		return s.x
	}
	return nil
}

// put adds ref, which must not be present.
func (t *refTable) put(ref uint32, x *candidate) {
	if 2*(t.n+1) > len(t.slots) {
		t.grow()
	}
	*t.slot(ref) = refSlot{gen: t.gen, ref: ref, x: x}
	t.n++
}

func (t *refTable) grow() {
	old, gen := t.slots, t.gen
	t.slots = make([]refSlot, 2*len(old))
	for _, s := range old {
		if s.gen == gen {
			*t.slot(s.ref) = s
		}
	}
}
