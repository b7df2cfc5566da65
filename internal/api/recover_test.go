package api_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ripple-rec/ripple/internal/api"
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/recommend"
)

type panickingWriter struct{ benchWriter }

func (panickingWriter) Events(context.Context, []event.Interaction) (ingest.Result, error) {
	panic("boom")
}

// A panic never escapes a handler: the client gets a JSON 500 with the
// request id, and the panic is counted (fuzzing must find none).
func TestPanicBecomesCountedJSON500(t *testing.T) {
	eng := features.NewEngine(features.DefaultConfig(), nil)
	m := observe.NewMetrics(func() float64 { return 0 }, func() float64 { return -1 })
	s := api.New(panickingWriter{}, api.EngineReader{Engine: eng}, recommend.New(eng, recommend.DefaultConfig()), m, nil, api.DefaultOptions())
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/v1/events", strings.NewReader(`[{"user":"u","item":"i","type":"view"}]`))
	req.Header.Set("Content-Type", "application/json")
	s.Handler().ServeHTTP(rec, req)
	require.Equal(t, 500, rec.Code)
	var body struct {
		Error struct{ Code, RequestID string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Equal(t, "internal", body.Error.Code)
	assert.NotEmpty(t, rec.Header().Get("X-Request-Id"))
	fams, err := m.Registry.Gather()
	require.NoError(t, err)
	var panics float64
	for _, f := range fams {
		if f.GetName() == "ripple_http_panics_total" {
			panics = f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	assert.Equal(t, 1.0, panics)
}
