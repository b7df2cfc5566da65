package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/ripple-rec/ripple/internal/features"
)

func TestExampleConfigHasOnlyKnownKeys(t *testing.T) {
	b, err := os.ReadFile("../../deploy/ripple.example.yaml")
	require.NoError(t, err)
	cfg := defaultServeConfig()
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&cfg))
	assert.Equal(t, defaultServeConfig(), cfg, "the example documents the defaults")
}

func recs(t *testing.T, h http.Handler, user string) string {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/recommendations/"+user+"?k=10", nil))
	require.Equal(t, 200, rec.Code)
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	items, _ := json.Marshal(body["items"])
	return string(items)
}

// demoNode loads the demo into a fresh data dir, records what user serves,
// and closes the node: the state a restarted server must reproduce.
func demoNode(t *testing.T, user string) (cfg serveConfig, applied uint64, before string) {
	t.Helper()
	cfg = defaultServeConfig()
	cfg.DataDir = t.TempDir()
	cfg.Demo = true
	logger := slog.New(slog.DiscardHandler)
	ctx := context.Background()
	n, err := openNode(ctx, cfg, logger)
	require.NoError(t, err)
	require.NoError(t, loadDemo(ctx, n, cfg, logger))
	applied = n.engine.Applied()
	before = recs(t, n.api.Handler(), user)
	n.close()
	return cfg, applied, before
}

// TestDemoRestartRestoresSnapshot: a graceful shutdown writes a snapshot; the
// restarted node serves the same recommendations without replaying the log.
func TestDemoRestartRestoresSnapshot(t *testing.T) {
	cfg, applied, before := demoNode(t, "u3")
	require.Greater(t, applied, uint64(10_000))
	logger := slog.New(slog.DiscardHandler)
	ctx := context.Background()

	n, err := openNode(ctx, cfg, logger)
	require.NoError(t, err)
	defer n.close()
	assert.Equal(t, applied, n.engine.Applied())
	assert.GreaterOrEqual(t, n.ingest.SnapshotAge(), 0.0, "state came from the snapshot")
	require.NoError(t, loadDemo(ctx, n, cfg, logger), "demo is not loaded twice")
	assert.Equal(t, applied, n.engine.Applied())
	assert.Equal(t, before, recs(t, n.api.Handler(), "u3"))
}

// TestTrainRebuildMatchesServedState: an offline rebuild from the log gives
// the state the server had, and the server starts from it.
func TestTrainRebuildMatchesServedState(t *testing.T) {
	cfg, applied, before := demoNode(t, "u5")
	ctx := context.Background()

	res, err := rebuild(ctx, cfg.DataDir, features.DefaultConfig(), cfg.Train, cfg.Recommend, false)
	require.NoError(t, err)
	assert.Equal(t, int(applied), res.records)
	assert.Equal(t, applied, res.info.Offset)

	n, err := openNode(ctx, cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	defer n.close()
	assert.Equal(t, applied, n.engine.Applied())
	assert.Equal(t, before, recs(t, n.api.Handler(), "u5"))
}
