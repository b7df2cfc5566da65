package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/auth"
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/store"
)

// guardNode is a real node (embedded log, ingest, engine) whose API
// requires keys: one per scope, one with every scope, one revoked.
type guardNode struct {
	s       *Server
	srv     *httptest.Server
	m       *observe.Metrics
	keys    *auth.Store
	file    string
	secrets map[string]string // by key name
	logs    *syncBuffer
}

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type keySpec struct {
	name    string
	scopes  []auth.Scope
	tenant  string
	rps     float64
	burst   int
	revoked bool
}

var defaultKeySpecs = []keySpec{
	{name: "ingest", scopes: []auth.Scope{auth.ScopeIngest}},
	{name: "read", scopes: []auth.Scope{auth.ScopeRead}},
	{name: "admin", scopes: []auth.Scope{auth.ScopeAdmin}},
	{name: "all", scopes: auth.Scopes},
	{name: "revoked", scopes: auth.Scopes, revoked: true},
}

func writeKeys(t *testing.T, file string, specs []keySpec) map[string]string {
	t.Helper()
	secrets := map[string]string{}
	var keys []auth.Key
	for _, sp := range specs {
		k, secret, err := auth.NewKey(sp.name, sp.scopes, sp.tenant, time.Now())
		require.NoError(t, err)
		k.Revoked, k.RPS, k.Burst = sp.revoked, sp.rps, sp.burst
		keys = append(keys, k)
		secrets[sp.name] = secret
	}
	require.NoError(t, auth.WriteFile(file, keys))
	return secrets
}

func newGuardNode(t *testing.T, specs []keySpec, mutate func(*Options)) *guardNode {
	t.Helper()
	dir := t.TempDir()
	lg, err := eventlog.OpenEmbedded(dir+"/log", eventlog.EmbeddedOptions{})
	require.NoError(t, err)
	snaps, err := store.OpenSnapshots(dir + "/snaps")
	require.NoError(t, err)
	eng := features.NewEngine(features.DefaultConfig(), nil)
	m := observe.NewMetrics(func() float64 { return 0 }, func() float64 { return -1 })
	svc := ingest.New(lg, eng, snaps, m, nil, ingest.Options{})
	require.NoError(t, svc.Recover(context.Background()))
	svc.Start()
	n := &guardNode{m: m, file: filepath.Join(dir, "keys.json"), logs: &syncBuffer{}}
	logger := slog.New(slog.NewJSONHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if specs != nil {
		n.secrets = writeKeys(t, n.file, specs)
	}
	n.keys, err = auth.NewStore(auth.StoreOptions{File: n.file, Logger: logger})
	require.NoError(t, err)
	opts := DefaultOptions()
	opts.Keys = n.keys
	if mutate != nil {
		mutate(&opts)
	}
	n.s = New(svc, EngineReader{Engine: eng}, recommend.New(eng, recommend.DefaultConfig()), m, logger, opts)
	n.srv = httptest.NewServer(n.s.Handler())
	t.Cleanup(func() {
		n.srv.Close()
		_ = svc.Close()
		_ = snaps.Close()
		_ = lg.Close()
	})
	return n
}

type reply struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// do sends a request; header is "Name: value" lines.
func (n *guardNode) do(t *testing.T, method, path, body string, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, n.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range header {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := reply{code: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 && strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(raw, &r.body), "body is not JSON: %s", raw)
	}
	return r
}

func bearer(secret string) string { return "Authorization: Bearer " + secret }

func (n *guardNode) metrics(t *testing.T) string {
	t.Helper()
	r := n.do(t, "GET", "/metrics", "")
	require.Equal(t, 200, r.code)
	return r.raw
}

// TestEveryRouteRequiresItsScope walks the server's own route table, so a
// route added without a case here fails, and a route whose scope differs
// from the one written here fails. For each route: 401 without a key, with
// an unknown, a revoked or a malformed key; 403 with every other scope;
// the route's normal answer with its scope, by either header.
func TestEveryRouteRequiresItsScope(t *testing.T) {
	n := newGuardNode(t, defaultKeySpecs, nil)
	seed := n.do(t, "POST", "/v1/events", `[{"user":"u1","item":"i1","type":"view"},{"user":"u1","item":"i2","type":"view"},
		{"user":"u2","item":"i1","type":"view"},{"user":"u2","item":"i2","type":"view"}]`, bearer(n.secrets["ingest"]))
	require.Equal(t, 202, seed.code, seed.raw)

	type want struct {
		scope           auth.Scope
		path, body      string
		code            int // with the right scope
		unauthenticated bool
	}
	cases := map[string]want{
		"POST /v1/events":                       {scope: auth.ScopeIngest, path: "/v1/events", body: `[{"user":"u3","item":"i1","type":"view"}]`, code: 202},
		"POST /v1/items":                        {scope: auth.ScopeIngest, path: "/v1/items", body: `[{"item":"i7","categories":["c"]}]`, code: 202},
		"PUT /v1/items/{item}":                  {scope: auth.ScopeIngest, path: "/v1/items/i8", body: `{"categories":["c"]}`, code: 200},
		"GET /v1/items/{item}/similar":          {scope: auth.ScopeRead, path: "/v1/items/i1/similar", code: 200},
		"GET /v1/recommendations/{user}":        {scope: auth.ScopeRead, path: "/v1/recommendations/u1", code: 200},
		"POST /v1/rank":                         {scope: auth.ScopeRead, path: "/v1/rank", body: `{"user":"u1","items":["i1","i2"]}`, code: 200},
		"GET /v1/features/{entity}/{id}":        {scope: auth.ScopeRead, path: "/v1/features/user/u1", code: 200},
		"POST /v1/admin/train":                  {scope: auth.ScopeAdmin, path: "/v1/admin/train", code: 501},
		"GET /v1/admin/feedback":                {scope: auth.ScopeAdmin, path: "/v1/admin/feedback", code: 501},
		"GET /v1/admin/models":                  {scope: auth.ScopeAdmin, path: "/v1/admin/models", code: 501},
		"POST /v1/admin/models/{name}/activate": {scope: auth.ScopeAdmin, path: "/v1/admin/models/blend@1/activate", code: 501},
		"DELETE /v1/users/{user}":               {scope: auth.ScopeAdmin, path: "/v1/users/u9", code: 200},
		"PUT /v1/users/{user}/consent":          {scope: auth.ScopeIngest, path: "/v1/users/u8/consent", body: `{"personalization":false}`, code: 200},
		"GET /v1/users/{user}/consent":          {scope: auth.ScopeRead, path: "/v1/users/u8/consent", code: 200},
		"GET /healthz":                          {scope: public, path: "/healthz", code: 200, unauthenticated: true},
		"GET /readyz":                           {scope: public, path: "/readyz", code: 200, unauthenticated: true},
		"GET /metrics":                          {scope: public, path: "/metrics", code: 200, unauthenticated: true},
	}
	seen := map[string]bool{}
	for _, rt := range n.s.routes {
		name := rt.method + " " + rt.pattern
		tc, ok := cases[name]
		require.True(t, ok, "route %s has no case in this test: add one with the scope it must require", name)
		require.Equal(t, tc.scope, rt.scope, "route %s requires the wrong scope", name)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			if tc.unauthenticated {
				r := n.do(t, rt.method, tc.path, tc.body)
				assert.Equal(t, tc.code, r.code, r.raw)
				return
			}
			for _, bad := range []struct{ what, header, reason string }{
				{"no key", "", "missing"},
				{"unknown key", bearer("rk_notakey"), "unknown"},
				{"unknown X-API-Key", "X-API-Key: rk_notakey", "unknown"},
				{"revoked key", bearer(n.secrets["revoked"]), "revoked"},
				{"basic auth", "Authorization: Basic dXNlcjpwYXNz", "malformed"},
			} {
				var r reply
				if bad.header == "" {
					r = n.do(t, rt.method, tc.path, tc.body)
				} else {
					r = n.do(t, rt.method, tc.path, tc.body, bad.header)
				}
				assert.Equal(t, 401, r.code, "%s: %s", bad.what, r.raw)
				assert.Equal(t, "unauthorized", r.errCode(), bad.what)
				assert.True(t, strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer"), bad.what)
				assert.NotEmpty(t, r.header.Get("X-Request-ID"))
			}
			for _, other := range auth.Scopes {
				if other == tc.scope {
					continue
				}
				r := n.do(t, rt.method, tc.path, tc.body, bearer(n.secrets[string(other)]))
				assert.Equal(t, 403, r.code, "scope %s: %s", other, r.raw)
				assert.Equal(t, "forbidden", r.errCode())
				assert.Contains(t, r.header.Get("WWW-Authenticate"), `scope="`+string(tc.scope)+`"`)
			}
			r := n.do(t, rt.method, tc.path, tc.body, bearer(n.secrets[string(tc.scope)]))
			assert.Equal(t, tc.code, r.code, "Bearer with scope %s: %s", tc.scope, r.raw)
			r = n.do(t, rt.method, tc.path, tc.body, "X-API-Key: "+n.secrets[string(tc.scope)])
			assert.Equal(t, tc.code, r.code, "X-API-Key with scope %s: %s", tc.scope, r.raw)
			r = n.do(t, rt.method, tc.path, tc.body, "Authorization: bearer  "+n.secrets["all"])
			assert.Equal(t, tc.code, r.code, "a key with every scope, lower-case scheme: %s", r.raw)
		})
	}
	for name := range cases {
		assert.True(t, seen[name], "case %s matches no route", name)
	}
	m := n.metrics(t)
	for _, reason := range []string{"missing", "unknown", "revoked", "malformed", "forbidden"} {
		assert.Contains(t, m, `ripple_auth_failures_total{reason="`+reason+`"}`)
	}
}

func TestRouteWithoutScopeIsRefused(t *testing.T) {
	assert.False(t, public.Valid(), "public must not be a scope a key can carry")
	s := &Server{exempt: map[string]bool{}}
	h := func(http.ResponseWriter, *http.Request) {}
	assert.PanicsWithValue(t, "api: route GET /v1/new names no scope", func() {
		s.mount([]route{{method: http.MethodGet, pattern: "/v1/new", handler: h}})
	})
	assert.Panics(t, func() { s.mount([]route{{http.MethodGet, "/v1/new", auth.Scope("write"), h}}) })
}

// In protected mode (no keys configured) every route answers without a
// key, as the existing tests and loopback deployments rely on.
func TestProtectedModeNeedsNoKey(t *testing.T) {
	n := newGuardNode(t, nil, nil)
	assert.False(t, n.keys.Enforcing())
	r := n.do(t, "POST", "/v1/events", `[{"user":"u1","item":"i1","type":"view"}]`)
	assert.Equal(t, 202, r.code, r.raw)
	assert.Empty(t, r.header.Get("RateLimit-Limit"), "no identity, no rate limit")
	assert.Equal(t, 200, n.do(t, "GET", "/v1/recommendations/u1", "").code)
	assert.Equal(t, 200, n.do(t, "DELETE", "/v1/users/u1", "").code)
}

// A revoke in the key file takes effect on reload, without a restart; a
// key created later starts working the same way; and once keys exist,
// deleting the file locks the API rather than opening it.
func TestKeyFileReload(t *testing.T) {
	n := newGuardNode(t, defaultKeySpecs, nil)
	read := bearer(n.secrets["read"])
	require.Equal(t, 200, n.do(t, "GET", "/v1/recommendations/u1", "", read).code)

	require.NoError(t, auth.UpdateFile(n.file, func(keys []auth.Key) ([]auth.Key, error) {
		for i := range keys {
			if keys[i].Name == "read" {
				keys[i].Revoked = true
			}
		}
		k, secret, err := auth.NewKey("late", []auth.Scope{auth.ScopeRead}, "", time.Now())
		n.secrets["late"] = secret
		return append(keys, k), err
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.keys.Watch(ctx, 10*time.Millisecond, nil)
	require.Eventually(t, func() bool {
		return n.do(t, "GET", "/v1/recommendations/u1", "", read).code == 401
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, 200, n.do(t, "GET", "/v1/recommendations/u1", "", bearer(n.secrets["late"])).code)

	require.NoError(t, auth.WriteFile(n.file, nil))
	require.Eventually(t, func() bool {
		return n.do(t, "GET", "/v1/recommendations/u1", "", bearer(n.secrets["late"])).code == 401
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, 401, n.do(t, "GET", "/v1/recommendations/u1", "").code, "no keys left must not reopen the API")
	assert.Equal(t, 200, n.do(t, "GET", "/healthz", "").code)
}

func TestRateLimitPerKey(t *testing.T) {
	n := newGuardNode(t, []keySpec{
		{name: "a", scopes: []auth.Scope{auth.ScopeRead}},
		{name: "b", scopes: []auth.Scope{auth.ScopeRead}},
		{name: "unlimited", scopes: []auth.Scope{auth.ScopeRead}, rps: -1},
		{name: "tight", scopes: []auth.Scope{auth.ScopeRead}, rps: 0.5, burst: 1},
		{name: "bursty", scopes: []auth.Scope{auth.ScopeRead}, burst: 7},
	}, func(o *Options) { o.RateLimit.PerKeyRPS, o.RateLimit.PerKeyBurst = 0.5, 3 })
	a := bearer(n.secrets["a"])
	for i := 0; i < 3; i++ {
		r := n.do(t, "GET", "/v1/recommendations/u1", "", a)
		require.Equal(t, 200, r.code, r.raw)
		assert.Equal(t, "3", r.header.Get("RateLimit-Limit"))
		assert.Equal(t, strconv.Itoa(2-i), r.header.Get("RateLimit-Remaining"), "request %d", i)
		reset, err := strconv.Atoi(r.header.Get("RateLimit-Reset"))
		require.NoError(t, err)
		assert.InDelta(t, 2*(i+1), reset, 1, "seconds until %d tokens refill at 0.5/s", i+1)
	}
	r := n.do(t, "GET", "/v1/recommendations/u1", "", a)
	require.Equal(t, 429, r.code, r.raw)
	assert.Equal(t, "rate_limited", r.errCode())
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After is integer seconds")
	assert.GreaterOrEqual(t, retry, 1)
	assert.LessOrEqual(t, retry, 2, "one token refills in 2 s at 0.5/s")
	assert.Equal(t, "0", r.header.Get("RateLimit-Remaining"))
	assert.Equal(t, "3", r.header.Get("RateLimit-Limit"))
	assert.NotEmpty(t, r.header.Get("RateLimit-Reset"))

	assert.Equal(t, 200, n.do(t, "GET", "/v1/recommendations/u1", "", bearer(n.secrets["b"])).code, "keys have their own buckets")
	for i := 0; i < 10; i++ {
		r := n.do(t, "GET", "/v1/recommendations/u1", "", bearer(n.secrets["unlimited"]))
		require.Equal(t, 200, r.code, "a key with rps < 0 has no limit")
		assert.Empty(t, r.header.Get("RateLimit-Limit"))
	}
	tight := bearer(n.secrets["tight"])
	assert.Equal(t, "1", n.do(t, "GET", "/v1/recommendations/u1", "", tight).header.Get("RateLimit-Limit"), "per-key override")
	assert.Equal(t, 429, n.do(t, "GET", "/v1/recommendations/u1", "", tight).code)
	assert.Equal(t, "7", n.do(t, "GET", "/v1/recommendations/u1", "", bearer(n.secrets["bursty"])).header.Get("RateLimit-Limit"),
		"a burst override alone keeps the default rate")
	assert.Contains(t, n.metrics(t), `ripple_rate_limited_total{scope="key"} 2`)
}

func TestRateLimitPerTenant(t *testing.T) {
	n := newGuardNode(t, []keySpec{
		{name: "a1", scopes: []auth.Scope{auth.ScopeRead}, tenant: "acme"},
		{name: "a2", scopes: []auth.Scope{auth.ScopeRead}, tenant: "acme"},
		{name: "z", scopes: []auth.Scope{auth.ScopeRead}, tenant: "zeta"},
	}, func(o *Options) {
		o.RateLimit = RateLimit{PerKeyRPS: 100, PerKeyBurst: 100, PerTenantRPS: 0.5, PerTenantBurst: 2}
	})
	r := n.do(t, "GET", "/v1/recommendations/u1", "", bearer(n.secrets["a1"]))
	require.Equal(t, 200, r.code)
	assert.Equal(t, "2", r.header.Get("RateLimit-Limit"), "the headers describe the tighter bucket")
	assert.Equal(t, "1", r.header.Get("RateLimit-Remaining"))
	assert.Equal(t, 200, n.do(t, "GET", "/v1/recommendations/u1", "", bearer(n.secrets["a2"])).code)
	r = n.do(t, "GET", "/v1/recommendations/u1", "", bearer(n.secrets["a1"]))
	assert.Equal(t, 429, r.code, "the tenant's two keys share its bucket")
	assert.Contains(t, r.body["error"].(map[string]any)["message"], "tenant")
	assert.Equal(t, 200, n.do(t, "GET", "/v1/recommendations/u1", "", bearer(n.secrets["z"])).code, "other tenants are not affected")
	assert.Contains(t, n.metrics(t), `ripple_rate_limited_total{scope="tenant"} 1`)
}

func TestLocalLimiterIsBoundedAndExpires(t *testing.T) {
	l := NewLocalLimiter(64) // 4 per shard
	now := time.Unix(1_700_000_000, 0)
	l.now = func() time.Time { return now }
	lim := Limit{RPS: 1, Burst: 2}
	for i := 0; i < 10_000; i++ {
		d, err := l.Take(context.Background(), Bucket{Scope: BucketKey, ID: "k" + strconv.Itoa(i)}, lim)
		require.NoError(t, err)
		require.True(t, d.Allowed)
	}
	assert.LessOrEqual(t, l.Len(), 64, "key churn cannot grow the map past its bound")

	l = NewLocalLimiter(1 << 16)
	l.now = func() time.Time { return now }
	hot := Bucket{Scope: BucketKey, ID: "hot"}
	for i := 0; i < 2; i++ {
		d, _ := l.Take(context.Background(), hot, lim)
		require.True(t, d.Allowed)
	}
	d, _ := l.Take(context.Background(), hot, lim)
	require.False(t, d.Allowed, "an empty bucket is kept while it refills")
	assert.Equal(t, time.Second, d.RetryAfter)
	for i := 0; i < 100; i++ {
		_, _ = l.Take(context.Background(), Bucket{Scope: BucketKey, ID: "cold" + strconv.Itoa(i)}, lim)
	}
	d, _ = l.Take(context.Background(), hot, lim)
	assert.False(t, d.Allowed, "new buckets did not evict one still refilling")

	now = now.Add(time.Hour)
	for i := 0; i < 1000; i++ { // a new bucket in a shard sweeps its idle ones
		_, _ = l.Take(context.Background(), Bucket{Scope: BucketKey, ID: "new" + strconv.Itoa(i)}, lim)
	}
	assert.Equal(t, 1000, l.Len(), "buckets idle long enough to be full again are dropped")

	// A changed limit (reloaded override) applies to an existing bucket.
	b := Bucket{Scope: BucketKey, ID: "changing"}
	d, _ = l.Take(context.Background(), b, Limit{RPS: 1, Burst: 1})
	require.True(t, d.Allowed)
	d, _ = l.Take(context.Background(), b, Limit{RPS: 1, Burst: 5})
	assert.Equal(t, 5, d.Limit)
}

// blockingWriter holds every events request until release is closed.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
}

func (w *blockingWriter) Events(ctx context.Context, ev []event.Interaction) (ingest.Result, error) {
	w.entered <- struct{}{}
	<-w.release
	return ingest.Result{Accepted: len(ev)}, nil
}
func (w *blockingWriter) Items(context.Context, []event.Item) error { return nil }
func (w *blockingWriter) EraseUser(context.Context, string) error   { return nil }
func (w *blockingWriter) Ready() bool                               { return true }

// readSpy is a body that records whether anybody read it.
type readSpy struct {
	io.Reader
	read bool
}

func (r *readSpy) Read(p []byte) (int, error) {
	r.read = true
	return r.Reader.Read(p)
}

func serve(h http.Handler, method, path string, body io.Reader, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, body)
	req.Header.Set("Content-Type", "application/json")
	for _, hd := range header {
		k, v, _ := strings.Cut(hd, ": ")
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestShedding: past max_in_flight requests get 503 overloaded with
// Retry-After before their body is read and before authentication; health,
// readiness and metrics still answer.
func TestShedding(t *testing.T) {
	eng := features.NewEngine(features.DefaultConfig(), nil)
	m := observe.NewMetrics(func() float64 { return 0 }, func() float64 { return -1 })
	bw := &blockingWriter{entered: make(chan struct{}, 8), release: make(chan struct{})}
	opts := DefaultOptions()
	opts.MaxInFlight = 2
	s := New(bw, EngineReader{Engine: eng}, recommend.New(eng, recommend.DefaultConfig()), m, nil, opts)
	h := s.Handler()
	body := `[{"user":"u1","item":"i1","type":"view"}]`

	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := serve(h, "POST", "/v1/events", strings.NewReader(body))
			assert.Equal(t, 202, rec.Code, rec.Body.String())
		}()
		<-bw.entered
	}
	spy := &readSpy{Reader: strings.NewReader(body)}
	rec := serve(h, "POST", "/v1/events", spy)
	assert.Equal(t, 503, rec.Code)
	assert.Equal(t, "1", rec.Header().Get("Retry-After"))
	assert.Contains(t, rec.Body.String(), `"code":"overloaded"`)
	assert.Contains(t, rec.Body.String(), `"request_id"`)
	assert.False(t, spy.read, "a shed request's body is never read")
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		assert.Equal(t, 200, serve(h, "GET", p, nil).Code, p)
	}
	metrics := serve(h, "GET", "/metrics", nil).Body.String()
	assert.Contains(t, metrics, "ripple_shed_total 1")
	assert.Contains(t, metrics, "ripple_shed_in_flight_requests 2")
	assert.Contains(t, metrics, "ripple_shed_max_in_flight 2")

	close(bw.release)
	wg.Wait()
	assert.Equal(t, 202, serve(h, "POST", "/v1/events", strings.NewReader(body)).Code)
	assert.EqualValues(t, 0, s.inFlight.Load())
}

// Every refusal happens before the body is read: shedding (above),
// authentication, rate limiting and a declared length over max_body_bytes.
func TestRefusalsDoNotReadTheBody(t *testing.T) {
	n := newGuardNode(t, defaultKeySpecs, func(o *Options) {
		o.MaxBodyBytes = 1024
		o.RateLimit.PerKeyRPS, o.RateLimit.PerKeyBurst = 0.001, 1
	})
	h := n.s.Handler()
	body := `[{"user":"u1","item":"i1","type":"view"}]`
	check := func(what string, code int, header ...string) {
		t.Helper()
		spy := &readSpy{Reader: strings.NewReader(body)}
		rec := serve(h, "POST", "/v1/events", spy, header...)
		assert.Equal(t, code, rec.Code, "%s: %s", what, rec.Body.String())
		assert.False(t, spy.read, "%s read the body", what)
	}
	check("no key", 401)
	check("wrong scope", 403, bearer(n.secrets["read"]))
	require.Equal(t, 202, serve(h, "POST", "/v1/events", strings.NewReader(body), bearer(n.secrets["ingest"])).Code)
	check("rate limited", 429, bearer(n.secrets["ingest"]))

	spy := &readSpy{Reader: strings.NewReader(strings.Repeat(" ", 2048))}
	req := httptest.NewRequest("POST", "/v1/events", spy)
	req.Header.Set("Authorization", "Bearer "+n.secrets["all"])
	req.ContentLength = 2048
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	assert.Equal(t, 413, rec.Code, rec.Body.String())
	assert.False(t, spy.read, "a declared length over max_body_bytes is refused unread")
}

// Neither secrets nor their hashes reach the logs, whatever happens.
func TestLogsNeverContainSecrets(t *testing.T) {
	n := newGuardNode(t, defaultKeySpecs, func(o *Options) { o.RateLimit.PerKeyRPS, o.RateLimit.PerKeyBurst = 0.001, 1 })
	for name, secret := range n.secrets {
		n.do(t, "GET", "/v1/recommendations/u1", "", bearer(secret))
		n.do(t, "GET", "/v1/recommendations/u1", "", bearer(secret)) // rate limited
		n.do(t, "POST", "/v1/admin/train", "", "X-API-Key: "+secret)
		n.do(t, "GET", "/v1/recommendations/u1", "", bearer(secret+"x"))
		_ = name
	}
	require.NoError(t, n.keys.Reload(true))
	keys, err := auth.ReadFile(n.file)
	require.NoError(t, err)
	logs := n.logs.String()
	require.Contains(t, logs, "API keys reloaded", "the logs were captured")
	for name, secret := range n.secrets {
		assert.NotContains(t, logs, secret, name)
		assert.NotContains(t, logs, secret[len(auth.SecretPrefix):len(auth.SecretPrefix)+16], name)
	}
	for _, k := range keys {
		assert.NotContains(t, logs, strings.TrimPrefix(k.Hash, "sha256:")[:16], k.Name)
	}
}
