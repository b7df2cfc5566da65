package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/floats"
)

// TestFeedbackAttributesClicks: a click on the second recommended item is
// credited to the serving model at position 2; an erased user's lists are
// forgotten.
func TestFeedbackAttributesClicks(t *testing.T) {
	cfg, _, _ := demoNode(t, "u3")
	n, err := openNode(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer n.close()
	h := n.api.Handler()

	code, body := callJSON(t, h, "GET", "/v1/recommendations/u3?k=5")
	require.Equal(t, 200, code)
	second := body["items"].([]any)[1].(map[string]any)["item"].(string)
	post := func(user, item string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/events", strings.NewReader(`[{"user":"`+user+`","item":"`+item+`","type":"click"}]`))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		require.Equal(t, 202, rec.Code, rec.Body.String())
	}
	post("u3", second)

	code, body = callJSON(t, h, "GET", "/v1/admin/feedback")
	require.Equal(t, 200, code)
	models := body["feedback"].(map[string]any)["models"].([]any)
	require.Len(t, models, 1)
	m := models[0].(map[string]any)
	assert.Equal(t, "stream-covis-v1", m["model"])
	assert.Equal(t, 5.0, m["impressions"])
	pos2 := m["by_position"].([]any)[1].(map[string]any)
	assert.Equal(t, "2", pos2["position"])
	assert.Equal(t, 1.0, pos2["engagements"])

	code, body = callJSON(t, h, "GET", "/v1/recommendations/u3?k=5&explore=true")
	require.Equal(t, 200, code)
	assert.Equal(t, true, body["items"].([]any)[2].(map[string]any)["explore"], "the exploration slot is marked")
	code, _ = callJSON(t, h, "GET", "/v1/recommendations/u3?k=5&explore=maybe")
	assert.Equal(t, 400, code)

	code, _ = callJSON(t, h, "GET", "/v1/recommendations/u4?k=5")
	require.Equal(t, 200, code)
	code, _ = callJSON(t, h, "DELETE", "/v1/users/u4")
	require.Equal(t, 200, code)
	_, body = callJSON(t, h, "GET", "/v1/admin/feedback")
	assert.Equal(t, 1.0, body["users_tracked"], "the erased user is forgotten")
}

// TestFeedbackLoopTrainsARanker closes the loop: served lists are logged
// with their feature vectors, simulated users click the "good" items they
// look at (position p with probability 1/p), training learns a ranker from
// the logged lists, and the server then serves through it and says so in
// the model name, also after a restart. A ranker learns only from lists
// served the way the new version serves: the first blend gets none, as
// only the streaming model had served.
func TestFeedbackLoopTrainsARanker(t *testing.T) {
	cfg, _, _ := demoNode(t, "u3")
	cfg.Train.Ranker.MinLists = 100
	ctx := context.Background()
	n, err := openNode(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	h := n.api.Handler()

	r := rand.New(rand.NewPCG(1, 2))
	simulate := func(users int, good func(string) bool) (clicks int) {
		for range users {
			user := fmt.Sprint("sim", r.Uint64())
			post(t, h, user, fmt.Sprint("i", r.IntN(200)), "view") // some history to recommend from
			code, body := callJSON(t, h, "GET", "/v1/recommendations/"+user+"?k=10")
			require.Equal(t, 200, code)
			for p, it := range body["items"].([]any) {
				item := it.(map[string]any)["item"].(string)
				if r.Float64() < 1/float64(p+1) && good(item) {
					post(t, h, user, item, "click")
					clicks++
				}
			}
		}
		return clicks
	}
	require.Positive(t, simulate(200, func(string) bool { return true }))
	n.feedback.Close()
	code, body := callJSON(t, h, "POST", "/v1/admin/train?wait=true")
	require.Equal(t, 200, code, body)
	require.Equal(t, "blend", body["report"].(map[string]any)["serving"], "the demo's blend beats the stream alone")
	rep := body["report"].(map[string]any)["ranker"].(map[string]any)
	assert.Empty(t, rep["chosen"], "the lists logged so far were the streaming model's: %v", rep)
	assert.Positive(t, rep["other_model_lists"])

	// Now the blend serves, and users engage with items a hash picks: a
	// signal no feature but the engagement rate can find.
	require.Greater(t, simulate(600, func(item string) bool { return fnv32(item)%3 == 0 }), 150)
	n.feedback.Close() // as at shutdown: open engaged lists are written out

	code, body = callJSON(t, h, "POST", "/v1/admin/train?wait=true")
	require.Equal(t, 200, code, body)
	require.Equal(t, "blend", body["report"].(map[string]any)["serving"])
	rep = body["report"].(map[string]any)["ranker"].(map[string]any)
	t.Logf("ranker: %v", rep)
	assert.GreaterOrEqual(t, rep["lists"].(float64), 100.0)
	assert.Positive(t, rep["pairs"].(float64))
	require.NotEmpty(t, rep["chosen"], "clicks follow a signal the served order lacks: %v", rep)
	chosen := rep["chosen"].(string)
	if chosen == "pairwise" {
		chosen = "ranker"
	}
	want := "blend+" + chosen + "@2"
	code, body = callJSON(t, h, "GET", "/v1/recommendations/u3?k=10")
	require.Equal(t, 200, code)
	assert.Equal(t, want, body["model"])
	n.close()

	n, err = openNode(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer n.close()
	code, body = callJSON(t, n.api.Handler(), "GET", "/v1/recommendations/u3?k=10")
	require.Equal(t, 200, code)
	assert.Equal(t, want, body["model"], "the ranker is part of the promoted version")
	ids := make([]string, 1000)
	for i := range ids {
		ids[i] = fmt.Sprint("i", i)
	}
	imp, eng := make([]float64, len(ids)), make([]float64, len(ids))
	n.feedback.ItemStats(ids, imp, eng)
	assert.Greater(t, floats.Sum(imp), 5000.0, "impressions survive the restart")
	assert.Greater(t, floats.Sum(eng), 150.0, "so do engagements: the ctr feature does not reset")
}

func post(t *testing.T, h http.Handler, user, item, typ string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/events", strings.NewReader(`[{"user":"`+user+`","item":"`+item+`","type":"`+typ+`"}]`))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	require.Equal(t, 202, rec.Code, rec.Body.String())
}

func fnv32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}
