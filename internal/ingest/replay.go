package ingest

import (
	"context"

	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
)

// batchApplier reads log records into a reusable batch and applies them
// with Engine.ApplyBatch: the one read-decode-apply loop used by the live
// applier, recovery, `ripple train` and `ripple bench`.
type batchApplier struct {
	offs []uint64
	recs []event.Record
	// check also turns away records that decode but fail
	// event.Record.Check: set for broker logs, which producers other than
	// Ripple's API can write to.
	check bool
}

// apply reads up to max records from from and applies them. Records that do
// not decode are passed to corrupt (which may stop the read by returning an
// error) and otherwise skipped. It returns the offset to continue from.
func (b *batchApplier) apply(ctx context.Context, lg eventlog.Log, eng *features.Engine, from uint64, max int,
	corrupt func(off uint64, err error) error) (uint64, error) {
	next, err := b.read(ctx, lg, from, max, func(off uint64, _ []byte, err error) error { return corrupt(off, err) })
	eng.ApplyBatch(b.offs, b.recs)
	// Skipped records count as handled, or a corrupt one at the end of a
	// batch would be read again forever.
	if next > from && eng.Applied() < next-1 && err == nil {
		eng.SetApplied(next - 1)
	}
	return next, err
}

// recordReader is the read side of a log or of one partition.
type recordReader interface {
	Read(ctx context.Context, from uint64, max int, fn func(offset uint64, data []byte) error) (next uint64, err error)
}

// read replaces the batch with up to max decoded records from from. Records
// that do not decode, or with check fail event.Record.Check, are passed to
// bad with their bytes (valid only during the call) and the error; bad may
// stop the read by returning an error, and otherwise the record is skipped.
// It returns the offset to continue from.
func (b *batchApplier) read(ctx context.Context, r recordReader, from uint64, max int,
	bad func(off uint64, data []byte, err error) error) (uint64, error) {
	b.offs, b.recs = b.offs[:0], b.recs[:0]
	return r.Read(ctx, from, max, func(off uint64, data []byte) error {
		b.recs = append(b.recs, event.Record{})
		rec := &b.recs[len(b.recs)-1]
		err := event.DecodeBinary(data, rec)
		if err == nil && b.check {
			err = rec.Check()
		}
		if err != nil {
			b.recs = b.recs[:len(b.recs)-1]
			return bad(off, data, err)
		}
		b.offs = append(b.offs, off)
		return nil
	})
}

// Replay applies every record from the engine's applied offset to the
// log's end, as recovery does, and returns how many it read.
func Replay(ctx context.Context, lg eventlog.Log, eng *features.Engine, corrupt func(off uint64, err error) error) (int, error) {
	var b batchApplier
	n := 0
	for from := max(eng.Applied()+1, lg.Start()); from < lg.End(); {
		next, err := b.apply(ctx, lg, eng, from, 16384, corrupt)
		n += int(next - from)
		if err != nil {
			return n, err
		}
		from = next
	}
	return n, nil
}
