// Package audit keeps the append-only record of admin actions and
// erasures: one JSON object per line, fsync'd before the action is
// acknowledged. Subjects are stored as keyed hashes, never raw: an audit
// entry proves an erasure happened without keeping the erased id.
package audit

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	json "github.com/goccy/go-json"
)

// Log is an audit log file. It is safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	f   *os.File
	key []byte
	now func() time.Time
}

// Entry is one audited action.
type Entry struct {
	Time    time.Time      `json:"time"`
	Action  string         `json:"action"`            // e.g. "user.erase", "user.consent", "keys.revoke"
	Actor   string         `json:"actor,omitempty"`   // API key id, "cli", ...
	Subject string         `json:"subject,omitempty"` // keyed hash of the user id
	Request string         `json:"request_id,omitempty"`
	Outcome string         `json:"outcome"` // "ok" or the error
	Details map[string]any `json:"details,omitempty"`
}

// Open opens (creating) dir/audit.log for appending, and the key that
// hashes subjects (dir/audit.key, created on first use, mode 0600).
func Open(dir string) (*Log, error) {
	key, err := loadKey(filepath.Join(dir, "audit.key"))
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "audit.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return &Log{f: f, key: key, now: time.Now}, nil
}

func loadKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil && len(b) >= 32 {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("audit: key: %w", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.WriteFile(path, key, 0o600); err != nil {
		return nil, fmt.Errorf("audit: key: %w", err)
	}
	return key, nil
}

// Subject is the keyed hash under which id appears in the log. Given an
// id, an operator can recompute it to find its entries; the log alone
// does not reveal the id.
func (l *Log) Subject(id string) string {
	m := hmac.New(sha256.New, l.key)
	m.Write([]byte(id))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)[:16])
}

// Record appends e durably; Time is set if zero.
func (l *Log) Record(e Entry) error {
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("audit: write: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync: %w", err)
	}
	return nil
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }
