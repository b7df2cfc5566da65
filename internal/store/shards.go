package store

import (
	"sync"
)

const shardCount = 256

// Map is a string-keyed map split into shards, each with its own lock, so
// concurrent appliers and readers rarely contend. Values are pointers whose
// own synchronisation is the caller's (the shard lock only guards the map).
type Map[V any] struct {
	shards [shardCount]shard[V]
}

type shard[V any] struct {
	mu sync.RWMutex
	m  map[string]*V
}

// NewMap returns an empty Map.
func NewMap[V any]() *Map[V] {
	m := &Map[V]{}
	for i := range m.shards {
		m.shards[i].m = make(map[string]*V)
	}
	return m
}

// Hash is FNV-1a; inlined and allocation-free. Exported so callers can
// partition work by the same function that places keys.
func Hash(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

func (m *Map[V]) shard(key string) *shard[V] { return &m.shards[Hash(key)%shardCount] }

// Get returns the value for key or nil.
func (m *Map[V]) Get(key string) *V {
	s := m.shard(key)
	s.mu.RLock()
	v := s.m[key]
	s.mu.RUnlock()
	return v
}

// GetOrCreate returns the value for key, creating it with create if absent.
func (m *Map[V]) GetOrCreate(key string, create func() *V) *V {
	s := m.shard(key)
	s.mu.RLock()
	v := s.m[key]
	s.mu.RUnlock()
	if v != nil {
		return v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v = s.m[key]; v == nil {
		v = create()
		s.m[key] = v
	}
	return v
}

// Put sets key to v.
func (m *Map[V]) Put(key string, v *V) {
	s := m.shard(key)
	s.mu.Lock()
	s.m[key] = v
	s.mu.Unlock()
}

// Delete removes key and reports whether it was present.
func (m *Map[V]) Delete(key string) bool {
	s := m.shard(key)
	s.mu.Lock()
	_, ok := s.m[key]
	delete(s.m, key)
	s.mu.Unlock()
	return ok
}

// Len counts entries; it visits every shard.
func (m *Map[V]) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

// Range calls fn for every entry until fn returns false. Each shard is
// copied out under its read lock so fn may take other locks.
func (m *Map[V]) Range(fn func(key string, v *V) bool) {
	type kv struct {
		k string
		v *V
	}
	var buf []kv
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.RLock()
		buf = buf[:0]
		for k, v := range s.m {
			buf = append(buf, kv{k, v})
		}
		s.mu.RUnlock()
		for _, e := range buf {
			if !fn(e.k, e.v) {
				return
			}
		}
	}
}
