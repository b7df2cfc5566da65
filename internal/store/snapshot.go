package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/ripple-rec/ripple/internal/erasure"
)

// Snapshots keeps the latest complete feature-state snapshot in Pebble. A
// new snapshot is written under a fresh generation prefix; only when all of
// it is written does one synced meta write switch to it, so a crash mid-write
// leaves the previous snapshot intact.
type Snapshots struct {
	db *pebble.DB
}

// SnapshotInfo describes the current snapshot.
type SnapshotInfo struct {
	Generation uint64
	Offset     uint64 // log offset the snapshot includes
	Written    time.Time
	Entries    int64
	Bytes      int64
}

var metaKey = []byte("meta")

// OpenSnapshots opens (or creates) the snapshot database in dir.
func OpenSnapshots(dir string) (*Snapshots, error) {
	// Snapshots hold users' state: an erased user's old rows must be able
	// to leave the disk (see Purge), so WAL files are never recycled.
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}, FS: erasure.FS(nil)})
	if err != nil {
		return nil, fmt.Errorf("store: open snapshots %s: %w", dir, err)
	}
	return &Snapshots{db: db}, nil
}

// Purge drops from disk what older generations held (after an erasure:
// the current snapshot no longer has the user, the old ones must go).
func (s *Snapshots) Purge(ctx context.Context) error {
	return erasure.Purge(ctx, s.db, []byte{0}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
}

// Close closes the database.
func (s *Snapshots) Close() error { return s.db.Close() }

// Info returns the current snapshot's description; ok is false if none exists.
func (s *Snapshots) Info() (SnapshotInfo, bool, error) {
	v, closer, err := s.db.Get(metaKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return SnapshotInfo{}, false, nil
	}
	if err != nil {
		return SnapshotInfo{}, false, err
	}
	defer closer.Close()
	if len(v) != 40 {
		return SnapshotInfo{}, false, fmt.Errorf("store: corrupt snapshot meta")
	}
	return SnapshotInfo{
		Generation: binary.BigEndian.Uint64(v[0:]),
		Offset:     binary.BigEndian.Uint64(v[8:]),
		Written:    time.UnixMilli(int64(binary.BigEndian.Uint64(v[16:]))),
		Entries:    int64(binary.BigEndian.Uint64(v[24:])),
		Bytes:      int64(binary.BigEndian.Uint64(v[32:])),
	}, true, nil
}

func genPrefix(gen uint64) []byte {
	p := make([]byte, 9, 64)
	p[0] = 's'
	binary.BigEndian.PutUint64(p[1:], gen)
	return p
}

// batchBytes bounds one Pebble batch while a snapshot streams in.
const batchBytes = 8 << 20

// Write stores a new snapshot at offset. fill calls put for every entry;
// keys must be unique. The previous snapshot is deleted afterwards.
func (s *Snapshots) Write(offset uint64, fill func(put func(key, val []byte) error) error) (SnapshotInfo, error) {
	old, hadOld, err := s.Info()
	if err != nil {
		return SnapshotInfo{}, err
	}
	info := SnapshotInfo{Generation: old.Generation + 1, Offset: offset}
	prefix := genPrefix(info.Generation)
	// A crashed earlier attempt may have left entries under this generation.
	if err := s.db.DeleteRange(prefix, genPrefix(info.Generation+1), pebble.NoSync); err != nil {
		return SnapshotInfo{}, err
	}
	b := s.db.NewBatch()
	key := make([]byte, 0, 128)
	put := func(k, v []byte) error {
		key = append(append(key[:0], prefix...), k...)
		if err := b.Set(key, v, nil); err != nil {
			return err
		}
		info.Entries++
		info.Bytes += int64(len(k) + len(v))
		if b.Len() >= batchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Reset()
		}
		return nil
	}
	if err := fill(put); err != nil {
		b.Close()
		return SnapshotInfo{}, err
	}
	info.Written = time.Now()
	meta := make([]byte, 40)
	binary.BigEndian.PutUint64(meta[0:], info.Generation)
	binary.BigEndian.PutUint64(meta[8:], info.Offset)
	binary.BigEndian.PutUint64(meta[16:], uint64(info.Written.UnixMilli()))
	binary.BigEndian.PutUint64(meta[24:], uint64(info.Entries))
	binary.BigEndian.PutUint64(meta[32:], uint64(info.Bytes))
	if err := b.Set(metaKey, meta, nil); err != nil {
		b.Close()
		return SnapshotInfo{}, err
	}
	// Sync makes the data batches before it durable too (one WAL).
	if err := b.Commit(pebble.Sync); err != nil {
		b.Close()
		return SnapshotInfo{}, err
	}
	b.Close()
	if hadOld {
		if err := s.db.DeleteRange(genPrefix(old.Generation), prefix, pebble.NoSync); err != nil {
			return info, err
		}
	}
	return info, nil
}

// Load streams the current snapshot's entries to fn and returns its info;
// ok is false when there is no snapshot.
func (s *Snapshots) Load(fn func(key, val []byte) error) (SnapshotInfo, bool, error) {
	info, ok, err := s.Info()
	if err != nil || !ok {
		return info, ok, err
	}
	prefix := genPrefix(info.Generation)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: genPrefix(info.Generation + 1)})
	if err != nil {
		return info, false, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key()[len(prefix):], it.Value()); err != nil {
			return info, false, err
		}
	}
	return info, true, it.Error()
}

// quietLogger keeps Pebble's informational chatter out of Ripple's JSON logs.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	slog.Error("pebble", "msg", fmt.Sprintf(format, args...))
}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}
