package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ripple-rec/ripple/internal/atomicfile"
)

// fileVersion is the key file's format version.
const fileVersion = 1

// keyFile is the JSON the CLI writes and the server reads.
type keyFile struct {
	Version int   `json:"version"`
	Keys    []Key `json:"keys"`
}

// ReadFile loads the keys of a key file. A missing file holds no keys.
func ReadFile(path string) ([]Key, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseFile(path, b)
}

func parseFile(path string, b []byte) ([]Key, error) {
	var f keyFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if f.Version != fileVersion {
		return nil, fmt.Errorf("key file %s: version %d, want %d", path, f.Version, fileVersion)
	}
	if err := validateSet(f.Keys); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return f.Keys, nil
}

// validateSet checks every key and that ids and hashes are unique.
func validateSet(keys []Key) error {
	ids := make(map[string]bool, len(keys))
	hashes := make(map[string]string, len(keys))
	for i := range keys {
		k := &keys[i]
		if err := k.Validate(); err != nil {
			return err
		}
		if ids[k.ID] {
			return fmt.Errorf("key id %s appears twice", k.ID)
		}
		ids[k.ID] = true
		if other, ok := hashes[k.Hash]; ok {
			return fmt.Errorf("keys %s and %s have the same secret", other, k.ID)
		}
		hashes[k.Hash] = k.ID
	}
	return nil
}

// WriteFile replaces the key file atomically: a temporary file in the same
// directory, written with mode 0600 and synced, is renamed over the old
// one, so a reader sees either the old set or the new one, never a part.
func WriteFile(path string, keys []Key) error {
	if err := validateSet(keys); err != nil {
		return err
	}
	if keys == nil {
		keys = []Key{}
	}
	b, err := json.MarshalIndent(keyFile{Version: fileVersion, Keys: keys}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// UpdateFile applies fn to the keys of path and writes the result, holding
// an exclusive lock on path+".lock" so two CLI runs cannot lose each
// other's change.
func UpdateFile(path string, fn func([]Key) ([]Key, error)) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	unlock, err := lockFile(path + ".lock")
	if err != nil {
		return fmt.Errorf("locking %s: %w", path, err)
	}
	defer unlock()
	keys, err := ReadFile(path)
	if err != nil {
		return err
	}
	keys, err = fn(keys)
	if err != nil {
		return err
	}
	return WriteFile(path, keys)
}
