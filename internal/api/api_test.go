package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/api"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/store"
)

type testNode struct {
	srv    *httptest.Server
	log    *eventlog.Embedded
	ingest *ingest.Service
	engine *features.Engine
}

func newNode(t *testing.T, mutate func(*api.Options)) *testNode {
	t.Helper()
	return newNodeServer(t, mutate, nil)
}

// newNodeServer is newNode with the HTTP server's settings changed by
// server before it starts (a change after start races its connections).
func newNodeServer(t *testing.T, mutate func(*api.Options), server func(*http.Server)) *testNode {
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
	opts := api.DefaultOptions()
	if mutate != nil {
		mutate(&opts)
	}
	s := api.New(svc, api.EngineReader{Engine: eng}, recommend.New(eng, recommend.DefaultConfig()), m, nil, opts)
	ts := httptest.NewUnstartedServer(s.Handler())
	if server != nil {
		server(ts.Config)
	}
	ts.Start()
	n := &testNode{srv: ts, log: lg, ingest: svc, engine: eng}
	t.Cleanup(func() {
		ts.Close()
		_ = svc.Close()
		_ = snaps.Close()
		_ = lg.Close()
	})
	return n
}

type response struct {
	code   int
	header http.Header
	body   map[string]any
	raw    string
}

func (n *testNode) do(t *testing.T, method, path, contentType, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, n.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	r := response{code: res.StatusCode, header: res.Header, raw: string(raw)}
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &r.body), "body is not JSON: %s", raw)
	}
	return r
}

func errorCode(r response) string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func items(r response) []string {
	var out []string
	list, _ := r.body["items"].([]any)
	for _, x := range list {
		out = append(out, x.(map[string]any)["item"].(string))
	}
	return out
}

const jsonCT = "application/json"
const ndjsonCT = "application/x-ndjson"

func TestEventsErrorPaths(t *testing.T) {
	n := newNode(t, func(o *api.Options) { o.MaxBodyBytes = 4096; o.MaxBatchEvents = 5 })
	tests := []struct {
		name, ct, body string
		code           int
		errCode        string
	}{
		{"wrong content type", "text/plain", `[]`, 415, "unsupported_media_type"},
		{"not json", jsonCT, `hello`, 400, "invalid_body"},
		{"empty body", jsonCT, ``, 400, "invalid_body"},
		{"empty ndjson", ndjsonCT, "\n\n", 400, "invalid_body"},
		{"every event invalid", jsonCT, `[{"user":"u1","type":"view"}]`, 400, "invalid_event"},
		{"empty array", jsonCT, `[]`, 400, "invalid_body"},
		{"null", jsonCT, `null`, 400, "invalid_body"},
		{"absurd value", jsonCT, `[{"user":"u1","item":"i1","type":"rating","value":1.7e308}]`, 400, "invalid_event"},
		{"unknown type", jsonCT, `[{"user":"u1","item":"i1","type":"teleport"}]`, 400, "invalid_event"},
		{"too many events", jsonCT, `[` + strings.Repeat(`{"user":"u","item":"i","type":"view"},`, 5) + `{"user":"u","item":"i","type":"view"}]`, 400, "invalid_body"},
		{"too large", jsonCT, `[{"user":"` + strings.Repeat("x", 5000) + `"}]`, 413, "too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := n.do(t, "POST", "/v1/events", tc.ct, tc.body)
			assert.Equal(t, tc.code, r.code, r.raw)
			assert.Equal(t, tc.errCode, errorCode(r), r.raw)
			e, _ := r.body["error"].(map[string]any)
			assert.NotEmpty(t, e["request_id"])
			assert.NotEmpty(t, e["message"])
		})
	}
	assert.Equal(t, uint64(1), n.log.End(), "no rejected request may reach the log")
}

func TestEventsPartialBatchAndDuplicates(t *testing.T) {
	n := newNode(t, nil)
	body := `[{"id":"e1","user":"u1","item":"i1","type":"view","ts":"2026-01-02T03:04:05Z"},
	          {"user":"u1","type":"view"},
	          {"id":"e2","user":"u1","item":"i2","type":"rating","value":4.5,"ts":1767000000}]`
	r := n.do(t, "POST", "/v1/events", jsonCT, body)
	require.Equal(t, 202, r.code, r.raw)
	assert.EqualValues(t, 2, r.body["accepted"])
	assert.EqualValues(t, 1, r.body["rejected"])
	errs := r.body["errors"].([]any)
	require.Len(t, errs, 1)
	assert.EqualValues(t, 1, errs[0].(map[string]any)["index"])
	assert.Contains(t, errs[0].(map[string]any)["error"], "item")

	// A client retry of the same ids has no second effect.
	r = n.do(t, "POST", "/v1/events", jsonCT, body)
	require.Equal(t, 202, r.code)
	assert.EqualValues(t, 0, r.body["accepted"])
	assert.EqualValues(t, 2, r.body["duplicates"])
	assert.Equal(t, uint64(3), n.log.End())

	r = n.do(t, "POST", "/v1/events", ndjsonCT, "{\"id\":\"e3\",\"user\":\"u2\",\"item\":\"i1\",\"type\":\"click\"}\n\n{\"user\":\"u2\",\"item\":\"i9\",\"type\":\"cart\"}\n")
	require.Equal(t, 202, r.code, r.raw)
	assert.EqualValues(t, 2, r.body["accepted"])
}

func TestRoutingErrors(t *testing.T) {
	n := newNode(t, nil)
	r := n.do(t, "GET", "/v2/nothing", "", "")
	assert.Equal(t, 404, r.code)
	assert.Equal(t, "not_found", errorCode(r))
	r = n.do(t, "GET", "/v1/events", "", "")
	assert.Equal(t, 405, r.code)
	assert.Equal(t, "method_not_allowed", errorCode(r))
	assert.Equal(t, "POST", r.header.Get("Allow"))
	r = n.do(t, "POST", "/v1/admin/train?wait=true", "", "")
	assert.Equal(t, 501, r.code)
}

func TestRequestID(t *testing.T) {
	n := newNode(t, nil)
	req, _ := http.NewRequest("GET", n.srv.URL+"/v1/recommendations/x", nil)
	req.Header.Set("X-Request-ID", "abc-123")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	res.Body.Close()
	assert.Equal(t, "abc-123", res.Header.Get("X-Request-ID"))
	assert.Equal(t, "abc-123", body["request_id"])

	// Unsafe ids are replaced, never echoed.
	req.Header.Set("X-Request-ID", "bad id <x>")
	res, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	assert.NotContains(t, res.Header.Get("X-Request-ID"), " ")
	assert.Len(t, res.Header.Get("X-Request-ID"), 16)
}

func TestRecommendationParameters(t *testing.T) {
	n := newNode(t, nil)
	for _, q := range []string{"k=0", "k=abc", "k=100000", "explain=maybe", "include_seen=2"} {
		r := n.do(t, "GET", "/v1/recommendations/u1?"+q, "", "")
		assert.Equal(t, 400, r.code, q)
		assert.Equal(t, "invalid_parameter", errorCode(r), q)
	}
	// Unknown users on an empty store still get 200, never 404.
	r := n.do(t, "GET", "/v1/recommendations/nobody", "", "")
	assert.Equal(t, 200, r.code)
	assert.Equal(t, true, r.body["cold_start"])
	assert.Equal(t, "healthy", r.body["degradation"])
	assert.Equal(t, recommend.Model, r.body["model"])
	assert.NotNil(t, r.body["items"])
}

// events posts NDJSON lines user,item,type with increasing timestamps.
func (n *testNode) events(t *testing.T, lines ...string) {
	t.Helper()
	var b strings.Builder
	base := time.Now().Add(-time.Hour).Unix()
	for i, l := range lines {
		f := strings.Split(l, ",")
		fmt.Fprintf(&b, `{"user":%q,"item":%q,"type":%q,"ts":%d}`+"\n", f[0], f[1], f[2], base+int64(i))
	}
	r := n.do(t, "POST", "/v1/events", ndjsonCT, b.String())
	require.Equal(t, 202, r.code, r.raw)
}

func TestReadYourWrites(t *testing.T) {
	n := newNode(t, nil)
	// Others establish that i2 follows i1.
	for u := 0; u < 5; u++ {
		n.events(t, fmt.Sprintf("o%d,i1,view", u), fmt.Sprintf("o%d,i2,view", u))
	}
	n.events(t, "o9,i3,view", "o9,i3,view", "o9,i4,view")
	// The very next read after a 2xx reflects the write.
	n.events(t, "me,i1,click")
	r := n.do(t, "GET", "/v1/recommendations/me?k=10&explain=true", "", "")
	require.Equal(t, 200, r.code)
	got := items(r)
	assert.NotContains(t, got, "i1", "seen item must be excluded")
	require.NotEmpty(t, got)
	assert.Equal(t, "i2", got[0], "co-visitation neighbour of the new event must lead: %v", r.raw)
	assert.Equal(t, false, r.body["cold_start"])
	first := r.body["items"].([]any)[0].(map[string]any)
	assert.NotEmpty(t, first["reasons"])

	r = n.do(t, "GET", "/v1/recommendations/me?k=10&include_seen=true", "", "")
	assert.Contains(t, items(r), "i1")

	r = n.do(t, "GET", "/v1/recommendations/me?k=10&exclude=i2", "", "")
	assert.NotContains(t, items(r), "i2")
}

func TestItemsHiddenAndSimilar(t *testing.T) {
	n := newNode(t, nil)
	for u := 0; u < 3; u++ {
		n.events(t, fmt.Sprintf("o%d,a,view", u), fmt.Sprintf("o%d,b,view", u), fmt.Sprintf("o%d,c,view", u))
	}
	r := n.do(t, "GET", "/v1/items/a/similar?k=5", "", "")
	require.Equal(t, 200, r.code, r.raw)
	assert.Equal(t, []string{"b", "c"}, items(r))

	r = n.do(t, "PUT", "/v1/items/b", jsonCT, `{"categories":["books"],"hidden":true}`)
	require.Equal(t, 200, r.code, r.raw)
	r = n.do(t, "GET", "/v1/items/a/similar?k=5", "", "")
	assert.Equal(t, []string{"c"}, items(r), "hidden items are never recommended")
	r = n.do(t, "GET", "/v1/recommendations/new-user?k=10", "", "")
	assert.NotContains(t, items(r), "b")

	r = n.do(t, "GET", "/v1/items/zzz/similar", "", "")
	assert.Equal(t, 404, r.code)
	assert.Equal(t, "item_not_found", errorCode(r))

	for _, tc := range []struct{ method, path, ct, body string }{
		{"PUT", "/v1/items/x", "text/csv", `{}`},
		{"PUT", "/v1/items/x", jsonCT, `[1]`},
		{"PUT", "/v1/items/x", jsonCT, `{"item":"y"}`},
		{"POST", "/v1/items", jsonCT, `{"item":"y"}`},
		{"POST", "/v1/items", jsonCT, `[{"categories":["a"]}]`},
	} {
		r := n.do(t, tc.method, tc.path, tc.ct, tc.body)
		assert.Contains(t, []int{400, 415}, r.code, "%s %s %s", tc.method, tc.path, tc.body)
	}
	r = n.do(t, "POST", "/v1/items", jsonCT, `[{"item":"x1","categories":["toys"]},{"categories":[]}]`)
	assert.Equal(t, 202, r.code, r.raw)
	assert.EqualValues(t, 1, r.body["accepted"])
	assert.EqualValues(t, 1, r.body["rejected"])
}

func TestRank(t *testing.T) {
	n := newNode(t, nil)
	for u := 0; u < 3; u++ {
		n.events(t, fmt.Sprintf("o%d,a,view", u), fmt.Sprintf("o%d,b,view", u))
	}
	n.events(t, "me,a,view")
	r := n.do(t, "POST", "/v1/rank", jsonCT, `{"user":"me","items":["zzz","b","a"]}`)
	require.Equal(t, 200, r.code, r.raw)
	got := items(r)
	require.Len(t, got, 3, "rank never drops the caller's items")
	assert.Equal(t, "b", got[0])
	for _, body := range []string{`{}`, `{"user":"me"}`, `{"user":"me","items":[]}`, `not json`, `{"user":"me","items":["a"],"x":1}`} {
		r := n.do(t, "POST", "/v1/rank", jsonCT, body)
		assert.Equal(t, 400, r.code, body)
	}
}

func TestFeaturesAndErase(t *testing.T) {
	n := newNode(t, nil)
	n.events(t, "u1,a,purchase", "u1,b,view")
	r := n.do(t, "GET", "/v1/features/user/u1", "", "")
	require.Equal(t, 200, r.code)
	assert.Equal(t, true, r.body["found"])
	assert.NotEmpty(t, r.body["computed_at"])
	f := r.body["features"].(map[string]any)
	assert.EqualValues(t, 2, f["user_events_24h"].(map[string]any)["value"])
	assert.NotEmpty(t, f["user_events_24h"].(map[string]any)["computed_at"])

	r = n.do(t, "GET", "/v1/features/item/a", "", "")
	assert.Equal(t, true, r.body["found"])
	r = n.do(t, "GET", "/v1/features/global/all", "", "")
	assert.Equal(t, 200, r.code)
	r = n.do(t, "GET", "/v1/features/shop/1", "", "")
	assert.Equal(t, 404, r.code)
	r = n.do(t, "GET", "/v1/features/user/ghost", "", "")
	assert.Equal(t, false, r.body["found"])
	ghost := r.body["features"].(map[string]any)["user_events_24h"].(map[string]any)
	assert.Equal(t, true, ghost["default"], "unknown entities get typed defaults")

	r = n.do(t, "DELETE", "/v1/users/u1", "", "")
	require.Equal(t, 200, r.code)
	r = n.do(t, "GET", "/v1/features/user/u1", "", "")
	assert.Equal(t, false, r.body["found"], "erased user must have no state")
	r = n.do(t, "GET", "/v1/recommendations/u1", "", "")
	assert.Equal(t, true, r.body["cold_start"])
}

func TestHealthReadyMetrics(t *testing.T) {
	n := newNode(t, nil)
	n.events(t, "u1,a,view")
	assert.Equal(t, 200, n.do(t, "GET", "/healthz", "", "").code)
	assert.Equal(t, 200, n.do(t, "GET", "/readyz", "", "").code)
	res, err := http.Get(n.srv.URL + "/metrics")
	require.NoError(t, err)
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, m := range []string{`ripple_http_requests_total{code="202",route="/v1/events"}`, `ripple_events_total{outcome="accepted"} 1`,
		"ripple_features_apply_lag_records", "ripple_store_snapshot_age_seconds", "ripple_http_request_duration_seconds_bucket"} {
		assert.Contains(t, string(b), m)
	}
}

func TestLogDownAnswers503(t *testing.T) {
	n := newNode(t, nil)
	require.NoError(t, n.log.Close())
	r := n.do(t, "POST", "/v1/events", jsonCT, `[{"user":"u1","item":"i1","type":"view"}]`)
	assert.Equal(t, 503, r.code, r.raw)
	assert.Equal(t, "unavailable", errorCode(r))
	assert.Equal(t, "1", r.header.Get("Retry-After"))
	// Reads keep working from the in-memory state.
	assert.Equal(t, 200, n.do(t, "GET", "/v1/recommendations/u1", "", "").code)
}
