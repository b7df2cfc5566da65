package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestServeOnKafka: with log: kafka a node accepts events once the broker
// acknowledged them, applies them before answering, restarts from its
// snapshot's partition vector, and answers 503 with Retry-After, never 2xx,
// once the brokers are gone.
func TestServeOnKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, "ripple-events"))
	require.NoError(t, err)
	defer c.Close()
	cfg := defaultServeConfig()
	cfg.DataDir = t.TempDir()
	cfg.Log = "kafka"
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Kafka.Partitions = 6
	cfg.IngestTimeout = "1s"
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)

	send := func(n *node, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/v1/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		n.api.Handler().ServeHTTP(rec, req)
		return rec
	}
	ts := time.Now().Add(-time.Minute).Unix()
	var b strings.Builder
	b.WriteString("[")
	for i := range 50 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"type":"view","user":"u` + strconv.Itoa(i%7) + `","item":"i` + strconv.Itoa(i%11) + `","ts":` + strconv.Itoa(int(ts)+i) + `}`)
	}
	b.WriteString("]")

	redis := cfg
	redis.Store = "redis"
	_, err = openNode(ctx, redis, logger)
	require.ErrorContains(t, err, "store: embedded only")

	n, err := openNode(ctx, cfg, logger)
	require.NoError(t, err)
	rec := send(n, b.String())
	require.Equal(t, 202, rec.Code, rec.Body.String())
	assert.Empty(t, rec.Header().Get("X-Ripple-Applied"), "applied before the answer")
	assert.Equal(t, 7, n.engine.UserCount())
	vec := n.engine.AppliedVector()
	n.close() // final snapshot

	n, err = openNode(ctx, cfg, logger)
	require.NoError(t, err)
	defer n.close()
	assert.Equal(t, vec, n.engine.AppliedVector(), "restored from the snapshot")
	assert.DirExists(t, filepath.Join(cfg.DataDir, "snapshots-kafka-ripple-events"), "the embedded log's snapshots are not mixed in")
	assert.Equal(t, 7, n.engine.UserCount())

	c.Close()
	start := time.Now()
	rec = send(n, `[{"type":"view","user":"u1","item":"i1"}]`)
	assert.Equal(t, 503, rec.Code, rec.Body.String())
	assert.NotEmpty(t, rec.Header().Get("Retry-After"))
	assert.Less(t, time.Since(start), 5*time.Second)
}
