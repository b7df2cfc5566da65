package observe

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel/trace"
)

// What Ripple logs
//
// Logs are slog JSON. A record carries messages, counts, durations,
// offsets, item ids, errors, and from the context the trace_id, span_id
// and request_id of the request it belongs to. Request bodies, event
// payloads, event contexts and feature values are never logged. User ids
// appear only through UserID, which the handler keeps, hashes or drops as
// log_user_ids says.

// User id policies (log_user_ids).
const (
	UserIDsKeep = "keep" // the raw id, key "user"
	UserIDsHash = "hash" // a keyed HMAC-SHA256 of the id, key "user_hash" (default)
	UserIDsDrop = "drop" // nothing
)

// LogConfig is how the context handler treats what records carry.
type LogConfig struct {
	UserIDs string // keep | hash | drop; "": hash
	// UserIDKey keys the HMAC of hashed user ids. Empty: a random key per
	// process, so hashes correlate within one process's lifetime only;
	// set it (the same on every node) to correlate across nodes and restarts.
	UserIDKey string
}

// NewJSONLogger is a JSON slog logger at level whose records carry the
// context's trace and request ids and whose user ids follow cfg. Log with
// the *Context methods (InfoContext, ErrorContext, ...) to pass the
// request's context.
func NewJSONLogger(w io.Writer, level slog.Level, cfg LogConfig) (*slog.Logger, error) {
	h, err := NewContextHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}), cfg)
	if err != nil {
		return nil, err
	}
	return slog.New(h), nil
}

// NewContextHandler wraps next: each record gets trace_id and span_id from
// the context's span and request_id from WithRequestID (unless the record
// already has an attribute of that name), and attributes made by UserID
// are kept, hashed or dropped as cfg says.
func NewContextHandler(next slog.Handler, cfg LogConfig) (slog.Handler, error) {
	p := userPolicy{mode: cfg.UserIDs}
	switch p.mode {
	case "":
		p.mode = UserIDsHash
	case UserIDsKeep, UserIDsHash, UserIDsDrop:
	default:
		return nil, fmt.Errorf("log_user_ids: want keep, hash or drop, got %q", cfg.UserIDs)
	}
	p.hasher = processHasher
	if cfg.UserIDKey != "" {
		p.hasher = newUserHasher([]byte(cfg.UserIDKey))
	}
	return &contextHandler{next: next, users: p}, nil
}

type contextHandler struct {
	next  slog.Handler
	users userPolicy
}

func (h *contextHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *contextHandler) Handle(ctx context.Context, r slog.Record) error {
	var hasUser, hasTrace, hasRequest bool
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "trace_id":
			hasTrace = true
		case "request_id":
			hasRequest = true
		}
		hasUser = hasUser || carriesUserID(a.Value)
		return true
	})
	if hasUser {
		r = h.users.rewrite(r)
	}
	sc := trace.SpanContextFromContext(ctx)
	addTrace := sc.IsValid() && !hasTrace
	id := RequestID(ctx)
	addRequest := id != "" && !hasRequest
	if addTrace || addRequest {
		r = r.Clone() // the caller's record may share its attribute storage
		if addTrace {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
		if addRequest {
			r.AddAttrs(slog.String("request_id", id))
		}
	}
	return h.next.Handle(ctx, r)
}

func (h *contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	out := make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		if a, ok := h.users.apply(a); ok {
			out = append(out, a)
		}
	}
	return &contextHandler{next: h.next.WithAttrs(out), users: h.users}
}

func (h *contextHandler) WithGroup(name string) slog.Handler {
	return &contextHandler{next: h.next.WithGroup(name), users: h.users}
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request id id, which logs
// through the context handler and the HTTP server span then carry.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the request id ctx carries, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// userID marks a user id in a log record for the context handler. Logged
// through any other handler it resolves to its hash under the process key,
// never to the raw id.
type userID string

func (u userID) LogValue() slog.Value { return slog.StringValue(processHasher.hash(string(u))) }

// UserID is the log attribute of a user id: the context handler keeps it
// (key "user"), hashes it (key "user_hash") or drops it, as log_user_ids
// says. Log user ids only through it.
func UserID(id string) slog.Attr { return slog.Any("user", userID(id)) }

func carriesUserID(v slog.Value) bool {
	switch v.Kind() {
	case slog.KindLogValuer:
		_, ok := v.Any().(userID)
		return ok
	case slog.KindGroup:
		for _, a := range v.Group() {
			if carriesUserID(a.Value) {
				return true
			}
		}
	}
	return false
}

type userPolicy struct {
	mode   string
	hasher *userHasher
}

// rewrite is r with its user id attributes replaced as the policy says.
func (p userPolicy) rewrite(r slog.Record) slog.Record {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a, ok := p.apply(a); ok {
			out.AddAttrs(a)
		}
		return true
	})
	return out
}

// apply returns a as the policy logs it, and false when it is dropped.
func (p userPolicy) apply(a slog.Attr) (slog.Attr, bool) {
	switch a.Value.Kind() {
	case slog.KindLogValuer:
		u, ok := a.Value.Any().(userID)
		if !ok {
			return a, true
		}
		switch p.mode {
		case UserIDsKeep:
			return slog.String(a.Key, string(u)), true
		case UserIDsDrop:
			return slog.Attr{}, false
		}
		return slog.String(a.Key+"_hash", p.hasher.hash(string(u))), true
	case slog.KindGroup:
		if !carriesUserID(a.Value) {
			return a, true
		}
		var kept []any
		for _, g := range a.Value.Group() {
			if g, ok := p.apply(g); ok {
				kept = append(kept, g)
			}
		}
		return slog.Group(a.Key, kept...), true
	}
	return a, true
}

// userHasher computes keyed hashes of user ids: HMAC-SHA256, the first 8
// bytes in hex. Without the key a hash cannot be tested against a guessed
// id; with it, an operator can find one user's lines.
type userHasher struct{ pool sync.Pool }

func newUserHasher(key []byte) *userHasher {
	k := append([]byte(nil), key...)
	h := &userHasher{}
	h.pool.New = func() any { return hmac.New(sha256.New, k) }
	return h
}

func (h *userHasher) hash(id string) string {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	_, _ = io.WriteString(m, id)
	var sum [sha256.Size]byte
	out := hex.EncodeToString(m.Sum(sum[:0])[:8])
	h.pool.Put(m)
	return out
}

// processHasher hashes under a key drawn at start and never written again.
var processHasher = func() *userHasher {
	var key [32]byte
	_, _ = rand.Read(key[:])
	return newUserHasher(key[:])
}()
