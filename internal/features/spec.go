package features

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// Kinds of aggregators.
const (
	KindWindowCount  = "window_count"
	KindWindowSum    = "window_sum"
	KindRate         = "rate"
	KindSession      = "session"
	KindLastN        = "last_n"
	KindRecency      = "recency"
	KindAffinity     = "affinity"
	KindTrending     = "trending"
	KindCovisitation = "covisitation"
)

// Scopes: which entity owns a feature's state.
const (
	ScopeUser         = "user"
	ScopeItem         = "item"
	ScopeUserItem     = "user_item"
	ScopeUserCategory = "user_category"
	ScopeGlobal       = "global"
)

// Duration is a time.Duration that reads "1h", "7d" or "30m" from YAML.
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// ParseDuration extends time.ParseDuration with a "d" (24h) unit.
func ParseDuration(s string) (time.Duration, error) {
	if n := len(s); n > 1 && s[n-1] == 'd' {
		// Sscanf would stop at the first non-number and read "1hd" as 1d.
		days, err := strconv.ParseFloat(s[:n-1], 64)
		if err != nil || math.IsNaN(days) || math.IsInf(days, 0) {
			return 0, fmt.Errorf("duration %q: days must be a number", s)
		}
		ns := days * float64(24*time.Hour)
		if ns >= math.MaxInt64 || ns <= math.MinInt64 {
			return 0, fmt.Errorf("duration %q: out of range (at most about 106751d)", s)
		}
		return time.Duration(ns), nil
	}
	return time.ParseDuration(s)
}

// Spec declares one feature.
type Spec struct {
	Name  string `yaml:"name"`
	Kind  string `yaml:"kind"`
	Scope string `yaml:"scope"`
	// Events limits which interaction types feed the feature; empty = all.
	Events []string `yaml:"events,omitempty"`
	// Window and Buckets shape window_count / window_sum ring buffers.
	Window  Duration `yaml:"window,omitempty"`
	Buckets int      `yaml:"buckets,omitempty"`
	// N is the length of last_n; the neighbour cap for covisitation.
	N int `yaml:"n,omitempty"`
	// HalfLife decays affinity and trending weights.
	HalfLife Duration `yaml:"half_life,omitempty"`
	// Gap ends a session after this much inactivity (default 30m); for
	// covisitation, the largest time distance between paired items.
	Gap Duration `yaml:"gap,omitempty"`
	// Distance is how many previous items covisitation pairs with.
	Distance int `yaml:"distance,omitempty"`
	// Numerator / Denominator name two counters of the same scope (rate).
	Numerator   string  `yaml:"numerator,omitempty"`
	Denominator string  `yaml:"denominator,omitempty"`
	PriorAlpha  float64 `yaml:"prior_alpha,omitempty"`
	PriorBeta   float64 `yaml:"prior_beta,omitempty"`
	// Weights per event type for affinity / trending / covisitation; a type
	// not listed weighs 1. For "rating", the weight is scaled by value/5.
	Weights map[string]float64 `yaml:"weights,omitempty"`
	// TTL: a value not updated for this long reads as the default.
	TTL Duration `yaml:"ttl,omitempty"`
	// Default is served on miss, expiry, timeout or open breaker.
	Default float64 `yaml:"default,omitempty"`
}

// Config is the whole feature file.
type Config struct {
	// Lateness bounds how far behind a user's newest event an event may be
	// and still count in windowed and decayed aggregates.
	Lateness Duration `yaml:"lateness"`
	Features []Spec   `yaml:"features"`
}

//go:embed default.yaml
var defaultYAML []byte

// DefaultConfig is the feature set shipped in the binary.
func DefaultConfig() *Config {
	c, err := ParseConfig(defaultYAML)
	if err != nil {
		panic("features: default.yaml: " + err.Error())
	}
	return c
}

// LoadConfig reads a YAML feature file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(b)
}

// ParseConfig parses and validates a feature file.
func ParseConfig(b []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

var scopesByKind = map[string][]string{
	KindWindowCount:  {ScopeUser, ScopeItem, ScopeGlobal},
	KindWindowSum:    {ScopeUser, ScopeItem, ScopeGlobal},
	KindRate:         {ScopeUser, ScopeItem, ScopeGlobal},
	KindSession:      {ScopeUser},
	KindLastN:        {ScopeUser},
	KindRecency:      {ScopeUser, ScopeItem},
	KindAffinity:     {ScopeUserItem, ScopeUserCategory},
	KindTrending:     {ScopeItem},
	KindCovisitation: {ScopeItem},
}

func (c *Config) validate() error {
	if c.Lateness <= 0 {
		c.Lateness = Duration(time.Hour)
	}
	names := map[string]*Spec{}
	singletons := map[string]bool{}
	for i := range c.Features {
		s := &c.Features[i]
		if s.Name == "" {
			return fmt.Errorf("features[%d]: missing name", i)
		}
		if names[s.Name] != nil {
			return fmt.Errorf("feature %q declared twice", s.Name)
		}
		names[s.Name] = s
		scopes, ok := scopesByKind[s.Kind]
		if !ok {
			return fmt.Errorf("feature %q: unknown kind %q", s.Name, s.Kind)
		}
		if !slices.Contains(scopes, s.Scope) {
			return fmt.Errorf("feature %q: kind %s cannot have scope %q (allowed: %v)", s.Name, s.Kind, s.Scope, scopes)
		}
		// Values are served as JSON and summed into scores: every number
		// must be finite (and weights and priors not negative).
		finite := func(name string, v float64, nonNeg bool) error {
			if math.IsNaN(v) || math.IsInf(v, 0) || (nonNeg && v < 0) {
				return fmt.Errorf("feature %q: %s must be a finite number%s, got %v", s.Name, name,
					map[bool]string{true: " >= 0"}[nonNeg], v)
			}
			return nil
		}
		if err := errors.Join(finite("default", s.Default, false), finite("prior_alpha", s.PriorAlpha, true),
			finite("prior_beta", s.PriorBeta, true)); err != nil {
			return err
		}
		for typ, w := range s.Weights {
			// Large finite weights still overflow decayed sums to +Inf.
			if err := finite("weights."+typ, w, true); err != nil || w > 1e6 {
				return fmt.Errorf("feature %q: weights.%s must be a number in [0, 1e6], got %v", s.Name, typ, w)
			}
		}
		switch s.Kind {
		case KindWindowCount, KindWindowSum:
			if s.Window <= 0 {
				return fmt.Errorf("feature %q: window must be > 0", s.Name)
			}
			if s.Buckets == 0 {
				s.Buckets = 60
			}
			if s.Buckets < 1 || s.Buckets > 1440 {
				return fmt.Errorf("feature %q: buckets must be 1..1440", s.Name)
			}
		case KindSession:
			if s.Gap <= 0 {
				s.Gap = Duration(30 * time.Minute)
			}
			if s.N == 0 {
				s.N = 20
			}
			if s.N < 0 {
				return fmt.Errorf("feature %q: n must be > 0", s.Name)
			}
		case KindLastN:
			if s.N <= 0 || s.N > 1000 {
				return fmt.Errorf("feature %q: n must be 1..1000", s.Name)
			}
		case KindAffinity, KindTrending:
			if s.HalfLife <= 0 {
				return fmt.Errorf("feature %q: half_life must be > 0", s.Name)
			}
		case KindCovisitation:
			if s.Distance <= 0 {
				s.Distance = 3
			}
			if s.Distance > 8 {
				return fmt.Errorf("feature %q: distance must be 1..8", s.Name)
			}
			if s.N <= 0 {
				s.N = 100
			}
			if s.Gap <= 0 {
				s.Gap = Duration(24 * time.Hour)
			}
		}
		// One state of these kinds per entity: the recommender reads them by kind.
		if s.Kind == KindSession || s.Kind == KindLastN || s.Kind == KindCovisitation || s.Kind == KindTrending ||
			(s.Kind == KindAffinity) {
			key := s.Kind + "/" + s.Scope
			if singletons[key] {
				return fmt.Errorf("feature %q: only one %s feature of scope %s is supported", s.Name, s.Kind, s.Scope)
			}
			singletons[key] = true
		}
	}
	for _, s := range c.Features {
		if s.Kind != KindRate {
			continue
		}
		for _, ref := range []string{s.Numerator, s.Denominator} {
			r := names[ref]
			if r == nil || (r.Kind != KindWindowCount && r.Kind != KindWindowSum) || r.Scope != s.Scope {
				return fmt.Errorf("feature %q: %q must name a window_count/window_sum of scope %s", s.Name, ref, s.Scope)
			}
		}
	}
	if !singletons[KindLastN+"/"+ScopeUser] {
		return fmt.Errorf("features: a last_n feature of scope user is required (recommendations read it)")
	}
	if !singletons[KindAffinity+"/"+ScopeUserItem] {
		return fmt.Errorf("features: an affinity feature of scope user_item is required (it is the seen filter)")
	}
	return nil
}
