package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeEventsServer mimics POST /v1/events: it deduplicates ids like the real
// server and can fail the first requests with 503, either before storing
// anything or after storing the batch (the answer was lost: the case where
// only ids prevent double counting).
type fakeEventsServer struct {
	mu           sync.Mutex
	stored       map[string]int // id -> times received; counted once, like the server's dedup
	requests     int
	fail         int  // answer 503 to this many requests
	storeFirst   bool // store the batch before failing it
	status4xx    bool // answer 400 to everything
	contentTypes map[string]bool
}

func (f *fakeEventsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.contentTypes[r.Header.Get("Content-Type")] = true
	if f.status4xx {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":{"code":"invalid_event","message":"every event was rejected; first: unknown type","request_id":"r1"}}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var e struct {
			ID   string `json:"id"`
			User string `json:"user"`
			TS   float64
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.ID == "" || e.User == "" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":{"code":"invalid_body","message":%q}}`, sc.Text())
			return
		}
		ids = append(ids, e.ID)
	}
	store := func() (acc, dup int) {
		for _, id := range ids {
			if f.stored[id] > 0 {
				dup++
			} else {
				acc++
			}
			f.stored[id]++ // received again: the same id, so no second effect
		}
		return acc, dup
	}
	if f.requests <= f.fail {
		if f.storeFirst {
			store()
		}
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"code":"unavailable","message":"retry"}}`)
		return
	}
	acc, dup := store()
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"accepted":%d,"duplicates":%d,"rejected":0,"errors":[]}`, acc, dup)
}

func writeMovieLens(t *testing.T, lines int) string {
	t.Helper()
	var b strings.Builder
	for i := range lines {
		fmt.Fprintf(&b, "%d\t%d\t%d\t%d\n", i%7+1, i%11+1, i%5+1, 881250949+i)
	}
	path := filepath.Join(t.TempDir(), "u.data")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path
}

func TestImportRetriesAndIsIdempotent(t *testing.T) {
	const events = 25
	for _, tc := range []struct {
		name         string
		fail         int
		storeFirst   bool
		wantAccepted int
		wantDup      int
	}{
		{name: "no failures", wantAccepted: events},
		{name: "503 before storing", fail: 2, wantAccepted: events},
		// The server made a batch durable but the 202 was lost: the retry
		// sends the same ids, so the events count once, as duplicates.
		{name: "503 after storing", fail: 1, storeFirst: true, wantAccepted: events - 10, wantDup: 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeEventsServer{stored: map[string]int{}, fail: tc.fail, storeFirst: tc.storeFirst, contentTypes: map[string]bool{}}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			path := writeMovieLens(t, events)
			o := importOptions{File: path, Addr: srv.URL, Batch: 10, Concurrency: 1, Timeout: 5 * time.Second,
				Retry: retryPolicy{Attempts: 5, Base: time.Millisecond, Max: 10 * time.Millisecond}}

			s, err := runImport(context.Background(), o, io.Discard)
			require.NoError(t, err)
			assert.Equal(t, "movielens", s.Format)
			assert.Equal(t, events, s.Read)
			assert.Equal(t, tc.wantAccepted, s.Accepted)
			assert.Equal(t, tc.wantDup, s.Duplicates)
			assert.Equal(t, tc.fail, s.Retries)
			assert.Len(t, fake.stored, events, "every event stored, each under one id")
			resent := 0
			for id, n := range fake.stored {
				assert.True(t, strings.HasPrefix(id, s.IDPrefix+":"), id)
				resent += n - 1
			}
			assert.Equal(t, tc.wantDup, resent, "a resent batch carries the same ids")
			assert.Equal(t, map[string]bool{"application/x-ndjson": true}, fake.contentTypes)

			// Re-running the import sends the same ids: nothing new.
			again, err := runImport(context.Background(), o, io.Discard)
			require.NoError(t, err)
			assert.Equal(t, s.IDPrefix, again.IDPrefix)
			assert.Equal(t, 0, again.Accepted)
			assert.Equal(t, events, again.Duplicates)
			assert.Len(t, fake.stored, events)
		})
	}
}

func TestImportFailsLoudlyOn4xx(t *testing.T) {
	fake := &fakeEventsServer{stored: map[string]int{}, status4xx: true, contentTypes: map[string]bool{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	o := importOptions{File: writeMovieLens(t, 30), Addr: srv.URL, Batch: 10, Concurrency: 2, Timeout: 5 * time.Second,
		Retry: retryPolicy{Attempts: 5, Base: time.Millisecond, Max: 10 * time.Millisecond}}
	s, err := runImport(context.Background(), o, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 400 invalid_event: every event was rejected")
	assert.Contains(t, err.Error(), "request_id r1")
	assert.Equal(t, 0, s.Retries, "4xx is not retried")
	assert.Equal(t, 0, s.Accepted)
}

func TestImportNeedsAFormat(t *testing.T) {
	_, err := runImport(context.Background(), importOptions{File: "events.bin", Batch: 1, Concurrency: 1}, io.Discard)
	require.ErrorContains(t, err, "--format")
}

func TestImportIDPrefixIsStable(t *testing.T) {
	a := importIDPrefix("data/u.data")
	assert.Equal(t, a, importIDPrefix("data/u.data"))
	assert.NotEqual(t, a, importIDPrefix("other/u.data"), "same name, different file")
	assert.True(t, strings.HasPrefix(a, "u.data@"))
}
