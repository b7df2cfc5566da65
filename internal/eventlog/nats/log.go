package nats

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsio "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ErrUnavailable wraps every failure to store or read because the broker is
// unreachable, slow past the caller's deadline, or refused the request. An
// Append that returns it may still have stored some records: retry with the
// same Record.IDs and the stream's duplicate window drops the copies.
var ErrUnavailable = errors.New("eventlog/nats: unavailable")

// Defaults for Options' zero values.
const (
	DefaultStream        = "RIPPLE_EVENTS"
	DefaultSubjectPrefix = "ripple.events"
	DefaultPartitions    = 6
	DefaultDuplicates    = 2 * time.Minute

	// dlqSuffix names the dead-letter subject, <prefix>.dlq, and stream,
	// <Stream>_DLQ. Dead letters live in their own stream so event retention
	// (MaxAge, MaxBytes) never discards them and operators can purge them alone.
	dlqSuffix = "dlq"

	// Headers on dead letters.
	HeaderReason    = "Ripple-Reason"
	HeaderKey       = "Ripple-Key"       // base64 (std) of Record.Key: keys are bytes, headers are text
	HeaderPartition = "Ripple-Partition" // source partition, decimal
	HeaderOffset    = "Ripple-Offset"    // source offset (stream sequence), decimal

	// maxPendingAcks bounds the publishes in flight per connection; Append
	// waits for acks past it rather than growing memory.
	maxPendingAcks = 8192
)

// Options configures Open. The zero value connects to nats.DefaultURL.
type Options struct {
	URL           string        // default nats://127.0.0.1:4222
	Stream        string        // default RIPPLE_EVENTS
	SubjectPrefix string        // default ripple.events
	Partitions    int           // fixed at creation; default 6
	Replicas      int           // default 1; 3 in a cluster for durability
	MaxAge        time.Duration // 0 = keep forever
	MaxBytes      int64         // 0 = unlimited
	// Duplicates is the window in which a Record.ID seen before is dropped
	// (default 2 minutes). Client retries must fall inside it.
	Duplicates time.Duration
}

// Record is one event to append. Key chooses the partition (the user id);
// ID, when set, is the event id that dedups retries within the window.
type Record struct {
	Key, Value []byte
	ID         string
	// Pinned stores the record in Partition instead of Key's partition:
	// a record that every partition needs (item metadata) is appended
	// once per partition.
	Pinned    bool
	Partition int
}

// Log is the JetStream event log: a connection and the stream's layout.
// It is safe for concurrent use.
type Log struct {
	nc        *natsio.Conn
	js        jetstream.JetStream
	stream    jetstream.Stream
	dlq       jetstream.Stream
	opts      Options
	subjects  []string // partition subjects, index = partition
	dlqSubj   string
	closeOnce func() error

	// conn is replaced at every disconnect and reconnect, and the old one's
	// ctx cancelled: pull requests and ephemeral consumers may not have
	// survived, so readers start over (nats-server 2.9 answers a pull on a
	// vanished consumer with silence, not an error).
	conn atomic.Pointer[connEpoch]
}

type connEpoch struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func (l *Log) newEpoch() {
	ctx, cancel := context.WithCancel(context.Background())
	if old := l.conn.Swap(&connEpoch{ctx, cancel}); old != nil {
		old.cancel()
	}
}

// PartitionOf is the partition of key among n: FNV-1a (32 bit) mod n. Every
// producer and consumer of a stream must agree on it, so it never changes.
func PartitionOf(key []byte, n int) int {
	h := uint32(2166136261)
	for _, c := range key {
		h ^= uint32(c)
		h *= 16777619
	}
	return int(h % uint32(n))
}

// Open connects to the server and creates the stream, or updates its limits
// if it exists. It refuses a stream laid out with another partition count:
// moving a user to another partition would break per-user order.
func Open(ctx context.Context, opts Options) (*Log, error) {
	if opts.URL == "" {
		opts.URL = natsio.DefaultURL
	}
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.SubjectPrefix == "" {
		opts.SubjectPrefix = DefaultSubjectPrefix
	}
	if opts.Partitions == 0 {
		opts.Partitions = DefaultPartitions
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.Duplicates == 0 {
		opts.Duplicates = DefaultDuplicates
	}
	if opts.Partitions < 0 || opts.Replicas < 0 || opts.MaxAge < 0 || opts.MaxBytes < 0 || opts.Duplicates < 0 {
		return nil, fmt.Errorf("eventlog/nats: negative option in %+v", opts)
	}
	if strings.ContainsAny(opts.SubjectPrefix, "*> \t") || strings.HasSuffix(opts.SubjectPrefix, ".") {
		return nil, fmt.Errorf("eventlog/nats: bad subject prefix %q", opts.SubjectPrefix)
	}

	l := &Log{opts: opts, dlqSubj: opts.SubjectPrefix + "." + dlqSuffix}
	l.newEpoch()
	copts := []natsio.Option{
		natsio.DisconnectErrHandler(func(*natsio.Conn, error) { l.newEpoch() }),
		natsio.ReconnectHandler(func(*natsio.Conn) { l.newEpoch() }),
		natsio.Name("ripple-eventlog"),
		natsio.MaxReconnects(-1),
		natsio.ReconnectWait(250 * time.Millisecond),
		// No buffering while disconnected: a publish fails at once instead of
		// sitting in a buffer after its caller was told it failed.
		natsio.ReconnectBufSize(-1),
	}
	if d, ok := ctx.Deadline(); ok {
		copts = append(copts, natsio.Timeout(time.Until(d)))
	}
	nc, err := natsio.Connect(opts.URL, copts...)
	if err != nil {
		return nil, fmt.Errorf("%w: connect %s: %w", ErrUnavailable, opts.URL, err)
	}
	l.nc = nc
	l.closeOnce = sync.OnceValue(func() error {
		nc.Close()
		l.conn.Load().cancel()
		return nil
	})
	for p := range opts.Partitions {
		l.subjects = append(l.subjects, opts.SubjectPrefix+"."+strconv.Itoa(p))
	}
	if err := l.setup(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return l, nil
}

func (l *Log) setup(ctx context.Context) error {
	js, err := jetstream.New(l.nc,
		jetstream.WithPublishAsyncMaxPending(maxPendingAcks),
		// Futures of acks that never come (server died) are dropped, not kept.
		jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return fmt.Errorf("eventlog/nats: %w", err)
	}
	l.js = js
	cfg := jetstream.StreamConfig{
		Name:       l.opts.Stream,
		Subjects:   l.subjects,
		Storage:    jetstream.FileStorage,
		Replicas:   l.opts.Replicas,
		MaxAge:     l.opts.MaxAge,
		MaxBytes:   l.opts.MaxBytes,
		Duplicates: l.opts.Duplicates,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = -1
	}
	s, err := js.Stream(ctx, cfg.Name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		s, err = js.CreateStream(ctx, cfg)
	case err == nil:
		if have := s.CachedInfo().Config.Subjects; !sameSubjects(have, l.subjects) {
			return fmt.Errorf("eventlog/nats: stream %s has subjects %v, want %d partitions %v; a partition count is fixed at creation",
				cfg.Name, have, l.opts.Partitions, l.subjects)
		}
		s, err = js.UpdateStream(ctx, cfg)
	}
	if err != nil {
		return fmt.Errorf("%w: stream %s: %w", ErrUnavailable, cfg.Name, err)
	}
	l.stream = s
	l.dlq, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       cfg.Name + "_" + strings.ToUpper(dlqSuffix),
		Subjects:   []string{l.dlqSubj},
		Storage:    jetstream.FileStorage,
		Replicas:   l.opts.Replicas,
		Duplicates: l.opts.Duplicates,
	})
	if err != nil {
		return fmt.Errorf("%w: dead-letter stream: %w", ErrUnavailable, err)
	}
	return nil
}

func sameSubjects(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Partitions is the stream's partition count.
func (l *Log) Partitions() int { return len(l.subjects) }

// Subject is partition p's subject.
func (l *Log) Subject(p int) string { return l.subjects[p] }

// Append stores recs, each in its key's partition, in order per partition,
// and returns nil only when the server acknowledged every one as stored.
// Publishes are pipelined: one round trip for the batch, not one per record.
// Records the window already holds (same ID) count as stored.
func (l *Log) Append(ctx context.Context, recs []Record) error {
	_, err := l.AppendAt(ctx, recs)
	return err
}

// AppendAt is Append that also says where the records went: for each
// partition it wrote to, the offset (stream sequence) of the last record
// stored there, the original's for a duplicate. A reader that has delivered
// those offsets has seen every record (what a read-your-writes wait needs).
func (l *Log) AppendAt(ctx context.Context, recs []Record) (map[int]uint64, error) {
	parts := make([]int, len(recs))
	msgs := make([]natsio.Msg, len(recs))
	futures := make([]jetstream.PubAckFuture, 0, len(recs))
	for i, r := range recs {
		m := &msgs[i]
		parts[i] = PartitionOf(r.Key, len(l.subjects))
		if r.Pinned {
			if r.Partition < 0 || r.Partition >= len(l.subjects) {
				return nil, fmt.Errorf("nats: record %d pinned to partition %d of %d", i, r.Partition, len(l.subjects))
			}
			parts[i] = r.Partition
		}
		m.Subject = l.subjects[parts[i]]
		m.Data = r.Value
		var popts []jetstream.PublishOpt
		if r.ID != "" {
			popts = append(popts, jetstream.WithMsgID(r.ID))
		}
		f, err := l.js.PublishMsgAsync(m, popts...)
		if err != nil {
			return nil, fmt.Errorf("%w: publish %d of %d: %w", ErrUnavailable, i, len(recs), err)
		}
		futures = append(futures, f)
	}
	last := make(map[int]uint64)
	err := l.waitAcks(ctx, futures, func(i int, seq uint64) { last[parts[i]] = max(last[parts[i]], seq) })
	if err != nil {
		return nil, err
	}
	return last, nil
}

// waitAcks waits for every future and passes each stored record's sequence
// to stored.
func (l *Log) waitAcks(ctx context.Context, futures []jetstream.PubAckFuture, stored func(i int, seq uint64)) error {
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			// Only our stream captures our subjects; a different answer means
			// the server's layout changed under us.
			if ack.Stream != l.opts.Stream {
				return fmt.Errorf("%w: record %d stored in stream %q, not %q", ErrUnavailable, i, ack.Stream, l.opts.Stream)
			}
			stored(i, ack.Sequence)
		case err := <-f.Err():
			return fmt.Errorf("%w: record %d of %d: %w", ErrUnavailable, i, len(futures), err)
		case <-ctx.Done():
			return fmt.Errorf("%w: %d of %d records unacknowledged: %w", ErrUnavailable, len(futures)-i, len(futures), ctx.Err())
		}
	}
	return nil
}

// DeadLetter stores rec, read from partition at offset, on <prefix>.dlq with
// reason in the Ripple-Reason header, the source in Ripple-Partition and
// Ripple-Offset and its key in Ripple-Key, so a bad record can leave its
// partition without being lost. Like Append, nil means stored. The source
// position is the message id: a letter sent again for the same record (a
// retry, a replay after a restart) within the duplicate window is stored once.
func (l *Log) DeadLetter(ctx context.Context, reason string, partition int, offset uint64, rec Record) error {
	m := natsio.NewMsg(l.dlqSubj)
	m.Data = rec.Value
	// Header values are single lines.
	m.Header.Set(HeaderReason, strings.NewReplacer("\r", " ", "\n", " ").Replace(reason))
	m.Header.Set(HeaderKey, base64.StdEncoding.EncodeToString(rec.Key))
	m.Header.Set(HeaderPartition, strconv.Itoa(partition))
	m.Header.Set(HeaderOffset, strconv.FormatUint(offset, 10))
	id := strconv.Itoa(partition) + "/" + strconv.FormatUint(offset, 10)
	if _, err := l.js.PublishMsg(ctx, m, jetstream.WithMsgID(id)); err != nil {
		return fmt.Errorf("%w: dead letter: %w", ErrUnavailable, err)
	}
	return nil
}

// DeadLetterStream is the name of the stream holding dead letters.
func (l *Log) DeadLetterStream() string { return l.dlq.CachedInfo().Config.Name }

// Newest is the offset of partition p's newest record, 0 when it is empty.
// One round trip.
func (l *Log) Newest(ctx context.Context, p int) (uint64, error) {
	if p < 0 || p >= len(l.subjects) {
		return 0, fmt.Errorf("eventlog/nats: partition %d of %d", p, len(l.subjects))
	}
	m, err := l.stream.GetLastMsgForSubject(ctx, l.subjects[p])
	switch {
	case err == nil:
		return m.Sequence, nil
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, nil
	}
	return 0, fmt.Errorf("%w: last of %s: %w", ErrUnavailable, l.subjects[p], err)
}

// Lag is how many records partition p holds with offset > applied: the work
// a worker that has applied up to applied still has, and the offset of the
// newest record (0: the partition is empty). When there is work it asks the
// server to count by creating a short-lived filtered consumer (three round
// trips in all), so call it for metrics, not per record.
func (l *Log) Lag(ctx context.Context, p int, applied uint64) (records, newest uint64, err error) {
	newest, err = l.Newest(ctx, p)
	if err != nil || newest <= applied {
		return 0, newest, err
	}
	c, err := l.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     l.subjects[p],
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       applied + 1,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: 10 * time.Second,
		MemoryStorage:     true,
	})
	if err != nil {
		return 0, newest, fmt.Errorf("%w: lag of partition %d: %w", ErrUnavailable, p, err)
	}
	n := c.CachedInfo().NumPending
	// The server deletes it after InactiveThreshold anyway; deleting now
	// keeps the consumer list short.
	_ = l.stream.DeleteConsumer(ctx, c.CachedInfo().Name)
	return n, newest, nil
}

// Close closes the connection; readers opened from l stop working.
func (l *Log) Close() error { return l.closeOnce() }
