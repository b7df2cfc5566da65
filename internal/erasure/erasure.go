// Package erasure owns the mechanics that make erased bytes leave the disk
// of a Pebble store: WAL files are never recycled (a recycled log keeps
// old bytes past its new content), and Purge rotates the WAL past every
// obsolete log and compacts a key range so shadowed values are dropped.
package erasure

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// FS wraps fs (nil: the OS) so that Pebble's WAL reuse is a delete and a
// create, which its ReuseForWrite contract allows.
func FS(fs vfs.FS) vfs.FS {
	if fs == nil {
		fs = vfs.Default
	}
	return noRecycleFS{fs}
}

type noRecycleFS struct{ vfs.FS }

func (fs noRecycleFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := fs.Remove(oldname); err != nil {
		return nil, err
	}
	return fs.Create(newname, category)
}

// walRotations is more than the number of obsolete WALs Pebble keeps for
// reuse (MemTableStopWritesThreshold+1 with the default threshold of 2);
// each rotation consumes one, and with FS consuming deletes it.
const walRotations = 4

// Purge makes db forget overwritten and deleted values in [start, end):
// memtables are flushed and the WAL rotated until every log that held
// them is gone, then the range is compacted to the bottom level. db must
// have been opened with FS.
func Purge(ctx context.Context, db *pebble.DB, start, end []byte) error {
	for range walRotations {
		if err := db.Flush(); err != nil {
			return fmt.Errorf("erasure: flush: %w", err)
		}
	}
	if err := db.Compact(ctx, start, end, false); err != nil {
		return fmt.Errorf("erasure: compact: %w", err)
	}
	return nil
}

// FilesContaining lists the files under dir whose bytes contain b: the
// check that an erasure left nothing on disk (tests use it; so can an
// operator's audit).
func FilesContaining(dir string, b []byte) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, b) {
			out = append(out, path)
		}
		return nil
	})
	return out, err
}
