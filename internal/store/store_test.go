package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func load(t *testing.T, s *Snapshots) (map[string]string, SnapshotInfo, bool) {
	t.Helper()
	got := map[string]string{}
	info, ok, err := s.Load(func(k, v []byte) error {
		got[string(k)] = string(v)
		return nil
	})
	require.NoError(t, err)
	return got, info, ok
}

func write(t *testing.T, s *Snapshots, off uint64, entries map[string]string) SnapshotInfo {
	t.Helper()
	info, err := s.Write(off, func(put func(k, v []byte) error) error {
		for k, v := range entries {
			if err := put([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	return info
}

func TestSnapshotsWriteLoadReplace(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSnapshots(dir)
	require.NoError(t, err)
	_, _, ok := load(t, s)
	assert.False(t, ok, "no snapshot yet")

	write(t, s, 10, map[string]string{"a": "1", "b": "2"})
	info := write(t, s, 20, map[string]string{"b": "3", "c": "4"})
	assert.Equal(t, uint64(2), info.Generation)
	got, info, ok := load(t, s)
	require.True(t, ok)
	assert.Equal(t, map[string]string{"b": "3", "c": "4"}, got, "old generation must not leak into the new one")
	assert.Equal(t, uint64(20), info.Offset)
	assert.EqualValues(t, 2, info.Entries)
	require.NoError(t, s.Close())

	// Reopen: the snapshot is durable.
	s, err = OpenSnapshots(dir)
	require.NoError(t, err)
	defer s.Close()
	got, info, _ = load(t, s)
	assert.Equal(t, map[string]string{"b": "3", "c": "4"}, got)
	assert.Equal(t, uint64(20), info.Offset)
}

func TestSnapshotFailedWriteKeepsPrevious(t *testing.T) {
	s, err := OpenSnapshots(t.TempDir())
	require.NoError(t, err)
	defer s.Close()
	write(t, s, 5, map[string]string{"a": "1"})
	boom := errors.New("boom")
	_, err = s.Write(9, func(put func(k, v []byte) error) error {
		for i := 0; i < 1000; i++ {
			require.NoError(t, put([]byte(fmt.Sprint("k", i)), make([]byte, 20_000))) // spans several batches
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	got, info, ok := load(t, s)
	require.True(t, ok)
	assert.Equal(t, map[string]string{"a": "1"}, got)
	assert.Equal(t, uint64(5), info.Offset)

	// The next write reuses the abandoned generation cleanly.
	write(t, s, 12, map[string]string{"z": "9"})
	got, _, _ = load(t, s)
	assert.Equal(t, map[string]string{"z": "9"}, got)
}

func TestMapConcurrent(t *testing.T) {
	m := NewMap[int]()
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				m.GetOrCreate(fmt.Sprint(i), func() *int { v := i; return &v })
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 1000, m.Len())
	assert.Equal(t, 7, *m.Get("7"))
	assert.True(t, m.Delete("7"))
	assert.False(t, m.Delete("7"))
	assert.Nil(t, m.Get("7"))
	n := 0
	m.Range(func(string, *int) bool { n++; return n < 10 })
	assert.Equal(t, 10, n, "Range stops when fn returns false")
}
