package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/ripple-rec/ripple/internal/auth"
)

// KeyStore authenticates API keys; *auth.Store implements it.
type KeyStore interface {
	// Authenticate returns the key of a secret, or auth.ErrUnknownKey, or
	// auth.ErrRevokedKey.
	Authenticate(secret string) (*auth.Key, error)
	// Enforcing reports whether keys are required. Until the first key is
	// configured the API is open (protected mode: serve binds loopback only).
	Enforcing() bool
}

// public marks a route that needs no key. It is not a valid auth.Scope, so
// a route that names neither a scope nor public is refused by New.
const public auth.Scope = "public"

type keyCtxKey struct{}

// KeyFrom returns the API key that authenticated the request, or nil in
// protected mode and on public routes.
func KeyFrom(ctx context.Context) *auth.Key {
	k, _ := ctx.Value(keyCtxKey{}).(*auth.Key)
	return k
}

// Reasons an authentication failed, the label of ripple_auth_failures_total.
const (
	authMissing   = "missing"   // no key presented
	authMalformed = "malformed" // an Authorization header that is not Bearer
	authUnknown   = "unknown"
	authRevoked   = "revoked"
	authForbidden = "forbidden" // a valid key without the route's scope
)

// authenticate admits requests whose key carries scope: 401 without a
// usable key, 403 with a key that lacks the scope.
func (s *Server) authenticate(scope auth.Scope) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s.keys == nil || !s.keys.Enforcing() {
				next.ServeHTTP(w, r)
				return
			}
			secret, reason := presentedKey(r)
			if reason != "" {
				msg := "an API key is required: send Authorization: Bearer <key> or X-API-Key: <key>"
				if reason == authMalformed {
					msg = "the Authorization header must be Bearer <key>"
				}
				s.unauthorized(w, r, reason, msg)
				return
			}
			k, err := s.keys.Authenticate(secret)
			switch {
			case errors.Is(err, auth.ErrRevokedKey):
				s.unauthorized(w, r, authRevoked, "this API key has been revoked")
				return
			case err != nil:
				s.unauthorized(w, r, authUnknown, "unknown API key")
				return
			case !k.HasScope(scope):
				s.gm.authFailures[authForbidden].Inc()
				w.Header().Set("WWW-Authenticate", `Bearer realm="ripple", error="insufficient_scope", scope="`+string(scope)+`"`)
				writeError(w, r, http.StatusForbidden, "forbidden", "API key "+k.ID+" lacks the "+string(scope)+" scope")
				return
			}
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyCtxKey{}, k)))
		})
	}
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, reason, msg string) {
	s.gm.authFailures[reason].Inc()
	w.Header().Set("WWW-Authenticate", `Bearer realm="ripple"`)
	writeError(w, r, http.StatusUnauthorized, "unauthorized", msg)
}

// presentedKey reads the secret from Authorization: Bearer, else X-API-Key.
func presentedKey(r *http.Request) (secret, failure string) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return "", authMalformed
		}
		return tok, ""
	}
	if k := strings.TrimSpace(r.Header.Get("X-API-Key")); k != "" {
		return k, ""
	}
	return "", authMissing
}
