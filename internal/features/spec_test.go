package features

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// required is the smallest feature set ParseConfig accepts.
const required = `
  - {name: last, kind: last_n, scope: user, n: 5}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}
`

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{name: "not yaml", yaml: "features: [", wantErr: "features: yaml"},
		{name: "unknown field", yaml: "features:\n  - {name: x, kind: window_count, scope: user, windw: 1h}" + required, wantErr: "field windw not found"},
		{name: "unknown top-level field", yaml: "latenes: 1h\nfeatures:" + required, wantErr: "field latenes not found"},
		{name: "unknown kind", yaml: "features:\n  - {name: x, kind: histogram, scope: user}" + required, wantErr: `feature "x": unknown kind "histogram"`},
		{name: "missing kind", yaml: "features:\n  - {name: x, scope: user}" + required, wantErr: `unknown kind ""`},
		{name: "wrong scope", yaml: "features:\n  - {name: x, kind: session, scope: item}" + required, wantErr: `kind session cannot have scope "item"`},
		{name: "missing scope", yaml: "features:\n  - {name: x, kind: window_count, window: 1h}" + required, wantErr: `kind window_count cannot have scope ""`},
		{name: "trending of users", yaml: "features:\n  - {name: x, kind: trending, scope: user, half_life: 1h}" + required, wantErr: "cannot have scope"},
		{name: "affinity of items", yaml: "features:\n  - {name: x, kind: affinity, scope: item, half_life: 1h}" + required, wantErr: "cannot have scope"},
		{name: "missing name", yaml: "features:" + required + "  - {kind: window_count, scope: user, window: 1h}\n", wantErr: "features[2]: missing name"},
		{name: "duplicate names", yaml: "features:\n  - {name: last, kind: window_count, scope: user, window: 1h}" + required, wantErr: `feature "last" declared twice`},
		{name: "window missing", yaml: "features:\n  - {name: x, kind: window_count, scope: user}" + required, wantErr: `feature "x": window must be > 0`},
		{name: "window negative", yaml: "features:\n  - {name: x, kind: window_sum, scope: item, window: -1h}" + required, wantErr: "window must be > 0"},
		{name: "too many buckets", yaml: "features:\n  - {name: x, kind: window_count, scope: user, window: 1h, buckets: 1441}" + required, wantErr: "buckets must be 1..1440"},
		{name: "negative buckets", yaml: "features:\n  - {name: x, kind: window_count, scope: user, window: 1h, buckets: -2}" + required, wantErr: "buckets must be 1..1440"},
		{name: "rate missing counter", yaml: "features:\n  - {name: a, kind: window_count, scope: item, window: 1h}\n  - {name: r, kind: rate, scope: item, numerator: a, denominator: nope}" + required, wantErr: `feature "r": "nope" must name a window_count/window_sum of scope item`},
		{name: "rate missing numerator", yaml: "features:\n  - {name: a, kind: window_count, scope: item, window: 1h}\n  - {name: r, kind: rate, scope: item, denominator: a}" + required, wantErr: `feature "r": "" must name`},
		{name: "rate counter of other scope", yaml: "features:\n  - {name: a, kind: window_count, scope: user, window: 1h}\n  - {name: b, kind: window_count, scope: item, window: 1h}\n  - {name: r, kind: rate, scope: item, numerator: a, denominator: b}" + required, wantErr: `"a" must name a window_count/window_sum of scope item`},
		{name: "rate of a non-counter", yaml: "features:\n  - {name: a, kind: recency, scope: item}\n  - {name: b, kind: window_count, scope: item, window: 1h}\n  - {name: r, kind: rate, scope: item, numerator: a, denominator: b}" + required, wantErr: `"a" must name`},
		{name: "rate of a rate", yaml: "features:\n  - {name: b, kind: window_count, scope: item, window: 1h}\n  - {name: r, kind: rate, scope: item, numerator: b, denominator: b}\n  - {name: r2, kind: rate, scope: item, numerator: r, denominator: b}" + required, wantErr: `feature "r2": "r" must name`},
		{name: "missing last_n", yaml: "features:\n  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}", wantErr: "a last_n feature of scope user is required"},
		{name: "missing user_item affinity", yaml: "features:\n  - {name: last, kind: last_n, scope: user, n: 5}\n  - {name: cat, kind: affinity, scope: user_category, half_life: 1h}", wantErr: "an affinity feature of scope user_item is required"},
		{name: "empty file", yaml: "lateness: 1h", wantErr: "a last_n feature of scope user is required"},
		{name: "last_n n missing", yaml: "features:\n  - {name: last, kind: last_n, scope: user}\n  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}", wantErr: `feature "last": n must be 1..1000`},
		{name: "last_n n too big", yaml: "features:\n  - {name: last, kind: last_n, scope: user, n: 1001}\n  - {name: aff, kind: affinity, scope: user_item, half_life: 1h}", wantErr: "n must be 1..1000"},
		{name: "two last_n", yaml: "features:" + required + "  - {name: last2, kind: last_n, scope: user, n: 5}\n", wantErr: `feature "last2": only one last_n feature of scope user`},
		{name: "two sessions", yaml: "features:" + required + "  - {name: s1, kind: session, scope: user}\n  - {name: s2, kind: session, scope: user}\n", wantErr: "only one session feature"},
		{name: "two trending", yaml: "features:" + required + "  - {name: t1, kind: trending, scope: item, half_life: 1h}\n  - {name: t2, kind: trending, scope: item, half_life: 2h}\n", wantErr: "only one trending feature"},
		{name: "session n negative", yaml: "features:" + required + "  - {name: s, kind: session, scope: user, n: -1}\n", wantErr: `feature "s": n must be`},
		{name: "affinity without half_life", yaml: "features:\n  - {name: last, kind: last_n, scope: user, n: 5}\n  - {name: aff, kind: affinity, scope: user_item}", wantErr: `feature "aff": half_life must be > 0`},
		{name: "trending without half_life", yaml: "features:" + required + "  - {name: t, kind: trending, scope: item}\n", wantErr: "half_life must be > 0"},
		{name: "covisitation distance", yaml: "features:" + required + "  - {name: c, kind: covisitation, scope: item, distance: 9}\n", wantErr: "distance must be 1..8"},
		{name: "bad duration", yaml: "features:\n  - {name: x, kind: window_count, scope: user, window: 1x}" + required, wantErr: `unknown unit "x"`},
		{name: "duration without unit", yaml: "features:\n  - {name: x, kind: window_count, scope: user, window: 3600}" + required, wantErr: "missing unit"},
		{name: "bad days", yaml: "features:\n  - {name: x, kind: window_count, scope: user, window: xd}" + required, wantErr: `duration "xd"`},
		{name: "days with junk", yaml: "features:\n  - {name: x, kind: window_count, scope: user, window: 7xd}" + required, wantErr: `duration "7xd"`},
		{name: "hours then days", yaml: "features:\n  - {name: x, kind: window_count, scope: user, window: 1hd}" + required, wantErr: `duration "1hd"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParseConfig accepted it: %+v", c)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(`features:
  - {name: w, kind: window_count, scope: user, window: 7d}
  - {name: s, kind: session, scope: user}
  - {name: c, kind: covisitation, scope: item}
  - {name: last, kind: last_n, scope: user, n: 5}
  - {name: aff, kind: affinity, scope: user_item, half_life: 1.5d}
  - {name: cat, kind: affinity, scope: user_category, half_life: 90m}
  - {name: r, kind: rate, scope: user, numerator: w, denominator: w, prior_alpha: 1, prior_beta: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Lateness != Duration(time.Hour) {
		t.Errorf("lateness default = %v", time.Duration(c.Lateness))
	}
	byName := map[string]Spec{}
	for _, s := range c.Features {
		byName[s.Name] = s
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"window 7d", byName["w"].Window, Duration(7 * 24 * time.Hour)},
		{"buckets default", byName["w"].Buckets, 60},
		{"session gap default", byName["s"].Gap, Duration(30 * time.Minute)},
		{"session n default", byName["s"].N, 20},
		{"covis distance default", byName["c"].Distance, 3},
		{"covis n default", byName["c"].N, 100},
		{"covis gap default", byName["c"].Gap, Duration(24 * time.Hour)},
		{"half_life 1.5d", byName["aff"].HalfLife, Duration(36 * time.Hour)},
		{"half_life 90m", byName["cat"].HalfLife, Duration(90 * time.Minute)},
		{"prior", [2]float64{byName["r"].PriorAlpha, byName["r"].PriorBeta}, [2]float64{1, 3}},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s: got %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{in: "7d", want: 7 * 24 * time.Hour},
		{in: "1d", want: 24 * time.Hour},
		{in: "0.5d", want: 12 * time.Hour},
		{in: "30m", want: 30 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "d", wantErr: true},
		{in: "", wantErr: true},
		{in: "7", wantErr: true},
		{in: "7days", wantErr: true},
		{in: "7xd", wantErr: true},
		{in: "1hd", wantErr: true},
		{in: "7 d", wantErr: true},
		{in: "NaNd", wantErr: true},
		{in: "Infd", wantErr: true},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseDuration(%q) = %v, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	c := DefaultConfig()
	if len(c.Features) < 10 {
		t.Fatalf("default config has only %d features", len(c.Features))
	}
	if c.Lateness != Duration(time.Hour) {
		t.Errorf("lateness = %v", time.Duration(c.Lateness))
	}
	kinds := map[string]bool{}
	for _, s := range c.Features {
		kinds[s.Kind] = true
	}
	for _, k := range []string{KindWindowCount, KindRate, KindSession, KindLastN, KindRecency, KindAffinity, KindTrending, KindCovisitation} {
		if !kinds[k] {
			t.Errorf("default config has no %s feature", k)
		}
	}
	// Each call returns an independent copy: callers may tweak theirs.
	c.Features[0].Name = "changed"
	if DefaultConfig().Features[0].Name == "changed" {
		t.Fatal("DefaultConfig returns shared state")
	}
}

// A config written back out (e.g. by `ripple config print`) reads back the same.
func TestConfigYAMLRoundTrip(t *testing.T) {
	c := DefaultConfig()
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ParseConfig(b)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, b)
	}
	if !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip changed the config:\n%s", b)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "features.yaml")
	if err := os.WriteFile(p, []byte("lateness: 2h\nfeatures:"+required), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Lateness != Duration(2*time.Hour) || len(c.Features) != 2 {
		t.Fatalf("loaded %+v", c)
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file: no error")
	}
}
