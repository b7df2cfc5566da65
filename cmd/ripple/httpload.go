package main

// The HTTP client side shared by import, loadgen and bench: NDJSON encoding
// of events, POST /v1/events with safe retries, a constant-rate (open-loop)
// or as-fast-as-possible (closed-loop) load loop, a Zipf picker and exact
// latency percentiles.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/ripple-rec/ripple/internal/event"
)

// newLoadClient returns a client that keeps up to conns connections to one
// host alive; the default of 2 idle connections would make every load test a
// test of TCP handshakes.
func newLoadClient(conns int, timeout time.Duration) *http.Client {
	conns = max(conns, 2)
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: t, Timeout: timeout}
}

// baseURL accepts host:port or a full URL.
func baseURL(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return strings.TrimRight(addr, "/")
	}
	return "http://" + addr
}

// wireEvent is the API's event shape (ARCHITECTURE.md, POST /v1/events).
type wireEvent struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	User    string          `json:"user"`
	Item    string          `json:"item"`
	TS      json.Number     `json:"ts,omitempty"`
	Value   *float64        `json:"value,omitempty"`
	Session string          `json:"session,omitempty"`
	Context json.RawMessage `json:"context,omitempty"`
}

// appendNDJSON appends e as one NDJSON line. Timestamps go out as unix
// seconds with a millisecond fraction, which the server parses back to the
// same millisecond.
func appendNDJSON(dst []byte, e *event.Interaction) ([]byte, error) {
	w := wireEvent{ID: e.ID, Type: e.Type, User: e.User, Item: e.Item, Session: e.Session, Context: e.Context}
	if e.TS != 0 {
		w.TS = json.Number(strconv.FormatFloat(float64(e.TS)/1000, 'f', -1, 64))
	}
	if e.Value != 0 {
		v := e.Value
		w.Value = &v
	}
	b, err := json.Marshal(&w)
	if err != nil {
		return dst, fmt.Errorf("encoding event %q: %w", e.ID, err)
	}
	return append(append(dst, b...), '\n'), nil
}

// eventsReply is the 202 body of POST /v1/events.
type eventsReply struct {
	Accepted   int                `json:"accepted"`
	Duplicates int                `json:"duplicates"`
	Rejected   int                `json:"rejected"`
	Errors     []event.IndexError `json:"errors"`
}

// apiError is a non-2xx answer, carrying the server's JSON error.
type apiError struct {
	Status    int
	Code      string
	Message   string
	RequestID string
	// RetryAfter is the server's Retry-After, if any.
	RetryAfter time.Duration
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " (request_id " + e.RequestID + ")"
	}
	return msg
}

// retryable: overload and restarts pass; anything else a client must fix.
func (e *apiError) retryable() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func readAPIError(resp *http.Response, body []byte) *apiError {
	e := &apiError{Status: resp.StatusCode}
	var eb struct {
		Error struct {
			Code      string `json:"code"`
			Message   string `json:"message"`
			RequestID string `json:"request_id"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && (eb.Error.Code != "" || eb.Error.Message != "") {
		e.Code, e.Message, e.RequestID = eb.Error.Code, eb.Error.Message, eb.Error.RequestID
	} else {
		e.Message = strings.TrimSpace(string(body[:min(len(body), 300)]))
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

// retryPolicy bounds retries of one request. Attempts <= 1: no retry.
type retryPolicy struct {
	Attempts int
	Base     time.Duration // first backoff; doubles each attempt, full jitter
	Max      time.Duration // cap of one backoff, Retry-After included
}

func (p retryPolicy) backoff(attempt int, hint time.Duration) time.Duration {
	d := p.Base << min(attempt, 20)
	if d <= 0 || d > p.Max {
		d = p.Max
	}
	d = time.Duration(rand.Int64N(int64(d)) + 1)
	return min(max(d, hint), p.Max)
}

// postEvents sends one NDJSON body to POST /v1/events. Connection errors and
// 429/502/503/504 are retried with backoff: the body is resent unchanged, so
// events the server already made durable come back as duplicates rather than
// counting twice (for events with ids). 4xx and other 5xx are returned at
// once as *apiError. retries reports how many resends it took.
func postEvents(ctx context.Context, c *http.Client, url string, body []byte, p retryPolicy) (r eventsReply, retries int, err error) {
	for attempt := 0; ; attempt++ {
		r, err = postEventsOnce(ctx, c, url, body)
		if err == nil || ctx.Err() != nil || attempt+1 >= p.Attempts {
			return r, attempt, err
		}
		var hint time.Duration
		if ae, ok := errors.AsType[*apiError](err); ok {
			if !ae.retryable() {
				return r, attempt, err
			}
			hint = ae.RetryAfter
		}
		t := time.NewTimer(p.backoff(attempt, hint))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r, attempt, err
		}
	}
}

func postEventsOnce(ctx context.Context, c *http.Client, url string, body []byte) (eventsReply, error) {
	var r eventsReply
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return r, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := c.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return r, err
	}
	if resp.StatusCode/100 != 2 {
		return r, readAPIError(resp, b)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decoding %s answer: %w", url, err)
	}
	return r, nil
}

// getStatus fetches url, discards the body and returns the status code.
func getStatus(ctx context.Context, c *http.Client, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// getJSON fetches url into v; a non-2xx answer is an *apiError.
func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return readAPIError(resp, b)
	}
	return json.Unmarshal(b, v)
}

// zipfPicker draws ranks 0..n-1 with P(r) ∝ 1/(r+1)^s. Unlike math/rand's
// Zipf it accepts any s > 0 and is safe for concurrent use.
type zipfPicker struct{ cdf []float64 }

func newZipfPicker(n int, s float64) (*zipfPicker, error) {
	if n <= 0 {
		return nil, fmt.Errorf("zipf: need at least one rank, got %d", n)
	}
	if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("zipf: exponent must be >= 0, got %g", s)
	}
	cdf := make([]float64, n)
	sum := 0.0
	for i := range cdf {
		sum += math.Pow(float64(i+1), -s)
		cdf[i] = sum
	}
	for i := range cdf {
		cdf[i] /= sum
	}
	return &zipfPicker{cdf: cdf}, nil
}

func (z *zipfPicker) next() int {
	return min(sort.SearchFloat64s(z.cdf, rand.Float64()), len(z.cdf)-1)
}

// latencySummary holds exact percentiles of sorted samples.
type latencySummary struct {
	N                              int
	P50, P90, P99, P999, Max, Mean time.Duration
}

func summarize(samples []time.Duration) latencySummary {
	if len(samples) == 0 {
		return latencySummary{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	return latencySummary{N: len(samples), P50: percentile(samples, 50), P90: percentile(samples, 90),
		P99: percentile(samples, 99), P999: percentile(samples, 99.9), Max: samples[len(samples)-1],
		Mean: sum / time.Duration(len(samples))}
}

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func (s latencySummary) String() string {
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", ms(s.P50), ms(s.P90), ms(s.P99), ms(s.P999), ms(s.Max))
}

// ms formats a duration in milliseconds with enough digits for sub-ms values.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64) + " ms"
}

// loadSpec shapes a load run. Rate > 0 is open loop: request i is due at
// start + i/Rate whether or not earlier ones finished, and its latency is
// measured from when it was due, so a stalled server cannot hide its stall
// by slowing the generator (no coordinated omission). Rate 0 is closed loop:
// Workers clients each send their next request when the last one returns.
type loadSpec struct {
	Rate     float64
	Duration time.Duration
	// Workers is the number of clients in closed loop, and the cap on
	// requests in flight in open loop (requests beyond it wait, late).
	Workers int
	// Requests > 0 stops a closed loop after that many requests, whichever
	// comes first with Duration.
	Requests int
}

// shot sends request i and returns the HTTP status (0: no answer) and how
// many units of work it carried (events for ingest, 1 for a read).
type shot func(ctx context.Context, i int) (status, units int, err error)

// loadResult is what a load run measured.
type loadResult struct {
	Sent    int
	OK      int // 2xx answers
	Units   int // units carried by 2xx answers
	Elapsed time.Duration
	// Errors counts failures by HTTP status, or "conn" for no answer.
	Errors map[string]int
	// Latency is over every answered request, from when it was due.
	Latency latencySummary
	// Service is over the same requests from when each was actually sent:
	// Latency minus the generator's own lateness. Equal in closed loop.
	Service latencySummary
	// FirstError is one failure's message, for the report.
	FirstError string
}

// Rate is answered 2xx requests per second.
func (r loadResult) Rate() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

// UnitRate is units per second carried by 2xx answers.
func (r loadResult) UnitRate() float64 { return float64(r.Units) / r.Elapsed.Seconds() }

// ErrorCount is the number of failed requests.
func (r loadResult) ErrorCount() int {
	n := 0
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// ErrorList is "503×12, conn×1", or "none".
func (r loadResult) ErrorList() string {
	if len(r.Errors) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, r.Errors[k])
	}
	return strings.Join(parts, ", ")
}

// runLoad drives fire per spec until Duration passes or ctx ends, then
// waits for requests in flight.
func runLoad(ctx context.Context, spec loadSpec, fire shot) loadResult {
	spec.Workers = max(spec.Workers, 1)
	var (
		mu      sync.Mutex
		res     = loadResult{Errors: map[string]int{}}
		samples = make([]time.Duration, 0, 1024)
		service = make([]time.Duration, 0, 1024)
	)
	record := func(due time.Time, i int) {
		sent := time.Now()
		status, units, err := fire(ctx, i)
		done := time.Now()
		mu.Lock()
		defer mu.Unlock()
		res.Sent++
		if status != 0 {
			samples = append(samples, done.Sub(due))
			service = append(service, done.Sub(sent))
		}
		if status/100 == 2 && err == nil {
			res.OK++
			res.Units += units
			return
		}
		key := "conn"
		if status != 0 {
			key = strconv.Itoa(status)
		}
		res.Errors[key]++
		if res.FirstError == "" && err != nil {
			res.FirstError = err.Error()
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	if spec.Rate > 0 {
		sem := make(chan struct{}, spec.Workers)
		timer := time.NewTimer(0)
		<-timer.C
	dispatch:
		for i := 0; ; i++ {
			due := start.Add(time.Duration(float64(i) * float64(time.Second) / spec.Rate))
			if due.Sub(start) >= spec.Duration {
				break
			}
			if d := time.Until(due); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					break dispatch
				}
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				break dispatch
			}
			wg.Go(func() {
				defer func() { <-sem }()
				record(due, i)
			})
		}
	} else {
		deadline := start.Add(spec.Duration)
		var next struct {
			sync.Mutex
			i int
		}
		for range spec.Workers {
			wg.Go(func() {
				for ctx.Err() == nil && time.Now().Before(deadline) {
					next.Lock()
					i := next.i
					next.i++
					next.Unlock()
					if spec.Requests > 0 && i >= spec.Requests {
						return
					}
					record(time.Now(), i)
				}
			})
		}
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.Latency = summarize(samples)
	res.Service = summarize(service)
	return res
}

// statusOf maps a shot's error to the status runLoad records.
func statusOf(err error) int {
	if ae, ok := errors.AsType[*apiError](err); ok {
		return ae.Status
	}
	return 0
}

// stderrIsTerminal decides whether progress bars are drawn by default.
func stderrIsTerminal() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
