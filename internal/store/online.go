package store

import (
	"context"
	"errors"
	"time"
)

// Online is a shared online feature store: each entity is a record of named
// fields (an entity's feature groups), written whole by the feature engine
// that owns it and read in batches by any number of serving nodes.
type Online interface {
	// Get reads fields of many entities in one round trip: out[i][j] is
	// field j of keys[i], nil when the entity or field is absent.
	Get(ctx context.Context, keys, fields []string) ([][][]byte, error)
	// GetAll reads every field of one entity (nil map: absent).
	GetAll(ctx context.Context, key string) (map[string][]byte, error)
	// Write stores a batch of whole entities and then, if b.Commit, the
	// source's applied offset; it returns the offset the store held for the
	// source before (0: none, e.g. the store lost its data). Field values
	// are not copied: the caller must never modify them once written (a
	// write abandoned at its deadline may still be in flight).
	Write(ctx context.Context, b *Batch) (prev uint64, err error)
	// Offset is the applied log offset the store holds for source.
	Offset(ctx context.Context, source string) (uint64, error)
}

type writePathKey struct{}

// OnWritePath marks reads that gate a write (the consent check before
// events are appended): a store guards them as it guards writes (the write
// deadline and breaker), not with the read path's tight deadline, which is
// sized for serving recommendations. A slow read must not refuse an event
// batch, and a gated write's reads must not open the serving breaker.
func OnWritePath(ctx context.Context) context.Context {
	return context.WithValue(ctx, writePathKey{}, true)
}

// IsWritePath reports whether ctx was marked by OnWritePath.
func IsWritePath(ctx context.Context) bool {
	v, _ := ctx.Value(writePathKey{}).(bool)
	return v
}

// Field is one named value of an entity.
type Field struct {
	Name  string
	Value []byte
}

// Entity is the whole record of one entity, or, when Part is set, one
// part of it: Fields then replace only that part's fields (the store names
// them "<name>@<part>") and the stamp is kept per part. Aggregates that
// every log partition adds to (items, global) are written as one part per
// partition, under one key, and summed when read.
type Entity struct {
	Key    string
	Fields []Field
	Part   string
}

// PartField is the stored name of field name of part.
func PartField(name, part string) string { return name + "@" + part }

// Batch is what one flush of the feature engine writes.
//
// Entities are written whole (absolute values, never increments), each
// stamped with the source and the offset its state includes, and the store
// keeps an entity's newer stamp over an older one from the same source. So
// a replay after a crash rewrites the same values (exactly-once effect) and
// the offset recorded last never claims more than the store holds.
type Batch struct {
	Source string // the log the state was computed from
	Offset uint64 // log offset the state includes
	TTL    time.Duration
	Put    []Entity
	Delete []string
	// Commit records Offset as the source's offset after the entities are
	// written. A resync written in several batches commits only the last.
	Commit bool
	// Expect is the offset the writer believes the store holds for the
	// source; a store holding less does not raise its offset (see Write).
	Expect uint64
}

// ErrUnavailable wraps every failure of a remote store, so callers can tell
// "the store did not answer" from bad input.
var ErrUnavailable = errors.New("online store unavailable")
