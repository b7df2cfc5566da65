package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Scope is a permission a key carries.
type Scope string

// The scopes. A route needs exactly one of them.
const (
	ScopeIngest Scope = "ingest" // write events and items
	ScopeRead   Scope = "read"   // recommendations, similar, rank, features
	ScopeAdmin  Scope = "admin"  // training, erasure
)

// Scopes lists every scope, in a stable order.
var Scopes = []Scope{ScopeIngest, ScopeRead, ScopeAdmin}

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool { return slices.Contains(Scopes, s) }

// ParseScopes parses a comma-separated list such as "read,ingest".
func ParseScopes(list string) ([]Scope, error) {
	var out []Scope
	for _, f := range strings.Split(list, ",") {
		s := Scope(strings.ToLower(strings.TrimSpace(f)))
		if s == "" {
			continue
		}
		if !s.Valid() {
			return nil, fmt.Errorf("unknown scope %q (want %s)", s, scopeList())
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scopes given (want some of %s)", scopeList())
	}
	return out, nil
}

func scopeList() string {
	s := make([]string, len(Scopes))
	for i, x := range Scopes {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}

// Key is one API key as stored: never the secret, only its hash.
type Key struct {
	ID     string  `json:"id" yaml:"id"`
	Name   string  `json:"name" yaml:"name"`
	Scopes []Scope `json:"scopes" yaml:"scopes"`
	// Hash is "sha256:" and the hex SHA-256 of the secret. A plain hash
	// is enough: secrets are 256 random bits, so there is nothing to
	// guess that a slow hash would protect.
	Hash   string `json:"hash" yaml:"hash"`
	Tenant string `json:"tenant,omitempty" yaml:"tenant"`
	// RPS and Burst override the default per-key rate limit, each on its
	// own: 0 keeps the default, a negative RPS lifts the limit for this key.
	RPS       float64   `json:"rps,omitempty" yaml:"rps"`
	Burst     int       `json:"burst,omitempty" yaml:"burst"`
	Created   time.Time `json:"created" yaml:"created"`
	Revoked   bool      `json:"revoked,omitempty" yaml:"revoked"`
	RevokedAt time.Time `json:"revoked_at,omitzero" yaml:"revoked_at"`
}

// HasScope reports whether k carries s.
func (k *Key) HasScope(s Scope) bool {
	for _, x := range k.Scopes {
		if x == s {
			return true
		}
	}
	return false
}

// Validate checks a key as loaded from config or the key file.
func (k *Key) Validate() error {
	if !validName(k.ID, 64) {
		return fmt.Errorf("key id %q: want 1-64 characters of A-Z a-z 0-9 . _ -", k.ID)
	}
	if len(k.Scopes) == 0 {
		return fmt.Errorf("key %s: no scopes", k.ID)
	}
	for _, s := range k.Scopes {
		if !s.Valid() {
			return fmt.Errorf("key %s: unknown scope %q (want %s)", k.ID, s, scopeList())
		}
	}
	if _, err := parseHash(k.Hash); err != nil {
		return fmt.Errorf("key %s: %w", k.ID, err)
	}
	if k.Tenant != "" && !validName(k.Tenant, 64) {
		return fmt.Errorf("key %s: tenant %q: want 1-64 characters of A-Z a-z 0-9 . _ -", k.ID, k.Tenant)
	}
	if len(k.Name) > 200 {
		return fmt.Errorf("key %s: name longer than 200 bytes", k.ID)
	}
	if k.Burst < 0 {
		return fmt.Errorf("key %s: negative burst", k.ID)
	}
	return nil
}

// validName accepts ids and tenants that are safe in logs, metrics labels
// and Redis keys.
func validName(s string, maxLen int) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// SecretPrefix starts every generated secret, so a leaked key is easy to
// recognise in a scanner.
const SecretPrefix = "rk_"

// maxSecretLen bounds what is hashed per request.
const maxSecretLen = 256

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewKey makes a key with a fresh random id and secret. The secret is
// returned once and never stored.
func NewKey(name string, scopes []Scope, tenant string, now time.Time) (k Key, secret string, err error) {
	var id [8]byte
	var sec [32]byte
	if _, err := rand.Read(id[:]); err != nil {
		return Key{}, "", err
	}
	if _, err := rand.Read(sec[:]); err != nil {
		return Key{}, "", err
	}
	secret = SecretPrefix + strings.ToLower(b32.EncodeToString(sec[:]))
	k = Key{ID: "k_" + hex.EncodeToString(id[:]), Name: name, Scopes: scopes, Hash: HashSecret(secret), Tenant: tenant,
		Created: now.UTC().Truncate(time.Second)}
	return k, secret, k.Validate()
}

// HashSecret is the stored form of a secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func parseHash(h string) ([sha256.Size]byte, error) {
	var out [sha256.Size]byte
	hexPart, ok := strings.CutPrefix(h, "sha256:")
	if !ok || len(hexPart) != 2*sha256.Size {
		return out, errors.New(`hash: want "sha256:" and 64 hex digits (ripple keys create --print-config makes one)`)
	}
	if _, err := hex.Decode(out[:], []byte(hexPart)); err != nil {
		return out, fmt.Errorf("hash: %w", err)
	}
	return out, nil
}

// equalDigest compares in constant time.
func equalDigest(a, b *[sha256.Size]byte) bool { return subtle.ConstantTimeCompare(a[:], b[:]) == 1 }
