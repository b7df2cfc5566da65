package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
