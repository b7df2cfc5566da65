package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ripple-rec/ripple/internal/api"
	"github.com/ripple-rec/ripple/internal/eventlog"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/store"
)

// fuzzHandler builds the real handler (ingest over an embedded log, engine,
// pipeline) once per fuzz process, with a little history so that reads rank
// real candidates. Requests go straight to the handler: no listener.
func fuzzHandler(f *testing.F) http.Handler {
	f.Helper()
	dir := f.TempDir()
	lg, err := eventlog.OpenEmbedded(dir+"/log", eventlog.EmbeddedOptions{})
	if err != nil {
		f.Fatal(err)
	}
	snaps, err := store.OpenSnapshots(dir + "/snaps")
	if err != nil {
		f.Fatal(err)
	}
	eng := features.NewEngine(features.DefaultConfig(), nil)
	m := observe.NewMetrics(func() float64 { return 0 }, func() float64 { return -1 })
	svc := ingest.New(lg, eng, snaps, m, nil, ingest.Options{})
	if err := svc.Recover(context.Background()); err != nil {
		f.Fatal(err)
	}
	svc.Start()
	h := api.New(svc, api.EngineReader{Engine: eng}, recommend.New(eng, recommend.DefaultConfig()), m, nil, api.DefaultOptions()).Handler()
	f.Cleanup(func() {
		_ = svc.Close()
		_ = snaps.Close()
		_ = lg.Close()
	})
	var items, events []string
	for i := 0; i < 12; i++ {
		items = append(items, fmt.Sprintf(`{"item":"i%d","categories":["c%d"]}`, i, i%3))
	}
	ts := time.Now().Add(-2 * time.Hour).Unix()
	for i := 0; i < 120; i++ {
		events = append(events, fmt.Sprintf(`{"user":"u%d","item":"i%d","type":"view","ts":%d}`, i%7, (i*5)%12, ts+int64(i)*30))
	}
	for path, body := range map[string]string{"/v1/items": "[" + strings.Join(items, ",") + "]", "/v1/events": "[" + strings.Join(events, ",") + "]"} {
		if code, raw := serve(h, "POST", path, "application/json", body); code != http.StatusAccepted {
			f.Fatalf("seeding %s: %d %s", path, code, raw)
		}
	}
	return h
}

func serve(h http.Handler, method, target, contentType, body string) (int, []byte) {
	req := httptest.NewRequest(method, "/", strings.NewReader(body))
	u, err := url.ParseRequestURI(target)
	if err != nil {
		panic(err)
	}
	req.URL = u
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// checkResponse asserts the API's response contract: an allowed status, a
// JSON body, and for every 4xx the error's code and request id. A 500 is
// a panic the recover middleware caught, or a response that could not be
// encoded: always a bug.
func checkResponse(t *testing.T, what string, code int, raw []byte, allowed ...int) map[string]any {
	t.Helper()
	if code == http.StatusInternalServerError {
		t.Fatalf("%s: 500: %s", what, raw)
	}
	ok := false
	for _, c := range allowed {
		ok = ok || c == code
	}
	if !ok {
		t.Fatalf("%s: status %d, want one of %v: %s", what, code, allowed, raw)
	}
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s: %d body is not a JSON object: %v\n%q", what, code, err, raw)
	}
	if code >= 400 {
		e, _ := body["error"].(map[string]any)
		if c, _ := e["code"].(string); c == "" {
			t.Fatalf("%s: %d without error.code: %s", what, code, raw)
		}
		if id, _ := e["request_id"].(string); id == "" {
			t.Fatalf("%s: %d without error.request_id: %s", what, code, raw)
		}
	}
	return body
}

// checkEventsResponse: a 202 (or a 400 that rejected every event) accounts
// for each event once at most: every error index is distinct.
func checkEventsResponse(t *testing.T, what string, code int, body map[string]any) {
	t.Helper()
	errs, hasErrs := body["errors"].([]any)
	if code != http.StatusAccepted && !hasErrs {
		return
	}
	accepted, _ := body["accepted"].(float64)
	duplicates, _ := body["duplicates"].(float64)
	rejected, _ := body["rejected"].(float64)
	// Events refused for a user's withheld storage consent count as rejected.
	if int(rejected) != len(errs) || (code == http.StatusAccepted && accepted+duplicates+rejected == 0) ||
		(code != http.StatusAccepted && accepted+duplicates != 0) {
		t.Fatalf("%s: %d with accepted %v, duplicates %v, rejected %v, %d errors", what, code, accepted, duplicates, rejected, len(errs))
	}
	seen := map[float64]bool{}
	for _, e := range errs {
		idx, _ := e.(map[string]any)["index"].(float64)
		if idx < 0 || seen[idx] {
			t.Fatalf("%s: error index %v repeated or negative", what, idx)
		}
		seen[idx] = true
	}
}

func FuzzPostEndpoints(f *testing.F) {
	now := time.Now().Unix()
	for _, s := range []string{
		fmt.Sprintf(`[{"id":"e1","user":"u1","item":"i1","type":"view","ts":%d},{"user":"u1","type":"view"}]`, now),
		fmt.Sprintf(`{"user":"u2","item":"i3","type":"rating","value":4.5,"ts":"%s","context":{"page":"home"}}`, time.Now().UTC().Format(time.RFC3339)),
		fmt.Sprintf("{\"user\":\"u3\",\"item\":\"i2\",\"type\":\"click\",\"ts\":%d}\n\n{\"user\":\"u3\"}\n", now),
		`[{"item":"i5","categories":["c1","sale"],"attributes":{"color":"red","size":42},"hidden":false}]`,
		`{"item":"i5","categories":["c1"]}`,
		`{"user":"u1","items":["i1","i2","nope"],"explain":true}`,
		`{"user":"u1","items":[],"extra":1}`,
		`{"personalization":false,"storage":true}`,
		`{"storage":null}`,
		`{"user":"","items":["i1"]}`,
		`[{"user":"u1","item":"i1","type":"rating","value":1.7e308}]`,
		`[{"user":"u1","item":"i1","type":"teleport"}]`,
		`[1,"x",null,[],{}]`,
		`""`,
		`null`,
		`[]`,
		``,
		"\xff\xfe[",
	} {
		for _, ct := range []string{"application/json", "application/x-ndjson", "", "text/plain", "Application/JSON; charset=utf-8"} {
			f.Add([]byte(s), ct)
		}
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body []byte, ct string) {
		for _, c := range []string{"application/json", "application/x-ndjson", ct} {
			if strings.ContainsAny(c, "\r\n") {
				continue // not a header value a client can send
			}
			what := "POST /v1/events as " + strconv.Quote(c)
			code, raw := serve(h, "POST", "/v1/events", c, string(body))
			checkEventsResponse(t, what, code, checkResponse(t, what, code, raw, 202, 400, 413, 415))
		}
		code, raw := serve(h, "POST", "/v1/items", "application/json", string(body))
		checkResponse(t, "POST /v1/items", code, raw, 202, 400, 413, 415)
		code, raw = serve(h, "PUT", "/v1/items/i-fuzz", "application/json", string(body))
		checkResponse(t, "PUT /v1/items/i-fuzz", code, raw, 200, 400, 413, 415)
		code, raw = serve(h, "PUT", "/v1/users/u-consent/consent", "application/json", string(body))
		checkResponse(t, "PUT /v1/users/u-consent/consent", code, raw, 200, 400, 413, 415)
		code, raw = serve(h, "POST", "/v1/rank", "application/json", string(body))
		res := checkResponse(t, "POST /v1/rank", code, raw, 200, 400, 413, 415)
		if code == http.StatusOK {
			var req struct{ Items []string }
			if items, _ := res["items"].([]any); json.Unmarshal(body, &req) == nil && len(items) > len(req.Items) {
				t.Fatalf("rank returned %d items for %d asked: %s", len(items), len(req.Items), raw)
			}
		}
	})
}

func FuzzGetEndpoints(f *testing.F) {
	for _, s := range [][5]string{
		{"u1", "10", "true", "user", "u1"},
		{"u3", "", "", "item", "i1"},
		{"nobody", "500", "false", "global", ""},
		{"u1", "501", "1", "items", "i1"},
		{"u1", "0", "yes", "user", "../x"},
		{"u1", "-1", "T", "", "u1"},
		{"", "1e3", "", "item", "%zz"},
		{"..", "9223372036854775808", "", ".", "ü"},
		{strings.Repeat("u", 257), "3", "", "user", strings.Repeat("u", 257)},
		{"u/1", " 5", "TRUE", "global", "x/y"},
		{"u1\x00", "5", "", "user", "\xff"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, user, k, explain, entity, id string) {
		q := url.Values{}
		if k != "" {
			q.Set("k", k)
		}
		if explain != "" {
			q.Set("explain", explain)
			q.Set("include_seen", explain)
			q.Set("exclude", id)
		}
		target := "/v1/recommendations/" + url.PathEscape(user) + "?" + q.Encode()
		code, raw := serve(h, "GET", target, "", "")
		if !redirect(code) {
			body := checkResponse(t, "GET "+target, code, raw, 200, 400, 404)
			if n, err := strconv.Atoi(k); code == http.StatusOK && err == nil {
				if items, _ := body["items"].([]any); len(items) > n {
					t.Fatalf("GET %s: %d items, k=%d", target, len(items), n)
				}
			}
		}
		target = "/v1/items/" + url.PathEscape(id) + "/similar?" + q.Encode()
		if code, raw := serve(h, "GET", target, "", ""); !redirect(code) {
			checkResponse(t, "GET "+target, code, raw, 200, 400, 404)
		}
		target = "/v1/users/" + url.PathEscape(user) + "/consent"
		if code, raw := serve(h, "GET", target, "", ""); !redirect(code) {
			checkResponse(t, "GET "+target, code, raw, 200, 400, 404)
		}
		target = "/v1/features/" + url.PathEscape(entity) + "/" + url.PathEscape(id)
		if code, raw := serve(h, "GET", target, "", ""); !redirect(code) {
			body := checkResponse(t, "GET "+target, code, raw, 200, 404)
			if code == http.StatusOK && body["entity"] != entity {
				t.Fatalf("GET %s: entity %v", target, body["entity"])
			}
		}
	})
}

// redirect: ServeMux answers paths with empty or dot segments with a
// redirect to the cleaned path, before any Ripple handler runs.
func redirect(code int) bool {
	return code == http.StatusMovedPermanently || code == http.StatusTemporaryRedirect || code == http.StatusPermanentRedirect
}
