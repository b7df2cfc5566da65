package ingest

import (
	"context"

	"github.com/ripple-rec/ripple/internal/eventlog/nats"
)

// NATSLog is a JetStream stream (one subject per partition) as a
// PartitionedLog. Record ids go to JetStream's duplicate window, so a retry
// of an acknowledged event within it is dropped by the server too.
type NATSLog struct{ *nats.Log }

// OpenNATS connects and creates or checks the stream.
func OpenNATS(ctx context.Context, opts nats.Options) (*NATSLog, error) {
	l, err := nats.Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &NATSLog{l}, nil
}

// Append publishes recs, each to its key's (or pinned) partition subject.
func (l *NATSLog) Append(ctx context.Context, recs []Keyed) (map[int]uint64, error) {
	nrs := make([]nats.Record, len(recs))
	for i, r := range recs {
		nrs[i] = nats.Record{Key: r.Key, Value: r.Value, ID: r.ID, Pinned: r.Pinned, Partition: r.Partition}
	}
	return l.AppendAt(ctx, nrs)
}

// DeadLetter stores data on the dead-letter stream with the reason and its
// source partition and offset in headers.
func (l *NATSLog) DeadLetter(ctx context.Context, p int, offset uint64, reason string, data []byte) error {
	return l.Log.DeadLetter(ctx, reason, p, offset, nats.Record{Value: data})
}

// Backlogs asks partition by partition; counting the records of a partition
// that has some creates a short-lived consumer (nats.Log.Lag).
func (l *NATSLog) Backlogs(ctx context.Context, applied []uint64) ([]Backlog, error) {
	out := make([]Backlog, len(applied))
	for p, a := range applied {
		n, newest, err := l.Lag(ctx, p, a)
		if err != nil {
			return nil, err
		}
		out[p] = Backlog{Records: n, Newest: newest}
	}
	return out, nil
}

// Reader reads partition p; it positions itself at the offset of each Read.
func (l *NATSLog) Reader(p int, _ uint64) (PartitionReader, error) {
	r, err := l.Log.Reader(p)
	if err != nil {
		return nil, err
	}
	return r, nil
}
