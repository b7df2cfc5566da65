package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/ripple-rec/ripple/internal/auth"
	"github.com/ripple-rec/ripple/internal/redistest"
)

// runKeys runs `ripple keys args...` in process and returns its output.
func runKeys(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newKeysCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func createKey(t *testing.T, file string, args ...string) createdKey {
	t.Helper()
	out, err := runKeys(t, append([]string{"create", "--file", file, "--json"}, args...)...)
	require.NoError(t, err, out)
	var k createdKey
	require.NoError(t, json.Unmarshal([]byte(out), &k), out)
	return k
}

func TestKeysCreateListRevoke(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data", "keys.json")
	k := createKey(t, file, "--name", "web", "--scopes", "read,ingest", "--tenant", "acme", "--rps", "50")
	assert.True(t, strings.HasPrefix(k.Secret, auth.SecretPrefix))
	assert.Equal(t, []auth.Scope{auth.ScopeRead, auth.ScopeIngest}, k.Scopes)

	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), k.Secret[len(auth.SecretPrefix):], "the file holds only the hash")
	assert.Contains(t, string(raw), auth.HashSecret(k.Secret))
	st, _ := os.Stat(file)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	text, err := runKeys(t, "create", "--file", file, "--name", "admin-bot", "--scopes", "admin")
	require.NoError(t, err)
	assert.Contains(t, text, "shown only this once")
	assert.Contains(t, text, "    "+auth.SecretPrefix)

	list, err := runKeys(t, "list", "--file", file)
	require.NoError(t, err)
	assert.Contains(t, list, k.ID)
	assert.Contains(t, list, "read,ingest")
	assert.Contains(t, list, "acme")
	assert.Contains(t, list, "50/s")
	assert.Equal(t, 2, strings.Count(list, "active"))
	assert.NotContains(t, list, "sha256:", "list shows no hashes")

	out, err := runKeys(t, "revoke", "--file", file, k.ID)
	require.NoError(t, err)
	assert.Contains(t, out, "revoked key "+k.ID)
	out, err = runKeys(t, "revoke", "--file", file, k.ID)
	require.NoError(t, err, "revoking twice is not an error")
	assert.Contains(t, out, "already revoked")
	_, err = runKeys(t, "revoke", "--file", file, "k_nope")
	assert.ErrorContains(t, err, "no key k_nope")

	list, err = runKeys(t, "list", "--file", file, "--json")
	require.NoError(t, err)
	assert.NotContains(t, list, "hash")
	assert.Contains(t, list, `"revoked":true`)

	store, err := auth.NewStore(auth.StoreOptions{File: file})
	require.NoError(t, err)
	_, err = store.Authenticate(k.Secret)
	assert.ErrorIs(t, err, auth.ErrRevokedKey)

	for _, bad := range [][]string{{"--name", "x"}, {"--scopes", "read"}, {"--name", "x", "--scopes", "write"},
		{"--name", "x", "--scopes", "read", "--tenant", "a b"}} {
		_, err := runKeys(t, append([]string{"create", "--file", file}, bad...)...)
		assert.Error(t, err, bad)
	}
}

// The key file follows the serve config: auth.key_file, else data_dir.
func TestKeysFindTheServeKeyFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "ripple.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(dir, "d")+"\n"), 0o644))
	createKey(t, "", "--config", cfg, "--name", "a", "--scopes", "read")
	_, err := os.Stat(filepath.Join(dir, "d", "keys.json"))
	require.NoError(t, err)

	require.NoError(t, os.WriteFile(cfg, []byte("auth:\n  key_file: "+filepath.Join(dir, "k.json")+"\n"), 0o644))
	createKey(t, "", "--config", cfg, "--name", "b", "--scopes", "read")
	_, err = os.Stat(filepath.Join(dir, "k.json"))
	require.NoError(t, err)

	createKey(t, "", "--data-dir", filepath.Join(dir, "e"), "--name", "c", "--scopes", "read")
	_, err = os.Stat(filepath.Join(dir, "e", "keys.json"))
	require.NoError(t, err)
}

// --print-config prints an auth.keys entry the serve config accepts and
// whose hash authenticates the printed secret.
func TestKeysPrintConfig(t *testing.T) {
	out, err := runKeys(t, "create", "--print-config", "--name", "batch job", "--scopes", "ingest", "--tenant", "acme", "--rps", "5")
	require.NoError(t, err)
	var secret string
	for _, l := range strings.Split(out, "\n") {
		if s, ok := strings.CutPrefix(l, "# "+auth.SecretPrefix); ok {
			secret = auth.SecretPrefix + s
		}
	}
	require.NotEmpty(t, secret, out)
	entry := "auth:\n  keys:\n" + strings.TrimSpace(indent(out, "    ")) + "\n"
	cfg := defaultServeConfig()
	dec := yaml.NewDecoder(strings.NewReader(entry))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&cfg), entry)
	require.Len(t, cfg.Auth.Keys, 1)
	assert.Equal(t, "batch job", cfg.Auth.Keys[0].Name)
	assert.Equal(t, 5.0, cfg.Auth.Keys[0].RPS)
	store, err := auth.NewStore(auth.StoreOptions{Static: cfg.Auth.Keys})
	require.NoError(t, err)
	k, err := store.Authenticate(secret)
	require.NoError(t, err)
	assert.True(t, k.HasScope(auth.ScopeIngest))
	assert.Equal(t, "acme", k.Tenant)
}

func TestCheckExposure(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:8080", true},
		{"127.9.9.9:0", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"0.0.0.0:8080", false},
		{":8080", false},
		{"[::]:8080", false},
		{"10.1.2.3:8080", false},
		{"192.168.0.10:80", false},
		{"[2001:db8::1]:80", false},
		{"no-such-host.invalid:80", false},
		{"8080", false},
	} {
		err := checkExposure(ctx, tc.addr, false, "/d/keys.json")
		if tc.ok {
			assert.NoError(t, err, tc.addr)
			continue
		}
		if assert.Error(t, err, tc.addr) {
			assert.Contains(t, err.Error(), tc.addr)
		}
		assert.NoError(t, checkExposure(ctx, tc.addr, true, ""), "%s is fine once keys exist", tc.addr)
	}
	err := checkExposure(ctx, "0.0.0.0:8080", false, "/d/keys.json")
	assert.ErrorContains(t, err, "protected mode")
	assert.ErrorContains(t, err, "ripple keys create")
	assert.ErrorContains(t, err, "/d/keys.json")
}

// `ripple serve` on a non-loopback address without keys exits with a clear
// error before it opens anything.
func TestServeRefusesNonLoopbackWithoutKeys(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0"} {
		dir := t.TempDir()
		cmd := exec.Command(os.Args[0], "serve", "--addr", addr, "--data-dir", filepath.Join(dir, "data"))
		cmd.Env = append(os.Environ(), "RIPPLE_TEST_MAIN=1")
		out, err := cmd.CombinedOutput()
		require.Error(t, err, "serve must fail on %s: %s", addr, out)
		assert.Contains(t, string(out), "protected mode", addr)
		assert.Contains(t, string(out), "ripple keys create", addr)
		_, statErr := os.Stat(filepath.Join(dir, "data", "log"))
		assert.True(t, os.IsNotExist(statErr), "nothing was opened")
	}
}

// A real `ripple serve` with a key file: requests need a key of the right
// scope, a key created or revoked by the CLI while it runs takes effect
// without a restart, and the secret never reaches the server's log.
func TestServeWithKeysEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	file := filepath.Join(data, "keys.json")
	reader := createKey(t, file, "--name", "reader", "--scopes", "read")
	cfg := filepath.Join(dir, "ripple.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf("data_dir: %s\nauth:\n  reload_interval: 100ms\n", data)), 0o644))
	p := startServe(t, "--config", cfg, "--log-level", "info")

	get := func(secret string) int {
		req, _ := http.NewRequest("GET", p.url+"/v1/recommendations/u1", nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	assert.Equal(t, 401, get(""))
	assert.Equal(t, 200, get(reader.Secret))
	req, _ := http.NewRequest("DELETE", p.url+"/v1/users/u1", nil)
	req.Header.Set("X-API-Key", reader.Secret)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, 403, res.StatusCode, "read cannot erase")

	late := createKey(t, file, "--name", "late", "--scopes", "read")
	require.Eventually(t, func() bool { return get(late.Secret) == 200 }, 10*time.Second, 50*time.Millisecond,
		"a key created while serving is picked up")
	_, err = runKeys(t, "revoke", "--file", file, reader.ID)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return get(reader.Secret) == 401 }, 10*time.Second, 50*time.Millisecond,
		"a revoke takes effect without a restart")

	out := stopServe(t, p)
	assert.Contains(t, out, "API keys required")
	assert.NotContains(t, out, "PROTECTED MODE")
	for _, s := range []string{reader.Secret, late.Secret} {
		assert.NotContains(t, out, s[len(auth.SecretPrefix):])
	}
}

// SIGHUP rereads the key file at once, long before the next poll.
func TestServeReloadsKeysOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	file := filepath.Join(data, "keys.json")
	k := createKey(t, file, "--name", "k", "--scopes", "read")
	cfg := filepath.Join(dir, "ripple.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(fmt.Sprintf("data_dir: %s\nauth:\n  reload_interval: 1h\n", data)), 0o644))
	p := startServe(t, "--config", cfg)
	get := func() int {
		req, _ := http.NewRequest("GET", p.url+"/v1/recommendations/u1", nil)
		req.Header.Set("X-API-Key", k.Secret)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, 200, get())
	_, err := runKeys(t, "revoke", "--file", file, k.ID)
	require.NoError(t, err)
	time.Sleep(300 * time.Millisecond)
	require.Equal(t, 200, get(), "no poll within the hour")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return get() == 401 }, 10*time.Second, 20*time.Millisecond)
}

// Without keys on loopback, serve warns loudly and serves everyone.
func TestServeProtectedModeWarns(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server process")
	}
	p := startServe(t, "--data-dir", filepath.Join(t.TempDir(), "data"), "--log-level", "info")
	res, err := http.Get(p.url + "/v1/recommendations/u1")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, 200, res.StatusCode)
	assert.Contains(t, stopServe(t, p), "PROTECTED MODE")
}

// stopServe ends the server and returns its output.
func stopServe(t *testing.T, p *serveProc) string {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	_ = p.cmd.Wait()
	return p.out.String()
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n")
}

// Two serve processes on one Redis share a key's bucket: its burst is spent
// once across both nodes, and the 429 carries Retry-After and RateLimit-*.
func TestServeRateLimitHoldsAcrossNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts server processes")
	}
	srv := redistest.Start(t)
	file := filepath.Join(t.TempDir(), "keys.json")
	k := createKey(t, file, "--name", "shared", "--scopes", "read")
	cfg := writeConfig(t, srv.Addr(), fmt.Sprintf("auth:\n  key_file: %s\nrate_limit:\n  per_key_rps: 0.01\n  per_key_burst: 4\n", file))
	nodes := []*serveProc{startServe(t, "--config", cfg, "--data-dir", t.TempDir()),
		startServe(t, "--config", cfg, "--data-dir", t.TempDir())}
	get := func(p *serveProc) *http.Response {
		req, _ := http.NewRequest("GET", p.url+"/v1/recommendations/u1", nil)
		req.Header.Set("Authorization", "Bearer "+k.Secret)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res
	}
	for i := 0; i < 4; i++ {
		res := get(nodes[i%2])
		require.Equal(t, 200, res.StatusCode, "request %d", i)
		assert.Equal(t, fmt.Sprint(3-i), res.Header.Get("RateLimit-Remaining"), "request %d: one bucket for both nodes", i)
	}
	for _, p := range nodes {
		res := get(p)
		assert.Equal(t, 429, res.StatusCode)
		assert.NotEmpty(t, res.Header.Get("Retry-After"))
		assert.Equal(t, "4", res.Header.Get("RateLimit-Limit"))
	}
}
