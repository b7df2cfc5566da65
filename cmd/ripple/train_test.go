package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/features"
)

func callJSON(t *testing.T, h http.Handler, method, path string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	return rec.Code, body
}

// TestAdminTrainPromotesAndServes: POST /v1/admin/train?wait=true trains
// from the log, the next recommendation names the new version, and a
// restarted node serves that version from disk.
func TestAdminTrainPromotesAndServes(t *testing.T) {
	cfg, _, _ := demoNode(t, "u3")
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	n, err := openNode(ctx, cfg, logger)
	require.NoError(t, err)
	h := n.api.Handler()

	code, body := callJSON(t, h, "GET", "/v1/recommendations/u3?k=10")
	require.Equal(t, 200, code)
	assert.Equal(t, "stream-covis-v1", body["model"], "no trained model yet")

	code, body = callJSON(t, h, "POST", "/v1/admin/train?wait=true")
	require.Equal(t, 200, code, body)
	assert.Equal(t, "blend@1", body["model"])
	rep := body["report"].(map[string]any)
	assert.Greater(t, rep["events"].(float64), 10_000.0)
	assert.NotEmpty(t, rep["validation"])
	assert.NotNil(t, rep["tuned"], "the node's catalogue (the demo's item categories) reached the training stream")

	code, body = callJSON(t, h, "GET", "/v1/recommendations/u3?k=10&explain=true")
	require.Equal(t, 200, code)
	assert.Equal(t, "blend@1", body["model"])
	items := body["items"].([]any)
	require.Len(t, items, 10)
	sawModel := false
	for _, it := range items {
		for _, r := range it.(map[string]any)["reasons"].([]any) {
			if r.(map[string]any)["source"] == "model" {
				sawModel = true
			}
		}
	}
	assert.True(t, sawModel, "the trained model contributed candidates")
	code, body = callJSON(t, h, "GET", "/v1/items/"+items[0].(map[string]any)["item"].(string)+"/similar?k=5")
	require.Equal(t, 200, code)
	assert.Equal(t, "blend@1", body["model"])

	code, body = callJSON(t, h, "POST", "/v1/admin/train")
	assert.Equal(t, 202, code)
	assert.Contains(t, []any{"started", "running"}, body["status"])
	code, _ = callJSON(t, h, "POST", "/v1/admin/train?wait=maybe")
	assert.Equal(t, 400, code)
	code, body = callJSON(t, h, "POST", "/v1/admin/train?wait=true") // joins or follows the async run
	require.Equal(t, 200, code, body)
	latest := body["model"]
	assert.Contains(t, []any{"blend@2", "blend@3"}, latest)
	before := recs(t, h, "u3")
	n.close()

	n, err = openNode(ctx, cfg, logger)
	require.NoError(t, err)
	defer n.close()
	code, body = callJSON(t, n.api.Handler(), "GET", "/v1/recommendations/u3?k=10")
	require.Equal(t, 200, code)
	assert.Equal(t, latest, body["model"], "the restarted node serves the promoted version")
	assert.Equal(t, before, recs(t, n.api.Handler(), "u3"))
}

// TestCorruptModelFallsBack: a node whose serving artifact is damaged
// starts anyway and serves the newest readable older version.
func TestCorruptModelFallsBack(t *testing.T) {
	cfg, _, _ := demoNode(t, "u3")
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	_, err := rebuild(ctx, cfg.DataDir, features.DefaultConfig(), cfg.Train, cfg.Recommend, true)
	require.NoError(t, err)
	_, err = rebuild(ctx, cfg.DataDir, features.DefaultConfig(), cfg.Train, cfg.Recommend, true)
	require.NoError(t, err)
	art := filepath.Join(cfg.DataDir, "models", "transition@2.rmdl")
	b, err := os.ReadFile(art)
	require.NoError(t, err)
	b[len(b)/2] ^= 0xff
	require.NoError(t, os.WriteFile(art, b, 0o644))

	n, err := openNode(ctx, cfg, logger)
	require.NoError(t, err)
	defer n.close()
	code, body := callJSON(t, n.api.Handler(), "GET", "/v1/recommendations/u3?k=10")
	require.Equal(t, 200, code)
	assert.Equal(t, "blend@1", body["model"])
}

// TestAdminTrainEmptyLog: training with nothing to train on is a clear 409
// and leaves the streaming model serving.
func TestAdminTrainEmptyLog(t *testing.T) {
	cfg := defaultServeConfig()
	cfg.DataDir = t.TempDir()
	n, err := openNode(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer n.close()
	code, body := callJSON(t, n.api.Handler(), "POST", "/v1/admin/train?wait=true")
	assert.Equal(t, 409, code)
	assert.Equal(t, "no_data", body["error"].(map[string]any)["code"])
	_, body = callJSON(t, n.api.Handler(), "GET", "/v1/recommendations/u1?k=3")
	assert.Equal(t, "stream-covis-v1", body["model"])
}

// TestAdminModelsRollback: the kept versions are listed, an older one can
// be made to serve again, and bad names are refused without a change.
func TestAdminModelsRollback(t *testing.T) {
	cfg, _, _ := demoNode(t, "u3")
	ctx := context.Background()
	for range 2 {
		res, err := rebuild(ctx, cfg.DataDir, features.DefaultConfig(), cfg.Train, cfg.Recommend, true)
		require.NoError(t, err)
		assert.NotNil(t, res.models.Tuned, "ripple train gives the training stream the log's catalogue")
	}
	n, err := openNode(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer n.close()
	h := n.api.Handler()
	code, body := callJSON(t, h, "GET", "/v1/admin/models")
	require.Equal(t, 200, code)
	assert.Equal(t, "blend@2", body["serving"])
	assert.Len(t, body["models"], 2)

	code, body = callJSON(t, h, "POST", "/v1/admin/models/blend@1/activate")
	require.Equal(t, 200, code, body)
	_, body = callJSON(t, h, "GET", "/v1/recommendations/u3?k=5")
	assert.Equal(t, "blend@1", body["model"])

	code, _ = callJSON(t, h, "POST", "/v1/admin/models/blend@9/activate")
	assert.Equal(t, 404, code)
	code, _ = callJSON(t, h, "POST", "/v1/admin/models/nonsense/activate")
	assert.Equal(t, 400, code)
	require.NoError(t, os.WriteFile(filepath.Join(cfg.DataDir, "models", "knn@2.rmdl"), []byte("RPLMbroken"), 0o644))
	code, _ = callJSON(t, h, "POST", "/v1/admin/models/blend@2/activate")
	assert.Equal(t, 409, code)
	_, body = callJSON(t, h, "GET", "/v1/recommendations/u3?k=5")
	assert.Equal(t, "blend@1", body["model"], "a failed activation changes nothing")
}

// TestTrainCommandReportsRankers: `ripple train` on a data dir the server
// wrote trains offline and says what became of both rankers.
func TestTrainCommandReportsRankers(t *testing.T) {
	cfg, _, _ := demoNode(t, "u3")
	cmd := newTrainCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"--data-dir", cfg.DataDir})
	require.NoError(t, cmd.Execute(), errOut.String())
	got := out.String()
	assert.Contains(t, got, "trained blend@1")
	assert.Regexp(t, `ranker from \d+ replayed lists: \S+ \(`, got)
	assert.Contains(t, got, "ranker from 0 logged lists: none (too few engaged lists logged to learn from)",
		"the demo served no list: nothing was logged")
}
