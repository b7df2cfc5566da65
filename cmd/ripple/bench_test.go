package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBenchQuickRuns is the smoke test of `ripple bench --quick`, smaller
// still: every phase runs end to end and read-your-writes holds.
func TestBenchQuickRuns(t *testing.T) {
	o := defaultBenchOptions(true)
	o.IngestEvents, o.IngestBatch, o.IngestClients = 3000, 500, 2
	o.LoadDuration, o.Rate, o.ClosedWorkers, o.Trials = 200*time.Millisecond, 200, 4, 30
	o.Dir = t.TempDir()
	rep, err := runBench(context.Background(), o)
	require.NoError(t, err)
	assert.Equal(t, 3000, rep.Ingest.Units)
	assert.Equal(t, 3000, rep.IngestBare.Units)
	assert.Equal(t, 3000, rep.ReplayRecords)
	assert.Positive(t, rep.Closed.OK)
	assert.Positive(t, rep.ClosedBare.OK)
	assert.Positive(t, rep.Open.OK)
	assert.Equal(t, 30, rep.Visible.N)
	assert.Zero(t, rep.Invisible, rep.VisibleFirstFailure)
	var out bytes.Buffer
	rep.print(&out)
	for _, row := range []string{"| a |", "| b |", "| c |", "| d |", "share all"} {
		assert.Contains(t, out.String(), row)
	}
}

func TestLoadgenModes(t *testing.T) {
	var gets, posts, events atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/recommendations/u"):
			gets.Add(1)
			fmt.Fprint(w, `{"items":[]}`)
		case r.Method == http.MethodPost && r.URL.Path == "/v1/events":
			posts.Add(1)
			var b bytes.Buffer
			_, _ = b.ReadFrom(r.Body)
			n := bytes.Count(b.Bytes(), []byte("\n"))
			events.Add(int64(n))
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprintf(w, `{"accepted":%d,"duplicates":0,"rejected":0,"errors":[]}`, n)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	o := loadgenOptions{Addr: srv.URL, Mode: "recommend", Rate: 400, Duration: 250 * time.Millisecond, Workers: 16,
		Users: 100, Items: 50, Zipf: 1.1, K: 5, Batch: 20}
	var out bytes.Buffer
	require.NoError(t, runLoadgen(context.Background(), o, &out))
	assert.InDelta(t, 100, gets.Load(), 2, "open loop sends rate × duration")
	assert.Contains(t, out.String(), "errors      none")

	o.Mode, o.Rate = "ingest", 0 // closed loop
	out.Reset()
	require.NoError(t, runLoadgen(context.Background(), o, &out))
	assert.Positive(t, posts.Load())
	assert.Equal(t, posts.Load()*20, events.Load())
	assert.Contains(t, out.String(), "events/s")
}

func TestZipfAndPercentiles(t *testing.T) {
	z, err := newZipfPicker(100, 1.1)
	require.NoError(t, err)
	counts := make([]int, 100)
	for range 20000 {
		counts[z.next()]++
	}
	assert.Greater(t, counts[0], 5*counts[20], "rank 0 dominates")
	s := summarize([]time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6})
	assert.Equal(t, time.Duration(5), s.P50)
	assert.Equal(t, time.Duration(9), s.P90)
	assert.Equal(t, time.Duration(10), s.P99)
	assert.Equal(t, time.Duration(10), s.Max)
}
