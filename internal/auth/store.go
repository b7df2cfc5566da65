package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The errors Authenticate returns. Neither carries the secret.
var (
	ErrUnknownKey = errors.New("unknown API key")
	ErrRevokedKey = errors.New("API key revoked")
)

// StoreOptions configure a Store.
type StoreOptions struct {
	Static []Key        // from the serve config
	File   string       // key file managed by `ripple keys`; "" for none
	Logger *slog.Logger // reloads and their failures; never secrets or hashes
}

// Store authenticates secrets against the configured keys and the key
// file. It is safe for concurrent use; Authenticate takes no lock.
type Store struct {
	static []Key
	file   string
	log    *slog.Logger

	set       atomic.Pointer[keySet]
	enforcing atomic.Bool

	mu   sync.Mutex  // serialises reloads
	stat os.FileInfo // the key file as last loaded; nil: absent
}

type entry struct {
	key    *Key
	digest [sha256.Size]byte
}

// keySet is immutable once published.
type keySet struct {
	byDigest        map[[sha256.Size]byte]entry
	active, revoked int
}

// NewStore validates the static keys and loads the key file. A missing
// file holds no keys; an unreadable or invalid one is an error.
func NewStore(o StoreOptions) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := validateSet(o.Static); err != nil {
		return nil, fmt.Errorf("auth.keys: %w", err)
	}
	s := &Store{static: o.Static, file: o.File, log: o.Logger}
	s.set.Store(&keySet{})
	if err := s.load(true); err != nil {
		return nil, err
	}
	return s, nil
}

// File is the key file this store reads ("" for none).
func (s *Store) File() string { return s.file }

// Enforcing reports whether keys are required. It turns true once any
// key, active or revoked, has been configured and never turns back, so
// revoking every key or deleting the key file locks the API rather than
// opening it.
func (s *Store) Enforcing() bool { return s.enforcing.Load() }

// Counts returns the number of active and revoked keys.
func (s *Store) Counts() (active, revoked int) {
	set := s.set.Load()
	return set.active, set.revoked
}

// Authenticate returns the key whose secret this is: ErrUnknownKey when
// there is none, ErrRevokedKey (with the key, for its id) when it is
// revoked. The lookup is by SHA-256 digest; the digest is compared again in
// constant time, so the only timing signal is about a hash of the input.
func (s *Store) Authenticate(secret string) (*Key, error) {
	if secret == "" || len(secret) > maxSecretLen {
		return nil, ErrUnknownKey
	}
	d := sha256.Sum256([]byte(secret))
	e, ok := s.set.Load().byDigest[d]
	if !ok || !equalDigest(&e.digest, &d) {
		return nil, ErrUnknownKey
	}
	if e.key.Revoked {
		return e.key, ErrRevokedKey
	}
	return e.key, nil
}

// Reload reads the key file again if it changed since the last load (or
// always, with force). On an error the previous keys stay in force.
func (s *Store) Reload(force bool) error { return s.load(force) }

// Watch reloads the key file every interval when it changed, and at once
// whenever reload delivers (SIGHUP), until ctx ends. Errors are logged and
// the previous keys stay in force.
func (s *Store) Watch(ctx context.Context, every time.Duration, reload <-chan os.Signal) {
	if s.file == "" {
		return
	}
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		force := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-reload:
			force = true
		}
		if err := s.load(force); err != nil {
			s.log.Error("API key file not reloaded; the previous keys stay in force", "file", s.file, "err", err)
		}
	}
}

func (s *Store) load(force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st os.FileInfo
	if s.file != "" {
		var err error
		st, err = os.Stat(s.file)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err != nil {
			st = nil
		}
	}
	if !force && sameFile(s.stat, st) && s.set.Load().byDigest != nil {
		return nil
	}
	var fileKeys []Key
	if st != nil {
		var err error
		if fileKeys, err = ReadFile(s.file); err != nil {
			return err
		}
	}
	all := make([]Key, 0, len(s.static)+len(fileKeys))
	all = append(append(all, s.static...), fileKeys...)
	if err := validateSet(all); err != nil {
		return fmt.Errorf("auth.keys with key file %s: %w", s.file, err)
	}
	set := &keySet{byDigest: make(map[[sha256.Size]byte]entry, len(all))}
	for i := range all {
		k := &all[i]
		d, _ := parseHash(k.Hash) // validated above
		set.byDigest[d] = entry{key: k, digest: d}
		if k.Revoked {
			set.revoked++
		} else {
			set.active++
		}
	}
	prev := s.set.Swap(set)
	s.stat = st
	if len(all) > 0 && !s.enforcing.Swap(true) && prev.byDigest != nil {
		s.log.Warn("API keys configured while running: every API request now needs a key", "file", s.file)
	}
	if prev.byDigest != nil && (prev.active != set.active || prev.revoked != set.revoked || force) {
		s.log.Info("API keys reloaded", "file", s.file, "active", set.active, "revoked", set.revoked)
	}
	return nil
}

// sameFile reports whether two stats describe the same version of a file:
// the CLI replaces the file by rename, so a new version is a new inode.
func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}
