package eventlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/ripple-rec/ripple/internal/erasure"
)

// Key layout. A one-byte prefix keeps records, segment summaries and metadata
// apart in one keyspace; big-endian offsets make key order equal log order.
const (
	prefixSegment = 'c'
	prefixMeta    = 'm'
	prefixRecord  = 'r'

	keyLen = 1 + 8
	// headerLen is the append time (unix nanoseconds) stored before each
	// payload; age retention needs it and eight bytes is cheaper than a
	// separate index.
	headerLen = 8
	// recordOverhead is what a record costs beyond its payload in the
	// logical size that RetentionBytes bounds.
	recordOverhead = keyLen + headerLen

	formatVersion = 1
)

var (
	metaVersionKey = []byte{prefixMeta, 'v'}
	metaStartKey   = []byte{prefixMeta, 's'}
)

// Defaults for EmbeddedOptions' zero values.
const (
	DefaultMaxBatchRecords   = 16384
	DefaultTailCacheRecords  = 65536
	DefaultTailCacheBytes    = 64 << 20
	DefaultRetentionInterval = 30 * time.Second

	// maxBatchBytes bounds a group commit's memory whatever the record count.
	maxBatchBytes = 32 << 20
	// queueLen is how many Append calls may wait for the committer before
	// callers block; it bounds memory, not latency.
	queueLen = 1024
)

// EmbeddedOptions configures OpenEmbedded. The zero value is usable.
type EmbeddedOptions struct {
	// RetentionBytes bounds the logical size of retained records (payload
	// plus 17 bytes of key and header, before compression). 0 = unlimited.
	RetentionBytes int64
	// RetentionAge drops records appended longer ago than this. 0 = unlimited.
	RetentionAge time.Duration
	// RetentionInterval is how often retention runs in the background
	// (default 30s). Retention never passes the floor set by SetRetentionFloor.
	RetentionInterval time.Duration
	// MaxBatchRecords caps how many records one group commit gathers from
	// concurrent Append calls (default 16384). A single Append larger than the
	// cap is still committed whole, as its offsets must be consecutive.
	MaxBatchRecords int
	// TailCacheRecords is how many of the newest records are kept in memory
	// for consumers reading right behind the writer (default 65536, negative
	// disables the cache).
	TailCacheRecords int
	// TailCacheBytes bounds the tail cache's payload bytes (default 64 MiB).
	TailCacheBytes int64
	// Logger receives retention and Pebble messages; nil discards them.
	Logger *slog.Logger

	// Test hooks.
	fs          vfs.FS
	now         func() time.Time
	beforeApply func() error
}

// Embedded is the Log stored in a local Pebble database. Concurrent Append
// calls are group-committed by one goroutine into a single fsync'd batch.
type Embedded struct {
	db    *pebble.DB
	cache *pebble.Cache
	opts  EmbeddedOptions
	log   *slog.Logger

	start atomic.Uint64
	end   atomic.Uint64 // durable: advanced only after the batch's fsync
	floor atomic.Uint64

	// mu orders Append's queueing and Read's start against Close, so that
	// Close can close reqs and then close Pebble without a racing user.
	mu      sync.RWMutex
	closed  atomic.Bool
	reqs    chan *appendReq
	readers sync.WaitGroup

	// notify is closed and replaced after every commit: Wait's broadcast.
	notify atomic.Pointer[chan struct{}]
	tail   *tailCache

	retentionReqs chan chan error
	segs          segments // owned by the committer goroutine

	bgCancel      context.CancelFunc
	committerDone chan struct{}
	retentionDone chan struct{}
	closeOnce     sync.Once
	closeErr      error

	stats struct {
		appends, appendBytes, batches, failedBatches atomic.Uint64
		syncNanos, lastSyncNanos                     atomic.Int64
		retainedBytes                                atomic.Int64
		deleted, tailReads, storeReads               atomic.Uint64
	}
}

var _ Log = (*Embedded)(nil)

// EmbeddedStats are cumulative counters since OpenEmbedded, for metrics.
type EmbeddedStats struct {
	Appends       uint64        // records made durable
	AppendBytes   uint64        // payload bytes made durable
	Batches       uint64        // group commits, one fsync each
	FailedBatches uint64        // group commits whose write failed
	SyncTime      time.Duration // total time spent committing batches, fsync included
	LastSync      time.Duration // the latest batch's commit time
	RetainedBytes int64         // logical size of retained records
	Deleted       uint64        // records removed by retention
	TailReads     uint64        // records Read served from memory
	StoreReads    uint64        // records Read served from Pebble
}

const (
	reqQueued int32 = iota
	reqTaken
	reqCancelled
)

type appendReq struct {
	payloads [][]byte
	// state lets a caller whose ctx ends withdraw a request that the
	// committer has not taken yet, so a ctx error means "not written".
	state atomic.Int32
	first uint64
	err   error
	done  chan struct{}
}

// OpenEmbedded opens (creating if needed) the log stored in dir.
func OpenEmbedded(dir string, opts EmbeddedOptions) (*Embedded, error) {
	for name, v := range map[string]int64{
		"RetentionBytes":    opts.RetentionBytes,
		"RetentionAge":      int64(opts.RetentionAge),
		"RetentionInterval": int64(opts.RetentionInterval),
		"MaxBatchRecords":   int64(opts.MaxBatchRecords),
		"TailCacheBytes":    opts.TailCacheBytes,
	} {
		if v < 0 {
			return nil, fmt.Errorf("eventlog: negative %s %d", name, v)
		}
	}
	if opts.RetentionInterval == 0 {
		opts.RetentionInterval = DefaultRetentionInterval
	}
	if opts.MaxBatchRecords == 0 {
		opts.MaxBatchRecords = DefaultMaxBatchRecords
	}
	if opts.TailCacheRecords == 0 {
		opts.TailCacheRecords = DefaultTailCacheRecords
	}
	if opts.TailCacheBytes == 0 {
		opts.TailCacheBytes = DefaultTailCacheBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	logger := opts.Logger.With("component", "eventlog", "dir", dir)

	cache := pebble.NewCache(64 << 20)
	db, err := pebble.Open(dir, &pebble.Options{
		// Erased records must not survive in a recycled WAL file.
		FS:    erasure.FS(opts.fs),
		Cache: cache,
		// A large memtable turns the append stream into few, large flushes.
		MemTableSize:       64 << 20,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{logger},
	})
	if err != nil {
		cache.Unref()
		return nil, fmt.Errorf("eventlog: open %s: %w", dir, err)
	}
	e := &Embedded{
		db:            db,
		cache:         cache,
		opts:          opts,
		log:           logger,
		reqs:          make(chan *appendReq, queueLen),
		retentionReqs: make(chan chan error),
		committerDone: make(chan struct{}),
		retentionDone: make(chan struct{}),
	}
	if err := e.load(); err != nil {
		db.Close()
		cache.Unref()
		return nil, fmt.Errorf("eventlog: open %s: %w", dir, err)
	}
	e.stats.retainedBytes.Store(e.segs.retained)
	ch := make(chan struct{})
	e.notify.Store(&ch)
	e.tail = newTailCache(opts.TailCacheRecords, opts.TailCacheBytes, e.end.Load())

	ctx, cancel := context.WithCancel(context.Background())
	e.bgCancel = cancel
	go e.commitLoop()
	if opts.RetentionBytes > 0 || opts.RetentionAge > 0 {
		go e.retentionLoop(ctx)
	} else {
		close(e.retentionDone)
	}
	return e, nil
}

// load recovers Start, End and the segment index from the database.
func (e *Embedded) load() error {
	v, err := e.getUint64(metaVersionKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := e.db.Set(metaVersionKey, binary.BigEndian.AppendUint64(nil, formatVersion), pebble.Sync); err != nil {
			return err
		}
	case err != nil:
		return err
	case v != formatVersion:
		return fmt.Errorf("unknown format version %d", v)
	}

	start, err := e.getUint64(metaStartKey)
	if errors.Is(err, pebble.ErrNotFound) {
		start = 1
	} else if err != nil {
		return err
	}
	end := start
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: recordKey(start), UpperBound: []byte{prefixRecord + 1}})
	if err != nil {
		return err
	}
	if it.Last() {
		off, err := decodeRecordKey(it.Key())
		if err != nil {
			it.Close()
			return err
		}
		end = off + 1
	}
	if err := it.Close(); err != nil {
		return err
	}
	e.start.Store(start)
	e.end.Store(end)
	return e.segs.load(e, start, end)
}

func (e *Embedded) getUint64(key []byte) (uint64, error) {
	v, closer, err := e.db.Get(key)
	if err != nil {
		return 0, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("corrupt value of %q", key)
	}
	return binary.BigEndian.Uint64(v), nil
}

// Append writes payloads as consecutive records and returns the first
// offset once they are fsync'd. If ctx ends before the committer takes the
// request, Append returns ctx's error and nothing is written; once taken,
// Append waits for that batch's fsync, a bounded wait. Other Log
// implementations cannot promise this, so callers treat a ctx error as
// "unknown" and rely on event ids to deduplicate a retry.
func (e *Embedded) Append(ctx context.Context, payloads [][]byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	e.mu.RLock()
	if e.closed.Load() {
		e.mu.RUnlock()
		return 0, ErrClosed
	}
	if len(payloads) == 0 {
		e.mu.RUnlock()
		return e.end.Load(), nil
	}
	req := &appendReq{payloads: payloads, done: make(chan struct{})}
	select {
	case e.reqs <- req:
		e.mu.RUnlock()
	case <-ctx.Done():
		e.mu.RUnlock()
		return 0, ctx.Err()
	}
	select {
	case <-req.done:
	case <-ctx.Done():
		if req.state.CompareAndSwap(reqQueued, reqCancelled) {
			return 0, ctx.Err()
		}
		<-req.done
	}
	return req.first, req.err
}

// commitLoop is the single writer: it group-commits appends and runs
// retention, so neither needs locks against the other.
func (e *Embedded) commitLoop() {
	defer close(e.committerDone)
	var batch []*appendReq
	for {
		select {
		case req, ok := <-e.reqs:
			if !ok {
				return
			}
			var open bool
			batch, open = e.gather(batch[:0], req)
			e.commit(batch)
			clear(batch) // let callers' payloads be collected
			if !open {
				return
			}
		case reply := <-e.retentionReqs:
			reply <- e.segs.enforce(e)
		}
	}
}

// gather takes first and whatever else is queued, up to the batch caps. It
// reports false once reqs is closed and drained.
func (e *Embedded) gather(batch []*appendReq, first *appendReq) ([]*appendReq, bool) {
	records, bytes := 0, 0
	take := func(r *appendReq) {
		if !r.state.CompareAndSwap(reqQueued, reqTaken) {
			return
		}
		batch = append(batch, r)
		records += len(r.payloads)
		for _, p := range r.payloads {
			bytes += len(p)
		}
	}
	take(first)
	for records < e.opts.MaxBatchRecords && bytes < maxBatchBytes {
		select {
		case r, ok := <-e.reqs:
			if !ok {
				return batch, false
			}
			take(r)
		default:
			return batch, true
		}
	}
	return batch, true
}

func (e *Embedded) commit(reqs []*appendReq) {
	if len(reqs) == 0 {
		return
	}
	now := e.opts.now().UnixNano()
	first := e.end.Load()
	size := 0
	for _, r := range reqs {
		for _, p := range r.payloads {
			// Pebble's batch encoding adds a kind byte and two varint lengths.
			size += recordOverhead + len(p) + 6
		}
	}
	b := e.db.NewBatchWithSize(size + 64)
	saved := e.segs.save()
	next, bytes := first, 0
	for _, r := range reqs {
		r.first = next
		for _, p := range r.payloads {
			op := b.SetDeferred(keyLen, headerLen+len(p))
			putRecordKey(op.Key, next)
			binary.BigEndian.PutUint64(op.Value, uint64(now))
			copy(op.Value[headerLen:], p)
			_ = op.Finish() // unindexed batch: never fails
			e.segs.add(b, next, recordOverhead+len(p), now)
			bytes += len(p)
			next++
		}
	}

	t0 := time.Now()
	err := e.apply(b)
	took := time.Since(t0)
	if err != nil {
		// Like Pebble's own helpers, leave a batch that failed to the GC
		// rather than recycling it in an unknown state.
		e.segs.restore(saved)
		e.stats.failedBatches.Add(1)
		e.log.Error("append batch failed", "first", first, "records", next-first, "err", err)
		for _, r := range reqs {
			r.first, r.err = 0, fmt.Errorf("eventlog: append: %w", err)
			close(r.done)
		}
		return
	}
	_ = b.Close()
	e.tail.add(first, reqs)
	e.end.Store(next)
	e.broadcast()
	e.stats.appends.Add(next - first)
	e.stats.appendBytes.Add(uint64(bytes))
	e.stats.batches.Add(1)
	e.stats.syncNanos.Add(int64(took))
	e.stats.lastSyncNanos.Store(int64(took))
	e.stats.retainedBytes.Store(e.segs.retained)
	for _, r := range reqs {
		close(r.done)
	}
}

func (e *Embedded) apply(b *pebble.Batch) error {
	if e.opts.beforeApply != nil {
		if err := e.opts.beforeApply(); err != nil {
			return err
		}
	}
	return e.db.Apply(b, pebble.Sync)
}

func (e *Embedded) broadcast() {
	ch := make(chan struct{})
	close(*e.notify.Swap(&ch))
}

// Read calls fn for up to max records with offset >= from, in order, and
// returns the offset to continue from; if fn fails, that is fn's offset.
// fn must not modify or keep data. Records just behind the writer come from
// memory; older ones from a Pebble iterator.
func (e *Embedded) Read(ctx context.Context, from uint64, maxRecords int, fn func(offset uint64, data []byte) error) (uint64, error) {
	e.mu.RLock()
	if e.closed.Load() {
		e.mu.RUnlock()
		return from, ErrClosed
	}
	e.readers.Add(1)
	e.mu.RUnlock()
	defer e.readers.Done()

	from = max(from, e.start.Load())
	end := e.end.Load()
	limit := end
	if maxRecords <= 0 {
		limit = from
	} else if uint64(maxRecords) < end-min(from, end) {
		limit = from + uint64(maxRecords)
	}
	// Copying slice headers out of the cache keeps its lock off fn's path.
	var buf [256][]byte
	for from < limit {
		if err := ctx.Err(); err != nil {
			return from, err
		}
		if n, ok := e.tail.read(from, buf[:min(uint64(len(buf)), limit-from)]); ok {
			e.stats.tailReads.Add(uint64(n))
			for _, data := range buf[:n] {
				if err := fn(from, data); err != nil {
					return from, err
				}
				from++
			}
			continue
		}
		// Stop where the cache begins so the rest is served from memory.
		to := limit
		if o := e.tail.oldest(); o > from && o < to {
			to = o
		}
		next, err := e.readStore(ctx, from, to, fn)
		if err != nil {
			return next, err
		}
		if next == from {
			// Retention deleted [from, to) after we looked at Start.
			if s := e.start.Load(); s > from {
				next = s
			} else {
				return from, fmt.Errorf("eventlog: record %d missing", from)
			}
		}
		from = next
	}
	return from, nil
}

func (e *Embedded) readStore(ctx context.Context, from, to uint64, fn func(uint64, []byte) error) (uint64, error) {
	it, err := e.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: recordKey(from), UpperBound: recordKey(to)})
	if err != nil {
		return from, fmt.Errorf("eventlog: read: %w", err)
	}
	defer it.Close()
	n := uint64(0)
	for valid := it.First(); valid; valid = it.Next() {
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				e.stats.storeReads.Add(n)
				return from, err
			}
		}
		off, err := decodeRecordKey(it.Key())
		if err != nil {
			return from, err
		}
		v, err := it.ValueAndErr()
		if err == nil && len(v) < headerLen {
			err = fmt.Errorf("eventlog: record %d: short value", off)
		}
		if err != nil {
			return from, fmt.Errorf("eventlog: read %d: %w", off, err)
		}
		if err := fn(off, v[headerLen:]); err != nil {
			e.stats.storeReads.Add(n)
			return off, err
		}
		from = off + 1
	}
	e.stats.storeReads.Add(n)
	if err := it.Error(); err != nil {
		return from, fmt.Errorf("eventlog: read: %w", err)
	}
	return from, nil
}

// Wait blocks until a record with offset >= from is durable, ctx ends, or
// the log closes.
func (e *Embedded) Wait(ctx context.Context, from uint64) error {
	for {
		// Load the channel before checking End: a commit after the check
		// closes this very channel, so no wakeup is lost.
		ch := *e.notify.Load()
		if e.end.Load() > from {
			return nil
		}
		if e.closed.Load() {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// End is the offset the next appended record will get.
func (e *Embedded) End() uint64 { return e.end.Load() }

// Start is the oldest retained offset.
func (e *Embedded) Start() uint64 { return e.start.Load() }

// SetRetentionFloor forbids retention to delete records with an offset
// above floor, normally the offset a durable feature snapshot has applied up
// to: records no snapshot covers are needed to rebuild state. Until it is
// called the floor is 0 and retention deletes nothing; an owner that keeps
// no snapshots passes math.MaxUint64.
func (e *Embedded) SetRetentionFloor(floor uint64) { e.floor.Store(floor) }

// EnforceRetention deletes the oldest records beyond RetentionBytes and
// RetentionAge now, as the background loop does every RetentionInterval.
func (e *Embedded) EnforceRetention(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case e.retentionReqs <- reply:
	case <-e.committerDone:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Embedded) retentionLoop(ctx context.Context) {
	defer close(e.retentionDone)
	t := time.NewTicker(e.opts.RetentionInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := e.EnforceRetention(ctx); err != nil && ctx.Err() == nil {
				e.log.Error("retention failed", "err", err)
			}
		}
	}
}

// Stats returns cumulative counters for metrics.
func (e *Embedded) Stats() EmbeddedStats {
	return EmbeddedStats{
		Appends:       e.stats.appends.Load(),
		AppendBytes:   e.stats.appendBytes.Load(),
		Batches:       e.stats.batches.Load(),
		FailedBatches: e.stats.failedBatches.Load(),
		SyncTime:      time.Duration(e.stats.syncNanos.Load()),
		LastSync:      time.Duration(e.stats.lastSyncNanos.Load()),
		RetainedBytes: e.stats.retainedBytes.Load(),
		Deleted:       e.stats.deleted.Load(),
		TailReads:     e.stats.tailReads.Load(),
		StoreReads:    e.stats.storeReads.Load(),
	}
}

// Close stops accepting appends, commits every Append already queued, waits
// for in-flight Reads and closes Pebble. It is idempotent.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		e.mu.Lock()
		e.closed.Store(true)
		close(e.reqs)
		e.mu.Unlock()
		e.broadcast() // wake Wait callers to return ErrClosed
		e.bgCancel()
		<-e.retentionDone
		<-e.committerDone
		e.readers.Wait()
		e.closeErr = e.db.Close()
		e.cache.Unref()
		if e.closeErr != nil {
			e.closeErr = fmt.Errorf("eventlog: close: %w", e.closeErr)
		}
	})
	return e.closeErr
}

func recordKey(off uint64) []byte {
	k := make([]byte, keyLen)
	putRecordKey(k, off)
	return k
}

func putRecordKey(k []byte, off uint64) {
	k[0] = prefixRecord
	binary.BigEndian.PutUint64(k[1:], off)
}

func decodeRecordKey(k []byte) (uint64, error) {
	if len(k) != keyLen || k[0] != prefixRecord {
		return 0, fmt.Errorf("eventlog: corrupt record key %x", k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// pebbleLogger routes Pebble's messages to slog.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Info(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

// Fatalf must not return: Pebble calls it when its commit pipeline or
// on-disk state can no longer be trusted, and exits like Pebble's default.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "source", "pebble")
	fmt.Fprintln(os.Stderr, "pebble fatal:", msg)
	os.Exit(1)
}
