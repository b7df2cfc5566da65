package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	"github.com/ripple-rec/ripple/internal/audit"
	"github.com/ripple-rec/ripple/internal/auth"
	"github.com/ripple-rec/ripple/internal/event"
	"github.com/ripple-rec/ripple/internal/features"
	"github.com/ripple-rec/ripple/internal/feedback"
	"github.com/ripple-rec/ripple/internal/ingest"
	"github.com/ripple-rec/ripple/internal/model"
	"github.com/ripple-rec/ripple/internal/observe"
	"github.com/ripple-rec/ripple/internal/recommend"
	"github.com/ripple-rec/ripple/internal/train"
)

// Writer is the write path the API needs.
type Writer interface {
	Events(ctx context.Context, events []event.Interaction) (ingest.Result, error)
	Items(ctx context.Context, items []event.Item) error
	EraseUser(ctx context.Context, user string) error
	Ready() bool
}

// FeatureReader serves GET /v1/features and item lookups. A remote store
// reports the degradation level of what it served (healthy, stale,
// degraded: defaults served because the store did not answer).
type FeatureReader interface {
	Values(ctx context.Context, entity, id string) (vals features.Values, found bool, degradation string)
	Items(ctx context.Context, items []string, out []features.ItemInfo) (degradation string)
}

// EngineReader serves features straight from the local engine.
type EngineReader struct{ *features.Engine }

// Values reads one entity's features.
func (e EngineReader) Values(_ context.Context, entity, id string) (features.Values, bool, string) {
	v, ok := e.Engine.Values(entity, id)
	return v, ok, recommend.Healthy
}

// Items reads item info.
func (e EngineReader) Items(_ context.Context, ids []string, out []features.ItemInfo) string {
	e.Engine.Items(ids, out)
	return recommend.Healthy
}

// Options bound request sizes and time budgets.
type Options struct {
	MaxBodyBytes    int64         // events and items bodies
	MaxBatchEvents  int           // events per request
	IngestTimeout   time.Duration // durable append + apply
	ReadTimeout     time.Duration // recommendation budget
	MaxK            int
	MaxRankItems    int
	ExtraEventTypes []string
	// Status adds dependency detail (store, breakers) to /readyz. It never
	// fails readiness: a node whose store is down still serves fallbacks.
	Status func() map[string]any
	// Audit, when set, records erasures and consent changes.
	Audit *audit.Log
	// Tracing, when set, traces every request (W3C traceparent in and out).
	Tracing trace.TracerProvider
	// Keys authenticates callers (*auth.Store). Nil, or a store that has
	// never held a key, leaves the API open: protected mode, which serve
	// allows on loopback addresses only.
	Keys KeyStore
	// RateLimit sizes the per-key and per-tenant token buckets.
	RateLimit RateLimit
	// Limiter keeps the buckets (a RedisLimiter shares them across nodes);
	// nil keeps them in process. When it fails, the in-process buckets decide.
	Limiter RateLimiter
	// MaxInFlight bounds the requests being served; beyond it requests get
	// 503 overloaded (0: DefaultMaxInFlight).
	MaxInFlight int
	// Trainer serves POST /v1/admin/train (*train.Job); nil answers 501.
	Trainer Trainer
	// TrainWait bounds how long POST /v1/admin/train?wait=true waits (the
	// connection's write deadline is moved past the server's for it); the
	// run goes on after it. 0: DefaultTrainWait.
	TrainWait time.Duration
	// Models, when set, lists the kept model versions and makes one serve
	// (GET /v1/admin/models, POST /v1/admin/models/{name}/activate).
	Models ModelRegistry
	// Feedback, when set, remembers the lists served by the recommendation
	// and rank endpoints and attributes accepted engagements to them;
	// GET /v1/admin/feedback reports it.
	Feedback *feedback.Tracker
}

// ModelRegistry is the model versions a node keeps (*model.Registry).
type ModelRegistry interface {
	Manifests() ([]model.Manifest, error)
	CurrentManifest() *model.Manifest
	Activate(name string) (*model.Manifest, error)
}

// DefaultTrainWait is how long a training request waits by default.
const DefaultTrainWait = 30 * time.Minute

// Trainer rebuilds trained models from the log, one run at a time.
type Trainer interface {
	// Run trains now, or joins the run in progress, and waits for it.
	Run(ctx context.Context) (*train.Report, error)
	// Start begins a run unless one is going, reporting whether it did.
	Start() bool
}

// DefaultOptions are the serve defaults.
func DefaultOptions() Options {
	return Options{MaxBodyBytes: 16 << 20, MaxBatchEvents: 10_000, IngestTimeout: 10 * time.Second,
		ReadTimeout: 250 * time.Millisecond, MaxK: 500, MaxRankItems: 1000, RateLimit: DefaultRateLimit()}
}

// Server is the HTTP API.
type Server struct {
	w         Writer
	f         FeatureReader
	p         *recommend.Pipeline
	m         *observe.Metrics
	log       *slog.Logger
	opts      Options
	validator *event.Validator
	handler   http.Handler
	routes    []route

	keys        KeyStore
	local       *LocalLimiter
	gm          *guardMetrics
	inFlight    atomic.Int64
	maxInFlight int64
	exempt      map[string]bool // paths never shed: public routes
}

// route is one entry of the API's route table: every route names the scope
// a key needs, or public.
type route struct {
	method, pattern string
	scope           auth.Scope
	handler         http.HandlerFunc
}

// New builds the handler tree.
func New(w Writer, f FeatureReader, p *recommend.Pipeline, m *observe.Metrics, log *slog.Logger, opts Options) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{w: w, f: f, p: p, m: m, log: log, opts: opts, validator: event.NewValidator(opts.ExtraEventTypes...),
		keys: opts.Keys, local: NewLocalLimiter(opts.RateLimit.MaxBuckets), exempt: map[string]bool{}}
	s.maxInFlight = int64(opts.MaxInFlight)
	if s.maxInFlight <= 0 {
		s.maxInFlight = int64(DefaultMaxInFlight())
	}
	var reg prometheus.Registerer
	if m != nil {
		reg = m.Registry
	}
	s.gm = newGuardMetrics(reg, func() float64 { return float64(s.inFlight.Load()) }, func() float64 { return float64(s.maxInFlight) })
	s.routes = []route{
		{http.MethodPost, "/v1/events", auth.ScopeIngest, s.postEvents},
		{http.MethodPost, "/v1/items", auth.ScopeIngest, s.postItems},
		{http.MethodPut, "/v1/items/{item}", auth.ScopeIngest, s.putItem},
		{http.MethodGet, "/v1/items/{item}/similar", auth.ScopeRead, s.getSimilar},
		{http.MethodGet, "/v1/recommendations/{user}", auth.ScopeRead, s.getRecommendations},
		{http.MethodPost, "/v1/rank", auth.ScopeRead, s.postRank},
		{http.MethodGet, "/v1/features/{entity}/{id}", auth.ScopeRead, s.getFeatures},
		{http.MethodPost, "/v1/admin/train", auth.ScopeAdmin, s.postTrain},
		{http.MethodGet, "/v1/admin/feedback", auth.ScopeAdmin, s.getFeedback},
		{http.MethodGet, "/v1/admin/models", auth.ScopeAdmin, s.getModels},
		{http.MethodPost, "/v1/admin/models/{name}/activate", auth.ScopeAdmin, s.activateModel},
		{http.MethodDelete, "/v1/users/{user}", auth.ScopeAdmin, s.deleteUser},
		{http.MethodPut, "/v1/users/{user}/consent", auth.ScopeIngest, s.putConsent},
		{http.MethodGet, "/v1/users/{user}/consent", auth.ScopeRead, s.getConsent},
		{http.MethodGet, "/healthz", public, s.healthz},
		{http.MethodGet, "/readyz", public, s.readyz},
	}
	if m != nil {
		s.routes = append(s.routes, route{http.MethodGet, "/metrics", public,
			promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}).ServeHTTP})
	}
	mux := s.mount(s.routes)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, "not_found", "no route for "+r.Method+" "+r.URL.Path)
	})
	// The request id wraps everything, so even a recovered panic's error
	// body carries it. Then: shed (an atomic add) → routing → authenticate
	// → rate limit → handler, so the cheapest refusal comes first and none
	// reads the body.
	// Tracing sits inside requestID (spans carry the id) and outside
	// recover (a panic's 500 marks the span failed).
	s.handler = s.requestID(observe.HTTPMiddleware(opts.Tracing)(s.recover(s.instrument(s.shed(mux)))))
	return s
}

// mount builds the mux of a route table. Each route gets authenticate (its
// scope) → rate limit → handler; public routes are exact paths, exempt from
// shedding. A route that names no scope is a programming error.
func (s *Server) mount(routes []route) *http.ServeMux {
	byPattern := map[string]map[string]http.HandlerFunc{}
	var patterns []string
	for _, rt := range routes {
		h := rt.handler
		switch {
		case rt.scope == public:
			s.exempt[rt.pattern] = true
		case rt.scope.Valid():
			h = s.authenticate(rt.scope)(s.rateLimit(h)).ServeHTTP
		default:
			panic("api: route " + rt.method + " " + rt.pattern + " names no scope")
		}
		if byPattern[rt.pattern] == nil {
			byPattern[rt.pattern] = map[string]http.HandlerFunc{}
			patterns = append(patterns, rt.pattern)
		}
		byPattern[rt.pattern][rt.method] = h
	}
	mux := http.NewServeMux()
	for _, p := range patterns {
		mux.Handle(p, allow(byPattern[p]))
	}
	return mux
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// NewHTTPServer wraps h with the timeouts every Ripple listener uses.
func NewHTTPServer(addr string, h http.Handler) *http.Server {
	return &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 60 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
}

// allow dispatches by method and answers 405 with an Allow header otherwise.
func allow(methods map[string]http.HandlerFunc) http.Handler {
	allowed := ""
	for m := range methods {
		if allowed != "" {
			allowed += ", "
		}
		allowed += m
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := methods[r.Method]
		if !ok && r.Method == http.MethodHead {
			h, ok = methods[http.MethodGet]
		}
		if !ok {
			w.Header().Set("Allow", allowed)
			writeError(w, r, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here (allowed: "+allowed+")")
			return
		}
		h(w, r)
	})
}

// RequestID returns the request id stored in ctx.
func RequestID(ctx context.Context) string { return observe.RequestID(ctx) }

func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validRequestID(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(observe.WithRequestID(r.Context(), id)))
	})
}

// validRequestID accepts short ids of safe characters, so a client's id can
// be echoed into logs and headers without injection.
func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// statusWriter remembers the status code for metrics and logs.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		if s.m != nil {
			s.m.InFlight.Inc()
			defer s.m.InFlight.Dec()
		}
		next.ServeHTTP(sw, r)
		route := r.Pattern // set by ServeMux on this request
		if route == "" || route == "/" {
			route = "unmatched"
		}
		if sw.code == 0 {
			sw.code = http.StatusOK
		}
		if s.m != nil {
			s.m.Requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
			s.m.RequestDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
		if sw.code >= 500 && sw.code != http.StatusNotImplemented {
			s.log.ErrorContext(r.Context(), "request failed", "route", route, "method", r.Method, "code", sw.code,
				"seconds", time.Since(start).Seconds())
		}
	})
}

func (s *Server) recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				// The route pattern, not the path: paths carry user ids.
				s.log.ErrorContext(r.Context(), "panic in handler", "panic", fmt.Sprint(v), "route", r.Pattern,
					"stack", string(debug.Stack()))
				if s.m != nil {
					s.m.Panics.Inc()
				}
				writeError(w, r, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// errorBody is the one error shape of the API.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	writeJSON(w, status, errorBody{errorDetail{Code: code, Message: msg, RequestID: RequestID(r.Context())}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"encoding response failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// readBody reads a size-limited body, answering 413 or 400 itself.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	// A declared length over the limit is refused before a byte is read.
	if r.ContentLength > s.opts.MaxBodyBytes {
		writeError(w, r, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body exceeds %d bytes", s.opts.MaxBodyBytes))
		return nil, false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, r, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body exceeds %d bytes", s.opts.MaxBodyBytes))
		return nil, false
	case err != nil:
		writeError(w, r, http.StatusBadRequest, "bad_body", "reading body: "+err.Error())
		return nil, false
	}
	return b, true
}

// mediaType is the Content-Type without parameters, lower-cased.
func mediaType(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	for i := 0; i < len(ct); i++ {
		if ct[i] == ';' {
			ct = ct[:i]
			break
		}
	}
	b := []byte(ct)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
		if c == ' ' {
			b = b[:i]
			break
		}
	}
	return string(b)
}

// queryInt parses an optional integer parameter within [lo, hi].
func queryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s must be an integer in [%d, %d], got %q", name, lo, hi, v)
	}
	return n, nil
}

// queryBool parses an optional boolean parameter.
func queryBool(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s must be true or false, got %q", name, v)
	}
	return b, nil
}
