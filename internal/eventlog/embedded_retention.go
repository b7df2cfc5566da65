package eventlog

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Segments summarise runs of consecutive records (count, bytes, append-time
// range) so that retention knows sizes and ages without scanning the log:
// it drops whole segments by their summary and scans at most the one
// segment it cuts into. Sealed summaries are persisted in the same batch as
// their last record, so reopening reads them back and scans only the open
// segment.
const (
	segmentRecords = 4096
	segmentBytes   = 1 << 20
	segmentValLen  = 4 * 8
)

type segment struct {
	first, end       uint64 // records [first, end)
	bytes            int64  // logical size, as RetentionBytes counts it
	minTime, maxTime int64  // append times, unix nanoseconds
}

func (s segment) empty() bool { return s.first == s.end }

func (s segment) full() bool {
	return s.end-s.first >= segmentRecords || s.bytes >= segmentBytes
}

// segments is owned by the committer goroutine (and by load before it starts).
type segments struct {
	sealed   []segment
	open     segment // the newest records, not yet persisted as a summary
	retained int64   // logical size of all retained records
}

type segmentsState struct {
	sealed   int
	open     segment
	retained int64
}

func (s *segments) save() segmentsState {
	return segmentsState{len(s.sealed), s.open, s.retained}
}

// restore undoes add calls for a batch that failed to commit.
func (s *segments) restore(st segmentsState) {
	s.sealed, s.open, s.retained = s.sealed[:st.sealed], st.open, st.retained
}

// add accounts for record off in the open segment, persisting the segment's
// summary into b when it fills up.
func (s *segments) add(b *pebble.Batch, off uint64, size int, t int64) {
	o := &s.open
	if o.empty() {
		o.first, o.minTime, o.maxTime = off, t, t
	}
	o.end = off + 1
	o.bytes += int64(size)
	o.minTime, o.maxTime = min(o.minTime, t), max(o.maxTime, t)
	s.retained += int64(size)
	if o.full() {
		_ = b.Set(segmentKey(o.end), encodeSegment(*o), nil)
		s.sealed = append(s.sealed, *o)
		s.open = segment{first: o.end, end: o.end}
	}
}

// load reads the persisted summaries and rebuilds the open segment from the
// records after them. Summaries that do not chain from start to end are
// discarded and rebuilt from the records: slower, but never wrong.
func (s *segments) load(e *Embedded, start, end uint64) error {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSegment}, UpperBound: []byte{prefixSegment + 1}})
	if err != nil {
		return err
	}
	next, valid := start, true
	for ok := it.First(); ok; ok = it.Next() {
		seg, err := decodeSegment(it.Key(), it.Value())
		if err != nil || seg.first != next || seg.end > end {
			valid = false
			break
		}
		s.sealed = append(s.sealed, seg)
		s.retained += seg.bytes
		next = seg.end
	}
	if err := it.Close(); err != nil {
		return err
	}
	b := e.db.NewBatch()
	defer b.Close()
	if !valid {
		e.log.Warn("segment index inconsistent, rebuilding from records", "start", start, "end", end)
		*s = segments{}
		next = start
		_ = b.DeleteRange([]byte{prefixSegment}, []byte{prefixSegment + 1}, nil)
	}
	s.open = segment{first: next, end: next}

	it, err = e.db.NewIter(&pebble.IterOptions{LowerBound: recordKey(next), UpperBound: recordKey(end)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		off, t, size, err := recordMeta(it)
		if err != nil {
			it.Close()
			return err
		}
		if off != next {
			it.Close()
			return fmt.Errorf("record %d missing", next)
		}
		s.add(b, off, size, t)
		next++
	}
	if err := it.Close(); err != nil {
		return err
	}
	if next != end {
		return fmt.Errorf("records %d..%d missing", next, end-1)
	}
	if b.Empty() {
		return nil
	}
	return e.db.Apply(b, pebble.Sync)
}

// enforce deletes the oldest records while the log is over RetentionBytes
// or older than RetentionAge, never past the floor. Records are deleted with
// one range tombstone, written without fsync: if a crash loses it the
// records merely come back, and the next synced append makes it durable.
func (s *segments) enforce(e *Embedded) error {
	maxBytes, maxAge := e.opts.RetentionBytes, e.opts.RetentionAge
	start, end := e.start.Load(), e.end.Load()
	limit := end // first offset retention must keep
	if f := e.floor.Load(); f < end-1 {
		limit = f + 1
	}
	if (maxBytes <= 0 && maxAge <= 0) || limit <= start {
		return nil
	}
	var cutoff int64
	if maxAge > 0 {
		cutoff = e.opts.now().Add(-maxAge).UnixNano()
	}
	overBytes := func(total int64) bool { return maxBytes > 0 && total > maxBytes }
	tooOld := func(t int64) bool { return maxAge > 0 && t < cutoff }

	cut, total := start, s.retained
	dropped := 0             // whole sealed segments deleted
	var trimmed *segment     // the segment cut into, if any
	var trimmedTo segment    // its summary after the cut
	all := len(s.sealed) + 1 // the open segment is last
	for i := 0; i < all; i++ {
		seg := s.open
		if i < len(s.sealed) {
			seg = s.sealed[i]
		}
		if seg.empty() || !(overBytes(total) || tooOld(seg.minTime)) {
			break
		}
		if seg.end <= limit && (overBytes(total-seg.bytes+1) || tooOld(seg.maxTime)) {
			// The whole segment goes: even its newest record is over the
			// limits, judged without scanning it.
			cut, total = seg.end, total-seg.bytes
			if i < len(s.sealed) {
				dropped++
			} else {
				trimmed, trimmedTo = &s.open, segment{first: seg.end, end: seg.end}
			}
			continue
		}
		kept, err := s.trim(e, seg, limit, total, overBytes, tooOld)
		if err != nil {
			return err
		}
		total -= seg.bytes - kept.bytes
		cut = kept.first
		if i < len(s.sealed) {
			if kept.empty() {
				dropped++
				continue
			}
			trimmed = &s.sealed[i]
		} else {
			trimmed = &s.open
		}
		trimmedTo = kept
		break
	}
	if cut == start {
		return nil
	}

	b := e.db.NewBatch()
	defer b.Close()
	_ = b.DeleteRange(recordKey(start), recordKey(cut), nil)
	// Summaries are keyed by end offset, so those of deleted segments are
	// exactly the keys up to cut.
	_ = b.DeleteRange(segmentKey(0), segmentKey(cut+1), nil)
	if trimmed != nil && trimmed != &s.open {
		_ = b.Set(segmentKey(trimmedTo.end), encodeSegment(trimmedTo), nil)
	}
	_ = b.Set(metaStartKey, binary.BigEndian.AppendUint64(nil, cut), nil)
	if err := e.db.Apply(b, pebble.NoSync); err != nil {
		return fmt.Errorf("eventlog: retention: %w", err)
	}

	if trimmed != nil {
		*trimmed = trimmedTo
	}
	s.sealed = s.sealed[dropped:]
	s.retained = total
	e.start.Store(cut)
	e.stats.deleted.Add(cut - start)
	e.stats.retainedBytes.Store(total)
	e.log.Info("retention deleted records", "from", start, "to", cut-1, "retained_bytes", total)
	return nil
}

// trim scans seg from its first record and returns what is left after
// dropping records while the log is over its limits, stopping at limit.
func (s *segments) trim(e *Embedded, seg segment, limit uint64, total int64, overBytes func(int64) bool, tooOld func(int64) bool) (segment, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: recordKey(seg.first), UpperBound: recordKey(seg.end)})
	if err != nil {
		return seg, err
	}
	defer it.Close()
	kept := seg
	for ok := it.First(); ok; ok = it.Next() {
		off, t, size, err := recordMeta(it)
		if err != nil {
			return seg, err
		}
		if off >= limit || !(overBytes(total) || tooOld(t)) {
			// Times are only nearly monotonic (wall clock), so the
			// remaining records' oldest time is not known exactly; this
			// record's is a fine estimate for deciding when to look again.
			kept.minTime = t
			return kept, nil
		}
		total -= int64(size)
		kept.bytes -= int64(size)
		kept.first = off + 1
	}
	if err := it.Error(); err != nil {
		return seg, err
	}
	return kept, nil
}

// recordMeta decodes the current record's offset, append time and logical size.
func recordMeta(it *pebble.Iterator) (off uint64, t int64, size int, err error) {
	off, err = decodeRecordKey(it.Key())
	if err != nil {
		return 0, 0, 0, err
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return 0, 0, 0, err
	}
	if len(v) < headerLen {
		return 0, 0, 0, fmt.Errorf("eventlog: record %d: short value", off)
	}
	return off, int64(binary.BigEndian.Uint64(v)), len(v) - headerLen + recordOverhead, nil
}

func segmentKey(end uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixSegment}, end)
}

func encodeSegment(s segment) []byte {
	v := make([]byte, 0, segmentValLen)
	v = binary.BigEndian.AppendUint64(v, s.first)
	v = binary.BigEndian.AppendUint64(v, uint64(s.bytes))
	v = binary.BigEndian.AppendUint64(v, uint64(s.minTime))
	return binary.BigEndian.AppendUint64(v, uint64(s.maxTime))
}

func decodeSegment(k, v []byte) (segment, error) {
	if len(k) != 9 || len(v) != segmentValLen {
		return segment{}, fmt.Errorf("eventlog: corrupt segment %x", k)
	}
	return segment{
		first:   binary.BigEndian.Uint64(v),
		end:     binary.BigEndian.Uint64(k[1:]),
		bytes:   int64(binary.BigEndian.Uint64(v[8:])),
		minTime: int64(binary.BigEndian.Uint64(v[16:])),
		maxTime: int64(binary.BigEndian.Uint64(v[24:])),
	}, nil
}
