package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteReplacesOrLeavesAsItWas(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	require.NoError(t, Write(path, 0o600, func(w io.Writer) error { _, err := io.WriteString(w, "one"); return err }))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "one", string(b))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	boom := errors.New("boom")
	err = Write(path, 0o600, func(w io.Writer) error { _, _ = io.WriteString(w, "tw"); return boom })
	assert.ErrorIs(t, err, boom)
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "one", string(b), "a failed write leaves the file as it was")
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, ents, 1, "and no temporary file behind")

	assert.Error(t, Write(filepath.Join(dir, "missing", "f"), 0o600, func(io.Writer) error { return nil }))
}
