package eventlog

import (
	"context"
	"errors"
)

// Log is a durable, totally ordered sequence of opaque records.
// Offsets start at 1 and increase by exactly one per record.
type Log interface {
	// Append writes payloads as consecutive records and returns the offset of
	// the first. It returns only once the records are durable (fsync'd for the
	// embedded log, acknowledged by the broker otherwise).
	Append(ctx context.Context, payloads [][]byte) (first uint64, err error)
	// Read calls fn for up to max records with offset >= from, in order, and
	// returns the offset to continue from. data is only valid during fn.
	// Reading below the retained start continues from the start.
	Read(ctx context.Context, from uint64, max int, fn func(offset uint64, data []byte) error) (next uint64, err error)
	// Wait blocks until a record with offset >= from is durable or ctx ends.
	Wait(ctx context.Context, from uint64) error
	// End is the offset the next appended record will get.
	End() uint64
	// Start is the oldest retained offset.
	Start() uint64
	Close() error
}

// ErrClosed is returned by operations on a closed log.
var ErrClosed = errors.New("eventlog: closed")
