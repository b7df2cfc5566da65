package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewKeySecretsAreRandomAndOnlyHashed(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		k, secret, err := NewKey("n", []Scope{ScopeRead}, "", time.Now())
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(secret, SecretPrefix))
		assert.Len(t, secret, len(SecretPrefix)+52, "32 random bytes in base32")
		assert.False(t, seen[secret] || seen[k.ID], "secrets and ids never repeat")
		seen[secret], seen[k.ID] = true, true
		assert.Equal(t, HashSecret(secret), k.Hash)
		b, _ := json.Marshal(k)
		assert.NotContains(t, string(b), secret[len(SecretPrefix):], "a stored key never holds its secret")
	}
}

func TestParseScopes(t *testing.T) {
	s, err := ParseScopes(" read, INGEST,read")
	require.NoError(t, err)
	assert.Equal(t, []Scope{ScopeRead, ScopeIngest}, s)
	for _, bad := range []string{"", ",", "read,write", "root"} {
		_, err := ParseScopes(bad)
		assert.Error(t, err, bad)
	}
}

func TestKeyValidation(t *testing.T) {
	good, _, err := NewKey("n", []Scope{ScopeAdmin}, "acme", time.Now())
	require.NoError(t, err)
	for name, mutate := range map[string]func(*Key){
		"empty id":      func(k *Key) { k.ID = "" },
		"id with space": func(k *Key) { k.ID = "a b" },
		"no scopes":     func(k *Key) { k.Scopes = nil },
		"bad scope":     func(k *Key) { k.Scopes = []Scope{"write"} },
		"plain hash":    func(k *Key) { k.Hash = "abc" },
		"short hash":    func(k *Key) { k.Hash = "sha256:abcd" },
		"non-hex hash":  func(k *Key) { k.Hash = "sha256:" + strings.Repeat("z", 64) },
		"bad tenant":    func(k *Key) { k.Tenant = "a}b" },
		"neg burst":     func(k *Key) { k.Burst = -1 },
	} {
		k := good
		mutate(&k)
		assert.Error(t, k.Validate(), name)
	}
	assert.NoError(t, good.Validate())
}

func TestKeyFileIsAtomicAndPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "keys.json")
	keys, err := ReadFile(path)
	require.NoError(t, err, "a missing file holds no keys")
	assert.Empty(t, keys)

	k1, _, _ := NewKey("one", []Scope{ScopeRead}, "", time.Now())
	k2, _, _ := NewKey("two", []Scope{ScopeIngest, ScopeAdmin}, "t1", time.Now())
	require.NoError(t, WriteFile(path, []Key{k1, k2}))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	got, err := ReadFile(path)
	require.NoError(t, err)
	require.Len(t, got, 2)
	assert.Equal(t, k2.Scopes, got[1].Scopes)
	assert.True(t, k1.Created.Equal(got[0].Created))
	entries, _ := os.ReadDir(filepath.Dir(path))
	assert.Len(t, entries, 1, "no temporary file is left behind")

	assert.Error(t, WriteFile(path, []Key{k1, k1}), "duplicate ids are refused")
	dup := k2
	dup.ID = "other"
	dup.Hash = k1.Hash
	assert.Error(t, WriteFile(path, []Key{k1, dup}), "duplicate secrets are refused")

	require.NoError(t, os.WriteFile(path, []byte(`{"version":1,"keys":[{"id":"x","scopes":["read"],"hash":"nope"}]}`), 0o600))
	_, err = ReadFile(path)
	assert.ErrorContains(t, err, "hash")
	require.NoError(t, os.WriteFile(path, []byte(`{"version":2,"keys":[]}`), 0o600))
	_, err = ReadFile(path)
	assert.ErrorContains(t, err, "version")
}

// Concurrent CLI runs never lose each other's keys.
func TestUpdateFileSerialisesWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, UpdateFile(path, func(keys []Key) ([]Key, error) {
				k, _, err := NewKey(fmt.Sprint("k", i), []Scope{ScopeRead}, "", time.Now())
				return append(keys, k), err
			}))
		}()
	}
	wg.Wait()
	keys, err := ReadFile(path)
	require.NoError(t, err)
	assert.Len(t, keys, 20)
}

func TestStoreAuthenticates(t *testing.T) {
	static, staticSecret, _ := NewKey("from-config", []Scope{ScopeAdmin}, "", time.Now())
	fk, fileSecret, _ := NewKey("from-file", []Scope{ScopeRead}, "t", time.Now())
	rk, revokedSecret, _ := NewKey("revoked", []Scope{ScopeRead}, "", time.Now())
	rk.Revoked = true
	path := filepath.Join(t.TempDir(), "keys.json")
	require.NoError(t, WriteFile(path, []Key{fk, rk}))
	s, err := NewStore(StoreOptions{Static: []Key{static}, File: path})
	require.NoError(t, err)
	assert.True(t, s.Enforcing())
	active, revoked := s.Counts()
	assert.Equal(t, 2, active)
	assert.Equal(t, 1, revoked)

	k, err := s.Authenticate(staticSecret)
	require.NoError(t, err)
	assert.Equal(t, static.ID, k.ID)
	assert.True(t, k.HasScope(ScopeAdmin))
	assert.False(t, k.HasScope(ScopeRead))
	k, err = s.Authenticate(fileSecret)
	require.NoError(t, err)
	assert.Equal(t, "t", k.Tenant)
	k, err = s.Authenticate(revokedSecret)
	assert.ErrorIs(t, err, ErrRevokedKey)
	assert.Equal(t, rk.ID, k.ID)
	for _, bad := range []string{"", "rk_x", fileSecret + "x", strings.ToUpper(fileSecret), strings.Repeat("a", 10_000)} {
		_, err := s.Authenticate(bad)
		assert.ErrorIs(t, err, ErrUnknownKey)
	}

	// A file key that reuses a config key's id is refused, at start...
	clash := fk
	clash.ID = static.ID
	require.NoError(t, WriteFile(path, []Key{clash}))
	_, err = NewStore(StoreOptions{Static: []Key{static}, File: path})
	assert.ErrorContains(t, err, "twice")
	// ...and on reload, where the previous keys stay in force.
	require.ErrorContains(t, s.Reload(false), "twice")
	_, err = s.Authenticate(fileSecret)
	assert.NoError(t, err)
}

func TestStoreWithoutKeysIsOpenUntilTheFirstKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	s, err := NewStore(StoreOptions{File: path})
	require.NoError(t, err)
	assert.False(t, s.Enforcing())

	reload := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { s.Watch(ctx, time.Hour, reload); close(done) }()

	k, secret, _ := NewKey("first", []Scope{ScopeRead}, "", time.Now())
	require.NoError(t, WriteFile(path, []Key{k}))
	reload <- os.Interrupt // SIGHUP in serve: reload at once, not at the next poll
	require.Eventually(t, s.Enforcing, 5*time.Second, 5*time.Millisecond)
	_, err = s.Authenticate(secret)
	require.NoError(t, err)

	require.NoError(t, os.Remove(path))
	require.NoError(t, s.Reload(false))
	assert.True(t, s.Enforcing(), "losing every key locks the API; it never reopens")
	_, err = s.Authenticate(secret)
	assert.ErrorIs(t, err, ErrUnknownKey)
	cancel()
	<-done
}

func TestStoreReloadKeepsKeysOnABrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	k, secret, _ := NewKey("k", []Scope{ScopeRead}, "", time.Now())
	require.NoError(t, WriteFile(path, []Key{k}))
	s, err := NewStore(StoreOptions{File: path})
	require.NoError(t, err)
	require.NoError(t, s.Reload(false), "an unchanged file is not read again")

	require.NoError(t, os.WriteFile(path+".new", []byte("{not json"), 0o600))
	require.NoError(t, os.Rename(path+".new", path))
	assert.Error(t, s.Reload(false))
	_, err = s.Authenticate(secret)
	assert.NoError(t, err, "the previous keys stay in force")

	_, err = NewStore(StoreOptions{File: path})
	assert.Error(t, err, "a broken file at start is an error, not an open API")
}
