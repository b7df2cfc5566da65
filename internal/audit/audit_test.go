package audit

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRecordAppendsHashedSubjects(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir)
	require.NoError(t, err)
	sub := l.Subject("alice@example.com")
	require.NoError(t, l.Record(Entry{Action: "user.erase", Actor: "key-1", Subject: sub, Outcome: "ok",
		Details: map[string]any{"redacted_records": 12}}))
	require.NoError(t, l.Close())

	// Reopen: appends, same key, same subject hash.
	l, err = Open(dir)
	require.NoError(t, err)
	assert.Equal(t, sub, l.Subject("alice@example.com"))
	assert.NotEqual(t, sub, l.Subject("bob"))
	require.NoError(t, l.Record(Entry{Action: "user.consent", Subject: l.Subject("bob"), Outcome: "ok"}))
	require.NoError(t, l.Close())

	raw, err := os.ReadFile(filepath.Join(dir, "audit.log"))
	require.NoError(t, err)
	assert.NotContains(t, string(raw), "alice", "the raw id is never written")
	var entries []Entry
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	for sc.Scan() {
		var e Entry
		require.NoError(t, json.Unmarshal(sc.Bytes(), &e))
		entries = append(entries, e)
	}
	require.Len(t, entries, 2)
	assert.Equal(t, "user.erase", entries[0].Action)
	assert.False(t, entries[0].Time.IsZero())
	info, err := os.Stat(filepath.Join(dir, "audit.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), info.Mode().Perm())
}
