package observe

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
)

// logLine logs one record through a logger with cfg and returns it decoded.
func logLine(t *testing.T, cfg LogConfig, log func(*slog.Logger)) map[string]any {
	t.Helper()
	var buf bytes.Buffer
	logger, err := NewJSONLogger(&buf, slog.LevelInfo, cfg)
	require.NoError(t, err)
	log(logger)
	var m map[string]any
	require.NoError(t, json.Unmarshal(buf.Bytes(), &m), buf.String())
	return m
}

// TestLoggerAddsTraceAndRequestIDs: records logged with a request's context
// carry its trace, span and request ids; without them, nothing is added.
func TestLoggerAddsTraceAndRequestIDs(t *testing.T) {
	p := newTestProvider(t, Tracing{})
	ctx, s := p.tr.Start(context.Background(), "request")
	defer s.End()
	ctx = WithRequestID(ctx, "req-7")
	sc := s.SpanContext()

	m := logLine(t, LogConfig{}, func(l *slog.Logger) { l.InfoContext(ctx, "served", "items", 3) })
	assert.Equal(t, sc.TraceID().String(), m["trace_id"])
	assert.Equal(t, sc.SpanID().String(), m["span_id"])
	assert.Equal(t, "req-7", m["request_id"])
	assert.Equal(t, 3.0, m["items"])

	m = logLine(t, LogConfig{}, func(l *slog.Logger) { l.Info("no context") })
	assert.NotContains(t, m, "trace_id")
	assert.NotContains(t, m, "request_id")

	// A remote span context alone (tracing off, caller traced) is enough.
	remote := trace.ContextWithRemoteSpanContext(context.Background(), trace.SpanContextFromContext(ctx))
	m = logLine(t, LogConfig{}, func(l *slog.Logger) { l.WarnContext(remote, "x") })
	assert.Equal(t, sc.TraceID().String(), m["trace_id"])

	// An explicit attribute of the same name is not duplicated.
	var buf bytes.Buffer
	logger, err := NewJSONLogger(&buf, slog.LevelInfo, LogConfig{})
	require.NoError(t, err)
	logger.ErrorContext(ctx, "failed", "request_id", "req-7")
	assert.Equal(t, 1, strings.Count(buf.String(), `"request_id"`), buf.String())

	// Through groups and With, the ids still arrive.
	m = logLine(t, LogConfig{}, func(l *slog.Logger) { l.With("node", "a").InfoContext(ctx, "x") })
	assert.Equal(t, "req-7", m["request_id"])
	assert.Equal(t, "a", m["node"])
}

func TestRequestIDContext(t *testing.T) {
	assert.Equal(t, "", RequestID(context.Background()))
	assert.Equal(t, "abc", RequestID(WithRequestID(context.Background(), "abc")))
}

// TestUserIDPolicies: log_user_ids keep logs the raw id, hash a keyed hash
// (stable for one key, different across keys, never the id), drop nothing;
// in records, in With attributes and inside groups.
func TestUserIDPolicies(t *testing.T) {
	const id = "user-42@example.com"
	hashOf := func(key string) string {
		m := logLine(t, LogConfig{UserIDs: UserIDsHash, UserIDKey: key}, func(l *slog.Logger) { l.Info("x", UserID(id)) })
		return m["user_hash"].(string)
	}
	cases := []struct {
		name string
		cfg  LogConfig
		want func(t *testing.T, m map[string]any)
	}{
		{"keep", LogConfig{UserIDs: UserIDsKeep}, func(t *testing.T, m map[string]any) {
			assert.Equal(t, id, m["user"])
		}},
		{"hash", LogConfig{UserIDs: UserIDsHash, UserIDKey: "k1"}, func(t *testing.T, m map[string]any) {
			assert.NotContains(t, m, "user")
			assert.Equal(t, hashOf("k1"), m["user_hash"])
			assert.Len(t, m["user_hash"], 16)
		}},
		{"hash is the default", LogConfig{}, func(t *testing.T, m map[string]any) {
			assert.NotContains(t, m, "user")
			assert.Len(t, m["user_hash"], 16)
		}},
		{"drop", LogConfig{UserIDs: UserIDsDrop}, func(t *testing.T, m map[string]any) {
			assert.NotContains(t, m, "user")
			assert.NotContains(t, m, "user_hash")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			direct := logLine(t, tc.cfg, func(l *slog.Logger) { l.Info("x", UserID(id), "k", 1) })
			tc.want(t, direct)
			assert.Equal(t, 1.0, direct["k"], "other attributes survive")
			tc.want(t, logLine(t, tc.cfg, func(l *slog.Logger) { l.With(UserID(id)).Info("x") }))
			grouped := logLine(t, tc.cfg, func(l *slog.Logger) { l.Info("x", slog.Group("req", UserID(id), "k", 1)) })
			g := grouped["req"].(map[string]any)
			tc.want(t, g)
			assert.Equal(t, 1.0, g["k"])
			for _, line := range []map[string]any{direct, grouped} {
				if tc.cfg.UserIDs != UserIDsKeep {
					b, _ := json.Marshal(line)
					assert.NotContains(t, string(b), id)
				}
			}
		})
	}
	assert.Equal(t, hashOf("k1"), hashOf("k1"), "one key, one hash: lines of a user correlate")
	assert.NotEqual(t, hashOf("k1"), hashOf("k2"))

	_, err := NewJSONLogger(&bytes.Buffer{}, slog.LevelInfo, LogConfig{UserIDs: "mask"})
	assert.ErrorContains(t, err, "log_user_ids")
}

// TestUserIDOutsideTheHandlerIsNeverRaw: a logger without the context
// handler still logs a hash, not the id.
func TestUserIDOutsideTheHandlerIsNeverRaw(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", UserID("u-raw"))
	assert.NotContains(t, buf.String(), "u-raw")
	assert.Contains(t, buf.String(), `"user":"`)
}
