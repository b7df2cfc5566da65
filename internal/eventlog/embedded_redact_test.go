package eventlog

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/erasure"
)

// Redacted records read back replaced, offsets unchanged, from the cache
// and from disk, across a reopen; and no file of the log still holds the
// old bytes.
func TestRedactLeavesNothingOnDisk(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenEmbedded(dir, EmbeddedOptions{})
	require.NoError(t, err)
	ctx := context.Background()
	secret := []byte("user-7f3a9c-secret")
	var payloads [][]byte
	for i := range 2000 {
		if i%100 == 7 {
			payloads = append(payloads, append([]byte("rec:"), secret...))
		} else {
			payloads = append(payloads, []byte(fmt.Sprintf("rec:other-%d", i)))
		}
	}
	for lo := 0; lo < len(payloads); lo += 250 {
		_, err := l.Append(ctx, payloads[lo:lo+250])
		require.NoError(t, err)
	}
	n, err := l.Redact(ctx, func(_ uint64, data []byte) []byte {
		if bytes.Contains(data, secret) {
			return []byte("gone")
		}
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, 20, n)

	check := func(l *Embedded) {
		got := 0
		_, err := l.Read(ctx, 1, 10_000, func(off uint64, data []byte) error {
			want := payloads[off-1]
			if bytes.Contains(want, secret) {
				want = []byte("gone")
			}
			assert.Equal(t, string(want), string(data), "offset %d", off)
			got++
			return nil
		})
		require.NoError(t, err)
		assert.Equal(t, 2000, got)
	}
	check(l)
	noFileHolds(t, dir, secret) // while open: nothing waits for a flush
	require.NoError(t, l.Close())
	l, err = OpenEmbedded(dir, EmbeddedOptions{})
	require.NoError(t, err)
	defer l.Close()
	check(l)
	_, err = l.Append(ctx, [][]byte{[]byte("after")})
	require.NoError(t, err)

	noFileHolds(t, dir, secret)
}

// noFileHolds fails if any file under dir (SSTs, WALs, manifests) contains b.
func noFileHolds(t *testing.T, dir string, secret []byte) {
	t.Helper()
	files, err := erasure.FilesContaining(dir, secret)
	require.NoError(t, err)
	assert.Empty(t, files, "files still holding redacted bytes")
}
