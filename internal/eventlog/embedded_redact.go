package eventlog

import (
	"context"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ripple-rec/ripple/internal/erasure"
)

// Redact rewrites, in place, every retained record for which replace
// returns a non-nil replacement (erasure: the log keeps its offsets, the
// content is gone). The rewrite is durable when Redact returns, and the
// store is then flushed and compacted so the old bytes are no longer in
// any file the log keeps; the in-memory tail is dropped. It returns how
// many records were replaced. Appends and reads continue meanwhile.
func (e *Embedded) Redact(ctx context.Context, replace func(offset uint64, data []byte) []byte) (int, error) {
	e.mu.RLock()
	if e.closed.Load() {
		e.mu.RUnlock()
		return 0, ErrClosed
	}
	e.readers.Add(1)
	e.mu.RUnlock()
	defer e.readers.Done()

	start, end := e.start.Load(), e.end.Load()
	if start >= end {
		return 0, nil
	}
	b := e.db.NewBatch()
	defer b.Close()
	it, err := e.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: recordKey(start), UpperBound: recordKey(end)})
	if err != nil {
		return 0, fmt.Errorf("eventlog: redact: %w", err)
	}
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		off, err := decodeRecordKey(it.Key())
		if err != nil {
			it.Close()
			return 0, err
		}
		v, err := it.ValueAndErr()
		if err == nil && len(v) < headerLen {
			err = fmt.Errorf("record %d: short value", off)
		}
		if err != nil {
			it.Close()
			return 0, fmt.Errorf("eventlog: redact: %w", err)
		}
		r := replace(off, v[headerLen:])
		if r == nil {
			continue
		}
		// The header (append time) is kept: retention still works by age.
		nv := make([]byte, headerLen+len(r))
		copy(nv, v[:headerLen])
		copy(nv[headerLen:], r)
		if err := b.Set(it.Key(), nv, nil); err != nil {
			it.Close()
			return 0, err
		}
		n++
	}
	if err := it.Close(); err != nil {
		return 0, fmt.Errorf("eventlog: redact: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	if err := e.db.Apply(b, pebble.Sync); err != nil {
		return 0, fmt.Errorf("eventlog: redact: %w", err)
	}
	e.tail.clear()
	if err := e.purge(ctx, start, end); err != nil {
		return n, err
	}
	e.log.Info("records redacted", "records", n)
	return n, nil
}

// purge makes the store forget overwritten values in [from, to).
func (e *Embedded) purge(ctx context.Context, from, to uint64) error {
	return erasure.Purge(ctx, e.db, recordKey(from), recordKey(to))
}
